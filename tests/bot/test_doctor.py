"""`wa-persona doctor`: the checks, secrets never shown, endpoint probes, recommendations."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from typer.testing import CliRunner

from bot.cli import app
from bot.doctor import (
    CPU_PRESET,
    GPU_PRESET,
    GPU_SMALL_PRESET,
    HEARTBEAT_MAX_AGE_S,
    Approach,
    CheckStatus,
    check_endpoint,
    hardware_checks,
    heartbeat_path,
    recommend,
    run_doctor,
    write_heartbeat,
)
from bot.personas import PersonaInfo, prepare_persona
from bot.settings import Settings
from style.sample import sample_paths
from tests.bot.prepared import settings_for
from tests.fakes.server import serve_in_thread
from training.config import list_presets, load_train_config
from training.dataset.estimate import (
    CONSUMER_GPU_7B_QLORA_TOKENS_PER_S,
    CPU_SMOLLM2_135M_TOKENS_PER_S,
    DEFAULT_EPOCHS,
    SplitTokens,
    TokenCounts,
)
from training.db import connect
from training.hardware import Hardware
from training.registry import BackendKind, Registry

runner = CliRunner()

SECRETS = {
    "WA_PERSONA_TELEGRAM_TOKEN": "123456:tg-token-value-xyz",
    "WA_PERSONA_ANTHROPIC_API_KEY": "sk-ant-secret-value-abc",
    "WA_PERSONA_OPENAI_API_KEY": "sk-openai-secret-value-def",
    "WA_PERSONA_OPENAI_COMPATIBLE_API_KEY": "vllm-secret-value-ghi",
    "WA_PERSONA_WHATSAPP_TOKEN": "EAAG-whatsapp-token-value",
    "WA_PERSONA_WHATSAPP_APP_SECRET": "app-secret-value-jkl",
    "WA_PERSONA_WHATSAPP_VERIFY_TOKEN": "verify-token-value-mno",
    "WA_PERSONA_SCRUB_SALT": "salt-value-pqr",
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: no WA_PERSONA_* variables, no .env, an empty data dir."""
    for name in list(os.environ):
        if name.startswith("WA_PERSONA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("WA_PERSONA_DATA_DIR", str(data))
    return data


def _doctor(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["doctor", *args], env={"COLUMNS": "240"})
    return result.exit_code, result.stdout


def _rows(out: str) -> dict[str, str]:
    """check name -> the rest of its table line."""
    rows = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) >= 4 and cells[1]:
            rows[cells[1]] = " ".join(cells[2:])
    return rows


# --- the whole run -------------------------------------------------------------------------


def test_doctor_on_an_empty_data_dir_passes_with_every_check_in_the_table(env: Path) -> None:
    code, out = _doctor()

    assert code == 0
    rows = _rows(out)
    assert rows["settings"].startswith("ok")
    assert "writable" in rows["data dir"] and rows["data dir"].startswith("ok")
    assert rows["disk"].startswith("ok") and "GB free" in rows["disk"]
    assert "not created yet" in rows["database"]
    assert rows["service"].startswith("skip")
    assert rows["telegram"].startswith("skip") and rows["whatsapp"].startswith("skip")
    assert rows["transports"].startswith("warn")
    assert rows["backend retrieval"].startswith("ok")
    assert "The essentials work." in out
    assert not (env / "wa-persona.db").exists()  # the doctor looks, it does not create


