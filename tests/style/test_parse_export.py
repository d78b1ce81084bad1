"""Opening exports from disk: containers, encodings, limits, and every kind of bad input."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from style.errors import ExportError, NotAChatError, UnsafeArchiveError
from style.messages import MediaType, MessageKind
from style.parse import ExportLimits, iter_messages, load_chat, load_chats

ANDROID = (
    "23/03/2022, 13:31 - Dmitry S: Hello\n"
    "23/03/2022, 13:32 - Maya: IMG-20220323-WA0002.jpg (file attached)\n"
    "23/03/2022, 13:33 - Maya: see you\n"
)
IOS = (
    "[3/27/22, 21:41:35] Dmitry S: Hello World\r\n"
    "[3/27/22, 21:41:55] Dmitry S: \u200e<attached: 00000035-PHOTO-2022-03-27-21-41-55.jpg>\r\n"
    "[3/27/22, 21:42:01] Maya: nice\r\n"
)


def _zip(path: Path, entries: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_android_text_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "WhatsApp Chat with Dmitry S.txt"
    path.write_text(ANDROID, encoding="utf-8")
    chat = load_chat(path)
    assert [m.author for m in chat.messages] == ["Dmitry S", "Maya", "Maya"]
    assert chat.participants == ["Dmitry S", "Maya"]
    assert chat.source == str(path)


def test_utf8_bom_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_bytes(b"\xef\xbb\xbf" + ANDROID.encode())
    assert load_chat(path).messages[0].ts == datetime(2022, 3, 23, 13, 31)


def test_utf16_export_with_bom_loads(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_bytes(ANDROID.encode("utf-16"))
    assert [m.text for m in load_chat(path).messages][-1] == "see you"


def test_ios_zip_maps_media_files_to_their_messages(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "WhatsApp Chat - Dmitry S.zip",
        {
            "_chat.txt": IOS,
            "00000035-PHOTO-2022-03-27-21-41-55.jpg": b"\xff\xd8jpeg",
            "__MACOSX/._chat.txt": b"\x00\x05\x16\x07",
        },
    )
    chat = load_chat(archive)
    photo = chat.messages[1]
    assert photo.kind is MessageKind.MEDIA
    assert photo.media is not None
    assert photo.media.type is MediaType.IMAGE
    assert photo.media.path == "00000035-PHOTO-2022-03-27-21-41-55.jpg"
    assert chat.source.endswith("_chat.txt")


def test_android_zip_finds_the_chat_by_its_localized_name(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "export.zip",
        {
            "Чат WhatsApp с контактом Dmitry S.txt": ANDROID,
            "IMG-20220323-WA0002.jpg": b"\xff\xd8jpeg",
        },
    )
    chat = load_chat(archive)
    assert chat.messages[1].media is not None
    assert chat.messages[1].media.path == "IMG-20220323-WA0002.jpg"


def test_zip_with_a_telegram_export_loads(tmp_path: Path) -> None:
    result = (
        '{"name": "Sam", "type": "personal_chat", "id": 1, "messages": ['
        '{"id": 1, "type": "message", "date": "2024-03-12T21:04:05", "from": "Sam", '
        '"from_id": "user1", "text": "hi"}]}'
    )
    chat = load_chat(_zip(tmp_path / "tg.zip", {"ChatExport/result.json": result}))
    assert [(m.author, m.text) for m in chat.messages] == [("Sam", "hi")]


def test_iter_messages_streams_the_same_messages(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(ANDROID * 3, encoding="utf-8")
    assert list(iter_messages(path)) == load_chat(path).messages


def test_messages_spanning_block_boundaries_are_intact(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("style.parse.export.BLOCK_CHARS", 7)
    path = tmp_path / "chat.txt"
    path.write_bytes(("23/03/2022, 13:31 - Maya: a\r\nb\r\n\r\nc\r\n" * 5).encode())
    messages = load_chat(path).messages
    assert [m.text for m in messages] == ["a\nb\n\nc"] * 5
    assert [m.line for m in messages] == [1, 5, 9, 13, 17]


def test_multi_chat_telegram_export_needs_a_chat_name(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    chat = '{{"name": "{0}", "type": "personal_chat", "id": {1}, "messages": [{{"id": 1, "type": "message", "date": "2024-03-12T21:04:05", "from": "{0}", "text": "hi"}}]}}'  # noqa: E501
    path.write_text(
        '{"chats": {"list": [' + chat.format("Sam", 1) + "," + chat.format("Ana", 2) + "]}}",
        encoding="utf-8",
    )
    assert len(load_chats(path)) == 2
    with pytest.raises(ExportError, match="holds 2 chats"):
        load_chat(path)
    assert load_chat(path, chat="Ana").messages[0].author == "Ana"


# --- bad input: one clear error naming the file ---------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such file"):
        load_chat(tmp_path / "nope.txt")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="is a folder"):
        load_chat(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(NotAChatError, match=r"empty\.txt: is empty"):
        load_chat(path)


def test_text_that_is_not_a_chat(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("This is just random text\nwith two lines\n", encoding="utf-8")
    with pytest.raises(NotAChatError, match=r"notes\.txt: no WhatsApp message header"):
        load_chat(path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)))
    with pytest.raises(ExportError, match="binary"):
        load_chat(path)


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(ANDROID.encode() + "23/03/2022, 13:34 - Maya: café\n".encode("latin-1"))
    with pytest.raises(ExportError, match=r"latin1\.txt, line 4: is not UTF-8"):
        load_chat(path)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text(ANDROID * 100, encoding="utf-8")
    with pytest.raises(ExportError, match=r"over the 0\.0 MB limit"):
        load_chat(path, limits=ExportLimits(max_bytes=1000))


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"messages": [', encoding="utf-8")
    with pytest.raises(ExportError, match=r"result\.json, line 1: is not valid JSON"):
        load_chat(path)


def test_zip_without_a_chat(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "photos.zip", {"IMG-1.jpg": b"\xff\xd8", "IMG-2.jpg": b"\xff\xd8"})
    with pytest.raises(NotAChatError, match=r"photos\.zip: is a zip without a chat"):
        load_chat(archive)


def test_zip_with_several_text_files_asks_which(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "two.zip", {"a.txt": ANDROID, "b.txt": ANDROID})
    with pytest.raises(NotAChatError, match="several text files"):
        load_chat(archive)


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt"])
def test_zip_slip_entries_are_refused(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "slip.zip", {"_chat.txt": ANDROID, name: "x"})
    with pytest.raises(UnsafeArchiveError, match="points outside the archive"):
        load_chat(archive)


def test_zip_bomb_by_ratio_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"_chat.txt": ANDROID, "pad.bin": b"\x00" * (8 << 20)})
    with pytest.raises(UnsafeArchiveError, match="likely zip bomb"):
        load_chat(archive)


def test_zip_bomb_by_total_size_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {"_chat.txt": ANDROID, "a.bin": b"a" * 5000})
    with pytest.raises(UnsafeArchiveError, match="expands to more than"):
        load_chat(archive, limits=ExportLimits(max_archive_bytes=4000))


def test_zip_chat_over_the_size_limit(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "chat.zip", {"_chat.txt": ANDROID * 100})
    with pytest.raises(ExportError, match=r"_chat\.txt: is .* over the"):
        load_chat(archive, limits=ExportLimits(max_bytes=1000))


def test_damaged_zip(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "chat.zip", {"_chat.txt": ANDROID * 50})
    data = bytearray(archive.read_bytes())
    data[60:90] = b"\x00" * 30  # inside the compressed chat
    archive.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"chat\.zip"):
        load_chat(archive)


def test_unparseable_lines_are_kept_as_text_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(
        "garbage before the chat\n"
        "23/03/2022, 13:31 - Maya: hi\n"
        "45/13/2022, 99:99 - Maya: not a real date\n",
        encoding="utf-8",
    )
    chat = load_chat(path)
    assert [m.text for m in chat.messages] == ["hi\n45/13/2022, 99:99 - Maya: not a real date"]
    assert chat.unparsed_lines == 2
