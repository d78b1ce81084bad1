"""`wa-persona eval` and `wa-persona abtest` on Maya, prepared from the bundled sample."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.personas import load_persona, prepare_persona
from bot.settings import Settings
from style.sample import sample_paths
from training.evaluate import (
    REAL,
    evaluate_system,
    load_heldout,
    load_training_texts,
    signature_phrases,
)

runner = CliRunner()

pytestmark = pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir where Maya is already prepared from the bundled sample."""
    folder = tmp_path_factory.mktemp("data")
    prepare_persona(_settings(folder), "Maya", sample_paths())
    return folder


@pytest.fixture(scope="module")
def evaluated(data_dir: Path) -> tuple[object, Path]:
    """`eval --persona Maya --backend retrieval --limit 40`, its result and report folder."""
    result = _run(data_dir, "eval", "--persona", "Maya", "--backend", "retrieval", "--limit", "40")
    folders = list((data_dir / "personas" / "maya" / "evals").iterdir())
    return result, folders[0]


def _settings(data_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def _run(data_dir: Path, *args: str):
    env = {
        "WA_PERSONA_DATA_DIR": str(data_dir),
        "WA_PERSONA_DATABASE": None,
        "WA_PERSONA_ALLOW_REMOTE_BACKENDS": "false",
        "COLUMNS": "200",
    }
    return runner.invoke(app, list(args), env=env)


def test_eval_writes_the_report_under_the_persona_and_prints_the_table(evaluated) -> None:
    result, folder = evaluated
    assert result.exit_code == 0, result.output
    assert folder.parent.name == "evals" and folder.parent.parent.name == "maya"
    html = folder / "report.html"
    assert stat.S_IMODE(html.stat().st_mode) == 0o600
    assert html.read_text(encoding="utf-8").count('<img src="data:image/png;base64,') == 4
    assert "Evaluation: Maya" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [row[:2] for row in rows if row[:1] in (["retrieval"], ["real"])] == [
        ["retrieval", f"{_report(folder)['systems'][0]['metrics']['style_score']:.3f}"],
        ["real", "replies"],
    ]
    assert str(html) in result.stdout.replace("\n", "")


def test_retrieval_beats_saying_nothing_but_not_the_person_herself(
    evaluated, data_dir: Path
) -> None:
    _, folder = evaluated
    report = _report(folder)
    (retrieval,) = report["systems"]
    real = report["ceiling"]
    assert retrieval["name"] == "retrieval" and real["name"] == REAL
    assert report["heldout_turns"] == 40

    assets = load_persona(_settings(data_dir), "Maya")
    heldout = load_heldout(assets.dataset_dir, limit=40)
    nothing = evaluate_system(
        "nothing",
        [[] for _ in heldout],
        heldout,
        training_replies=load_training_texts(assets.dataset_dir).replies,
        discriminator=None,
        signature_phrases=signature_phrases(assets.profile),
    )
    score = retrieval["metrics"]["style_score"]
    assert score < nothing.distances.score - 0.3  # much better than nothing
    assert score < 0.35 and retrieval["metrics"]["persona_share"] > 0.8
    # ...but it only replays her training replies: no better than she is, and all copies
    assert score > real["metrics"]["style_score"] - 0.05
    assert retrieval["metrics"]["copy_rate"] > 0.9 > 0.5 > real["metrics"]["copy_rate"]


def test_eval_json_report_holds_no_message_text(evaluated, data_dir: Path) -> None:
    _, folder = evaluated
    text = (folder / "report.json").read_text(encoding="utf-8")
    assets = load_persona(_settings(data_dir), "Maya")
    bubbles = {b for t in load_heldout(assets.dataset_dir, limit=40) for b in t.reference}
    assert not [b for b in bubbles if len(b) >= 6 and json.dumps(b)[1:-1] in text]


def test_eval_refuses_an_unknown_persona_backend_or_rule_in_one_line(data_dir: Path) -> None:
    cases = [
        (["--persona", "Nobody"], "no persona named 'Nobody'"),
        (["--persona", "Maya", "--backend", "gpt9"], "unknown backend 'gpt9'"),
        (["--persona", "Maya", "--rule", "min_improvement=-1"], "--rule min_improvement"),
        (["--persona", "Maya", "--model", "maya-v9"], "no model version 'maya-v9'"),
    ]
    for args, message in cases:
        result = _run(data_dir, "eval", *args, "--limit", "5", "--out", str(data_dir / "x"))
        assert result.exit_code == 2, result.output
        assert message in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_abtest_writes_blind_pairs_and_scores_a_filled_answer_file(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ab"
    args = ("--persona", "Maya", "--backend", "retrieval", "--pairs", "10", "--out", str(out))
    written = _run(data_dir, "abtest", *args)
    assert written.exit_code == 0, written.output
    questions = (out / "questions.md").read_text(encoding="utf-8")
    assert questions.startswith("# Which reply did Maya really write?")
    assert "retrieval" not in questions
    key = json.loads((out / "key.json").read_text(encoding="utf-8"))
    assert key["labels"] == ["retrieval", "real"]

    rows = list(csv.DictReader((out / "answers.csv").read_text(encoding="utf-8").splitlines()))
    sides = key["questions"]
    lines = ["question,choice,rater"]
    lines += [f"{r['question']},{sides[r['question']].index('real') + 1},ana" for r in rows]
    (out / "answers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    scored = _run(
        data_dir, "abtest", "score", str(out / "answers.csv"), str(out / "key.json"), "--json"
    )
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.stdout)
    assert result["picks"] == {"retrieval": 0, "real": len(rows)}
    assert result["p_value"] < 0.01


def test_abtest_needs_one_system_and_an_out_folder(data_dir: Path, tmp_path: Path) -> None:
    result = _run(data_dir, "abtest", "--persona", "Maya", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "exactly one of --model and --backend" in result.stderr
