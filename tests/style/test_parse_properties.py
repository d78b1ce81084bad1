"""Properties: any message rendered in any dialect parses back exactly; no input crashes.

The renderers below write headers the way each WhatsApp variant does (see
shared/reference/whatsapp-export-formats.md); hypothesis supplies authors, texts and times.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from style.errors import StyleError
from style.messages import MessageKind
from style.parse import detect_dialect, load_chats, parse_whatsapp
from style.parse.markers import classify

Render = Callable[[datetime], str]
SPANISH_AM, SPANISH_PM = "a.\u00a0m.", "p.\u00a0m."


def _h12(ts: datetime) -> tuple[int, str]:
    return (ts.hour % 12 or 12), ("AM" if ts.hour < 12 else "PM")


def _ampm(ts: datetime, am: str, pm: str) -> str:
    return am if ts.hour < 12 else pm


# name -> (header renderer, "{header}{author}: {text}" joiner, has seconds, line ending)
DIALECTS: dict[str, tuple[Render, bool, str]] = {
    "android D/M/Y 24h": (lambda t: f"{t:%d/%m/%Y, %H:%M} - ", False, "\n"),
    "android M/D/YY 12h NNBSP": (
        lambda t: f"{t.month}/{t.day}/{t:%y}, {_h12(t)[0]}:{t:%M}\u202f{_h12(t)[1]} - ",
        False,
        "\n",
    ),
    "ios D.M.YY seconds": (lambda t: f"[{t:%d.%m.%y, %H:%M:%S}] ", True, "\r\n"),
    "ios M/D/YY 12h seconds LRM": (
        lambda t: f"\u200e[{t.month}/{t.day}/{t:%y}, {_h12(t)[0]}:{t:%M:%S}\u202f{_h12(t)[1]}] ",
        True,
        "\r\n",
    ),
    "android Y-M-D p.m.": (
        lambda t: f"{t:%Y-%m-%d}, {_h12(t)[0]}:{t:%M} {_ampm(t, 'a.m.', 'p.m.')} - ",
        False,
        "\n",
    ),
    "android D.M.YY no comma": (lambda t: f"{t:%d.%m.%y %H:%M} - ", False, "\n"),
    "old ios D.M.YY": (lambda t: f"{t:%d.%m.%y, %H:%M:%S}: ", True, "\n"),
    "android D/M/Y p. m. NBSP": (
        lambda t: (
            f"{t.day}/{t.month}/{t:%Y} {_h12(t)[0]}:{t:%M}\u00a0"
            f"{_ampm(t, SPANISH_AM, SPANISH_PM)} - "
        ),
        False,
        "\n",
    ),
    "ios dashed D-M-YY": (lambda t: f"[{t:%d-%m-%y %H:%M:%S}] ", True, "\n"),
    "android Y/M/D": (lambda t: f"{t:%Y/%m/%d, %H:%M} - ", False, "\n"),
    "android finnish klo": (lambda t: f"{t.day}.{t.month}.{t:%Y} klo {t:%H.%M.%S} - ", True, "\n"),
    "ios time first": (lambda t: f"[{t:%H:%M:%S}, {t.month}/{t.day}/{t:%y}] ", True, "\n"),
    "ios Y-M-D no comma": (lambda t: f"[{t:%Y-%m-%d %H:%M}] ", False, "\r\n"),
}

START, END = datetime(2024, 1, 13, 8, 0), datetime(2024, 12, 31, 23, 59, 59)

name_chars = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf"), exclude_characters=':"“”'
)
authors = st.one_of(
    st.text(name_chars, min_size=1, max_size=20).map(str.strip).filter(bool),
    st.sampled_from(["+44 7123 456789", "John-John Doe", "Prof. Oak", "Jessie & James", "🤓"]),
)
line_chars = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r\n")
texts = st.lists(st.text(line_chars, max_size=40), min_size=1, max_size=4).map("\n".join)
messages = st.lists(st.tuples(st.datetimes(START, END), authors, texts), min_size=1, max_size=12)


def _render(dialect: str, rows: list[tuple[datetime, str, str]]) -> str:
    header, _, newline = DIALECTS[dialect]
    return "".join(f"{header(ts)}{author}: {text}{newline}" for ts, author, text in rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dialect=st.sampled_from(sorted(DIALECTS)), rows=messages)
def test_messages_rendered_in_any_dialect_parse_back_exactly(dialect, rows) -> None:
    _, seconds, newline = DIALECTS[dialect]
    rows = sorted(rows)
    # First and last day pin the date order, as a real year of chat does.
    rows = [(START, "Ana", "first"), *rows, (END, "Ana", "last")]
    rows = [(ts if seconds else ts.replace(second=0), a, t) for ts, a, t in rows]
    rows = [(ts.replace(microsecond=0), a, t) for ts, a, t in rows]
    for _, author, text in rows:
        text = text.replace("\r", "")
        found = classify(text, author)
        assume(found.kind is MessageKind.TEXT and found.text == text)
    export = _render(dialect, rows)
    dialect_found = detect_dialect(export)
    pattern = dialect_found.header_pattern()
    for _, _, text in rows:  # a body line shaped exactly like a header is a header
        assume(all(pattern.match(line) is None for line in text.split("\n")))
    parsed = [(m.ts, m.author, m.text) for m in parse_whatsapp(export, dialect_found)]
    assert parsed == rows, newline


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_load_or_raise_a_style_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.txt"
        path.write_bytes(data)
        with contextlib.suppress(StyleError):
            load_chats(path)


header_like = st.sampled_from(["12/03/2024, 21:04 - ", "[3/12/24, 9:04:05 PM] ", "", "\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(header_like, st.text(max_size=30)), max_size=8))
def test_arbitrary_header_soup_parses_or_says_not_a_chat(pieces) -> None:
    export = "\n".join(head + body for head, body in pieces)
    try:
        dialect = detect_dialect(export)
    except StyleError:
        return
    for message in parse_whatsapp(export, dialect):
        assert message.ts - datetime(2000, 1, 1) > timedelta(0)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["_chat.txt", "result.json", "notes.txt"]))
def test_zip_with_arbitrary_chat_bytes_loads_or_raises_a_style_error(
    data: bytes, name: str
) -> None:
    import zipfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(name, data)
        with contextlib.suppress(StyleError):
            load_chats(path)
