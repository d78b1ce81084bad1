"""Cut chats into conversations of turns: the persona's turns are the assistant's.

A conversation is a run of messages in one chat with no silence longer than the gap (the
profile's rule, on the same messages: authored and not system, so both agree on the cut).
A turn is a run of consecutive messages of one side: the persona, or everyone else (in a
group chat several people's messages make one user turn, each bubble prefixed "Sam: ").
Every message stays its own bubble. A conversation the persona opens starts with a
`CONVERSATION_START` user turn, so every assistant turn follows a user turn and roles
alternate; a user turn after the persona's last turn is left out (nothing to learn there).

Message kinds: text is kept (blank lines folded, so a blank line always means "next
bubble"); media becomes a placeholder ("[photo] caption") or is dropped; deleted messages
become "[deleted]" or are dropped; system notices (calls, members joining) are always left
out and do not split a turn, since two assistant turns in a row are not a valid chat. A
dropped message leaves no trace: the messages around it meet as if it had not been sent.

The work is done on columns (numpy arrays and lists built with C-level `map`), so the only
Python loop per turn is the one that builds its `Turn`.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress, repeat

import numpy as np
import numpy.typing as npt

from style.messages import Chat, MediaType, Message, MessageKind
from training.dataset.samples import CONVERSATION_START, Turn

EPOCH = datetime(1970, 1, 1)

PLACEHOLDERS = {
    MediaType.IMAGE: "[photo]",
    MediaType.VIDEO: "[video]",
    MediaType.AUDIO: "[audio]",
    MediaType.VOICE: "[voice message]",
    MediaType.STICKER: "[sticker]",
    MediaType.GIF: "[GIF]",
    MediaType.DOCUMENT: "[document]",
    MediaType.CONTACT: "[contact]",
    MediaType.LOCATION: "[location]",
    MediaType.POLL: "[poll]",
    MediaType.VIEW_ONCE: "[view once]",
    MediaType.UNKNOWN: "[media]",
}
"""What a media message becomes with `media="placeholder"` (its caption follows)."""

DELETED_PLACEHOLDER = "[deleted]"

_BLANK_LINES = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")
_TEXT, _MEDIA, _SYSTEM = MessageKind.TEXT, MessageKind.MEDIA, MessageKind.SYSTEM
_KIND_CODES = {MessageKind.TEXT: 0, MessageKind.MEDIA: 1, MessageKind.DELETED: 2}
_TS = operator.attrgetter("ts")
_KIND = operator.attrgetter("kind")
_AUTHOR = operator.attrgetter("author")
_TEXT_OF = operator.attrgetter("text")

BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Conversation:
    """One conversation's turns, ready to be sliced into samples.

    `turns` alternate user / assistant and start with a user turn; assistant turns have
    `train=True`; `history()` gives the same turns with `train=False` (the context of a
    later reply). `tokens[i]` counts turn i (filled by the builder). For assistant turns,
    `text_bubbles[i]` is how many bubbles are the persona's words (not placeholders) and
    `longest[i]` the longest of them, in characters.
    """

    chat: int
    index: int
    """Position of the conversation in its chat."""
    start: float
    """Seconds since 1970 (wall clock) of its first message."""
    id: str
    turns: list[Turn] = field(default_factory=list)
    _history: tuple[Turn, ...] = ()
    tokens: list[int] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    """`turns[i].content`, computed once (filled by the builder with the tokens)."""
    prefix: list[int] = field(default_factory=list)
    """Running token totals: `prefix[j] - prefix[i]` counts turns i..j-1 (builder)."""
    text_bubbles: list[int] = field(default_factory=list)
    longest: list[int] = field(default_factory=list)

    def history(self, start: int, end: int) -> tuple[Turn, ...]:
        """`turns[start:end]` as context: assistant turns with `train=False`.

        The untrained copies are made on first use: a conversation whose replies are all
        trained in one sample never needs them.
        """
        if not self._history:
            self._history = tuple(
                Turn(t.role, t.bubbles, t.ts, False) if t.role == "assistant" else t
                for t in self.turns
            )
        return self._history[start:end]


@dataclass(slots=True)
class CutChats:
    """Every conversation with a persona turn, plus counts of what was kept and left out."""

    conversations: list[Conversation]
    total: int
    """Conversations of any kind (with or without the persona)."""
    messages: Counter[str]
    persona_lengths: npt.NDArray[np.int64]
    """Characters of every text bubble the persona wrote (for the long-paste threshold)."""


def authored(chat: Chat) -> list[Message]:
    """The chat's messages that have an author and are not system notices."""
    system = _SYSTEM
    return [m for m in chat.messages if m.author is not None and m.kind is not system]


