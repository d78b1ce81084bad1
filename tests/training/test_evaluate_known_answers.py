"""The evaluation on replies whose verdict is known in advance: real, shuffled and constant.

On Maya's held-out split (the bundled sample, 20% held out) three fake systems answer:

- **real**: her own reply to each turn. Every style distance is 0, the judge recognises her
  as often as in the ceiling row, and she copies her training replies exactly as often as
  the ceiling does (the same replies are measured).
- **shuffled**: her real replies, each given to another turn (rotated by half the list).
  Every metric of `training.evaluate` is a statistic of the *set* of replies (style
  distributions, the judge's per-reply verdict, distinct-n, repetition, copying), never of
  a reply against the turn it answers, so a permutation leaves all of them unchanged: the
  automatic evaluation cannot tell an on-topic persona from one answering the wrong
  message. The test asserts exactly that, so the blind spot stays documented; only the
  human A/B test (`write_abtest`, which shows the context) catches it.
- **constant**: "ok" to everything. Degeneration gives it away (one distinct word, no word
  pairs, every reply but the first a repeat) and so do the length, vocabulary and
  character n-gram distances. The judge alone does not: "ok" reads like Maya, so its
  persona share is high, which is why the judge is never used alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from style.parse import load_chats
from style.profile import build_profile
from style.sample import sample_paths
from training.dataset import DatasetConfig, build_dataset, write_card, write_dataset
from training.evaluate import REAL, EvaluationRun, Generation, signature_phrases
from training.evaluate.style_distance import score_parts

pytestmark = pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> EvaluationRun:
    """Maya's evaluation with the real, shuffled and constant systems added."""
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    build = build_dataset(chats, "Maya", DatasetConfig(eval_share=0.2))
    folder: Path = tmp_path_factory.mktemp("known-answers")
    write_card(build, folder, write_dataset(build, folder))
    phrases = signature_phrases(build_profile(chats, "Maya"))
    run = EvaluationRun.from_dataset(folder, persona="Maya", signature_phrases=phrases)
    references = run.references
    half = len(references) // 2
    run.add("real", Generation(references))
    run.add("shuffled", Generation(references[half:] + references[:half]))
    run.add("constant", Generation([["ok"] for _ in references]))
    return run


def test_the_split_is_large_enough_to_mean_something(run: EvaluationRun) -> None:
    assert len(run.heldout) >= 200
    assert run.discriminator is not None and run.discriminator.accuracy > 0.8


def test_real_replies_against_themselves_are_perfect(run: EvaluationRun) -> None:
    real, ceiling = run.result("real"), run.result(REAL)

    assert real.distances.score == pytest.approx(0.0, abs=1e-6)
    assert all(
        part == pytest.approx(0.0, abs=1e-6) for part in score_parts(real.distances).values()
    )
    assert real.persona_share is not None and real.persona_share > 0.95
    assert real.persona_share == ceiling.persona_share
    assert real.degeneration.copied_replies == ceiling.degeneration.copied_replies
    assert real.degeneration.runaway == ceiling.degeneration.runaway
    assert real.empty == 0
    # the ceiling compares other real replies (training ones) with these: noise, not zero
    assert 0.0 < ceiling.distances.score < 0.15


def test_shuffled_replies_are_not_caught_by_any_automatic_metric(run: EvaluationRun) -> None:
    real, shuffled = run.result("real"), run.result("shuffled")
    replies = run.replies["shuffled"]

    assert all(a != b for a, b in zip(replies, run.references, strict=True))
    assert shuffled.metrics() == pytest.approx(real.metrics())
    assert shuffled.distances.score == pytest.approx(0.0, abs=1e-6)
    assert shuffled.degeneration == real.degeneration


def test_constant_replies_fail_on_degeneration_and_style(run: EvaluationRun) -> None:
    constant, ceiling = run.result("constant"), run.result(REAL)
    d = constant.degeneration
    turns = len(run.heldout)
    parts = score_parts(constant.distances)

    assert d.distinct_1 == pytest.approx(1 / turns)
    assert d.distinct_2 == 0.0
    assert d.self_repetition == pytest.approx((turns - 1) / turns)
    assert ceiling.degeneration.self_repetition < 0.2
    assert ceiling.degeneration.distinct_2 > 0.4
    assert parts["length"] > 0.8
    assert parts["vocabulary"] > 0.8
    assert parts["char_ngrams"] > 0.8
    assert constant.distances.score > 0.5
    assert constant.distances.score > 10 * ceiling.distances.score


def test_the_judge_alone_is_fooled_by_a_plausible_constant_reply(run: EvaluationRun) -> None:
    constant, real = run.result("constant"), run.result("real")

    assert constant.persona_share is not None and real.persona_share is not None
    assert constant.persona_share >= real.persona_share
