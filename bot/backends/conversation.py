"""The live conversation shaped for a chat API: scrubbed, merged by role, opened by the user.

Claude and OpenAI-compatible servers both take messages that alternate roles from a user
turn, while the bot's history may open with the persona's turn, hold several turns of one
side in a row, and hold bubbles the scrubber drops. The remote backends shape it with these
functions, each choosing how bubbles are treated and whether the persona opened the chat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.errors import BackendError, BackendUnavailable
from training.dataset.samples import CONVERSATION_START

if TYPE_CHECKING:
    from bot.backends.base import ChatTurn
    from style.scrub import Scrubber

__all__ = [
    "RoleBubbles",
    "merged_turns",
    "opened_by_user",
    "require_answerable",
    "require_user_turn",
    "scrubbed",
]

RoleBubbles = tuple[str, list[str]]
"""A role and its bubbles, ready to be sent."""


def require_user_turn(history: Sequence[ChatTurn]) -> None:
    """Raise `BackendError` unless the history ends with the user's turn to answer."""
    if not history or history[-1].role != "user":
        raise BackendError("a prompt's history must end with the user's turn to answer")


def scrubbed(bubbles: Sequence[str], scrubber: Scrubber | None) -> list[str]:
    """`bubbles` with personal data treated (as they are without a scrubber); drop mode
    leaves out the bubbles it finds."""
    if scrubber is None:
        return list(bubbles)
    treated = (scrubber.scrub_text(bubble) for bubble in bubbles)
    return [bubble for bubble in treated if bubble]


def merged_turns(
    turns: Sequence[ChatTurn], treat: Callable[[Sequence[str]], list[str]]
) -> list[RoleBubbles]:
    """The turns' bubbles as `treat` returns them, emptied turns left out and consecutive
    turns of one role merged, so that roles alternate."""
    merged: list[RoleBubbles] = []
    for turn in turns:
        bubbles = treat(turn.bubbles)
        if not bubbles:
            continue
        if merged and merged[-1][0] == turn.role:
            merged[-1][1].extend(bubbles)
        else:
            merged.append((turn.role, bubbles))
    return merged


def require_answerable(merged: Sequence[RoleBubbles], *, scrubbing: bool) -> None:
    """Raise unless something of the user's turn to answer is left after `treat`.

    With `scrubbing`, the scrubber dropped it: `BackendUnavailable`, as a local backend,
    which sends nothing away, may still answer. Without, the turn had no text: `BackendError`.
    """
    if merged and merged[-1][0] == "user":
        return
    if not scrubbing:
        raise BackendError("the user's turn to answer has no text; nothing to reply to")
    raise BackendUnavailable(
        "the scrubber dropped the message to answer (scrub_mode=drop); "
        "a local backend may still answer it"
    )


def opened_by_user(merged: list[RoleBubbles], *, persona_opened: bool) -> None:
    """Make `merged` (in place) start with a user turn, as a training sample does.

    A leading persona turn keeps its place after the dataset's `CONVERSATION_START` user
    turn when the persona opened the conversation; otherwise the turn limit cut off (or the
    scrubber emptied) the user turn before it, and it is dropped.
    """
    if merged and merged[0][0] == "assistant":
        if persona_opened:
            merged.insert(0, ("user", [CONVERSATION_START]))
        else:
            merged.pop(0)
