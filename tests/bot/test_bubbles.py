"""A raw reply becomes the bubbles the persona would send, without losing or flooding words."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bot.bubbles import MAX_BUBBLE_CHARS, MAX_BUBBLES, split_bubbles
from style.profile import Distribution, Profile, profile_exports
from style.sample import sample_paths

CLAUDE_REPLY = (
    "Oh wow, that sounds amazing! I can't believe you actually went there. Did you take any "
    "pictures? I'd love to see them 😂 anyway, tell me everything when you're back."
)


@pytest.fixture(scope="module")
def maya() -> Profile:
    return profile_exports(sample_paths(), "Maya")


@pytest.fixture(scope="module")
def sam() -> Profile:
    return profile_exports(sample_paths(), "Sam")


def constant(value: float) -> Distribution:
    """Every stored statistic (mean, min, p10 ... max) is `value`."""
    return Distribution(100, *[value] * 8)


def bursts_of(profile: Profile, size: int, *, long_message: float = 500.0) -> Profile:
    """The persona, but every turn has `size` messages and her long messages are this long."""
    length = replace(
        profile.length,
        burst_size=constant(size),
        chars=constant(long_message),
        multi_message_share=1.0 if size > 1 else 0.0,
    )
    return replace(profile, length=length)


def test_blank_lines_always_split(maya: Profile, sam: Profile) -> None:
    text = "  omg\n\nwait what \n \n\n\nno way  \n\n"
    for profile in (maya, sam, None):
        assert split_bubbles(text, profile, rng=random.Random(0)) == ("omg", "wait what", "no way")


def test_empty_replies_have_no_bubbles(maya: Profile) -> None:
    assert split_bubbles(" \n\n \n", maya, rng=random.Random(0)) == ()


def test_a_long_text_is_split_for_a_bursty_persona(maya: Profile) -> None:
    assert maya.length.multi_message_share is not None and maya.length.multi_message_share > 0.6
    long_message = maya.length.chars.p90
    assert long_message is not None
    for seed in range(50):
        bubbles = split_bubbles(CLAUDE_REPLY, maya, rng=random.Random(seed))
        assert len(bubbles) >= 4
        assert max(map(len, bubbles)) <= 1.3 * long_message
        assert " ".join(bubbles).split() == CLAUDE_REPLY.split()
    assert split_bubbles(CLAUDE_REPLY, maya, rng=random.Random(0))[:3] == (
        "Oh wow, that sounds amazing!",
        "I can't believe you actually went there.",
        "Did you take any pictures?",
    )


def test_a_persona_who_sends_one_message_gets_one_bubble(sam: Profile) -> None:
    assert sam.length.multi_message_share is not None and sam.length.multi_message_share < 0.2
    for seed in range(20):
        assert split_bubbles(CLAUDE_REPLY, sam, rng=random.Random(seed)) == (CLAUDE_REPLY,)
        assert split_bubbles(CLAUDE_REPLY, None, rng=random.Random(seed)) == (CLAUDE_REPLY,)


def test_short_texts_split_as_often_as_the_persona_sends_several(maya: Profile) -> None:
    text = "omg wait. did u see that? im dying"
    counts = [len(split_bubbles(text, maya, rng=random.Random(s))) for s in range(2000)]
    several = sum(count > 1 for count in counts) / len(counts)
    assert several == pytest.approx(maya.length.multi_message_share, abs=0.05)


def test_cuts_prefer_sentences_to_clauses(maya: Profile) -> None:
    pairs = bursts_of(maya, 2)
    # The clause after "then," is nearer the middle, but the sentence end wins.
    text = "so i went to the shops. and then, it rained on me all day"
    assert split_bubbles(text, pairs, rng=random.Random(0)) == (
        "so i went to the shops.",
        "and then, it rained on me all day",
    )
    assert split_bubbles(
        "ok so basically, i went there and it rained", pairs, rng=random.Random(0)
    ) == (
        "ok so basically,",
        "i went there and it rained",
    )


def test_emoji_and_newlines_end_a_bubble_too(maya: Profile) -> None:
    threes = bursts_of(maya, 3)
    text = "omg 😂😂 did u see him\nhe was so late"
    assert split_bubbles(text, threes, rng=random.Random(0)) == (
        "omg 😂😂",
        "did u see him",
        "he was so late",
    )


def test_text_without_boundaries_stays_whole(maya: Profile) -> None:
    text = "sooo i was thinking we could go there tomorrow if u want"
    assert split_bubbles(text, bursts_of(maya, 4), rng=random.Random(0)) == (text,)


def test_words_are_never_lost(maya: Profile) -> None:
    rng = random.Random(42)
    words = ["ok", "so,", "wait.", "lol", "😂", "really?", "no!", "u", "know", "it…", "fine;"]
    for _ in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
        bubbles = split_bubbles(text, maya, rng=rng)
        assert " ".join(bubbles).split() == text.split()
        assert all(bubble == bubble.strip() and bubble for bubble in bubbles)


def test_a_runaway_reply_cannot_flood_the_chat(maya: Profile) -> None:
    paragraphs = [f"line {i}" for i in range(50)]
    bubbles = split_bubbles("\n\n".join(paragraphs), maya, rng=random.Random(0))
    assert len(bubbles) == MAX_BUBBLES
    assert bubbles[:-1] == tuple(paragraphs[: MAX_BUBBLES - 1])
    assert bubbles[-1] == "\n".join(paragraphs[MAX_BUBBLES - 1 :])

    rambling = "and then it happened again. " * 2000
    flood = split_bubbles(rambling, maya, rng=random.Random(0))
    assert len(flood) == MAX_BUBBLES
    assert all(len(bubble) <= MAX_BUBBLE_CHARS for bubble in flood)
    assert flood[0].endswith("…") and not flood[0].endswith(" …")
    assert flood[0][:-1].split() == rambling.split()[: len(flood[0][:-1].split())]


def test_caps_can_be_tightened(sam: Profile) -> None:
    bubbles = split_bubbles(
        "a b c d e f\n\ng\n\nh", sam, rng=random.Random(0), max_bubbles=2, max_chars=6
    )
    assert bubbles == ("a b…", "g\nh")


def test_caps_below_one_bubble_are_refused(sam: Profile) -> None:
    with pytest.raises(ValueError, match="max_bubbles"):
        split_bubbles("hi", sam, rng=random.Random(0), max_bubbles=0)
