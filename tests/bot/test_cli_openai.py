"""`wa-persona openai ...`: train, watch, jobs and cancel against a local fake OpenAI API."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from bot.cli import app
from bot.cli.openai_jobs import DEFAULT_MODEL_HELP
from style.sample import sample_paths
from tests.fakes.openai_server import FakeOpenAI, failing, metrics_event, succeeding
from training.openai_ft import (
    DEFAULT_MODEL,
    OPENAI_WIND_DOWN_NOTE,
    OpenAIJobConfig,
    estimate_cost,
    load_dataset,
)
from training.registry import ModelStatus, Registry

runner = CliRunner()
MODEL_ID = "ft:gpt-4.1-mini-2025-04-14:org-fake:maya:Zz9"
EVENT_LINE = re.compile(r"^ftjob-\d+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Maya's datasets from the sample export, written by `wa-persona dataset` itself."""
    folders = {}
    for name, scrub in (("scrubbed", "true"), ("unscrubbed", "false")):
        root = tmp_path_factory.mktemp(name)
        result = runner.invoke(
            app,
            [
                "dataset",
                *map(str, sample_paths()),
                "--persona",
                "Maya",
                "--out",
                str(root / "dataset"),
            ],
            env={"WA_PERSONA_DATA_DIR": str(root / "data"), "WA_PERSONA_SCRUB_TRAINING": scrub},
        )
        assert result.exit_code == 0, result.output
        folders[name] = root / "dataset"
    return folders


@pytest.fixture
def dataset(datasets: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(datasets["scrubbed"], tmp_path / "dataset"))


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().serve() as server:
        yield server