def seconds(messages: list[Message]) -> npt.NDArray[np.float64]:
    """Wall-clock seconds since 1970 of each message (aware times read as wall clock)."""
    stamps = list(map(_TS, messages))
    if stamps and stamps[0].tzinfo is not None:
        stamps = [ts.replace(tzinfo=None) for ts in stamps]
    return np.fromiter(
        map(timedelta.total_seconds, map(operator.sub, stamps, repeat(EPOCH))),
        np.float64,
        len(stamps),
    )


def chat_digest(messages: list[Message], t: npt.NDArray[np.float64]) -> str:
    """SHA-256 of a chat's authored, non-system messages, as the profile's `Source.sha256`.

    The definition is the profile's (docs/profile.md, "Privacy"): wall-clock seconds as
    float64, kind codes as int64, authors joined by U+001F, then every text followed by
    U+001E, UTF-8. `messages` are `authored(chat)` and `t` their `seconds`.
    """
    n = len(messages)
    kinds = list(map(_KIND, messages))
    digest = hashlib.sha256(t.tobytes())
    digest.update(np.fromiter(map(_KIND_CODES.__getitem__, kinds), np.int64, n).tobytes())
    digest.update("\x1f".join(map(_AUTHOR, messages)).encode("utf-8", "replace"))
    texts = [
        text if kind is _TEXT else ""
        for text, kind in zip(map(_TEXT_OF, messages), kinds, strict=True)
    ]
    for start in range(0, n, 20_000):
        piece = "\x1e".join(texts[start : start + 20_000]) + "\x1e"
        digest.update(piece.encode("utf-8", "replace"))
    return digest.hexdigest()


def fold(text: str) -> str:
    """A message's text as one bubble: blank lines folded to one newline, ends stripped."""
    if "\n" in text:
        text = _BLANK_LINES.sub("\n", text.replace("\r\n", "\n"))
    return text.strip()


def cut_conversations(
    chats: list[Chat],
    chat_ids: list[str],
    persona: str,
    gap_s: float,
    *,
    media: str = "placeholder",
    deleted: str = "drop",
    speaker_names: str = "group",
    columns: list[tuple[list[Message], npt.NDArray[np.float64]]] | None = None,
) -> CutChats:
    """Cut every chat into conversations and turns (token counts left empty).

    `columns` may hold each chat's `authored` messages and their `seconds`, already computed.
    """
    conversations: list[Conversation] = []
    counts: Counter[str] = Counter()
    lengths: list[npt.NDArray[np.int64]] = []
    total = 0
    for number, chat in enumerate(chats):
        messages, t = columns[number] if columns else (authored(chat), None)
        counts["system"] += len(chat.messages) - len(messages)
        counts["messages"] += len(messages)
        if not messages:
            continue
        if speaker_names == "group":
            prefix = chat.is_group or len(set(map(_AUTHOR, messages))) > 2
        else:
            prefix = speaker_names == "always"
        found, chat_total = _cut_chat(
            messages,
            seconds(messages) if t is None else t,
            persona,
            gap_s,
            keep_media=media == "placeholder",
            keep_deleted=deleted == "placeholder",
            prefix=prefix,
            counts=counts,
            lengths=lengths,
        )
        total += chat_total
        for conversation in found:
            conversation.chat = number
            digest = hashlib.sha256(f"{chat_ids[number]}:{conversation.index}".encode())
            conversation.id = digest.hexdigest()[:16]
        conversations += found
    persona_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    return CutChats(conversations, total, counts, persona_lengths)


