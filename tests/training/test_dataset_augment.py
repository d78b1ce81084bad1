"""Shorter-context copies: slices of the real sample, never longer, marked augmented."""

from __future__ import annotations

from training.dataset.augment import augmented_copy, context_cuts
from training.dataset.samples import Sample, Turn


def sample_of(*contents: str) -> Sample:
    roles = ["user", "assistant"] * (len(contents) // 2)
    turns = tuple(Turn(role, (text,)) for role, text in zip(roles, contents, strict=True))
    return Sample("card", turns, "c1", "chat", "train", meta={"turn": "3"})


def test_cuts_keep_two_turns_per_user_turn_and_only_shorter_ones():
    assert context_cuts(6, (1, 2, 3)) == [4, 2]
    assert context_cuts(2, (1,)) == []


def test_copy_holds_the_given_turns_and_is_marked():
    base = sample_of("a", "b", "c", "d")
    copy = augmented_copy(base, base.turns[2:], 3)
    assert [t.content for t in copy.turns] == ["c", "d"]
    assert copy.augmented
    assert copy.meta == {"turn": "3", "context_user_turns": "1"}
    assert (copy.system, copy.conversation, copy.split) == ("card", "c1", "train")
