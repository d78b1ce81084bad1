"""Tests for the Telegram Desktop JSON export parser."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from style.errors import ExportError, NotAChatError
from style.messages import Chat, Media, MediaType, Message, MessageKind
from style.parse.telegram_json import parse_telegram_export

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"


def load(name: str) -> Any:
    """A fixture export, as json.load gives it to the parser."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def personal_chat() -> Chat:
    """The single-chat fixture, parsed."""
    [chat] = parse_telegram_export(load("personal_chat.json"), source="result.json")
    return chat


def at_line(chat: Chat, line: int) -> Message:
    """The message parsed from the chat's `line`-th entry."""
    [message] = [m for m in chat.messages if m.line == line]
    return message


def one_chat(*messages: dict[str, Any]) -> dict[str, Any]:
    """A minimal single-chat export around the given entries."""
    return {"name": "Maya", "type": "personal_chat", "id": 1, "messages": list(messages)}


def service(action: str, **fields: Any) -> dict[str, Any]:
    """A service entry as Telegram writes it."""
    entry = {"id": 1, "type": "service", "date": "2024-03-12T21:04:05", "action": action}
    return entry | {"text": "", "text_entities": []} | fields


# Single-chat export


def test_single_chat_export_gives_one_chat_with_the_given_source():
    chats = parse_telegram_export(load("personal_chat.json"), source="result.json")
    assert [(c.source, c.dialect) for c in chats] == [("result.json", "telegram-json")]


def test_participants_are_non_system_authors_in_order_of_first_appearance():
    assert personal_chat().participants == ["Maya Cohen", "Dan"]


def test_text_message_keeps_author_text_and_local_time():
    assert at_line(personal_chat(), 1) == Message(
        ts=datetime(2024, 3, 12, 21, 4, 5),
        author="Maya Cohen",
        text="hey, are you coming tonight?",
        kind=MessageKind.TEXT,
        line=1,
    )


def test_text_entities_are_flattened_to_their_visible_text():
    message = at_line(personal_chat(), 2)
    assert message.text == "check https://example.com/menu and book at this place @maya 😀"


def test_edited_message_is_flagged():
    assert at_line(personal_chat(), 3).edited is True


def test_message_without_edited_key_is_not_flagged():
    assert at_line(personal_chat(), 1).edited is False


def test_forwarded_message_is_still_text():
    message = at_line(personal_chat(), 6)
    assert (message.kind, message.text) == (MessageKind.TEXT, "Flights to Lisbon from $49")


def test_message_with_empty_text_and_nothing_else_stays_text():
    message = at_line(personal_chat(), 7)
    assert (message.kind, message.text, message.media) == (MessageKind.TEXT, "", None)


def test_unsupported_entries_are_skipped_without_shifting_lines():
    lines = [m.line for m in personal_chat().messages]
    assert (21 in lines, lines[-1], len(lines)) == (False, 22, 21)


# Media


def test_photo_is_image_media_with_caption_and_no_text():
    message = at_line(personal_chat(), 8)
    assert (message.kind, message.text, message.media) == (
        MessageKind.MEDIA,
        "",
        Media(
            MediaType.IMAGE,
            filename="photo_1@12-03-2024_21-10-00.jpg",
            caption="sunset from the roof",
        ),
    )


def test_file_not_included_placeholder_marks_media_omitted_without_filename():
    assert at_line(personal_chat(), 9).media == Media(MediaType.IMAGE, omitted=True)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (10, Media(MediaType.STICKER, filename="sticker.webp")),
        (11, Media(MediaType.VOICE, filename="audio_1@12-03-2024_21-12-00.ogg")),
        (12, Media(MediaType.VIDEO, filename="file_1@12-03-2024_21-13-00.mp4")),
        (13, Media(MediaType.GIF, filename="giphy.mp4")),
        (14, Media(MediaType.VIDEO, filename="IMG_2041.MP4", caption="look at this")),
        (15, Media(MediaType.AUDIO, filename="fado.mp3")),
        (16, Media(MediaType.DOCUMENT, filename="tickets.pdf", caption="the tickets")),
    ],
    ids=["sticker", "voice", "video_message", "animation", "video_file", "audio", "document"],
)
def test_file_media_type_follows_telegram_media_type(line: int, expected: Media):
    message = at_line(personal_chat(), line)
    assert (message.kind, message.media) == (MessageKind.MEDIA, expected)


