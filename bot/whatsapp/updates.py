"""Webhook notifications from the Cloud API, checked and turned into `Incoming` messages.

Meta signs each POST with `X-Hub-Signature-256: sha256=<HMAC-SHA256(app secret, raw body)>`
and may batch several `entry` × `changes` × `messages` in one delivery. Pure functions here;
the aiohttp routes are in `bot.whatsapp.webhook`.

Message types (what the service gets):
- `text` → `text`; `document` → `document` (the media id, file name and MIME type; the size
  is only known when downloading); `interactive` `button_reply`/`list_reply` and template
  `button` → `choice` (the payload we set as the button's id);
- `reaction` and `system` (number changes) are dropped: they are not messages to answer;
- every other type (image, audio, video, sticker, location, contacts, unsupported…) becomes
  an `Incoming` with no text, document or choice, so the service can say that it only
  understands text and chat exports.
The sender is `from` (the phone number, WhatsApp's `wa_id`), or the business-scoped user id
(`from_user_id`) for users who hide their number behind a username; the chat is the sender.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.channels import DocumentRef, Incoming

__all__ = ["Notification", "parse_notification", "signature", "valid_signature"]

logger = logging.getLogger(__name__)

SIGNATURE_PREFIX = "sha256="
DROPPED_TYPES = frozenset({"reaction", "system"})


def signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends for `body`."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def valid_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` signs exactly these raw bytes with the app secret (constant time)."""
    if not app_secret or not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = signature(app_secret, body).encode()
    return hmac.compare_digest(expected, header.strip().lower().encode(errors="replace"))


@dataclass(frozen=True, slots=True)
class Notification:
    """What one delivery carried: messages for us, and how many updates were not messages."""

    messages: list[Incoming]
    statuses: int = 0
    skipped: int = 0


def parse_notification(payload: dict[str, Any], *, phone_number_id: str | None) -> Notification:
    """Every message in a delivery, in order; statuses counted, foreign numbers skipped.

    `phone_number_id` keeps only messages sent to our number (one Meta app may serve
    several); None keeps all. Malformed parts are skipped, never raised on: an error would
    make Meta redeliver the whole batch.
    """
    messages: list[Incoming] = []
    statuses = skipped = 0
    if payload.get("object") not in (None, "whatsapp_business_account"):
        return Notification(messages, 0, 1)
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                skipped += 1
                continue
            statuses += len(_dicts(value.get("statuses")))
            metadata = value.get("metadata")
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if phone_number_id is not None and number not in (None, phone_number_id):
                skipped += len(_dicts(value.get("messages")))
                logger.info("ignored messages for another phone number id (%s)", number)
                continue
            names = dict(_contact_names(value.get("contacts")))
            for message in _dicts(value.get("messages")):
                incoming = _incoming(message, names)
                if incoming is None:
                    skipped += 1
                else:
                    messages.append(incoming)
    return Notification(messages, statuses, skipped)


def _incoming(message: dict[str, Any], names: dict[str, str]) -> Incoming | None:
    """One message object as an `Incoming`; None for what is not a person's message."""
    kind = message.get("type")
    message_id = message.get("id")
    sender = message.get("from") or message.get("from_user_id")
    if not isinstance(message_id, str) or not isinstance(sender, str) or not message_id:
        logger.warning("skipped a WhatsApp message without id or sender (type %s)", kind)
        return None
    if kind in DROPPED_TYPES:
        logger.debug("dropped WhatsApp %s message %s", kind, message_id)
        return None
    text = choice = None
    document = None
    if kind == "text":
        text = _field(message, "text", "body")
    elif kind == "document":
        media_id = _field(message, "document", "id")
        if media_id is not None:
            document = DocumentRef(
                file_id=media_id,
                file_name=_field(message, "document", "filename"),
                mime_type=_field(message, "document", "mime_type"),
            )
    elif kind == "interactive":
        reply_type = _field(message, "interactive", "type")
        if reply_type in ("button_reply", "list_reply"):
            choice = _field(message, "interactive", reply_type, "id")
    elif kind == "button":
        choice = _field(message, "button", "payload")
    return Incoming(
        channel="whatsapp",
        chat_id=sender,
        user_id=sender,
        message_id=message_id,
        at=_timestamp(message.get("timestamp")),
        text=text,
        document=document,
        choice=choice,
        user_name=names.get(sender),
    )


def _contact_names(contacts: object) -> Iterator[tuple[str, str]]:
    """(sender id, profile name) for each contact, by phone number and by user id."""
    for contact in _dicts(contacts):
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if not isinstance(name, str):
            continue
        for key in ("wa_id", "user_id"):
            if isinstance(contact.get(key), str):
                yield contact[key], name


def _field(message: dict[str, Any], *path: str) -> str | None:
    """A nested string field, or None when any step is missing or of another type."""
    value: object = message
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) else None


def _timestamp(value: object) -> datetime:
    """Unix seconds as sent ("1739321024"); the arrival time when missing or garbled."""
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
