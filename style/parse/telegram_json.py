"""Parse Telegram Desktop's JSON export (`result.json`) into Chat objects.

Telegram Desktop writes either one chat (`{"name", "type", "id", "messages"}`) or a
full export whose conversations sit in `chats.list` and `left_chats.list`. Choices:

- `line` is the message's 1-based index in its chat's `messages` list (JSON has no
  lines); errors carry that index as their line.
- `unsupported` entries (only `id` and `type`, no date) are skipped; nothing is in them.
- A full export drops chats with no messages (Telegram always lists an empty
  Saved Messages). Nameless chats (Saved Messages, Replies) are named after their type.
- A file path in parentheses is Telegram's "(File not included...)" placeholder, so
  the media is marked `omitted`. Self-destructing photos and videos become VIEW_ONCE.
- A poll's question, or a venue's name, stands in as the caption; they have no text.
  Locations get a Google Maps link, as WhatsApp writes them; games and invoices are
  UNKNOWN media.
- Service entries become SYSTEM messages with a one-line `notice`; a null name
  (a deleted account) reads "Deleted Account" there but stays `None` as the author.
- Input that is not a Telegram export at all raises NotAChatError; a damaged one
  raises ExportError.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from style.errors import ExportError, NotAChatError
from style.messages import Chat, Media, MediaType, Message, MessageKind

DIALECT = "telegram-json"

_DOCUMENT_TYPES = {
    "sticker": MediaType.STICKER,
    "voice_message": MediaType.VOICE,
    "video_message": MediaType.VIDEO,
    "animation": MediaType.GIF,
    "video_file": MediaType.VIDEO,
    "audio_file": MediaType.AUDIO,
}

_UNNAMED_CHATS = {"saved_messages": "Saved Messages", "replies": "Replies"}

_NOTICES = {
    "create_group": '{actor} created group "{title}"',
    "create_channel": '{actor} created channel "{title}"',
    "edit_group_title": '{actor} renamed the group to "{title}"',
    "edit_group_photo": "{actor} changed the group photo",
    "delete_group_photo": "{actor} removed the group photo",
    "invite_members": "{actor} added {members}",
    "remove_members": "{actor} removed {members}",
    "join_group_by_link": "{actor} joined the group via an invite link",
    "join_group_by_request": "{actor} joined the group",
    "migrate_to_supergroup": "{actor} upgraded the group to a supergroup",
    "migrate_from_group": '{actor} upgraded group "{title}" to a supergroup',
    "pin_message": "{actor} pinned a message",
    "clear_history": "{actor} cleared the history",
    "take_screenshot": "{actor} took a screenshot",
    "joined_telegram": "{actor} joined Telegram",
    "topic_created": '{actor} created topic "{title}"',
}

_DELETED = "Deleted Account"


class _BadMessage(Exception):
    """One message is malformed; turned into an ExportError carrying its index."""


def parse_telegram_export(data: object, *, source: str) -> list[Chat]:
    """Turn a loaded result.json (one chat or a full export) into one Chat per conversation."""
    if not isinstance(data, dict):
        raise NotAChatError(source, "not a Telegram export: the top level is not a JSON object")
    if "messages" in data:
        return [_parse_chat(data, source=source)]
    if "chats" not in data:
        raise NotAChatError(source, "not a Telegram export: no 'messages' or 'chats' list")
    chats = []
    for section in ("chats", "left_chats"):
        for raw in _chat_list(data, section, source=source):
            chat = _parse_chat(raw, source=f"{source}#{_chat_name(raw)}")
            if chat.messages:
                chats.append(chat)
    return chats


def _chat_list(data: dict[str, Any], section: str, *, source: str) -> list[dict[str, Any]]:
    """The chats under `section`.list of a full export; a missing `left_chats` is empty."""
    if section not in data:
        return []
    block = data[section]
    listed = block.get("list") if isinstance(block, dict) else None
    if not isinstance(listed, list):
        raise ExportError(source, f"'{section}' has no 'list' of chats")
    for raw in listed:
        if not isinstance(raw, dict):
            raise ExportError(source, f"an entry of '{section}.list' is not a chat object")
    return listed


def _chat_name(raw: dict[str, Any]) -> str:
    """The chat's display name; Saved Messages and Replies have none in the export."""
    name = raw.get("name")
    if isinstance(name, str) and name:
        return name
    kind = raw.get("type")
    if isinstance(kind, str) and kind in _UNNAMED_CHATS:
        return _UNNAMED_CHATS[kind]
    return f"chat {raw.get('id')}"


def _parse_chat(raw: dict[str, Any], *, source: str) -> Chat:
    """Build one Chat; a malformed message stops the parse with its index as the line."""
    entries = raw.get("messages")
    if not isinstance(entries, list):
        raise ExportError(source, "'messages' is not a list")
    messages = []
    participants: dict[str, None] = {}  # insertion-ordered set
    for line, entry in enumerate(entries, start=1):
        try:
            message = _parse_message(entry, line=line)
        except _BadMessage as exc:
            raise ExportError(source, str(exc), line=line) from None
        if message is None:
            continue
        messages.append(message)
        if message.kind is not MessageKind.SYSTEM and message.author is not None:
            participants.setdefault(message.author)
    return Chat(source=source, dialect=DIALECT, messages=messages, participants=list(participants))