def test_location_becomes_a_maps_link():
    assert at_line(personal_chat(), 17).media == Media(
        MediaType.LOCATION, url="https://maps.google.com/?q=38.7223,-9.1393"
    )


def test_venue_name_becomes_the_location_caption():
    assert at_line(personal_chat(), 18).media == Media(
        MediaType.LOCATION,
        caption="Time Out Market",
        url="https://maps.google.com/?q=38.7069,-9.1458",
    )


def test_location_without_a_point_has_no_url():
    entry = {"id": 1, "type": "message", "date": "2024-03-12T21:04:05", "from": "Maya"}
    data = one_chat(entry | {"location_information": None, "text": ""})
    [chat] = parse_telegram_export(data, source="result.json")
    assert chat.messages[0].media == Media(MediaType.LOCATION)


def test_contact_is_media_named_after_its_vcard():
    assert at_line(personal_chat(), 19).media == Media(
        MediaType.CONTACT, filename="contact_1.vcard"
    )


def test_poll_question_becomes_the_caption():
    assert at_line(personal_chat(), 20).media == Media(MediaType.POLL, caption="Dinner where?")


def test_self_destructing_photo_is_view_once():
    assert at_line(personal_chat(), 22).media == Media(MediaType.VIEW_ONCE, omitted=True)


# Service messages


def test_phone_call_is_system_with_duration_notice():
    assert at_line(personal_chat(), 4) == Message(
        ts=datetime(2024, 3, 12, 21, 7),
        author="Dan",
        text="",
        kind=MessageKind.SYSTEM,
        line=4,
        notice="phone call (42 s)",
    )


def test_call_without_duration_notice_gives_the_reason():
    assert at_line(personal_chat(), 5).notice == "phone call (missed)"


def test_unknown_service_action_reads_as_words_after_the_actor():
    data = one_chat(service("set_chat_wallpaper", actor="Maya"))
    [chat] = parse_telegram_export(data, source="result.json")
    assert chat.messages[0].notice == "Maya set chat wallpaper"


def test_member_removing_themselves_left_the_group():
    data = one_chat(service("remove_members", actor="Omer", members=["Omer"]))
    [chat] = parse_telegram_export(data, source="result.json")
    assert chat.messages[0].notice == "Omer left the group"


def test_custom_service_text_is_kept_as_the_notice():
    entry = service("", actor="Maya", information_text="Maya joined via the bot")
    del entry["action"]
    [chat] = parse_telegram_export(one_chat(entry), source="result.json")
    assert chat.messages[0].notice == "Maya joined via the bot"


def test_deleted_account_has_no_author_and_is_not_a_participant():
    entry = {"id": 1, "type": "message", "date": "2024-03-12T21:04:05", "from": None, "text": "hi"}
    [chat] = parse_telegram_export(one_chat(entry), source="result.json")
    assert (chat.messages[0].author, chat.participants) == (None, [])


# Full export


def full_export() -> list[Chat]:
    """The full-export fixture, parsed."""
    return parse_telegram_export(load("full_export.json"), source="result.json")


def test_full_export_gives_one_chat_per_conversation_named_in_the_source():
    assert [c.source for c in full_export()] == [
        "result.json#Maya Cohen",
        "result.json#Lisbon trip",
        "result.json#Old Flatmates",
    ]


def test_full_export_reads_each_chats_own_messages():
    maya, group, _ = full_export()
    assert [m.text for m in maya.messages] == ["hey, are you coming tonight?", "yes!"]
    assert [m.line for m in group.messages] == [1, 2, 3, 4, 5, 6]


def test_group_participants_leave_out_actors_who_never_wrote():
    _, group, _ = full_export()
    assert group.participants == ["Noa Levi", "Dan"]


