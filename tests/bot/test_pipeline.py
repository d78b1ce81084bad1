"""`run_pipeline` and `wa-persona pipeline` on the tiny offline model and the bundled sample.

Every step runs for real: the persona from the sample export, the base model (a local
folder), LoRA training registered in the registry, the evaluation of the version, its
untuned base, retrieval (and Claude, against the fake Anthropic server) on held-out turns,
and the activation of the first version.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.pipeline import PIPELINE_STEPS, PipelineError, PipelineHooks, PipelineResult, run_pipeline
from bot.settings import Settings
from style.sample import sample_paths, write_sample
from tests.fakes.anthropic_server import API_KEY, FakeAnthropic
from tests.training.tiny_model import TINY_RUN, tiny_model_dir
from training.evaluate import REAL
from training.registry import BackendKind, ModelStatus, Registry, UnknownVersionError

__all__ = ["tiny_model_dir"]  # a fixture, imported to be found here

pytest.importorskip("trl")
pytestmark = pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")
runner = CliRunner()

TINY = {**TINY_RUN, "training.max_steps": 2, "training.max_length": 1024, "eval.every": 2}
"""The preset shrunk to seconds: two steps of four samples, one evaluation (the tiny
tokenizer needs more tokens than SmolLM2's, hence the longer samples)."""
QUARTER = 91
"""Days of the sample the exports cover: a quarter trains and evaluates four times faster."""
LIMIT = 4
"""Held-out turns evaluated."""


def settings_for(data_dir: Path, **values: object) -> Settings:
    """Offline settings; greedy, short local replies so the tiny model answers in no time."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        local_temperature=0.0,
        local_max_new_tokens=8,
        **values,
    )


@dataclass(frozen=True)
class FirstRun:
    """The pipeline's first run: what it returned, what the hooks heard, where it wrote."""

    result: PipelineResult
    calls: list[tuple[str, str]]
    data_dir: Path
    exports: list[Path]


def report_of(result: PipelineResult) -> dict:
    return json.loads(result.evaluation.files.json.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> FirstRun:
    """The pipeline once, on a fresh data dir, from the sample's first quarter."""
    data_dir = tmp_path_factory.mktemp("data")
    exports = write_sample(tmp_path_factory.mktemp("quarter"), days=QUARTER)
    calls: list[tuple[str, str]] = []
    hooks = PipelineHooks(
        on_start=lambda step, what: calls.append(("start", step)),
        on_detail=lambda step, what: calls.append(("detail", step)),
        on_done=lambda step: calls.append(("done", step.name)),
        on_train=lambda event: calls.append(("train", event.kind)),
        on_eval=lambda update: calls.append(("eval", update.system)),
    )
    result = run_pipeline(
        settings_for(data_dir),
        exports,
        persona="Maya",
        base=str(tiny_model_dir),
        overrides=TINY,
        limit=LIMIT,
        hooks=hooks,
    )
    return FirstRun(result, calls, data_dir, exports)


def test_pipeline_runs_every_step_in_order_and_reports_each(first_run: FirstRun) -> None:
    result, calls = first_run.result, first_run.calls
    assert [step.name for step in result.steps] == list(PIPELINE_STEPS)
    assert [step for kind, step in calls if kind == "start"] == list(PIPELINE_STEPS)
    assert [step for kind, step in calls if kind == "done"] == list(PIPELINE_STEPS)
    assert ("detail", "persona") in calls  # built from the exports, step by step
    assert {event for kind, event in calls if kind == "train"} >= {"start", "step", "end"}
    evaluated = {step for kind, step in calls if kind == "eval"}
    assert evaluated == {"maya-v1", "base:maya-v1", "retrieval"}
    skipped = {step.name: step.skipped for step in result.steps}
    assert skipped == {name: name == "model" for name in PIPELINE_STEPS}  # a local folder
    assert all(step.seconds >= 0 for step in result.steps)


def test_pipeline_trains_on_the_sample_and_registers_a_version_on_the_base(
    first_run: FirstRun, tiny_model_dir: Path
) -> None:
    result, data_dir = first_run.result, first_run.data_dir
    assert result.persona.name == "Maya" and result.persona.folder == data_dir / "personas/maya"
    assert result.run is not None and result.run.metrics.steps == 2
    (version,) = Registry.open(data_dir / "wa-persona.db").list("Maya")
    assert version.version == result.version.version == "maya-v1"
    assert version.base_model == result.base_model == str(tiny_model_dir)
    assert version.path == str(result.run.weights_dir)
    assert version.config["dataset"] == str(result.persona.dataset_dir)
    assert version.metrics["messages"] == result.persona.info.counts["persona_messages"]
    assert version.metrics["eval_turns"] == LIMIT  # the evaluation's numbers are recorded
    card = json.loads((result.persona.dataset_dir / "dataset_card.json").read_text("utf-8"))
    assert card["tokens"]["counter"] == str(tiny_model_dir)  # sized by the model it trains


def test_pipeline_evaluates_the_version_its_base_and_retrieval_against_the_real_replies(
    first_run: FirstRun,
) -> None:
    result, data_dir = first_run.result, first_run.data_dir
    report = report_of(result)
    assert [s["name"] for s in report["systems"]] == ["maya-v1", "base:maya-v1", "retrieval"]
    assert report["ceiling"]["name"] == REAL and report["heldout_turns"] == LIMIT
    for row in report["systems"]:
        assert row["turns"] == LIMIT and row["failed"] == 0
        assert 0 <= row["metrics"]["style_score"] <= 1 and "persona_share" in row["metrics"]
        assert row["latency_p50_s"] is not None
    folder = result.evaluation.files.html.parent
    assert folder.parent == data_dir / "personas" / "maya" / "evals"


def test_pipeline_activates_the_first_version(first_run: FirstRun) -> None:
    result, data_dir = first_run.result, first_run.data_dir
    assert result.active and result.version.status is ModelStatus.ACTIVE
    assert Registry.open(data_dir / "wa-persona.db").active("Maya").version == "maya-v1"
    assert "maya-v1" in result.steps[-1].summary


def test_rerun_with_a_reused_version_skips_the_persona_and_training(first_run: FirstRun) -> None:
    result, data_dir = first_run.result, first_run.data_dir
    again = run_pipeline(
        settings_for(data_dir),
        first_run.exports,
        persona="Maya",
        reuse_version="maya-v1",
        limit=LIMIT,
    )
    skipped = {step.name for step in again.steps if step.skipped}
    assert skipped == {"config", "model", "persona", "train"}
    assert again.run is None and again.version.version == "maya-v1"
    assert again.base_model == result.base_model
    registry = Registry.open(data_dir / "wa-persona.db")
    assert [v.version for v in registry.list("Maya")] == ["maya-v1"]
    assert [s["name"] for s in report_of(again)["systems"]] == [
        "maya-v1",
        "base:maya-v1",
        "retrieval",
    ]
    assert again.steps[-1].summary == "maya-v1 was already active"


@pytest.mark.anyio
async def test_claude_joins_the_evaluation_when_it_has_a_key_and_remote_is_allowed(
    first_run: FirstRun,
) -> None:
    data_dir = first_run.data_dir
    async with FakeAnthropic(default_text="omg yes") as fake:
        settings = settings_for(
            data_dir,
            allow_remote_backends=True,
            anthropic_api_key=API_KEY,
            anthropic_base_url=fake.base_url,
        )
        result = await asyncio.to_thread(
            run_pipeline,
            settings,
            first_run.exports,
            persona="Maya",
            reuse_version="maya-v1",
            limit=LIMIT,
        )
    names = [row["name"] for row in report_of(result)["systems"]]
    assert names == ["maya-v1", "base:maya-v1", "retrieval", "claude"]
    claude = report_of(result)["systems"][-1]
    assert claude["failed"] == 0 and len(fake.requests) == LIMIT


def test_without_exports_the_pipeline_answers_as_maya_from_the_bundled_sample(
    first_run: FirstRun,
) -> None:
    data_dir = first_run.data_dir
    result = run_pipeline(settings_for(data_dir), reuse_version="maya-v1", limit=LIMIT)
    assert result.persona.name == "Maya"
    sources = {source.sha256 for source in result.persona.info.sources}
    assert sources == {sha256(path.read_bytes()).hexdigest() for path in sample_paths()}
    assert report_of(result)["heldout_turns"] == LIMIT


def test_reusing_another_personas_or_an_unknown_version_is_refused(first_run: FirstRun) -> None:
    result, data_dir = first_run.result, first_run.data_dir
    registry = Registry.open(data_dir / "wa-persona.db")
    sams = registry.create(
        "Sam",
        BackendKind.LOCAL_ADAPTER,
        status=ModelStatus.READY,
        base_model=result.base_model,
        path=result.version.path,
    )
    with pytest.raises(PipelineError, match="Sam's model, not Maya's"):
        run_pipeline(settings_for(data_dir), reuse_version=sams.version)
    with pytest.raises(UnknownVersionError, match="maya-v9"):
        run_pipeline(settings_for(data_dir), reuse_version="maya-v9")
    with pytest.raises(PipelineError, match="its own base model"):
        run_pipeline(settings_for(data_dir), reuse_version="maya-v1", base="other")


def test_exports_need_the_persona_they_belong_to(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="name the persona"):
        run_pipeline(settings_for(tmp_path), [tmp_path / "chat.txt"])


def test_the_pipeline_keeps_the_dataset_and_persona_keys_to_itself(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="dataset"):
        run_pipeline(settings_for(tmp_path), overrides={"dataset": "elsewhere"})
    assert not (tmp_path / "personas").exists()  # refused before anything was built


def test_cli_runs_every_step_prints_the_table_and_skips_the_chat(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    exports = [str(path) for path in write_sample(tmp_path / "quarter", days=QUARTER)]
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    args = ["pipeline", *exports, "--persona", "Maya", "--base", str(tiny_model_dir), *sets]
    result = runner.invoke(
        app, [*args, "--limit", str(LIMIT), "--no-chat"], input="hey\n", env=cli_env(tmp_path)
    )
    assert result.exit_code == 0, result.output
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.split()}
    assert {"maya-v1", "base:maya-v1", "retrieval", "real", "total"} <= rows
    assert "Evaluation: Maya" in result.stdout and "report:" in result.stdout
    for step in PIPELINE_STEPS:
        assert step in rows  # the steps table, with wall times
        assert f"✓ {step}:" in result.stderr or f"· {step}:" in result.stderr
    assert "you: hey" not in result.stdout  # no chat
    (version,) = Registry.open(tmp_path / "wa-persona.db").list("Maya")
    assert version.status is ModelStatus.ACTIVE


def test_cli_chats_with_the_version_through_the_local_backend(first_run: FirstRun) -> None:
    data_dir = first_run.data_dir
    args = ["pipeline", "--reuse-version", "maya-v1", "--limit", "2", "--chat"]
    result = runner.invoke(app, args, input="hey\n", env=cli_env(data_dir))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "you: hey" in lines
    assert any(line.startswith("Maya: ") and line.endswith("(local)") for line in lines)


def test_cli_refuses_exports_without_a_persona(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pipeline", "chat.txt", "--no-chat"], env=cli_env(tmp_path))
    assert result.exit_code == 2 and "--persona" in result.stderr


def cli_env(data_dir: Path) -> dict[str, str | None]:
    return {
        "WA_PERSONA_DATA_DIR": str(data_dir),
        "WA_PERSONA_DATABASE": None,
        "WA_PERSONA_ALLOW_REMOTE_BACKENDS": "false",
        "WA_PERSONA_LOCAL_TEMPERATURE": "0",
        "WA_PERSONA_LOCAL_MAX_NEW_TOKENS": "8",
        "WA_PERSONA_TYPING_SPEED": "1000",
        "COLUMNS": "200",
    }
