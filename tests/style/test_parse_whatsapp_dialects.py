"""WhatsApp .txt dialects: header shapes, date orders, clocks, marks, markers and authors.

Every input is a literal export snippet modelled on the samples catalogued in
`shared/reference/whatsapp-export-formats.md`; every expected value is what the export
means, worked out by hand rather than copied from the parser.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from style.messages import Media, MediaType, Message, MessageKind
from style.parse import choose_order, detect_dialect, parse_whatsapp

LRM = "\u200e"
RLM = "\u200f"
LRE = "\u202a"
PDF = "\u202c"
BOM = "\ufeff"
NBSP = "\u00a0"
NNBSP = "\u202f"


def parse(text: str) -> list[Message]:
    """Parse a whole export given as one string, dialect detected from the text itself."""
    return list(parse_whatsapp(text, detect_dialect(text)))


def only(text: str) -> Message:
    """The first message of an export (the tests put the message under test first)."""
    return parse(text)[0]


def bodies(text: str) -> list[tuple[str | None, str]]:
    """(author, text) of every message, in file order."""
    return [(m.author, m.text) for m in parse(text)]


# --- header shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export", "ts", "author", "text"),
    [
        pytest.param(
            "[27/03/2022, 21:41:35] Dmitry S: Hello World\n",
            datetime(2022, 3, 27, 21, 41, 35),
            "Dmitry S",
            "Hello World",
            id="ios-comma",
        ),
        pytest.param(
            "[3/18/22 14:56:00] Elon Musk: Hello\n",
            datetime(2022, 3, 18, 14, 56),
            "Elon Musk",
            "Hello",
            id="ios-no-comma",
        ),
        pytest.param(
            "23/03/2022, 13:31 - Dmitry S: Hello\n",
            datetime(2022, 3, 23, 13, 31),
            "Dmitry S",
            "Hello",
            id="android-comma",
        ),
        pytest.param(
            "30/12/2020 13:00 - a: m\n",
            datetime(2020, 12, 30, 13, 0),
            "a",
            "m",
            id="android-no-comma",
        ),
        pytest.param(
            "23.03.22 13:31 - Dmitry S: Hello\n24.03.22 13:32 - Anna: Hi\n",
            datetime(2022, 3, 23, 13, 31),
            "Dmitry S",
            "Hello",
            id="android-no-comma-dotted",
        ),
        pytest.param(
            "06.08.13, 19:55:10: Habi: hello\n07.08.13, 19:56:00: Habi: again\n",
            datetime(2013, 8, 6, 19, 55, 10),
            "Habi",
            "hello",
            id="old-ios",
        ),
        pytest.param(
            "2016-06-27, 8:04:08 AM: Neil: Hi\n",
            datetime(2016, 6, 27, 8, 4, 8),
            "Neil",
            "Hi",
            id="old-ios-iso-date",
        ),
    ],
)
def test_header_shapes_give_timestamp_author_and_text(
    export: str, ts: datetime, author: str, text: str
) -> None:
    message = only(export)
    assert (message.ts, message.author, message.text, message.kind) == (
        ts,
        author,
        text,
        MessageKind.TEXT,
    )


def test_old_ios_line_without_author_is_a_system_message() -> None:
    message = only("06.08.13, 19:55:10: You changed the subject to “XXXX”\n")
    assert (message.author, message.kind, message.notice) == (
        None,
        MessageKind.SYSTEM,
        "You changed the subject to “XXXX”",
    )


# --- date orders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export", "ts"),
    [
        pytest.param("23/03/2022, 13:31 - a: m\n", datetime(2022, 3, 23, 13, 31), id="D/M/YYYY"),
        pytest.param("03/23/2022, 13:31 - a: m\n", datetime(2022, 3, 23, 13, 31), id="M/D/YYYY"),
        pytest.param(
            "13/1/2021, 9:12 - a: m\n", datetime(2021, 1, 13, 9, 12), id="D/M/YYYY-one-digit"
        ),
        pytest.param(
            "20/01/19, 9:12 - a: m\n21/01/19, 9:13 - b: n\n",
            datetime(2019, 1, 20, 9, 12),
            id="D/M/YY",
        ),
        pytest.param(
            "[1/29/18, 12:24:05] a: m\n", datetime(2018, 1, 29, 12, 24, 5), id="M/D/YY-one-digit"
        ),
        pytest.param("2019/01/20, 13:31 - a: m\n", datetime(2019, 1, 20, 13, 31), id="Y/M/D"),
        pytest.param(
            "2023-12-20, 5:46 p.m. - Farid: 👋🏼\n", datetime(2023, 12, 20, 17, 46), id="Y-M-D"
        ),
        pytest.param(
            "2017-7-12, 22:35 - a: m\n2017-7-13, 22:36 - b: n\n",
            datetime(2017, 7, 12, 22, 35),
            id="Y-M-D-unpadded",
        ),
        pytest.param(
            "29.01.18, 12:24 - a: m\n30.01.18, 12:25 - b: n\n",
            datetime(2018, 1, 29, 12, 24),
            id="D.M.YY",
        ),
        pytest.param("23.03.2022, 13:31 - a: m\n", datetime(2022, 3, 23, 13, 31), id="D.M.YYYY"),
        pytest.param(
            "[06.13.18 21:25:15] a: m\n[06.14.18 21:25:16] b: n\n",
            datetime(2018, 6, 13, 21, 25, 15),
            id="M.D.YY",
        ),
        pytest.param("23-03-2022 13:31 - a: m\n", datetime(2022, 3, 23, 13, 31), id="D-M-YYYY"),
        pytest.param(
            "[01-29-2018, 23:33:00] Alice: m\n", datetime(2018, 1, 29, 23, 33), id="M-D-YYYY"
        ),
    ],
)
def test_every_date_order_is_read(export: str, ts: datetime) -> None:
    assert only(export).ts == ts


def test_two_digit_years_are_read_as_this_century() -> None:
    assert only("[13/01/99, 10:00:00] a: m\n").ts == datetime(2099, 1, 13, 10, 0)


def test_ambiguous_file_is_read_day_first_when_its_last_line_says_so() -> None:
    export = "05/06/24, 10:00 - a: m\n" * 900 + "13/06/24, 10:00 - b: n\n" * 100
    messages = parse(export)
    assert detect_dialect(export).order == "DMY"
    assert (messages[0].ts, messages[-1].ts) == (
        datetime(2024, 6, 5, 10),
        datetime(2024, 6, 13, 10),
    )


def test_ambiguous_file_is_read_month_first_when_its_last_line_says_so() -> None:
    export = "06/05/24, 10:00 - a: m\n" * 900 + "06/13/24, 10:00 - b: n\n" * 100
    messages = parse(export)
    assert detect_dialect(export).order == "MDY"
    assert (messages[0].ts, messages[-1].ts) == (
        datetime(2024, 6, 5, 10),
        datetime(2024, 6, 13, 10),
    )


def test_ambiguous_file_streamed_line_by_line_is_decided_by_its_end() -> None:
    lines = ["05/06/24, 10:00 - a: m\n"] * 900 + ["13/06/24, 10:00 - b: n\n"] * 100
    dialect = detect_dialect(iter(lines))
    first = next(parse_whatsapp(iter(lines), dialect))
    assert (dialect.order, first.ts) == ("DMY", datetime(2024, 6, 5, 10))


def test_one_impossible_date_rules_an_order_out_even_when_it_looks_more_chronological() -> None:
    # Read day-first, the first nine dates are nine consecutive days; month-first they are
    # a monthly chat. Only month-first makes the last date valid, so month-first it is.
    export = "".join(f"0{n}/02/24, 10:00 - a: m\n" for n in range(1, 10)) + (
        "09/13/24, 10:00 - b: n\n"
    )
    messages = parse(export)
    assert [m.ts.date() for m in messages[:3]] == [
        datetime(2024, 1, 2).date(),
        datetime(2024, 2, 2).date(),
        datetime(2024, 3, 2).date(),
    ]
    assert messages[-1].ts == datetime(2024, 9, 13, 10)


@pytest.mark.parametrize(
    ("dates", "order"),
    [
        pytest.param(["01/02/24", "05/02/24", "13/02/24"], "DMY", id="day-over-12"),
        pytest.param(["02/01/24", "02/05/24", "02/13/24"], "MDY", id="month-first-day-over-12"),
        pytest.param(["2024-02-01", "2024-02-13"], "YMD", id="iso"),
        pytest.param(["01/02/24", "02/02/24", "03/02/24"], "DMY", id="chronology-day-first"),
        pytest.param(["02/01/24", "02/02/24", "02/03/24"], "MDY", id="chronology-month-first"),
        pytest.param(["05/06/24"] * 9 + ["13/06/24"], "DMY", id="last-tenth-day-first"),
        pytest.param(["06/05/24"] * 9 + ["06/13/24"], "MDY", id="last-tenth-month-first"),
        pytest.param(["3/18/2565 BE", "3/19/2565 BE"], "MDY", id="buddhist-era"),
        pytest.param(
            ["01/03/2024", "12/25/2024", "20/03/2024", "21/03/2024"],
            "DMY",
            id="order-valid-for-most-dates",
        ),
    ],
)
def test_choose_order_picks_the_order_that_fits_the_whole_file(
    dates: list[str], order: str
) -> None:
    assert choose_order(dates) == order


# --- clocks -------------------------------------------------------------------------------


@pytest.mark.parametrize("space", [" ", NBSP, NNBSP], ids=["space", "nbsp", "nnbsp"])
@pytest.mark.parametrize("meridiem", ["PM", "pm", "p.m.", "p. m.", f"p.{NBSP}m."])
def test_twelve_hour_pm_adds_twelve_hours(space: str, meridiem: str) -> None:
    assert only(f"13/01/2023, 7:02{space}{meridiem} - a: m\n").ts == datetime(2023, 1, 13, 19, 2)


@pytest.mark.parametrize("space", [" ", NBSP, NNBSP], ids=["space", "nbsp", "nnbsp"])
@pytest.mark.parametrize("meridiem", ["AM", "am", "a.m.", "a. m."])
def test_twelve_hour_am_keeps_the_hour(space: str, meridiem: str) -> None:
    assert only(f"13/01/2023, 7:02{space}{meridiem} - a: m\n").ts == datetime(2023, 1, 13, 7, 2)


@pytest.mark.parametrize(
    ("clock", "hour"),
    [("12:05 AM", 0), ("12:05 PM", 12), ("12:05 a. m.", 0), ("12:05 p. m.", 12)],
)
def test_twelve_o_clock_am_is_midnight_and_pm_is_noon(clock: str, hour: int) -> None:
    assert only(f"13/01/2023, {clock} - a: m\n").ts == datetime(2023, 1, 13, hour, 5)


def test_ios_twelve_hour_clock_with_seconds() -> None:
    message = only(f"[13/01/2023, 9:58:07{NNBSP}PM] R&R: hi\n")
    assert (message.ts, message.author) == (datetime(2023, 1, 13, 21, 58, 7), "R&R")


def test_spanish_android_twelve_hour_with_spaced_meridiem() -> None:
    message = only("20/6/2017 8:28 p. m. - Michelle: test\n")
    assert (message.ts, message.author, message.text) == (
        datetime(2017, 6, 20, 20, 28),
        "Michelle",
        "test",
    )


@pytest.mark.parametrize(
    ("export", "ts"),
    [
        pytest.param("[27/03/2022, 21:41:35] a: m\n", datetime(2022, 3, 27, 21, 41, 35), id="ss"),
        pytest.param("[27/03/2022, 21:41] a: m\n", datetime(2022, 3, 27, 21, 41), id="no-ss"),
        pytest.param("27/03/2022, 9:12 - a: m\n", datetime(2022, 3, 27, 9, 12), id="one-digit"),
    ],
)
def test_seconds_are_optional(export: str, ts: datetime) -> None:
    assert only(export).ts == ts


def test_dotted_time_with_seconds() -> None:
    message = only("13.06.18 21.25.15: a: m\n")
    assert (message.ts, message.author, message.text) == (
        datetime(2018, 6, 13, 21, 25, 15),
        "a",
        "m",
    )


def test_dotted_twelve_hour_time() -> None:
    assert only("[13/01/2023 01.55.12 PM] a: m\n").ts == datetime(2023, 1, 13, 13, 55, 12)


# --- invisible marks, emoji and line endings ----------------------------------------------


def test_lrm_before_an_ios_header_is_ignored() -> None:
    export = f"{LRM}[27/03/2022, 21:41:55] Dmitry S: hi\n[27/03/2022, 21:42:00] Maya: yo\n"
    assert [(m.ts, m.author, m.text) for m in parse(export)] == [
        (datetime(2022, 3, 27, 21, 41, 55), "Dmitry S", "hi"),
        (datetime(2022, 3, 27, 21, 42), "Maya", "yo"),
    ]


def test_bom_at_file_start_is_ignored() -> None:
    message = only(f"{BOM}23/03/2022, 13:31 - Dmitry S: Hello\n")
    assert (message.ts, message.author, message.text) == (
        datetime(2022, 3, 23, 13, 31),
        "Dmitry S",
        "Hello",
    )


def test_bom_on_every_line_and_inside_the_bracket_is_ignored() -> None:
    export = f"{BOM}[{BOM}29.01.18, 12:24:05] a: m\n{BOM}[{BOM}30.01.18, 12:24:06] b: n\n"
    assert [(m.ts, m.author, m.text) for m in parse(export)] == [
        (datetime(2018, 1, 29, 12, 24, 5), "a", "m"),
        (datetime(2018, 1, 30, 12, 24, 6), "b", "n"),
    ]


@pytest.mark.parametrize(
    "mark",
    [LRM, RLM, "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", BOM],
    ids=["LRM", "RLM", "LRE", "RLE", "PDF", "LRO", "RLO", "BOM"],
)
def test_invisible_marks_are_stripped_from_authors(mark: str) -> None:
    assert only(f"23/03/2022, 13:31 - {mark}Maya{mark}: hi\n").author == "Maya"


@pytest.mark.parametrize(
    "mark",
    [LRM, RLM, "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", BOM],
    ids=["LRM", "RLM", "LRE", "RLE", "PDF", "LRO", "RLO", "BOM"],
)
def test_invisible_marks_are_kept_in_message_text(mark: str) -> None:
    assert only(f"23/03/2022, 13:31 - Maya: left{mark}right\n").text == f"left{mark}right"


def test_rlm_opening_a_hebrew_message_is_kept() -> None:
    assert only(f"23/03/2022, 13:31 - Maya: {RLM}שלום\n").text == f"{RLM}שלום"


def test_emoji_zwj_sequences_survive_in_text_and_author() -> None:
    message = only("23/03/2022, 13:31 - 👨‍👩‍👧: 👨‍👩‍👧 and 🙋🏽‍♂️\n")
    assert (message.author, message.text) == ("👨‍👩‍👧", "👨‍👩‍👧 and 🙋🏽‍♂️")


@pytest.mark.parametrize(
    "export",
    [
        "23/03/2022, 13:31 - a: one\ntwo\n23/03/2022, 13:32 - b: three\n",
        "23/03/2022, 13:31 - a: one\r\ntwo\r\n23/03/2022, 13:32 - b: three\r\n",
        "23/03/2022, 13:31 - a: one\r\ntwo\n23/03/2022, 13:32 - b: three\r\n",
        "23/03/2022, 13:31 - a: one\ntwo\r\n23/03/2022, 13:32 - b: three\n",
    ],
    ids=["LF", "CRLF", "mixed-CRLF-first", "mixed-LF-first"],
)
def test_line_endings_do_not_change_the_messages(export: str) -> None:
    assert [(m.author, m.text, m.line) for m in parse(export)] == [
        ("a", "one\ntwo", 1),
        ("b", "three", 3),
    ]


# --- multi-line messages ------------------------------------------------------------------


def test_blank_lines_inside_a_message_are_kept() -> None:
    export = (
        "23/03/2022, 13:31 - a: How are you?\n"
        "\n"
        "Is everything alright?\n"
        "23/03/2022, 13:32 - b: yes\n"
    )
    assert bodies(export) == [("a", "How are you?\n\nIs everything alright?"), ("b", "yes")]


def test_continuation_line_starting_with_a_date_is_text() -> None:
    export = (
        "23/03/2022, 13:31 - a: Remember\n"
        "2016-04-29 10:30:00 was the deadline\n"
        "23/03/2022, 13:32 - b: yes\n"
    )
    assert bodies(export) == [
        ("a", "Remember\n2016-04-29 10:30:00 was the deadline"),
        ("b", "yes"),
    ]


def test_ios_header_quoted_inside_an_android_chat_is_text() -> None:
    export = (
        "23/03/2022, 13:31 - a: he wrote\n"
        "[23/03/2022, 13:30:00] x: quoted\n"
        "23/03/2022, 13:32 - b: ok\n"
        "23/03/2022, 13:33 - a: fine\n"
    )
    assert bodies(export) == [
        ("a", "he wrote\n[23/03/2022, 13:30:00] x: quoted"),
        ("b", "ok"),
        ("a", "fine"),
    ]


def test_android_header_quoted_inside_an_ios_chat_is_text() -> None:
    export = (
        "[23/03/2022, 13:31:00] a: he wrote\n"
        "23/03/2022, 13:30 - x: quoted\n"
        "[23/03/2022, 13:32:00] b: ok\n"
        "[23/03/2022, 13:33:00] a: fine\n"
    )
    assert bodies(export) == [
        ("a", "he wrote\n23/03/2022, 13:30 - x: quoted"),
        ("b", "ok"),
        ("a", "fine"),
    ]


def test_24h_header_quoted_inside_a_12h_chat_is_text() -> None:
    export = (
        "23/03/2022, 1:31 PM - a: he wrote\n"
        "23/03/2022, 13:30 - x: quoted\n"
        "23/03/2022, 1:32 PM - b: ok\n"
    )
    assert bodies(export) == [("a", "he wrote\n23/03/2022, 13:30 - x: quoted"), ("b", "ok")]


@pytest.mark.parametrize(
    "impossible",
    [
        "45/13/2024, 10:00 - x: y",
        "31/02/2024, 10:00 - x: y",
        "23/03/2022, 25:00 - x: y",
        "23/03/2022, 10:61 - x: y",
    ],
    ids=["day-45-month-13", "february-31", "hour-25", "minute-61"],
)
def test_header_shaped_line_with_impossible_date_or_time_is_text(impossible: str) -> None:
    export = f"23/03/2022, 13:31 - a: hello\n{impossible}\n24/03/2022, 13:32 - b: yes\n"
    assert bodies(export) == [("a", f"hello\n{impossible}"), ("b", "yes")]


def test_month_first_line_quoted_before_the_first_telling_date_does_not_flip_the_order() -> None:
    # `12/25/2024` is impossible day-first; three of the four dates only fit day-first.
    export = (
        "01/03/2024, 10:00 - a: hello\n"
        "12/25/2024, 10:00 - x: y\n"
        "20/03/2024, 10:01 - b: hi\n"
        "21/03/2024, 10:02 - a: ok\n"
    )
    assert [(m.ts, m.author, m.text) for m in parse(export)] == [
        (datetime(2024, 3, 1, 10, 0), "a", "hello\n12/25/2024, 10:00 - x: y"),
        (datetime(2024, 3, 20, 10, 1), "b", "hi"),
        (datetime(2024, 3, 21, 10, 2), "a", "ok"),
    ]


# --- media ----------------------------------------------------------------------------------

IMG = "IMG-20210428-WA0001.jpg"
IOS_PHOTO = "00000035-PHOTO-2022-03-27-21-41-55.jpg"


@pytest.mark.parametrize(
    "placeholder",
    [
        "<Media omitted>",
        "<Medien ausgeschlossen>",
        "<Multimedia omitido>",
        "<Arquivo de mídia oculto>",
        "<Médias omis>",
        "<Media omessi>",
        "<Media weggelaten>",
        "<Без медиафайлов>",
    ],
    ids=["en", "de", "es", "pt", "fr", "it", "nl", "ru"],
)
def test_android_media_omitted_is_media_of_unknown_type(placeholder: str) -> None:
    message = only(f"23/03/2022, 13:31 - Dmitry S: {placeholder}\n")
    assert (message.author, message.kind, message.text, message.media) == (
        "Dmitry S",
        MessageKind.MEDIA,
        "",
        Media(MediaType.UNKNOWN, omitted=True),
    )


def test_android_media_omitted_keeps_the_caption_on_the_next_line() -> None:
    message = only("23/03/2022, 13:31 - a: <Media omitted>\nnice view\n")
    assert message.media == Media(MediaType.UNKNOWN, omitted=True, caption="nice view")


@pytest.mark.parametrize(
    ("placeholder", "media_type"),
    [
        ("image omitted", MediaType.IMAGE),
        ("video omitted", MediaType.VIDEO),
        ("audio omitted", MediaType.AUDIO),
        ("sticker omitted", MediaType.STICKER),
        ("GIF omitted", MediaType.GIF),
        ("Contact card omitted", MediaType.CONTACT),
        ("imagen omitida", MediaType.IMAGE),
        ("Bild weggelassen", MediaType.IMAGE),
        ("image absente", MediaType.IMAGE),
        ("imagem não revelada", MediaType.IMAGE),
        ("immagine omessa", MediaType.IMAGE),
        ("afbeelding weggelaten", MediaType.IMAGE),
        ("изображение отсутствует", MediaType.IMAGE),
    ],
)
def test_ios_omitted_placeholder_is_media_of_its_type(
    placeholder: str, media_type: MediaType
) -> None:
    message = only(f"{LRM}[27/03/2022, 21:41:55] Dmitry S: {LRM}{placeholder}\n")
    assert (message.author, message.kind, message.text, message.media) == (
        "Dmitry S",
        MessageKind.MEDIA,
        "",
        Media(media_type, omitted=True),
    )


def test_ios_document_omitted_keeps_the_file_name() -> None:
    message = only(f"[27/03/2022, 21:41:55] a: Some file.txt {LRM}document omitted\n")
    assert message.media == Media(MediaType.DOCUMENT, "Some file.txt", omitted=True)


def test_ios_document_omitted_with_page_count_keeps_the_file_name() -> None:
    message = only(f"[27/03/2022, 21:41:55] a: Resume.pdf • {LRM}2 pages {LRM}document omitted\n")
    assert message.media == Media(MediaType.DOCUMENT, "Resume.pdf", omitted=True)


@pytest.mark.parametrize(
    "attached",
    [
        "file attached",
        "Datei angehängt",
        "archivo adjunto",
        "arquivo anexado",
        "fichier joint",
        "file allegato",
        "bestand bijgevoegd",
        "файл добавлен",
    ],
    ids=["en", "de", "es", "pt", "fr", "it", "nl", "ru"],
)
def test_android_file_attached_is_media_with_its_file_name(attached: str) -> None:
    message = only(f"23/03/2022, 13:31 - a: {IMG} ({attached})\n")
    assert (message.kind, message.text, message.media) == (
        MessageKind.MEDIA,
        "",
        Media(MediaType.IMAGE, IMG),
    )


def test_android_file_attached_takes_the_next_line_as_caption() -> None:
    export = f"23/03/2022, 13:31 - a: {IMG} (file attached)\nLook at this\n"
    assert only(export).media == Media(MediaType.IMAGE, IMG, caption="Look at this")


@pytest.mark.parametrize(
    ("filename", "media_type"),
    [
        ("PTT-20220323-WA0000.opus", MediaType.VOICE),
        ("STK-20220323-WA0001.webp", MediaType.STICKER),
        ("VID-20220323-WA0002.mp4", MediaType.VIDEO),
        ("AUD-20220323-WA0003.m4a", MediaType.AUDIO),
    ],
)
def test_android_attachment_type_comes_from_the_file_name(
    filename: str, media_type: MediaType
) -> None:
    message = only(f"23/03/2022, 13:31 - a: {LRM}{filename} (file attached)\n")
    assert message.media == Media(media_type, filename)


@pytest.mark.parametrize("attached", ["attached", "Anhang", "adjunto"], ids=["en", "de", "es"])
def test_ios_attached_is_media_with_its_file_name(attached: str) -> None:
    message = only(f"[27/03/2022, 21:41:55] Dmitry S: {LRM}<{attached}: {IOS_PHOTO}>\n")
    assert (message.author, message.kind, message.text, message.media) == (
        "Dmitry S",
        MessageKind.MEDIA,
        "",
        Media(MediaType.IMAGE, IOS_PHOTO),
    )


def test_old_ios_attached_is_media_with_its_file_name() -> None:
    message = only(f"06.08.13, 19:55:10: Habi: 2015-08-04-PHOTO-00004762.jpg <{LRM}attached>\n")
    assert (message.kind, message.media) == (
        MessageKind.MEDIA,
        Media(MediaType.IMAGE, "2015-08-04-PHOTO-00004762.jpg"),
    )


@pytest.mark.parametrize(
    "body",
    [
        "This message was deleted",
        "You deleted this message",
        f"{LRM}This message was deleted.",
        f"{LRM}You deleted this message.",
        "Diese Nachricht wurde gelöscht.",
        "Du hast diese Nachricht gelöscht.",
        "Se eliminó este mensaje.",
        "Eliminaste este mensaje.",
        "Mensagem apagada",
        "Você apagou esta mensagem",
        "Ce message a été supprimé",
        "Vous avez supprimé ce message",
        "Questo messaggio è stato eliminato",
        "Hai eliminato questo messaggio",
        "Dit bericht is verwijderd",
        "Je hebt dit bericht verwijderd",
        "Данное сообщение удалено",
        "Вы удалили это сообщение",
    ],
)
def test_deleted_marker_makes_a_deleted_message(body: str) -> None:
    message = only(f"23/03/2022, 13:31 - Maya: {body}\n")
    assert (message.author, message.kind, message.text, message.media) == (
        "Maya",
        MessageKind.DELETED,
        "",
        None,
    )


@pytest.mark.parametrize(
    "marker",
    [
        "<This message was edited>",
        f"{LRM}<This message was edited>",
        "<Diese Nachricht wurde bearbeitet>",
        "<Este mensaje fue editado>",
        "<Esta mensagem foi editada>",
        "<Ce message a été modifié>",
        "<Questo messaggio è stato modificato>",
        "<Dit bericht is bewerkt>",
        "<Сообщение изменено>",
    ],
)
def test_edited_marker_sets_the_flag_and_leaves_the_text(marker: str) -> None:
    message = only(f"03/06/2023, 6:12 am - author: sample message {marker}\n")
    assert (message.kind, message.text, message.edited) == (
        MessageKind.TEXT,
        "sample message",
        True,
    )


def test_edited_marker_after_a_multi_line_message() -> None:
    message = only("23/03/2022, 13:31 - a: first\nsecond <This message was edited>\n")
    assert (message.text, message.edited) == ("first\nsecond", True)


def test_message_without_edited_marker_is_not_edited() -> None:
    assert only("23/03/2022, 13:31 - a: sample message\n").edited is False


@pytest.mark.parametrize(
    "body",
    [
        "This message was deleted by accident, sorry",
        "Voice call tomorrow?",
        "location: the pub on Main Street",
    ],
)
def test_text_that_merely_starts_like_a_marker_stays_text(body: str) -> None:
    message = only(f"23/03/2022, 13:31 - a: {body}\n")
    assert (message.kind, message.text, message.media) == (MessageKind.TEXT, body, None)


# --- locations, contacts, polls, view-once --------------------------------------------------

MAPS = "https://maps.google.com/?q=51.5,-0.12"


@pytest.mark.parametrize(
    "prefix",
    [
        "location: ",
        f"{LRM}Location: ",
        "Standort: ",
        "Ubicación: ",
        "Localização: ",
        "Localisation : ",
        "Posizione: ",
        "Locatie: ",
        "местоположение: ",
    ],
    ids=["android", "ios", "de", "es", "pt", "fr", "it", "nl", "ru"],
)
def test_location_is_media_with_its_url(prefix: str) -> None:
    message = only(f"23/03/2022, 13:31 - a: {prefix}{MAPS}\n")
    assert (message.kind, message.text, message.media) == (
        MessageKind.MEDIA,
        "",
        Media(MediaType.LOCATION, url=MAPS),
    )


def test_live_location_is_media_of_type_location() -> None:
    message = only("23/03/2022, 13:31 - a: live location shared\n")
    assert (message.kind, message.media) == (MessageKind.MEDIA, Media(MediaType.LOCATION))


def test_android_vcf_attachment_is_a_contact() -> None:
    message = only("23/03/2022, 13:31 - a: Alex.vcf (file attached)\n")
    assert (message.kind, message.media) == (
        MessageKind.MEDIA,
        Media(MediaType.CONTACT, "Alex.vcf"),
    )


def test_ios_vcf_attachment_is_a_contact() -> None:
    message = only(f"[27/03/2022, 21:41:55] a: {LRM}<attached: 00000012-Alex.vcf>\n")
    assert message.media == Media(MediaType.CONTACT, "00000012-Alex.vcf")


def test_ios_poll_spanning_lines_is_one_poll_message() -> None:
    export = (
        "[20.06.19, 16:30:44] Loris: POLL:\n"
        "When can we meet?\n"
        "OPTION: Thursday 15 evening (2 votes)\n"
        "OPTION: Friday (0 votes)\n"
        "[20.06.19, 16:31:00] Emily: Thursday!\n"
    )
    poll, reply = parse(export)
    assert (poll.author, poll.kind, poll.text, poll.media and poll.media.type, poll.line) == (
        "Loris",
        MessageKind.MEDIA,
        "",
        MediaType.POLL,
        1,
    )
    assert (reply.author, reply.text, reply.line) == ("Emily", "Thursday!", 5)


def test_view_once_null_body_is_view_once_media() -> None:
    message = only("23/03/2022, 13:31 - Dmitry S: null\n")
    assert (message.author, message.kind, message.text, message.media and message.media.type) == (
        "Dmitry S",
        MessageKind.MEDIA,
        "",
        MediaType.VIEW_ONCE,
    )


# --- system messages ------------------------------------------------------------------------

ANDROID_E2E = (
    "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
    "WhatsApp, can read or listen to them. Tap to learn more."
)
IOS_E2E_2024 = (
    "Messages and calls are end-to-end encrypted. Only people in this chat can read, "
    "listen to, or share them."
)


@pytest.mark.parametrize(
    "notice",
    [
        ANDROID_E2E,
        "Messages to this group are now secured with end-to-end encryption. Tap for more info.",
        'Dmitry S created group "Group Chat"',
        "Loris created group “WhatsApp Chat Parser Example”",
        'You created group "ShortChat"',
        "Loris added Emily",
        "Dmitry S added you",
        "You were added",
        "You joined using this group's invite link",
        "+7 999 999-99-99 joined using this group's invite link",
        "Dmitry S removed +7 999 999-99-99",
        "Emily left",
        "You changed this group's icon",
        "Dmitry S changed the group description",
        "You're now an admin",
        'You changed the subject from "Group Chat" to "Group: 2024"',
    ],
)
def test_android_line_without_author_is_a_system_message(notice: str) -> None:
    message = only(f"11/01/2023, 16:11 - {notice}\n")
    assert (message.author, message.kind, message.text, message.notice) == (
        None,
        MessageKind.SYSTEM,
        "",
        notice,
    )


@pytest.mark.parametrize("call", ["Missed voice call", "Missed video call"])
def test_android_missed_call_keeps_its_author_and_is_system(call: str) -> None:
    message = only(f"07/01/2023, 23:32 - Dmitry S: {call}\n")
    assert (message.author, message.kind, message.text, message.notice) == (
        "Dmitry S",
        MessageKind.SYSTEM,
        "",
        call,
    )


def test_ios_missed_call_with_tap_hint_is_system() -> None:
    message = only(f"[27/03/2022, 21:45:00] Dmitry S: {LRM}Missed voice call. Tap to call back\n")
    assert (message.author, message.kind, message.notice) == (
        "Dmitry S",
        MessageKind.SYSTEM,
        "Missed voice call. Tap to call back",
    )


def test_ios_2024_lines_attributed_to_the_chat_name_are_system() -> None:
    export = (
        f"[14.08.2024, 21:00:11] My Group Name: {LRM}{IOS_E2E_2024}\n"
        "[14.08.2024, 21:00:12] My Group Name: Boris added you\n"
        "[14.08.2024, 21:00:13] Boris: welcome!\n"
    )
    assert [(m.kind, m.text, m.notice) for m in parse(export)] == [
        (MessageKind.SYSTEM, "", IOS_E2E_2024),
        (MessageKind.SYSTEM, "", "Boris added you"),
        (MessageKind.TEXT, "welcome!", None),
    ]


def test_ios_encryption_notice_with_the_contact_name_as_author_is_system() -> None:
    message = only(f"[18/03/2022, 14:56:01] Elon Musk: {LRM}{IOS_E2E_2024}\n")
    assert (message.kind, message.notice) == (MessageKind.SYSTEM, IOS_E2E_2024)


def test_actor_named_as_author_of_own_group_event_is_system() -> None:
    message = only("[28/02/2022, 9:52:58 PM] ~ AK: ~ AK created this group\n")
    assert (message.ts, message.kind, message.text, message.notice) == (
        datetime(2022, 2, 28, 21, 52, 58),
        MessageKind.SYSTEM,
        "",
        "~ AK created this group",
    )


def test_text_starting_with_the_authors_own_name_is_not_a_group_event() -> None:
    message = only("23/03/2022, 13:31 - Tom: Tom left his keys at mine\n")
    assert (message.kind, message.text) == (MessageKind.TEXT, "Tom left his keys at mine")


def test_phone_number_author_joining_by_link_is_system() -> None:
    number = "+1 (777) 777\u20117777"
    message = only(
        f"[20/07/2021, 11:21:27] {number}: {number} joined using this group's invite link\n"
    )
    assert (message.kind, message.notice) == (
        MessageKind.SYSTEM,
        f"{number} joined using this group's invite link",
    )


# --- authors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "author",
    [
        "+44 7123 456789",
        "+410123456789",
        "+7 999 999-99-99",
        "+1 (777) 777\u20117777",
        "🤓",
        "John Doe 🤓",
        "John-John Doe",
        "Prof. Oak",
        "Jessie & James",
        "Sandrine - French",
        "~ Nev",
        "R&R",
    ],
)
def test_author_is_taken_verbatim(author: str) -> None:
    message = only(f"23/03/2022, 13:31 - {author}: hi there\n")
    assert (message.author, message.text, message.kind) == (author, "hi there", MessageKind.TEXT)


def test_phone_number_author_wrapped_in_lre_pdf_loses_the_marks() -> None:
    message = only(f"[18/03/2022, 14:56:01] {LRE}+44 7123 456789{PDF}: hi\n")
    assert (message.author, message.text) == ("+44 7123 456789", "hi")


def test_author_split_at_first_colon_keeps_later_colons_in_text() -> None:
    message = only("23/03/2022, 13:31 - Maya: the ratio is a: b\n")
    assert (message.author, message.text) == ("Maya", "the ratio is a: b")


@pytest.mark.parametrize("body", ["Luke: ", "Luke:"], ids=["colon-space", "colon"])
def test_empty_body_keeps_the_author(body: str) -> None:
    message = only(f"23/03/2017, 18:42 - {body}\n")
    assert (message.author, message.text, message.kind) == ("Luke", "", MessageKind.TEXT)


def test_phone_number_author_of_twelve_hour_media_line() -> None:
    message = only(f"13/10/2023, 11:11{NNBSP}am - +44 7123 456789: <Media omitted>\n")
    assert (message.ts, message.author, message.kind) == (
        datetime(2023, 10, 13, 11, 11),
        "+44 7123 456789",
        MessageKind.MEDIA,
    )


# --- non-Latin digits, other calendars, other word orders ---------------------------------


def test_arabic_ios_header_with_eastern_digits_and_rlms() -> None:
    number = f"+40{NBSP}521{NBSP}028{NBSP}61{NBSP}88"
    message = only(f"[١٨{RLM}/٣{RLM}/٢٠٢٢، ٢:٥٦:٠٠{NBSP}م] {LRE}{number}{PDF}: مرحبا\n")
    assert (message.ts, message.author, message.text) == (
        datetime(2022, 3, 18, 14, 56),
        number,
        "مرحبا",
    )


def test_arabic_morning_marker_keeps_the_hour() -> None:
    message = only(f"[١٨{RLM}/٣{RLM}/٢٠٢٢، ٩:٠٥:٠٠{NBSP}ص] Elon Musk: hi\n")
    assert message.ts == datetime(2022, 3, 18, 9, 5)


def test_arabic_ios_header_with_latin_digits_and_rlms() -> None:
    message = only(f"[{RLM}18{RLM}/3{RLM}/2022، 14:56:01] Elon Musk: hi\n")
    assert (message.ts, message.author, message.text) == (
        datetime(2022, 3, 18, 14, 56, 1),
        "Elon Musk",
        "hi",
    )


@pytest.mark.parametrize(
    "export",
    [
        pytest.param("[3/18/2565 BE, 14:56:01] Elon Musk: hi\n", id="buddhist-era"),
        pytest.param("[3/18/R4, 14:56:01] Elon Musk: hi\n", id="reiwa"),
        pytest.param("[14:56:01, 3/18/22] Elon Musk: hi\n", id="time-first"),
    ],
)
def test_other_calendars_and_time_first_headers(export: str) -> None:
    message = only(export)
    assert (message.ts, message.author, message.text) == (
        datetime(2022, 3, 18, 14, 56, 1),
        "Elon Musk",
        "hi",
    )


def test_finnish_klo_between_date_and_dotted_time() -> None:
    message = only("13.6.2018 klo 21.25.15 - a: m\n")
    assert (message.ts, message.author, message.text) == (
        datetime(2018, 6, 13, 21, 25, 15),
        "a",
        "m",
    )


def test_french_a_between_date_and_time() -> None:
    messages = parse("12/07/2017 à 22:35 - a: m\n13/07/2017 à 22:36 - b: n\n")
    assert [(m.ts, m.author, m.text) for m in messages] == [
        (datetime(2017, 7, 12, 22, 35), "a", "m"),
        (datetime(2017, 7, 13, 22, 36), "b", "n"),
    ]


# --- line numbers ---------------------------------------------------------------------------


def test_line_numbers_count_continuation_and_blank_lines() -> None:
    export = (
        "23/03/2022, 13:31 - a: one\n"  # 1
        "two\n"  # 2
        "\n"  # 3
        "45/13/2024, 10:00 - x: y\n"  # 4, impossible date: text
        "23/03/2022, 13:32 - b: three\n"  # 5
        "23/03/2022, 13:33 - Dmitry S: <Media omitted>\n"  # 6
        "caption\n"  # 7
        "23/03/2022, 13:34 - a: four\n"  # 8
    )
    assert [m.line for m in parse(export)] == [1, 5, 6, 8]


def test_line_numbers_count_lines_before_the_first_header() -> None:
    export = "preamble\n\n23/03/2022, 13:31 - a: one\n23/03/2022, 13:32 - b: two\n"
    assert [m.line for m in parse(export)] == [3, 4]


def test_line_numbers_with_crlf_and_ios_multi_line_poll() -> None:
    export = (
        "[20.06.19, 16:30:44] Loris: POLL:\r\n"
        "When?\r\n"
        "OPTION: Thursday (2 votes)\r\n"
        "[20.06.19, 16:31:00] Emily: Thursday\r\n"
        "and Friday\r\n"
        "[20.06.19, 16:32:00] Loris: ok\r\n"
    )
    assert [m.line for m in parse(export)] == [1, 4, 6]