def test_group_service_messages_get_readable_notices():
    _, group, _ = full_export()
    assert [m.notice for m in group.messages if m.kind is MessageKind.SYSTEM] == [
        'Maya Cohen created group "Lisbon trip"',
        "Maya Cohen added Noa Levi, Omer",
        "group call (600 s)",
        "Maya Cohen pinned a message",
    ]


def test_system_messages_have_the_actor_as_author_and_no_text():
    _, group, _ = full_export()
    first = group.messages[0]
    assert (first.kind, first.author, first.text) == (MessageKind.SYSTEM, "Maya Cohen", "")


def test_full_export_skips_chats_without_messages():
    assert "result.json#Saved Messages" not in [c.source for c in full_export()]


def test_unnamed_chat_with_messages_is_named_after_its_type():
    note = {"id": 1, "type": "message", "date": "2024-03-12T21:04:05", "from": "Dan", "text": "x"}
    saved = {"type": "saved_messages", "id": 2, "messages": [note]}
    chats = parse_telegram_export({"chats": {"list": [saved]}}, source="result.json")
    assert [c.source for c in chats] == ["result.json#Saved Messages"]


# Bad input


def test_list_at_top_level_is_not_a_chat_and_names_the_source():
    with pytest.raises(NotAChatError) as caught:
        parse_telegram_export([], source="export.json")
    assert str(caught.value) == (
        "export.json: not a Telegram export: the top level is not a JSON object"
    )


def test_object_without_messages_or_chats_is_not_a_chat():
    with pytest.raises(NotAChatError) as caught:
        parse_telegram_export({"name": "Maya"}, source="export.json")
    assert str(caught.value) == "export.json: not a Telegram export: no 'messages' or 'chats' list"


def test_messages_that_are_not_a_list_are_an_export_error():
    with pytest.raises(ExportError) as caught:
        parse_telegram_export({"name": "Maya", "messages": {}}, source="export.json")
    assert str(caught.value) == "export.json: 'messages' is not a list"


def test_chats_without_a_list_are_an_export_error():
    with pytest.raises(ExportError) as caught:
        parse_telegram_export({"chats": {"about": "x"}}, source="export.json")
    assert str(caught.value) == "export.json: 'chats' has no 'list' of chats"


def test_message_without_date_is_an_export_error_at_its_line():
    data = one_chat({"id": 1, "type": "message", "from": "Maya", "text": "hi"})
    with pytest.raises(ExportError) as caught:
        parse_telegram_export(data, source="export.json")
    assert str(caught.value) == "export.json, line 1: message has no 'date'"


def test_unparseable_date_is_an_export_error_at_its_line():
    good = {"id": 1, "type": "message", "date": "2024-03-12T21:04:05", "text": "hi"}
    bad = good | {"date": "yesterday"}
    with pytest.raises(ExportError) as caught:
        parse_telegram_export(one_chat(good, bad), source="export.json")
    assert str(caught.value) == "export.json, line 2: message date 'yesterday' is not an ISO date"


def test_text_of_the_wrong_type_is_an_export_error():
    data = one_chat({"id": 1, "type": "message", "date": "2024-03-12T21:04:05", "text": 5})
    with pytest.raises(ExportError) as caught:
        parse_telegram_export(data, source="export.json")
    assert str(caught.value) == (
        "export.json, line 1: message 'text' is neither a string nor a list"
    )


def test_message_that_is_not_an_object_is_an_export_error():
    with pytest.raises(ExportError) as caught:
        parse_telegram_export(one_chat("hi"), source="export.json")  # type: ignore[arg-type]
    assert str(caught.value) == "export.json, line 1: message is not a JSON object"


def test_error_in_a_full_export_names_the_chat():
    chat = {"name": "Maya", "type": "personal_chat", "messages": [{"id": 1, "type": "message"}]}
    with pytest.raises(ExportError) as caught:
        parse_telegram_export({"chats": {"list": [chat]}}, source="export.json")
    assert str(caught.value) == "export.json#Maya, line 1: message has no 'date'"