def test_doctor_never_prints_a_secret_value(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WA_PERSONA_WHATSAPP_PHONE_NUMBER_ID", "1065550100")

    code, table = _doctor()
    _, as_json = _doctor("--json")
    _, quick = _doctor("--quick")

    assert code == 0
    for output in (table, as_json, quick):
        for value in SECRETS.values():
            assert value not in output
    report = json.loads(as_json)
    secrets_row = next(c for c in report["checks"] if c["name"] == "secrets")
    assert "set: scrub_salt, openai_api_key, anthropic_api_key" in secrets_row["detail"]
    assert "missing: telegram_webhook_secret" in secrets_row["detail"]
    whatsapp = next(c for c in report["checks"] if c["name"] == "whatsapp")
    assert whatsapp["status"] == "ok" and "/whatsapp/webhook" in whatsapp["detail"]


def test_half_configured_whatsapp_fails(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WA_PERSONA_WHATSAPP_TOKEN", "EAAG-token")
    monkeypatch.setenv("WA_PERSONA_WHATSAPP_VERIFY_TOKEN", "verify")

    code, out = _doctor("--json")

    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    whatsapp = next(c for c in report["checks"] if c["name"] == "whatsapp")
    assert whatsapp["status"] == "fail"
    assert "missing: phone number id, app secret" in whatsapp["detail"]


def test_settings_that_do_not_load_fail_without_echoing_the_value(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WA_PERSONA_HTTP_PORT", "port-eighty-eighty")

    code, out = _doctor("--json")

    assert code == 1
    (check,) = json.loads(out)["checks"]
    assert check["status"] == "fail" and "http_port" in check["detail"]
    assert "port-eighty-eighty" not in out


def test_doctor_lists_schema_versions_and_refuses_a_newer_database(env: Path) -> None:
    registry = Registry.open(env / "wa-persona.db")
    registry.db.close()

    code, out = _doctor("--json")
    database = next(c for c in json.loads(out)["checks"] if c["name"] == "database")
    assert code == 0
    assert database["status"] == "ok"
    assert "registry v1" in database["detail"] and "writable" in database["detail"]

    db = connect(env / "wa-persona.db")
    db.execute("INSERT INTO schema_migrations (component, version) VALUES ('registry', 99)")
    db.close()
    code, out = _doctor("--json")
    database = next(c for c in json.loads(out)["checks"] if c["name"] == "database")
    assert code == 1
    assert database["status"] == "fail" and "newer wa-persona" in database["detail"]


def test_quick_fails_when_the_service_heartbeat_goes_stale(env: Path) -> None:
    settings = settings_for(env)
    write_heartbeat(settings)

    code, out = _doctor("--quick")
    assert (code, out.strip()) == (0, "healthy")

    stale = time.time() - HEARTBEAT_MAX_AGE_S - 60
    os.utime(heartbeat_path(settings), (stale, stale))
    code, out = _doctor("--quick")
    assert code == 1
    assert out.startswith("service: last heartbeat") and "stuck or stopped" in out


def test_quick_reads_the_database_without_writing(env: Path) -> None:
    Registry.open(env / "wa-persona.db").db.close()
    before = (env / "wa-persona.db").stat().st_mtime_ns

    report = run_doctor(settings_for(env), quick=True)

    assert report.ok
    assert [c.name for c in report.checks] == [
        "settings",
        "data dir",
        "disk",
        "database",
        "service",
    ]
    assert "readable" in report.checks[3].detail
    assert (env / "wa-persona.db").stat().st_mtime_ns == before


def test_a_data_dir_that_cannot_be_created_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")

    report = run_doctor(settings_for(blocker / "data"), quick=True)

    assert not report.ok
    data_dir = report.checks[1]
    assert data_dir.status is CheckStatus.FAIL and "is not a folder" in data_dir.detail


# --- OpenAI-compatible endpoints -----------------------------------------------------------

ENDPOINT_KEY = "vllm-secret-value-ghi"


@contextmanager
def models_server(served: list[str]) -> Iterator[tuple[str, list[str]]]:
    """vLLM's `GET /v1/models` on 127.0.0.1 in a background thread; yields (base url, keys)."""
    keys: list[str] = []

    async def models(request: web.Request) -> web.Response:
        keys.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {ENDPOINT_KEY}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        data = [{"id": name, "object": "model", "owned_by": "vllm"} for name in served]
        return web.json_response({"object": "list", "data": data})

    application = web.Application()
    application.router.add_get("/v1/models", models)
    with serve_in_thread(application, name="fake-vllm") as port:
        yield f"http://127.0.0.1:{port}/v1", keys


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_reachable_endpoint_serving_the_model_is_ok() -> None:
    with models_server(["maya-v3", "sam-v1"]) as (url, keys):
        check = check_endpoint(url, ["maya-v3"], api_key=ENDPOINT_KEY)

    assert check.status is CheckStatus.OK
    assert check.detail == "reachable; serves maya-v3"
    assert keys == [f"Bearer {ENDPOINT_KEY}"]


def test_an_endpoint_without_the_model_says_to_add_it() -> None:
    with models_server(["sam-v1"]) as (url, _):
        check = check_endpoint(url, ["maya-v3"], api_key=ENDPOINT_KEY)

    assert check.status is CheckStatus.WARN
    assert "not served: maya-v3" in check.detail and "--lora-modules" in check.detail


def test_a_wrong_key_is_reported_without_the_key() -> None:
    with models_server(["maya-v3"]) as (url, _):
        check = check_endpoint(url, ["maya-v3"], api_key="wrong-key-value")

    assert check.status is CheckStatus.WARN
    assert "HTTP 401" in check.detail and "wrong-key-value" not in check.detail


def test_an_unreachable_endpoint_warns_quickly() -> None:
    started = time.monotonic()
    check = check_endpoint(f"http://127.0.0.1:{_closed_port()}/v1", ["maya-v3"], timeout_s=2)

    assert check.status is CheckStatus.WARN
    assert check.detail.startswith("unreachable") and "falls back" in check.detail
    assert time.monotonic() - started < 2


def test_doctor_probes_the_endpoints_of_registered_versions(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WA_PERSONA_OPENAI_COMPATIBLE_API_KEY", ENDPOINT_KEY)
    monkeypatch.setenv("WA_PERSONA_OPENAI_API_KEY", "sk-openai-never-sent")
    registry = Registry.open(env / "wa-persona.db")
    gone = f"http://127.0.0.1:{_closed_port()}/v1"
    with models_server(["maya-v1"]) as (url, keys):
        registry.create("Maya", BackendKind.OPENAI_COMPATIBLE, endpoint=url, remote_id="maya-v1")
        registry.create("Sam", BackendKind.OPENAI_COMPATIBLE, endpoint=gone, remote_id="sam-v1")
        for version in registry.list():
            registry.update(version.version, status="ready")
        registry.db.close()
        code, out = _doctor("--json")

    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 0  # an endpoint that is down degrades the bot, it does not break it
    assert checks[f"endpoint {url}"]["status"] == "ok"
    assert checks[f"endpoint {gone}"]["status"] == "warn"
    assert keys == [f"Bearer {ENDPOINT_KEY}"]


def test_a_password_in_an_endpoint_url_is_not_shown() -> None:
    check = check_endpoint(f"http://user:hunter2@127.0.0.1:{_closed_port()}/v1", ["m"])

    assert "hunter2" not in check.name and "user" not in check.name


# --- recommendations -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def maya(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Maya prepared once from the bundled sample."""
    settings = settings_for(tmp_path_factory.mktemp("data"))
    prepare_persona(settings, "Maya", sample_paths())
    return settings


def _tokens(train_total: int) -> TokenCounts:
    split = SplitTokens("train", 800, 6000, train_total, 30000, 30000, 250, 450, 580)
    return TokenCounts(
        train=split, eval=replace(split, split="eval"), counter="test", tokens_per_message=4
    )


def _info(train_samples: int, persona_messages: int = 5000) -> PersonaInfo:
    stamp = datetime(2026, 3, 1, tzinfo=UTC)
    return PersonaInfo(
        name="Maya",
        slug="maya",
        sources=(),
        build_key="k",
        created_at=stamp,
        updated_at=stamp,
        counts={"train_samples": train_samples, "persona_messages": persona_messages},
    )


def _gpu(memory_gb: int, *, bitsandbytes: bool = True) -> Hardware:
    return Hardware(
        cuda=True,
        gpu_name="NVIDIA GeForce RTX 4090",
        gpu_memory_mb=memory_gb * 1024,
        gpu_count=1,
        bf16=True,
        bitsandbytes=bitsandbytes,
        flash_attention=False,
        liger_kernel=False,
        cpu_count=16,
        platform="Linux x86_64",
    )


def test_doctor_recommends_cpu_lora_for_a_prepared_persona_without_a_gpu(maya: Settings) -> None:
    _, hardware = hardware_checks()
    if hardware is not None and hardware.cuda:
        pytest.skip("this machine has a CUDA GPU: the doctor recommends QLoRA here")

    report = run_doctor(maya)

    (item,) = report.recommendations
    assert item.persona == "Maya"
    assert item.approach is Approach.CPU_LORA
    assert "LoRA on a small model on this CPU" in item.reason
    dataset = maya.data_dir / "personas" / "maya" / "dataset"
    assert item.command == f"wa-persona train --config {CPU_PRESET} --dataset {dataset}"
    card = json.loads((dataset / "dataset_card.json").read_text(encoding="utf-8"))
    full_s = card["tokens"]["train"]["total"] * DEFAULT_EPOCHS / CPU_SMOLLM2_135M_TOKENS_PER_S
    steps = load_train_config(CPU_PRESET).training
    capped = steps.max_steps * steps.batch_size * steps.gradient_accumulation * steps.max_length
    capped_s = capped / CPU_SMOLLM2_135M_TOKENS_PER_S
    assert capped_s < full_s  # the preset is sized to finish quickly on a CPU
    assert item.hours == pytest.approx(capped_s / 3600)
    assert f"about {capped_s / 60:.0f} min" in item.reason
    assert any(f"full epochs take about {full_s / 3600:.1f} h" in note for note in item.notes)
    assert "first fetch the base model: wa-persona models fetch smollm2-135m" in item.notes


def test_doctor_table_shows_the_recommendation(
    maya: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("WA_PERSONA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WA_PERSONA_DATA_DIR", str(maya.data_dir))

    code, out = _doctor()

    assert code == 0
    assert "How to answer as each persona" in out
    maya_line = next(line for line in out.splitlines() if "│ Maya" in line)
    assert "training samples" in maya_line
    assert f"--config {CPU_PRESET}" in out


def test_few_samples_answer_with_retrieval_or_claude() -> None:
    few = _info(train_samples=120, persona_messages=300)
    kwargs = {"train_extra": True, "dataset_dir": Path("/d")}

    plain = recommend(few, _tokens(40_000), None, claude_ready=False, **kwargs)  # type: ignore[arg-type]
    claude = recommend(few, _tokens(40_000), _gpu(24), claude_ready=True, **kwargs)  # type: ignore[arg-type]

    assert plain.approach is Approach.RETRIEVAL and plain.command is None
    assert "too few to fine-tune" in plain.reason and "retrieval" in plain.reason
    assert any("WA_PERSONA_ANTHROPIC_API_KEY" in note for note in plain.notes)
    assert claude.approach is Approach.CLAUDE and "Claude" in claude.reason


def test_a_24gb_gpu_gets_7b_qlora_with_time_and_memory() -> None:
    item = recommend(
        _info(800),
        _tokens(300_000),
        _gpu(24),
        claude_ready=True,
        train_extra=True,
        dataset_dir=Path("/d"),
    )

    assert item.approach is Approach.GPU_QLORA
    assert item.command == f"wa-persona train --config {GPU_PRESET} --dataset /d"
    assert "needs 16-24 GB; this GPU has 24 GB" in item.reason
    assert item.hours == pytest.approx(300_000 * 3 / CONSUMER_GPU_7B_QLORA_TOKENS_PER_S / 3600)
    assert "about 10 min" in item.reason


def test_a_small_gpu_gets_the_small_preset_and_a_missing_bitsandbytes_is_named() -> None:
    item = recommend(
        _info(800),
        _tokens(300_000),
        _gpu(8, bitsandbytes=False),
        claude_ready=False,
        train_extra=True,
        dataset_dir=Path("/d"),
    )

    assert item.approach is Approach.GPU_QLORA
    assert f"--config {GPU_SMALL_PRESET}" in (item.command or "")
    assert "under the 16 GB" in item.reason
    assert any("wa-persona[gpu]" in note for note in item.notes)


def test_a_long_cpu_run_also_prices_a_rented_gpu() -> None:
    item = recommend(
        _info(5000),
        _tokens(20_000_000),
        None,
        claude_ready=False,
        train_extra=False,
        dataset_dir=Path("/d"),
    )

    assert item.approach is Approach.CPU_LORA
    full_hours = 20_000_000 * DEFAULT_EPOCHS / CPU_SMOLLM2_135M_TOKENS_PER_S / 3600
    assert any(f"full epochs take about {full_hours / 24:.1f} days" in n for n in item.notes)
    rent = next(note for note in item.notes if note.startswith("or rent a GPU"))
    assert "H100" in rent and "$" in rent
    assert any("[train] extra" in note for note in item.notes)


def test_the_recommended_presets_exist() -> None:
    assert {CPU_PRESET, GPU_PRESET, GPU_SMALL_PRESET} <= set(list_presets())


def test_doctor_without_torch_skips_cuda(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )

    report = run_doctor(settings_for(env))

    cuda = next(c for c in report.checks if c.name == "cuda")
    assert cuda.status is CheckStatus.SKIP and "torch not installed" in cuda.detail
    local = next(c for c in report.checks if c.name == "backend local")
    assert local.status is CheckStatus.SKIP and "[train] extra not installed" in local.detail


def test_an_empty_secret_line_is_flagged_and_not_taken_as_a_token(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WA_PERSONA_TELEGRAM_TOKEN", "")

    code, out = _doctor("--json")

    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 0
    assert (
        checks["secrets"]["status"] == "warn"
        and "empty: telegram_token" in checks["secrets"]["detail"]
    )
    assert checks["telegram"]["status"] == "skip"
