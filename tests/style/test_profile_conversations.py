"""Choosing the conversation gap from the silences, and cutting conversations and turns."""

from __future__ import annotations

import random

import numpy as np
import pytest

from style.profile.conversations import Timeline, choose_gap, segment, silences


def log_uniform(rng: random.Random, low: float, high: float, n: int) -> list[float]:
    return [10 ** rng.uniform(np.log10(low), np.log10(high)) for _ in range(n)]


def test_valley_between_replies_and_new_conversations():
    rng = random.Random(1)
    gaps = log_uniform(rng, 5, 300, 2000) + log_uniform(rng, 4 * 3600, 2 * 86400, 200)
    choice = choose_gap(gaps)
    assert choice.method == "valley"
    assert 600 <= choice.gap_s <= 4 * 3600
    assert choice.gaps == 2200
    assert sum(choice.histogram.counts) == 2200


def test_valley_follows_the_data():
    rng = random.Random(2)
    quick = log_uniform(rng, 2, 60, 3000) + log_uniform(rng, 3600, 86400, 300)
    slow = log_uniform(rng, 60, 1800, 3000) + log_uniform(rng, 6 * 3600, 3 * 86400, 300)
    assert choose_gap(quick).gap_s < choose_gap(slow).gap_s


def test_one_mode_falls_back_to_a_tukey_fence():
    rng = random.Random(3)
    gaps = [rng.lognormvariate(np.log(60), 1.0) for _ in range(3000)]
    choice = choose_gap(gaps)
    assert choice.method == "tukey"
    logs = np.log10(gaps)
    q1, q3 = np.percentile(logs, [25, 75])
    expected = float(np.clip(round(10 ** (q3 + 1.5 * (q3 - q1))), 600, 43200))
    assert choice.gap_s == expected


def test_few_silences_use_the_default_hour():
    assert choose_gap([10, 20, 30]).gap_s == 3600.0
    assert choose_gap([10, 20, 30]).method == "default"


def test_override_wins():
    choice = choose_gap([10.0] * 100, override_s=1234)
    assert (choice.gap_s, choice.method) == (1234.0, "override")


def timeline(times: list[float], authors: list[int], chats: list[int]) -> Timeline:
    n = len(times)
    return Timeline(
        t=np.array(times, dtype=np.float64),
        author=np.array(authors, dtype=np.int64),
        kind=np.zeros(n, dtype=np.int64),
        chars=np.ones(n, dtype=np.int64),
        question=np.zeros(n, dtype=np.bool_),
        chat=np.array(chats, dtype=np.int64),
        fine=np.ones(n, dtype=np.bool_),
        texts=["x"] * n,
    )


def test_segment_cuts_on_silence_chat_and_author():
    line = timeline(
        [0, 10, 20, 5000, 5010, 5020, 5030],
        [1, 0, 0, 0, 2, 2, 0],
        [0, 0, 0, 0, 0, 1, 1],
    )
    parts = segment(line, gap_s=600)
    assert parts.opens.tolist() == [True, False, False, True, False, True, False]
    assert parts.conv.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert parts.turn_first.tolist() == [0, 1, 3, 4, 5, 6]
    assert parts.turn_end.tolist() == [1, 3, 4, 5, 6, 7]
    assert parts.turn_author.tolist() == [1, 0, 0, 2, 2, 0]
    assert parts.conv_first.tolist() == [0, 3, 5] and parts.conv_last.tolist() == [2, 4, 6]
    assert parts.count == 3


def test_silences_skip_chat_boundaries_and_clamp_clock_jumps():
    line = timeline([0, 10, 5, 100, 130], [0, 1, 0, 1, 0], [0, 0, 0, 1, 1])
    assert silences(line).tolist() == [10.0, 0.0, 30.0]


@pytest.mark.parametrize("gap", [59.0, 61.0])
def test_a_silence_equal_to_the_gap_stays_in_the_conversation(gap):
    line = timeline([0, 60], [0, 1], [0, 0])
    assert segment(line, gap_s=gap).count == (2 if gap < 60 else 1)
