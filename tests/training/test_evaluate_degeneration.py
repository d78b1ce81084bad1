"""Degeneration: variety, repetition, copies of training replies, empty and runaway replies."""

from __future__ import annotations

import pytest

from training.evaluate import EmptyReplySetError, measure_degeneration

TRAINING = [
    "omg i cant believe it\n\nsee u at the station tonight ok",
    "i think we should go to the market hall on saturday morning",
    "haha",
]
LONG_REFERENCE = [["x" * 200]]


def test_a_verbatim_training_reply_is_a_copy_whatever_its_case_and_bubbles() -> None:
    generated = [["OMG i cant  believe it", "see u at the station tonight ok"], ["new words"]]
    result = measure_degeneration(generated, training_replies=TRAINING)
    assert result.copied_replies == 0.5
    assert result.copied_ngram_replies == 0.5  # 12 words, so 8-word runs match too


def test_an_eight_word_run_of_a_training_reply_is_copied_a_seven_word_run_is_not() -> None:
    eight = [["honestly i think we should go to the market hall today"]]
    seven = [["honestly we should go to the market hall today"]]
    assert measure_degeneration(eight, training_replies=TRAINING).copied_ngram_replies == 1.0
    assert measure_degeneration(eight, training_replies=TRAINING).copied_replies == 0.0
    assert measure_degeneration(seven, training_replies=TRAINING).copied_ngram_replies == 0.0


def test_short_common_replies_count_as_exact_copies_only() -> None:
    result = measure_degeneration([["Haha"]], training_replies=TRAINING)
    assert (result.copied_replies, result.copied_ngram_replies) == (1.0, 0.0)


def test_an_empty_reply_is_no_copy_of_an_empty_training_reply() -> None:
    assert measure_degeneration([[""]], training_replies=[""]).copied_replies == 0.0


def test_distinct_n_counts_words_over_all_replies_and_pairs_inside_replies() -> None:
    result = measure_degeneration([["ok so ok"], ["so fine"], ["ok", "so"]], training_replies=[])
    # words: ok so ok so fine ok so -> 3 distinct of 7
    assert result.tokens == 7
    assert result.distinct_1 == pytest.approx(3 / 7)
    # pairs: (ok so) (so ok) | (so fine) | (ok so) -> 3 distinct of 4
    assert result.distinct_2 == pytest.approx(3 / 4)


def test_self_repetition_counts_exact_repeats_of_earlier_replies_and_empty_replies() -> None:
    generated = [["hi"], ["hi"], ["yo"], [""], [], ["Hi"]]
    result = measure_degeneration(generated, training_replies=[])
    assert result.self_repetition == pytest.approx(1 / 4)  # of the four non-empty replies
    assert result.empty == pytest.approx(2 / 6)


def test_repeated_ngram_rate_within_a_reply() -> None:
    result = measure_degeneration(
        [["i love u i love u"], ["no repeats in here"]], training_replies=[]
    )
    # 4 + 2 word trigrams, one repeated ("i love u")
    assert result.repeated_ngram_rate == pytest.approx(1 / 6)


def test_replies_longer_than_the_reference_p99_run_away() -> None:
    reference = [["x" * 10]] * 100
    result = measure_degeneration([["y" * 11], ["short"]], training_replies=[], reference=reference)
    assert result.runaway_chars == pytest.approx(10.0)
    assert result.runaway == 0.5


def test_a_looping_reply_runs_away_even_when_short() -> None:
    looping = [["ha ha ha ha ha ha"], ["ok ok ok"]]
    result = measure_degeneration(looping, training_replies=[], reference=LONG_REFERENCE)
    assert result.runaway == 0.5  # the six-fold "ha" loops, "ok ok ok" is Maya's style


def test_the_runaway_limit_defaults_to_the_training_replies_read_once() -> None:
    replies = (text for text in ["a" * 20] * 50)
    result = measure_degeneration([["b" * 21], ["b" * 20]], training_replies=replies)
    assert result.runaway_chars == pytest.approx(20.0)
    assert result.runaway == 0.5


def test_without_any_length_to_compare_only_loops_run_away() -> None:
    result = measure_degeneration([["z" * 5000]], training_replies=[])
    assert (result.runaway_chars, result.runaway) == (None, 0.0)


def test_no_generated_replies_is_an_error() -> None:
    with pytest.raises(EmptyReplySetError, match="generated"):
        measure_degeneration([], training_replies=TRAINING)


def test_to_dict_holds_every_figure() -> None:
    data = measure_degeneration([["hi"]], training_replies=TRAINING).to_dict()
    assert set(data) == {
        "replies",
        "tokens",
        "distinct_1",
        "distinct_2",
        "self_repetition",
        "repeated_ngram_rate",
        "copied_replies",
        "copied_ngram_replies",
        "empty",
        "runaway",
        "runaway_chars",
    }