def _parse_message(entry: object, *, line: int) -> Message | None:
    """One export entry as a Message, or None for the dateless `unsupported` kind."""
    if not isinstance(entry, dict):
        raise _BadMessage("message is not a JSON object")
    if entry.get("type") == "unsupported":
        return None
    ts = _timestamp(entry.get("date"))
    edited = "edited" in entry
    if entry.get("type") == "service":
        actor = _optional_name(entry.get("actor"))
        return Message(
            ts, actor, "", MessageKind.SYSTEM, edited=edited, line=line, notice=_notice(entry)
        )
    author = _optional_name(entry.get("from"))
    text = _flatten(entry.get("text", ""))
    media = _media(entry, caption=text or None)
    if media is not None:
        return Message(ts, author, "", MessageKind.MEDIA, edited=edited, media=media, line=line)
    return Message(ts, author, text, MessageKind.TEXT, edited=edited, line=line)


def _timestamp(value: object) -> datetime:
    """The naive local time Telegram wrote, e.g. 2024-03-12T21:04:05."""
    if not isinstance(value, str):
        raise _BadMessage("message has no 'date'")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _BadMessage(f"message date {value!r} is not an ISO date") from None


def _optional_name(value: object) -> str | None:
    """A sender name; Telegram writes null for deleted accounts."""
    return value if isinstance(value, str) and value else None


def _flatten(text: object) -> str:
    """Plain text from a string or a list of strings and entity objects (links keep their label)."""
    if isinstance(text, str):
        return text
    if not isinstance(text, list):
        raise _BadMessage("message 'text' is neither a string nor a list")
    parts = []
    for part in text:
        if isinstance(part, dict):
            part = part.get("text")
        if not isinstance(part, str):
            raise _BadMessage("a text entity has no string 'text'")
        parts.append(part)
    return "".join(parts)


def _media(entry: dict[str, Any], *, caption: str | None) -> Media | None:
    """The attachment a message carries, or None for plain text."""
    view_once = "self_destruct_period_seconds" in entry
    if "photo" in entry:
        kind = MediaType.VIEW_ONCE if view_once else MediaType.IMAGE
        return _file_media(kind, entry.get("photo"), caption)
    if "file" in entry or "media_type" in entry:
        kind = MediaType.VIEW_ONCE if view_once else _document_type(entry.get("media_type"))
        return _file_media(kind, entry.get("file"), caption)
    if "contact_information" in entry:
        return _file_media(MediaType.CONTACT, entry.get("contact_vcard"), caption)
    if "location_information" in entry:
        place = entry.get("place_name")
        caption = caption or (place if isinstance(place, str) and place else None)
        return Media(MediaType.LOCATION, caption=caption, url=_map_link(entry))
    if "poll" in entry:
        poll = entry["poll"]
        question = poll.get("question") if isinstance(poll, dict) else None
        caption = caption or (question if isinstance(question, str) and question else None)
        return Media(MediaType.POLL, caption=caption)
    if "game_title" in entry or "invoice_information" in entry:
        return Media(MediaType.UNKNOWN, caption=caption)
    return None


def _document_type(media_type: object) -> MediaType:
    """What a `file` is; a file with no `media_type` was sent as a document."""
    if isinstance(media_type, str) and media_type in _DOCUMENT_TYPES:
        return _DOCUMENT_TYPES[media_type]
    return MediaType.DOCUMENT


def _file_media(kind: MediaType, path: object, caption: str | None) -> Media:
    """Media backed by a file path, or by Telegram's "(File not included...)" placeholder."""
    if not isinstance(path, str) or not path:
        return Media(kind, caption=caption)
    if path.startswith("(") and path.endswith(")"):
        return Media(kind, omitted=True, caption=caption)
    return Media(kind, filename=path.rpartition("/")[2], caption=caption)


def _map_link(entry: dict[str, Any]) -> str | None:
    """A maps link for the point, as WhatsApp writes one; None when the point is missing."""
    point = entry.get("location_information")
    if not isinstance(point, dict):
        return None
    lat, lon = point.get("latitude"), point.get("longitude")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        return None
    return f"https://maps.google.com/?q={lat},{lon}"


def _notice(entry: dict[str, Any]) -> str:
    """A short readable line for a service entry, e.g. 'Maya created group "Trip"'."""
    action = entry.get("action")
    if action in ("phone_call", "group_call"):
        return _call_notice(entry, action)
    if not isinstance(action, str):
        info = entry.get("information_text")  # bots' and Telegram's custom notices
        return info if isinstance(info, str) and info else "service message"
    actor = _display_name(entry.get("actor"))
    members = entry.get("members")
    names = [_display_name(m) for m in members] if isinstance(members, list) else []
    if action == "remove_members" and names == [actor]:
        return f"{actor} left the group"
    template = _NOTICES.get(action)
    if template is None:
        words = action.replace("_", " ")
        return f"{actor} {words}" if "actor" in entry else words
    title = entry.get("title")
    return template.format(
        actor=actor, title=title if isinstance(title, str) else "", members=", ".join(names)
    )


def _call_notice(entry: dict[str, Any], action: str) -> str:
    """'phone call (42 s)', 'phone call (missed)', or 'group call (600 s)'."""
    label = action.replace("_", " ")
    duration = entry.get("duration_seconds", entry.get("duration"))
    if isinstance(duration, int) and not isinstance(duration, bool):
        return f"{label} ({duration} s)"
    reason = entry.get("discard_reason")
    return f"{label} ({reason})" if isinstance(reason, str) and reason else label


def _display_name(value: object) -> str:
    """A name for a notice; null names belong to deleted accounts."""
    return value if isinstance(value, str) and value else _DELETED
