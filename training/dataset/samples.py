"""Training samples, independent of any file format: what a dataset build produces.

A sample is one slice of a real conversation: a system prompt (the persona card), the
turns before a persona turn, and persona turns to learn. The persona is the assistant;
everyone else is the user. A turn keeps its messages as separate bubbles, so a model can
learn (and the bot can later send) a reply as several messages; in text form bubbles are
joined by `BUBBLE_SEPARATOR`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Role = Literal["user", "assistant"]
Split = Literal["train", "eval"]

BUBBLE_SEPARATOR = "\n\n"
"""Between the messages of one turn. Blank lines inside one message are folded to a single
newline when a turn is built, so the separator always means "next bubble"."""

CONVERSATION_START = "(new conversation)"
"""The user turn that opens a conversation the persona started: nothing of the reply leaks."""


@dataclass(frozen=True, slots=True)
class Turn:
    """Consecutive messages of one side of the conversation.

    User turns in group chats carry the speaker in each bubble (`"Sam: see you"`).
    `train` marks the assistant turns whose tokens carry loss; context-only assistant turns
    (already learned in another sample) have it False.
    """

    role: Role
    bubbles: tuple[str, ...]
    ts: datetime | None = None
    train: bool = True

    @property
    def content(self) -> str:
        """The turn as one message: bubbles joined by `BUBBLE_SEPARATOR`."""
        return BUBBLE_SEPARATOR.join(self.bubbles)


@dataclass(frozen=True, slots=True)
class Sample:
    """One training example: a persona card, context turns, and the persona's replies.

    The first turn is always a user turn and the last an assistant turn with `train` set.
    `conversation` and `chat` are opaque ids (hashes), so the split and the dataset card can
    refer to them without any text.
    """

    system: str
    turns: tuple[Turn, ...]
    conversation: str
    chat: str
    split: Split
    augmented: bool = False
    meta: dict[str, str] = field(default_factory=dict)

    def messages(self) -> list[dict[str, str]]:
        """The HF chat `messages` list: system, then the turns."""
        return [
            {"role": "system", "content": self.system},
            *({"role": t.role, "content": t.content} for t in self.turns),
        ]
