"""The JSON bodies the Cloud API's messages endpoint takes, within WhatsApp's limits.

Pure functions: what to send in, a request body out. `GraphClient` posts them. The limits
are Meta's (developers.facebook.com/documentation/business-messaging/whatsapp): text bodies
up to 4096 characters, reply buttons (at most 3, titles up to 20 characters, ids up to 256,
body up to 1024), list messages (at most 10 rows, titles up to 24, ids up to 200, body up to
4096, the opening button up to 20).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from bot.channels import Choice

__all__ = [
    "BUTTON_BODY_CHARS",
    "LIST_BODY_CHARS",
    "LIST_BUTTON_LABEL",
    "TEXT_CHARS",
    "ChoiceFormat",
    "buttons_message",
    "choice_format",
    "list_message",
    "read_receipt",
    "recipient",
    "split_text",
    "text_message",
]

TEXT_CHARS = 4096
"""Longest text body the Cloud API accepts; longer texts go as several messages."""
BUTTON_BODY_CHARS = 1024
MAX_BUTTONS = 3
BUTTON_TITLE_CHARS = 20
BUTTON_ID_CHARS = 256
LIST_BODY_CHARS = 4096
MAX_LIST_ROWS = 10
ROW_TITLE_CHARS = 24
ROW_ID_CHARS = 200
LIST_BUTTON_LABEL = "Choose"
"""The label of the button that opens a list (at most 20 characters)."""
BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]+$")
"""A business-scoped user id (`US.13491208655302741918`), sent to users who hide their number."""

ChoiceFormat = Literal["buttons", "list", "numbered"]


def recipient(chat_id: str) -> dict[str, str]:
    """Who a message goes to: `to` for a phone number, `recipient` for a business-scoped id."""
    if BSUID.match(chat_id):
        return {"recipient": chat_id}
    return {"to": chat_id}


def text_message(chat_id: str, body: str) -> dict[str, Any]:
    """One text message (at most TEXT_CHARS); links are not previewed."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **recipient(chat_id),
        "type": "text",
        "text": {"body": body, "preview_url": False},
    }


def choice_format(text: str, choices: Sequence[Choice]) -> ChoiceFormat:
    """Reply buttons when they fit, else a list, else a numbered text the user answers."""
    payloads = [choice.payload for choice in choices]
    labels = [choice.label for choice in choices]
    distinct = len(set(payloads)) == len(payloads) and len(set(labels)) == len(labels)
    blank = any(not label.strip() for label in labels) or not all(payloads) or not text.strip()
    if not choices or not distinct or blank:
        return "numbered"
    if (
        len(choices) <= MAX_BUTTONS
        and len(text) <= BUTTON_BODY_CHARS
        and all(len(label) <= BUTTON_TITLE_CHARS for label in labels)
        and all(len(payload) <= BUTTON_ID_CHARS for payload in payloads)
    ):
        return "buttons"
    if (
        len(choices) <= MAX_LIST_ROWS
        and len(text) <= LIST_BODY_CHARS
        and all(len(label) <= ROW_TITLE_CHARS for label in labels)
        and all(len(payload) <= ROW_ID_CHARS for payload in payloads)
    ):
        return "list"
    return "numbered"


def buttons_message(chat_id: str, text: str, choices: Sequence[Choice]) -> dict[str, Any]:
    """An interactive message with one reply button per choice; the id is the payload."""
    buttons = [
        {"type": "reply", "reply": {"id": choice.payload, "title": choice.label}}
        for choice in choices
    ]
    return _interactive(chat_id, "button", text, {"buttons": buttons})


def list_message(chat_id: str, text: str, choices: Sequence[Choice]) -> dict[str, Any]:
    """An interactive list with one row per choice in a single section."""
    rows = [{"id": choice.payload, "title": choice.label} for choice in choices]
    action = {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]}
    return _interactive(chat_id, "list", text, action)


def read_receipt(message_id: str, *, typing: bool) -> dict[str, Any]:
    """Mark a received message read; with `typing`, also show "typing…" (up to 25 s)."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message_id,
    }
    if typing:
        body["typing_indicator"] = {"type": "text"}
    return body


def split_text(text: str, limit: int = TEXT_CHARS) -> list[str]:
    """Cut a text into pieces of at most `limit` characters, at a paragraph, line or space.

    Whitespace at a cut is dropped; a run without any whitespace is cut hard.
    """
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = _last_break(window)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if head:
            pieces.append(head)
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _last_break(window: str) -> int:
    """Where to cut `window` (one character longer than allowed).

    The last paragraph break in its second half, else the last line break there, else the
    last space anywhere, else the hard limit.
    """
    limit = len(window) - 1
    for separator, earliest in (("\n\n", limit // 2), ("\n", limit // 2), (" ", 1)):
        position = window.rfind(separator)
        if position >= earliest:
            return position
    return limit


def _interactive(chat_id: str, kind: str, text: str, action: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **recipient(chat_id),
        "type": "interactive",
        "interactive": {"type": kind, "body": {"text": text}, "action": action},
    }
