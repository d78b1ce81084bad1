"""The typed messages every parser produces and every later stage consumes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any

_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class MessageKind(StrEnum):
    """What a message is; only `text` messages carry the author's words in `text`."""

    TEXT = "text"
    MEDIA = (
        "media"  # photos, voice notes, stickers, documents, locations, contacts, polls, view-once
    )
    DELETED = "deleted"
    SYSTEM = "system"  # calls, group events, encryption and security notices


class MediaType(StrEnum):
    """The kind of attachment behind a media message."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    STICKER = "sticker"
    GIF = "gif"
    DOCUMENT = "document"
    CONTACT = "contact"
    LOCATION = "location"
    POLL = "poll"
    VIEW_ONCE = "view_once"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Media:
    """An attachment: what it is, its file name, and whether the export left it out."""

    type: MediaType
    filename: str | None = None
    omitted: bool = False
    caption: str | None = None
    url: str | None = None
    path: str | None = None  # the attachment's path inside a zip export, once mapped

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict without empty fields."""
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


@dataclass(slots=True)
class Message:
    """One chat message, as written in the export.

    `ts` is naive local time exactly as the export shows it. `text` holds the author's
    words for `text` messages and is empty for every other kind; a system message's
    wording is kept in `notice`, so nothing in the export is lost. Instances are
    treated as immutable (not frozen only because frozen dataclasses are 4x slower to
    build, and parsers build millions).
    """

    ts: datetime
    author: str | None
    text: str
    kind: MessageKind = MessageKind.TEXT
    edited: bool = False
    media: Media | None = None
    line: int = 0
    notice: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record `wa-persona parse` writes."""
        record: dict[str, Any] = {
            "ts": self.ts.isoformat(),
            "author": self.author,
            "text": self.text,
            "kind": self.kind.value,
            "edited": self.edited,
            "media": self.media.to_dict() if self.media is not None else None,
        }
        if self.notice is not None:
            record["notice"] = self.notice
        record["line"] = self.line
        return record

    def to_json(self) -> str:
        """`to_dict()` as compact JSON, built directly: `wa-persona parse` writes millions."""
        if self.media is not None or self.notice is not None:
            return _DUMPS(self.to_dict())
        author = "null" if self.author is None else encode_basestring(self.author)
        return (
            f'{{"ts":"{self.ts.isoformat()}","author":{author},'
            f'"text":{encode_basestring(self.text)},"kind":"{self.kind.value}",'
            f'"edited":{"true" if self.edited else "false"},"media":null,"line":{self.line}}}'
        )


@dataclass(slots=True)
class Chat:
    """A parsed export: its messages in file order and what we learned reading it."""

    source: str
    dialect: str
    messages: list[Message] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    unparsed_lines: int = 0

    @property
    def is_group(self) -> bool:
        """More than two people wrote in it."""
        return len(self.participants) > 2
