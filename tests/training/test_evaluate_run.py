"""Evaluation runs: held-out turns from a real dataset folder, systems measured side by side."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from style.parse import load_chats
from style.profile import build_profile
from style.sample import sample_paths
from training.dataset import (
    CONVERSATION_START,
    DatasetBuild,
    DatasetConfig,
    build_dataset,
    write_card,
    write_dataset,
)
from training.errors import DatasetError
from training.evaluate import (
    REAL,
    EvaluationError,
    EvaluationRun,
    Generation,
    HeldOutTurn,
    evaluate_system,
    generate_all,
    load_heldout,
    load_training_texts,
    signature_phrases,
)
from training.evaluate.heldout import strip_speakers
from training.registry import BackendKind, Registry

pytestmark = pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")

SPEAKERS = ("Sam: ", "Priya: ", "Jonas: ")


@pytest.fixture(scope="module")
def maya(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetBuild, Path, list[str]]:
    """Maya's dataset from the bundled sample (20% held out), its folder and her signature."""
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    build = build_dataset(chats, "Maya", DatasetConfig(eval_share=0.2))
    folder = tmp_path_factory.mktemp("maya-dataset")
    write_card(build, folder, write_dataset(build, folder))
    return build, folder, signature_phrases(build_profile(chats, "Maya"))


@pytest.fixture(scope="module")
def run(maya) -> EvaluationRun:
    """An evaluation of 120 held-out turns with echo, Sam and silent 'systems'."""
    _, folder, phrases = maya
    run = EvaluationRun.from_dataset(folder, persona="Maya", signature_phrases=phrases, limit=120)
    run.add("echo", Generation([list(t.reference) for t in run.heldout]))
    run.add("sam", Generation([_sam(t) for t in run.heldout]))
    run.add("silent", Generation([[] for _ in run.heldout], failed=len(run.heldout)))
    return run


def _sam(turn: HeldOutTurn) -> list[str]:
    """The other side's words in place of Maya's reply (the turn she answered)."""
    return [b.split(": ", 1)[-1] for b in turn.last_user_turn.bubbles if b != CONVERSATION_START]


def _trained(samples) -> list[tuple[str, ...]]:
    return [t.bubbles for s in samples for t in s.turns if t.role == "assistant" and t.train]


# --- held-out turns and training texts ----------------------------------------------------


def test_heldout_is_every_trained_eval_turn_once_in_order(maya) -> None:
    build, folder, _ = maya
    heldout = load_heldout(folder)
    assert [t.reference for t in heldout] == _trained(build.eval)
    assert [t.index for t in heldout] == list(range(len(heldout)))
    lines = (folder / "openai_eval.jsonl").read_text(encoding="utf-8").splitlines()
    weighted = sum(m.get("weight") == 1 for line in lines for m in json.loads(line)["messages"])
    assert len(heldout) == weighted > 200


def test_heldout_turns_carry_the_card_and_end_their_context_with_a_user_turn(maya) -> None:
    build, folder, _ = maya
    for turn in load_heldout(folder):
        assert turn.system == build.card
        assert turn.context and turn.context[-1].role == "user"
        assert turn.last_user_turn is turn.context[-1]


def test_training_texts_are_the_training_split_only(maya) -> None:
    build, folder, _ = maya
    texts = load_training_texts(folder)
    assert texts.persona == _trained(build.train)
    held = set(_trained(build.eval))
    assert len(held & set(texts.persona)) < 0.2 * len(held)  # only short common replies


def test_others_turns_lose_speaker_prefixes_and_conversation_starts(maya) -> None:
    _, folder, _ = maya
    others = load_training_texts(folder).others
    bubbles = [b for turn in others for b in turn]
    assert len(others) > 500
    assert not [b for b in bubbles if b.startswith(SPEAKERS)]
    assert CONVERSATION_START not in bubbles


def test_strip_speakers_keeps_a_prefix_seen_only_once() -> None:
    turns = [("Sam: hi", "Sam: u there?"), ("Sam: ok",), ("note: buy milk",), ("fine",)]
    assert strip_speakers(turns) == [("hi", "u there?"), ("ok",), ("note: buy milk",), ("fine",)]


def test_limit_spreads_the_turns_over_the_whole_split(maya) -> None:
    _, folder, _ = maya
    everything = load_heldout(folder)
    ten = load_heldout(folder, limit=10)
    assert len(ten) == 10 and [t.index for t in ten] == list(range(10))
    assert ten[0].reference == everything[0].reference
    assert ten[-1].reference == everything[-1].reference


