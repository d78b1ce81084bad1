"""The quality filters' building blocks: normalisation, links, caps and chat balancing."""

from __future__ import annotations

import pytest

from training.dataset.filters import (
    NearKeys,
    cap_repeats,
    chat_limits,
    has_link,
    is_url_only,
    keep_first,
    long_bubble_limit,
    near_key,
    reply_cap,
    thin_to,
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Hahahaha!!", "haha"),
        ("LOL", "haha"),
        ("lmaooooo", "haha"),
        ("jajaja", "haha"),
        ("sooo good", "so god"),
        ("So good.", "so god"),
        ("😂😂😂", "😂"),
        ("ok\n\nsure", "ok sure"),
        ("news 11", "news 11"),
        ("ahead", "ahead"),
    ],
)
def test_near_key_normalises_case_punctuation_stretching_and_laughs(text, key):
    assert near_key(text) == key


def test_near_key_keeps_different_emoji_apart():
    assert near_key("😂") != near_key("❤️")


def test_near_keys_of_a_turn_join_its_bubbles():
    keys = NearKeys()
    assert keys(["OK!", "sooo"]) == "ok\x1fso"
    assert keys(["Haha"]) == "haha"


@pytest.mark.parametrize(
    ("bubbles", "expected"),
    [
        (["https://example.com/x"], True),
        (["www.example.com", "[URL]"], True),
        (["look https://example.com"], False),
        (["no link"], False),
    ],
)
def test_url_only(bubbles, expected):
    assert is_url_only(bubbles) is expected


def test_has_link_is_a_cheap_gate():
    assert has_link("see https://x.org") and has_link("[URL]")
    assert not has_link("no link here")


def test_long_bubble_limit_is_the_smaller_of_the_cap_and_the_p99_multiple():
    # the p99 interpolates to 10.4; 3 x 10.4 = 31.2, rounded up
    assert long_bubble_limit([10] * 99 + [50], 1000, 3.0) == 32
    assert long_bubble_limit([500] * 100, 1000, 3.0) == 1000
    assert long_bubble_limit([10] * 100, 1000, 0.0) == 1000


def test_keep_first_marks_first_occurrences():
    assert keep_first(["a", "b", "a", "c", "b"]) == [True, True, False, True, False]


def test_reply_cap_grows_with_the_share_on_large_sets():
    assert reply_cap(100, 20, 0.01) == 20
    assert reply_cap(10_000, 20, 0.01) == 100
    assert reply_cap(10_000, None, 0.01) is None


def test_cap_repeats_spreads_the_kept_items_evenly():
    keep = cap_repeats(["ok"] * 9 + ["hi"], 3)
    assert [i for i, k in enumerate(keep) if k] == [0, 4, 8, 9]


def test_chat_limits_lower_the_largest_chat_to_the_share():
    assert chat_limits({0: 90, 1: 10}, 0.5) == {0: 10, 1: 10}
    assert chat_limits({0: 90, 1: 10}, 0.75) == {0: 30, 1: 10}
    assert chat_limits({0: 50, 1: 30, 2: 20}, 0.6) == {0: 50, 1: 30, 2: 20}


def test_chat_limits_raise_an_impossible_share_to_even_chats():
    assert chat_limits({0: 90, 1: 10}, 0.1) == {0: 10, 1: 10}


def test_thin_to_keeps_each_group_under_its_limit():
    keep = thin_to([0, 0, 0, 0, 1], {0: 2, 1: 1})
    assert keep == [True, False, False, True, True]