@pytest.fixture
def env(fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings for a machine where OpenAI fine-tuning is allowed, pointed at the fake."""
    for name in ("WA_PERSONA_DATABASE", "WA_PERSONA_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return {
        "WA_PERSONA_DATA_DIR": str(tmp_path / "data"),
        "WA_PERSONA_OPENAI_API_KEY": fake.api_key,
        "WA_PERSONA_OPENAI_BASE_URL": str(fake.base_url),
        "WA_PERSONA_OPENAI_FINE_TUNING": "true",
        "WA_PERSONA_OPENAI_POLL_SECONDS": "0.001",
        "COLUMNS": "200",
    }


def _run(env: dict[str, str], *args: str, **changes: str | None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["openai", *args], env={**env, **changes})
    return result.exit_code, result.stdout, result.stderr


def _registry(env: dict[str, str]) -> Registry:
    return Registry.open(Path(env["WA_PERSONA_DATA_DIR"]) / "wa-persona.db")


def test_dry_run_prints_the_estimate_and_sends_nothing(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    code, out, _ = _run(
        env,
        "train",
        str(dataset),
        "--persona",
        "Maya",
        "--epochs",
        "2",
        "--dry-run",
        WA_PERSONA_OPENAI_API_KEY=None,
        WA_PERSONA_OPENAI_FINE_TUNING="false",
        WA_PERSONA_OPENAI_TRAINING_USD_PER_1M_TOKENS="8",
    )
    assert code == 0
    cost = estimate_cost(load_dataset(dataset), OpenAIJobConfig(n_epochs=2), usd_per_1m_tokens=8.0)
    row = next(line for line in out.splitlines() if f"{cost.train_tokens:,}" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == [
        f"{cost.train_tokens:,}",
        "2",
        f"{cost.train_tokens * 2:,}",
        f"${cost.train_tokens * 2 * 8 / 1e6:,.2f}",
        f"{cost.eval_tokens:,}",
    ]
    assert "an estimate, not a quote" in out
    assert "a real run needs WA_PERSONA_OPENAI_FINE_TUNING=true" in out
    assert "a real run needs WA_PERSONA_OPENAI_API_KEY" in out
    assert OPENAI_WIND_DOWN_NOTE.split(":")[0] in out
    assert fake.requests == []


def test_train_uploads_starts_follows_and_registers_the_model(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    fake.script = succeeding(MODEL_ID, metrics=[metrics_event(1, 2, 2.5), metrics_event(2, 2, 1.9)])
    code, out, err = _run(env, "train", str(dataset), "--persona", "Maya", "--epochs", "3")
    assert code == 0, err
    (job_id,) = fake.jobs
    assert f"started OpenAI job {job_id} for maya-v1 ({DEFAULT_MODEL})" in out
    events = [line for line in out.splitlines() if EVENT_LINE.match(line)]
    assert [line.split(" ", 3)[3] for line in events] == [e["message"] for e in fake.events[job_id]]
    assert f"{job_id} succeeded: maya-v1 is ready ({MODEL_ID})" in out
    uploaded = {f.filename: f.content for f in fake.files.values()}
    assert uploaded == {
        "openai_train.jsonl": (dataset / "openai_train.jsonl").read_bytes(),
        "openai_eval.jsonl": (dataset / "openai_eval.jsonl").read_bytes(),
    }
    body = fake.requests_to("POST", "/v1/fine_tuning/jobs")[0].body
    assert body["method"]["supervised"]["hyperparameters"]["n_epochs"] == 3
    version = _registry(env).get("maya-v1")
    assert (version.status, version.remote_id) == (ModelStatus.READY, MODEL_ID)
    assert version.metrics["train_loss"] == 1.9


def test_watch_after_no_wait_finishes_the_job_without_repeating_anything(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    code, out, _ = _run(env, "train", str(dataset), "--persona", "Maya", "--no-wait")
    (job_id,) = fake.jobs
    assert code == 0
    assert f"follow it with `wa-persona openai watch {job_id}`" in out
    code, jobs_table, _ = _run(env, "jobs")
    assert code == 0
    assert re.search(rf"{job_id}\s+│\s+maya-v1\s+│\s+Maya\s+│.*validating_files", jobs_table)

    code, out, _ = _run(env, "watch")  # a new process: every unfinished stored job
    assert code == 0
    printed = [line.split(" ", 3)[3] for line in out.splitlines() if EVENT_LINE.match(line)]
    assert printed == [e["message"] for e in fake.events[job_id]]
    assert len(fake.requests_to("POST", "/v1/files")) == 2
    assert len(fake.requests_to("POST", "/v1/fine_tuning/jobs")) == 1

    code, out, _ = _run(env, "watch")
    assert (code, out.strip()) == (0, "no unfinished OpenAI jobs")


def test_failed_job_exits_1_with_openai_reason(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    fake.script = failing("invalid_n_examples", "Training file has too few examples", "file")
    code, out, _ = _run(env, "train", str(dataset), "--persona", "Maya")
    (job_id,) = fake.jobs
    assert code == 1
    assert (
        f"{job_id} failed: Training file has too few examples (invalid_n_examples, file); "
        "maya-v1 failed"
    ) in out
    assert _registry(env).get("maya-v1").status is ModelStatus.FAILED


def test_cancel_marks_the_version_failed(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    _run(env, "train", str(dataset), "--persona", "Maya", "--no-wait")
    (job_id,) = fake.jobs
    code, out, _ = _run(env, "cancel", job_id)
    assert (code, out.strip()) == (0, f"{job_id} is cancelled; maya-v1 is marked failed")
    assert fake.jobs[job_id]["status"] == "cancelled"
    assert _registry(env).get("maya-v1").notes == f"OpenAI job {job_id}: cancelled"


def test_jobs_remote_lists_the_account_jobs(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    _run(env, "train", str(dataset), "--persona", "Maya", "--no-wait")
    (job_id,) = fake.jobs
    code, out, _ = _run(env, "jobs", "--remote")
    assert code == 0
    assert re.search(rf"{job_id}\s+│\s+{DEFAULT_MODEL}\s+│\s+validating_files.*│\s+yes", out)


def test_setting_off_refuses_and_sends_nothing(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    code, _, err = _run(
        env, "train", str(dataset), "--persona", "Maya", WA_PERSONA_OPENAI_FINE_TUNING="false"
    )
    assert code == 2
    assert "WA_PERSONA_OPENAI_FINE_TUNING=true" in err
    assert fake.requests == []


def test_missing_key_names_the_setting(
    fake: FakeOpenAI, dataset: Path, env: dict[str, str]
) -> None:
    code, _, err = _run(
        env, "train", str(dataset), "--persona", "Maya", WA_PERSONA_OPENAI_API_KEY=None
    )
    assert code == 2
    assert "no OpenAI API key; set WA_PERSONA_OPENAI_API_KEY" in err
    assert fake.requests == []


def test_bad_key_is_one_error_line(fake: FakeOpenAI, dataset: Path, env: dict[str, str]) -> None:
    code, _, err = _run(
        env, "train", str(dataset), "--persona", "Maya", WA_PERSONA_OPENAI_API_KEY="sk-wrong"
    )
    assert code == 2
    assert err.startswith("Error: OpenAI refused the API key while uploading the training data")
    assert "Traceback" not in err
    assert fake.files == {}


def test_unscrubbed_dataset_is_refused(
    fake: FakeOpenAI, datasets: dict[str, Path], env: dict[str, str]
) -> None:
    code, _, err = _run(env, "train", str(datasets["unscrubbed"]), "--persona", "Maya")
    assert code == 2
    assert "was built without scrubbing" in err
    assert "WA_PERSONA_SCRUB_TRAINING=true" in err
    assert fake.requests == []


def test_bad_epochs_is_a_usage_error(fake: FakeOpenAI, dataset: Path, env: dict[str, str]) -> None:
    code, _, err = _run(env, "train", str(dataset), "--persona", "Maya", "--epochs", "many")
    assert code == 2
    assert "takes a whole number or auto, not 'many'" in err
    assert fake.requests == []


def test_unknown_job_is_one_error_line(fake: FakeOpenAI, env: dict[str, str]) -> None:
    code, _, err = _run(env, "watch", "ftjob-missing")
    assert code == 2
    assert "no stored OpenAI job 'ftjob-missing'" in err
    assert fake.requests == []


def test_openai_commands_have_help_and_the_default_model() -> None:
    group = get_command(app).commands["openai"]  # type: ignore[attr-defined]
    assert sorted(group.commands) == ["cancel", "jobs", "train", "watch"]
    assert all(command.help for command in group.commands.values())
    assert DEFAULT_MODEL_HELP == DEFAULT_MODEL