def _cut_chat(
    messages: list[Message],
    t: npt.NDArray[np.float64],
    persona: str,
    gap_s: float,
    *,
    keep_media: bool,
    keep_deleted: bool,
    prefix: bool,
    counts: Counter[str],
    lengths: list[npt.NDArray[np.int64]],
) -> tuple[list[Conversation], int]:
    n = len(messages)
    opens = np.ones(n, dtype=np.bool_)
    opens[1:] = np.diff(t) > gap_s
    conv = np.cumsum(opens) - 1
    begins = t[opens].tolist()  # start time of every conversation, by its index
    total = len(begins)

    # one bubble per message ("" = left out)
    kinds = list(map(_KIND, messages))
    is_text = np.fromiter(map(operator.is_, kinds, repeat(_TEXT)), np.bool_, n)
    texts = list(map(_TEXT_OF, messages))
    bubbles = [fold(x) if "\n" in x else x.strip() for x in texts]
    for i in np.flatnonzero(~is_text).tolist():
        message = messages[i]
        if message.kind is _MEDIA:
            if not keep_media:
                counts["media_dropped"] += 1
                bubbles[i] = ""
                continue
            counts["media"] += 1
            attachment = message.media
            kind = attachment.type if attachment is not None else MediaType.UNKNOWN
            caption = fold(attachment.caption or "") if attachment is not None else ""
            bubbles[i] = f"{PLACEHOLDERS[kind]} {caption}" if caption else PLACEHOLDERS[kind]
        elif keep_deleted:
            counts["deleted"] += 1
            bubbles[i] = DELETED_PLACEHOLDER
        else:
            counts["deleted_dropped"] += 1
            bubbles[i] = ""
    keep = np.fromiter(map(bool, bubbles), np.bool_, n)
    counts["empty"] += int((is_text & ~keep).sum())
    counts["text"] += int((is_text & keep).sum())
    if not keep.all():
        bubbles = list(compress(bubbles, keep.tolist()))
        messages = list(compress(messages, keep.tolist()))
        is_text, conv = is_text[keep], conv[keep]
    m = len(bubbles)
    if not m:
        return [], total
    authors = list(map(_AUTHOR, messages))
    mine = np.fromiter(map(persona.__eq__, authors), np.bool_, m)
    if prefix:
        bubbles = [
            b if own else f"{a}: {b}"
            for b, a, own in zip(bubbles, authors, mine.tolist(), strict=True)
        ]

    # turns: a new one at every conversation start or change of side
    new_turn = np.ones(m, dtype=np.bool_)
    new_turn[1:] = (conv[1:] != conv[:-1]) | (mine[1:] != mine[:-1])
    starts = np.flatnonzero(new_turn)
    own_text = mine & is_text
    sizes = np.fromiter(map(len, bubbles), np.int64, m)
    lengths.append(sizes[own_text])
    text_count = np.add.reduceat(own_text.astype(np.int64), starts)
    text_count[~mine[starts]] = 0
    longest = np.maximum.reduceat(np.where(own_text, sizes, 0), starts)
    turn_mine = mine[starts]
    turn_conv = conv[starts]

    # every turn once, as a Turn
    stamps = list(map(_TS, compress(messages, new_turn.tolist())))
    bounds = starts.tolist()
    kept = [tuple(bubbles[a:b]) for a, b in zip(bounds, [*bounds[1:], m], strict=True)]
    roles = ["assistant" if own else "user" for own in turn_mine.tolist()]
    turns = list(map(Turn, roles, kept, stamps))
    text_counts, longests = text_count.tolist(), longest.tolist()

    # conversations: runs of turns with one `conv`; kept when the persona has a turn
    opens_at = np.flatnonzero(np.append(True, turn_conv[1:] != turn_conv[:-1]))
    closes_at = np.append(opens_at[1:], turn_conv.size)
    with_persona = np.add.reduceat(turn_mine.astype(np.int64), opens_at) > 0
    found: list[Conversation] = []
    for first, end, index in zip(
        opens_at[with_persona].tolist(),
        closes_at[with_persona].tolist(),
        turn_conv[opens_at[with_persona]].tolist(),
        strict=True,
    ):
        if turns[end - 1].role != "assistant":
            end -= 1  # nothing to learn after the persona's last turn
        conversation = Conversation(
            chat=0,
            index=index,
            start=begins[index],
            id="",
            turns=turns[first:end],
            text_bubbles=text_counts[first:end],
            longest=longests[first:end],
        )
        if turns[first].role == "assistant":  # the persona opened the conversation
            conversation.turns.insert(0, Turn("user", (CONVERSATION_START,), stamps[first]))
            conversation.text_bubbles.insert(0, 0)
            conversation.longest.insert(0, 0)
        found.append(conversation)
    return found, total