def test_without_openai_files_the_last_reply_of_each_line_counts(maya, tmp_path: Path) -> None:
    _, folder, _ = maya
    for name in ("eval.jsonl", "train.jsonl"):
        shutil.copy(folder / name, tmp_path / name)
    lines = (tmp_path / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    heldout = load_heldout(tmp_path)
    assert len(heldout) == len(lines)
    assert heldout[0].reference == tuple(
        json.loads(lines[0])["messages"][-1]["content"].split("\n\n")
    )


def test_a_folder_without_an_eval_split_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="eval_share"):
        load_heldout(tmp_path)


# --- measuring systems ----------------------------------------------------------------------


def test_the_real_replies_as_generated_are_at_distance_zero(run: EvaluationRun) -> None:
    echo = run.result("echo")
    assert echo.distances.score == pytest.approx(0.0, abs=1e-9)
    assert echo.persona_share > 0.95
    assert echo.empty == 0 and echo.failed == 0


def test_sam_writing_instead_of_maya_scores_clearly_worse(run: EvaluationRun) -> None:
    sam, real = run.result("sam"), run.result(REAL)
    assert sam.distances.score > 0.35
    assert sam.distances.score > real.distances.score + 0.2
    assert sam.persona_share < 0.35 < 0.95 < real.persona_share


def test_silence_scores_worst_and_counts_as_failed_and_empty(run: EvaluationRun) -> None:
    silent = run.result("silent")
    assert silent.distances.score > run.result("sam").distances.score
    assert silent.persona_share == 0.0  # an empty reply is never attributed to her
    assert (silent.empty, silent.failed) == (120, 120)
    assert silent.metrics()["empty_rate"] == 1.0


def test_the_ceiling_is_her_own_replies_measured_the_same_way(run: EvaluationRun) -> None:
    real = run.ceiling
    assert real.kind == "real" and real.turns == 120
    assert 0.0 < real.distances.score < 0.2  # another real sample, not the same replies
    # her own copy rate: what the held-out replies repeat of the training ones
    assert real.degeneration.copied_replies == run.result("echo").degeneration.copied_replies
    assert run.rows()[-1] is real


def test_replies_must_align_with_the_heldout_turns(run: EvaluationRun) -> None:
    with pytest.raises(EvaluationError, match="one reply per turn"):
        evaluate_system(
            "short",
            [["hi"]],
            run.heldout,
            training_replies=run.training_replies,
            discriminator=run.discriminator,
        )
    with pytest.raises(EvaluationError, match="already"):
        run.add("echo", Generation([["x"] for _ in run.heldout]))


def test_the_summary_holds_numbers_and_names_but_no_message_text(run: EvaluationRun) -> None:
    text = json.dumps(run.to_dict(), ensure_ascii=False)
    bubbles = {b for t in run.heldout for b in (*t.reference, *t.context[-1].bubbles)}
    assert not [b for b in bubbles if len(b) >= 6 and json.dumps(b)[1:-1] in text]
    data = json.loads(text)
    assert [s["name"] for s in data["systems"]] == ["echo", "sam", "silent"]
    assert data["ceiling"]["name"] == REAL and data["heldout_turns"] == 120
    assert data["discriminator"]["accuracy"] > 0.9


def test_headline_metrics_are_accepted_by_the_registry(run: EvaluationRun, tmp_path) -> None:
    registry = Registry.open(tmp_path / "wa-persona.db")
    version = registry.create("Maya", BackendKind.LOCAL_ADAPTER)
    metrics = run.result("sam").metrics()
    assert {"style_score", "persona_share", "copy_rate", "runaway_rate"} <= metrics.keys()
    stored = registry.update(version.version, metrics=metrics).metrics
    assert stored["style_score"] == pytest.approx(run.result("sam").distances.score)


# --- generation -----------------------------------------------------------------------------


class Down(Exception):
    """Stands for the bot's BackendUnavailable."""


def test_generate_all_keeps_order_counts_expected_failures_and_reports_progress(run) -> None:
    turns = run.heldout[:9]
    seen: list[tuple[int, int]] = []
    running = 0
    most = 0

    async def reply(turn: HeldOutTurn) -> tuple[list[str], float]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (9 - turn.index))
        running -= 1
        if turn.index % 4 == 0:
            raise Down("backend is down")
        return [f"reply {turn.index}", ""], 0.25

    generation = asyncio.run(
        generate_all(
            turns, reply, concurrency=3, on_progress=lambda *p: seen.append(p), failures=(Down,)
        )
    )
    assert generation.replies == [[] if i % 4 == 0 else [f"reply {i}"] for i in range(9)]
    assert generation.failed == 3 and generation.latencies_s == [0.25] * 6
    assert most == 3
    assert seen[-1] == (9, 9) and len(seen) == 9


def test_generate_all_lets_unexpected_errors_through(run) -> None:
    async def broken(turn: HeldOutTurn) -> tuple[list[str], float]:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(generate_all(run.heldout[:2], broken, failures=(Down,)))
