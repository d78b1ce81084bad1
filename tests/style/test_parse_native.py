"""The C scanner (style/parse/_scan.c) parses exactly as parse_whatsapp's Python loop does.

Every test parses the same input twice, once through the C scanner and once with it
switched off, and compares the messages and the ParseStats. Skipped where the extension
was not built (an install without a C compiler runs the Python loop only).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import sys
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from style.errors import StyleError
from style.messages import Media, MediaType, Message, MessageKind
from style.parse import export, whatsapp
from style.parse.whatsapp import Dialect, ParseStats, detect_dialect, parse_whatsapp
from style.sample import sample_paths

_scan = pytest.importorskip("style.parse._scan", reason="the C scanner is not built")

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT.parent / "shared" / "fixtures" / "whatsapp-peers"
LRM, RLM, NBSP, NNBSP = "\u200e", "\u200f", "\u00a0", "\u202f"


def _module(name: str, path: Path) -> ModuleType:
    """Import a file that is not in a package (a sibling test module, a benchmark script)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


properties = _module(
    "_native_parse_properties", Path(__file__).with_name("test_parse_properties.py")
)
parse_bench = _module("_native_parse_bench", ROOT / "benchmarks" / "parse_bench.py")


@contextlib.contextmanager
def python_loop() -> Iterator[None]:
    """Parse as an install without the C scanner does."""
    saved = whatsapp._native
    whatsapp._native = None
    try:
        yield
    finally:
        whatsapp._native = saved


def uses_scanner(dialect: Dialect) -> bool:
    """Does parse_whatsapp hand this dialect to the C scanner?"""
    return whatsapp._native_scanner(dialect, ParseStats()) is not None


def _pieces(text: str, size: int | None) -> str | list[str]:
    return text if size is None else [text[i : i + size] for i in range(0, len(text), size)]


def _parse(text: str, dialect: Dialect, size: int | None) -> tuple[list[Message], ParseStats]:
    stats = ParseStats()
    return list(parse_whatsapp(_pieces(text, size), dialect, stats=stats)), stats


def assert_same(text: str, dialect: Dialect | None = None, sizes=(None, 1, 2, 7, 64)) -> None:
    """C and Python agree on `text`, whole and cut into pieces of each size (tiny pieces make
    one block per line, so messages and unparsed runs cross blocks)."""
    dialect = dialect if dialect is not None else detect_dialect(text)
    for size in sizes:
        native = _parse(text, dialect, size)
        with python_loop():
            pure = _parse(text, dialect, size)
        assert native == pure, size


def _chats(path: Path) -> list[Any]:
    """Everything load_chats shows of a file: chats with their stats, or the error."""
    try:
        return [(c.source, c.dialect, list(c), c.stats) for c in export.iter_chats(path)]
    except StyleError as exc:
        return [type(exc), str(exc)]


def assert_same_file(path: Path) -> None:
    native = _chats(path)
    with python_loop():
        pure = _chats(path)
    assert native == pure


# --- which dialects the scanner takes ------------------------------------------------------

COMMON_HEADERS = {
    "android D/M/Y 24h": "12/03/2024, 21:04 - ",
    "android M/D/YY 12h NNBSP": f"3/12/24, 9:04{NNBSP}PM - ",
    "android D.M.YY no comma": "12.03.24 21:04 - ",
    "android Y-M-D p.m.": "2024-03-12, 9:04 p.m. - ",
    "android D/M/Y p. m. NBSP": f"12/3/2024 9:04{NBSP}p.{NBSP}m. - ",
    "android finnish klo": "12.3.2024 klo 21.04.05 - ",
    "android german vorm.": "12.03.24, 9:04 vorm. - ",
    "android korean dots": "2024. 3. 12. 21:04 - ",
    "ios D/M/Y seconds": "[12/03/2024, 21:04:05] ",
    "ios M/D/YY 12h LRM": f"{LRM}[3/12/24, 9:04:05{NNBSP}PM] ",
    "ios dashed no comma": "[12-03-24 21:04:05] ",
    "old ios D.M.YY": "12.03.24, 21:04:05: ",
}


@pytest.mark.parametrize("header", COMMON_HEADERS.values(), ids=COMMON_HEADERS.keys())
def test_scanner_takes_the_common_dialects(header: str) -> None:
    export_text = f"{header}Ana: hi\n{header}Ben: hello\n"
    assert uses_scanner(detect_dialect(export_text))
    assert_same(export_text)


@pytest.mark.parametrize(
    "header",
    ["[21:04:05, 3/12/24] ", "R6/03/12 21:04 - ", f"12{RLM}/03{RLM}/2024, 21:04 - "],
    ids=["time first", "era year", "marked date"],
)
def test_scanner_leaves_rare_dialects_to_python(header: str) -> None:
    export_text = f"{header}Ana: hi\n{header}Ben: hello\n"
    assert not uses_scanner(detect_dialect(export_text))


def test_scanner_refuses_changed_marker_tables() -> None:
    dialect = detect_dialect("12/03/2024, 21:04 - Ana: hi\n")
    build = whatsapp._MessageBuilder()
    arguments = dict(
        message=Message,
        text_kind=MessageKind.TEXT,
        needs_classifying=whatsapp.needs_classifying,
        heads=whatsapp.CLASSIFY_HEADS,
        omitted=whatsapp.OMITTED,
        suffixes=whatsapp.DOCUMENT_OMITTED,
        invisible=whatsapp.INVISIBLE,
        ampm=whatsapp._AMPM,
    )
    _scan.Scanner(dialect, ParseStats(), build, build.chat_names, **arguments)
    for changed in ({"invisible": whatsapp.INVISIBLE + "\u2060"}, {"ampm": "(?:AM|PM)"}):
        with pytest.raises(_scan.Unsupported):
            _scan.Scanner(dialect, ParseStats(), build, build.chat_names, **arguments | changed)


def test_scanner_misuse_raises_instead_of_crashing() -> None:
    with pytest.raises(RuntimeError):
        _scan.Scanner.__new__(_scan.Scanner).feed("\nx")
    with pytest.raises(RuntimeError):
        _scan.Scanner.__new__(_scan.Scanner).finish()
    scanner = whatsapp._native_scanner(
        detect_dialect("12/03/2024, 21:04 - Ana: hi\n"), ParseStats()
    )
    with pytest.raises(TypeError):
        scanner.feed(b"12/03/2024, 21:04 - Ana: hi\n")
    scanner.feed("12/03/2024, 21:04 - Ana: hi\n12/03/2024, 21:05 - Ana: yo\n12/03/2024, 21:06")
    with pytest.raises(RuntimeError):  # the first piece is not read yet
        scanner.feed(" - Ana: more")
    with pytest.raises(RuntimeError):
        scanner.finish()
    assert [m.text for m in scanner] == ["hi"]
    assert [m.text for m in scanner.feed(" - Ana: more")] == []
    assert [m.text for m in scanner.finish()] == ["yo", "more"]
    assert scanner.finish() == []


# --- real and generated exports ------------------------------------------------------------

PEER_FILES = (
    sorted(p for p in PEERS.rglob("*") if p.is_file() and p.suffix in (".txt", ".zip"))
    if PEERS.is_dir()
    else []
)


@pytest.mark.parametrize("path", PEER_FILES, ids=[str(p.relative_to(PEERS)) for p in PEER_FILES])
def test_peer_fixtures_parse_the_same(path: Path) -> None:
    assert_same_file(path)


def test_peer_fixtures_mostly_go_through_the_scanner() -> None:
    if not PEER_FILES:
        pytest.fail(f"peer fixtures missing: expected {PEERS}")
    texts = [p for p in PEER_FILES if p.suffix == ".txt"]
    native = 0
    for path in texts:
        try:
            dialect = detect_dialect(path.read_text(encoding="utf-8-sig"))
        except (StyleError, UnicodeDecodeError):
            continue
        native += uses_scanner(dialect)
    assert native >= 0.9 * len(texts)


def test_peer_fixtures_parse_the_same_in_tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "BLOCK_CHARS", 37)  # bytes per read: blocks of a line or two
    for path in PEER_FILES[::3]:
        assert_same_file(path)


@pytest.mark.parametrize("path", sample_paths(), ids=lambda p: p.name)
def test_bundled_samples_parse_the_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same_file(path)
    monkeypatch.setattr(export, "BLOCK_CHARS", 997)
    assert_same_file(path)


def test_benchmark_export_parses_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = parse_bench.generated_export(tmp_path, 20_000, parse_bench.DEFAULT_SEED)
    chats = _chats(path)
    assert len(chats[0][2]) == 20_000
    with python_loop():
        assert _chats(path) == chats
    monkeypatch.setattr(export, "BLOCK_CHARS", 4096)
    assert_same_file(path)


# --- crafted edge cases --------------------------------------------------------------------

A = "12/03/2024, 21:04 - "  # Android, D/M/Y
B = "13/03/2024, 08:15 - "
IOS = f"{LRM}[3/12/24, 9:04:05{NNBSP}PM] "  # iOS, M/D/YY, 12-hour

EDGE_CASES = {
    "multi-line": f"{A}Ana: one\ntwo\n\nthree\n{B}Ben: four\n",
    "blank lines and trailing newlines": f"\n\n{A}Ana: hi\n\n\n{B}Ben: yo\n\n",
    "no final newline": f"{A}Ana: hi\n{B}Ben: yo",
    "header at the very end": f"{A}Ana: hi\n{B}",
    "empty text": f"{A}Ana: \n{A}Ana:\n{B}Ben: x\n",
    "lines before the first header": f"Chat export\nsaved today\n{A}Ana: hi\n{B}Ben: yo\n",
    "impossible dates continue the message": (
        f"{A}Ana: list\n31/02/2024, 10:00 - Ben: not a day\n12/13/2024, 10:00 - x: no month\n"
        f"12/03/2024, 25:61 - y: no time\n12/03/202, 10:00 - z: three-digit year\n{B}Ben: ok\n"
    ),
    "impossible header before the first": f"31/02/2024, 10:00 - Ben: no\nmore\n{A}Ana: hi\n",
    "other dialect's header is text": f"{A}Ana: hi\n[12/03/2024, 21:04:05] Ben: q\n{B}Ben: x\n",
    "crlf": f"{A}Ana: hi\r\nsecond\r\n{B}Ben: yo\r\n",
    "lone cr": f"{A}Ana: hi\rsecond\r{B}Ben: yo\r",
    "lrm headers": f"{LRM}{A}Ana: hi\n{LRM}{RLM}{B}Ben: yo\n",
    "non-ascii authors": f"{A}María José: hola\n{A}José : sp\n{A}Zoë✨: hi\n{A}名前: こんにちは\n",
    "authors with quotes and marks": (
        f'{A}Ana "A": hi\n{A}Ana “A”: hi\n{A}Ana ”A: hi\n{A}{LRM}Ana{LRM}: hi\n{A}An\ta: tab\n'
    ),
    "long author": f"{A}{'x' * 79}: a\n{A}{'x' * 80}: b\n{A}{'x' * 81}: c\n{A}{'y' * 100}: d\n",
    "text starts with its author": f"{A}Ana: Ana is here\n{A}Ana: An\n{B}Ben: Benjamin\n",
    "no author": f"{A}Ana joined\n{A}Messages and calls are end-to-end encrypted.\n",
    "markers": (
        f"{A}Ana: <Media omitted>\n{A}Ana: <Media omitted>\n{A}Ben: <Media omitted>\n"
        f"{A}Ana: This message was deleted\n{A}Ana: hi <This message was edited>\n"
        f"{A}Ana: IMG-20240312-WA0001.jpg (file attached)\n{A}Ana: null\n"
        f"{A}Ana: report.pdf • 3 pages document omitted\n{A}Ana: see (below)\n"
        f"{A}Ana: a > b >\n{A}Ana: {LRM}hi\n{A}Ana: location: https://maps.google.com/?q=1\n"
        f"{A}Ana: POLL:\nlunch?\n{A}Ana: Missed voice call\n{A}Ana: <Media omitted>\ncaption\n"
        f"{A}Ana: Thisx\n{A}Ana: <\n{A}Ana: This\n"
    ),
    "system lines": (
        f'{A}Ana created group "Trip"\n{A}Ana added Ben\n{A}Ben: Ana added me\n'
        f"{A}~ AK: ~ AK created this group\n{A}Ana left\n{A}Ana: Ana left\n"
    ),
    "ios chat name": (
        f"{IOS}Trip: {LRM}Messages and calls are end-to-end encrypted.\n{IOS}Trip: Ana added Ben\n"
        f"{IOS}Trip: Ana added Ben)\n{IOS}Ana: hi\n{IOS}Trip: hello\n{IOS}Trip: Ana added Ben)\n"
        f"{IOS}Trip: {LRM}Messages and calls are end-to-end encrypted.\n{IOS}Trip: Ana added Ben)\n"
    ),
    "ios 12-hour edges": (
        f"[3/12/24, 12:00:00{NNBSP}AM] Ana: midnight\n[3/12/24, 12:30:00 PM] Ana: noon\n"
        f"[3/12/24, 13:00:00 PM] Ana: 13 PM\n[3/12/24, 0:10:00 AM] Ana: zero\n"
        f"[3/12/24, 9:04:05 a.m.] Ana: dots\n[3/12/24, 9:04:05p.m.] Ana: tight\n"
        f"[3/12/24, 9:04:05 A M] Ana: spaced\n[3/12/24, 9:04:05 午後] Ana: ja\n"
        f"[3/12/24, 9:04:05 abends] Ana: de\n[3/12/24, 9:04:05 in the evening] Ana: en\n"
        f"[3/12/24, 9:04:05 PX] Ana: not a header\n[3/12/24, 9:04:05. PM] Ana: dot first\n"
        f"[3/12/24, 9:04:05 PM.]{NBSP}Ana: dot after\n[3/12/24,{NBSP}9:04:05 PM]Ana: tight\n"
    ),
    "android variants": (
        f"12/03/2024, 21:04 - Ana: a\n12/03/2024,{NBSP}21:04{NBSP}-{NBSP}Ana: nbsp\n"
        f"12/03/2024., 21:04 - Ana: dotted date\n12/03/2024, 21:04. - Ana: dotted time\n"
        f"12/03/2024, 21:04:59 - Ana: seconds\n12/03/2024, 21:04:5 - Ana: one-digit second\n"
        f"12/03/2024, 21:045 - Ana: three-digit minute\n12/03/20245, 21:04 - Ana: long year\n"
        f"12/03/2024, 121:04 - Ana: long hour\n12/03/2024, 21:04 – Ana: en dash\n"
        f"{LRM}12/03/2024{LRM}, 21:04 - Ana: mark\n12/03/2024, 21:04 -Ana: no space\n"
        f"1/3/24, 1:04 - Ana: short\n"
    ),
    "unicode digits": (
        f"{A}Ana: hi\n{A}Ana: two\n{A}Ana: three\n{A}Ana: four\n{A}Ana: five\n"
        f"١٢/٠٣/٢٠٢٤, ٢١:٠٤ - Ben: arabic-indic\n１２/０３/２０２４, ２１:０４ - Ben: wide\n"
        f"۱۲/۰۳/۲۰۲۴, 21:04 - Ben: persian\n１２/１３/２０２４, 21:04 - Ben: wide bad month\n"
    ),
    "emoji and astral text": f"{A}Ana: 👍🏽 ok\n{A}Ana: 👨‍👩‍👧‍👦\n{A}🐻‍❄️: bear\n{B}Ben: 𝟙𝟚\n",
    "header-only lines": f"{A}\n{A}\n{B}Ben: x\n",
    "colon edge": f"{A}Ana:hi\n{A}: hi\n{A}Ana: : x\n{A}Ana:: x\n{A}Ana:.\n",
}


@pytest.mark.parametrize("text", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases_parse_the_same(text: str) -> None:
    dialect = detect_dialect(text)
    assert uses_scanner(dialect)
    assert_same(text, dialect)


def test_the_same_text_follows_chat_name_changes() -> None:
    """The builder gets "Ana added Ben)": a system line only when the chat's name says it."""
    messages = parse_whatsapp(EDGE_CASES["ios chat name"], detect_dialect(IOS))
    kinds = [m.kind for m in messages if "Ana added Ben)" in m.text + (m.notice or "")]
    assert kinds == [MessageKind.SYSTEM, MessageKind.TEXT, MessageKind.SYSTEM]


def test_repeated_placeholders_get_their_own_media() -> None:
    text = f"{A}Ana: <Media omitted>\n{A}Ana: <Media omitted>\n{B}Ana: <Media omitted>\n"
    first, second, third = parse_whatsapp(text, detect_dialect(text))
    first.media.path = "media/IMG-1.jpg"  # as a zip export maps its files
    assert second.media == third.media == Media(MediaType.UNKNOWN, omitted=True)
    assert second.media is not third.media
    assert third.ts == datetime(2024, 3, 13, 8, 15) and third.line == 3


def test_unicode_digit_headers_match_as_re_does() -> None:
    text = EDGE_CASES["unicode digits"]
    messages = list(parse_whatsapp(text, detect_dialect(text)))
    assert [m.text for m in messages][5:7] == ["arabic-indic", "wide"]


# --- hypothesis ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dialect=st.sampled_from(sorted(properties.DIALECTS)),
    rows=properties.messages,
    size=st.sampled_from([None, 1, 5, 40]),
)
def test_rendered_exports_parse_the_same(dialect: str, rows: list, size: int | None) -> None:
    rows = [(properties.START, "Ana", "first"), *sorted(rows), (properties.END, "Ana", "last")]
    text = properties._render(dialect, rows)
    assert_same(text, sizes=(size,))


line_soup = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", "Ana: hi", A, "31/02/2024, 10:00 - ", "x", "é", "👍"]),
    max_size=25,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=line_soup, cuts=st.lists(st.integers(0, 60), max_size=6))
def test_any_pieces_and_line_ends_cut_into_the_same_blocks(text: str, cuts: list[int]) -> None:
    """CR, LF and CRLF anywhere, pieces cut anywhere (a CRLF split across two included)."""
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in pairwise(points)]
    dialect = detect_dialect(A + "Ana: hi\n")
    stats = ParseStats()
    native = list(parse_whatsapp(iter(pieces), dialect, stats=stats)), stats
    with python_loop():
        stats = ParseStats()
        assert (list(parse_whatsapp(iter(pieces), dialect, stats=stats)), stats) == native


FUZZ_DIALECTS = [detect_dialect(f"{header}a: b\n") for header in COMMON_HEADERS.values()]
header_soup = st.sampled_from(
    [
        *COMMON_HEADERS.values(),
        "31/02/2024, 10:00 - ",
        "12/03/2024, 25:00 - ",
        "[3/12/24, 9:04:05 PM] ",
        "١٢/٠٣/٢٠٢٤, ٢١:٠٤ - ",
        f"{LRM}12/03/2024, 21:04 - ",
        "12/03/2024, 21:04",
        "",
        "\n",
    ]
)
TRICKY_CHARS = [NBSP, NNBSP, LRM, RLM, "\ufeff", "٣", "１", "é", "👍", "\u2028"]
tricky = st.text(
    st.sampled_from([*"0123456789/.-:,;[]() \n\r<>~\"“”'aAmMpP", *TRICKY_CHARS]),
    max_size=30,
)
bodies = st.one_of(
    tricky,
    st.text(max_size=30),
    st.sampled_from(["Ana: <Media omitted>", "Ana: hi", "Ana: This message was deleted", "x"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.tuples(header_soup, bodies), max_size=10),
    dialect=st.sampled_from(FUZZ_DIALECTS),
    size=st.sampled_from([None, 1, 3, 16]),
)
def test_header_soup_parses_the_same_in_every_dialect(pieces, dialect, size) -> None:
    assert_same("\n".join(head + body for head, body in pieces), dialect, sizes=(size,))


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(st.one_of(tricky, st.text(max_size=50)), max_size=6),
    dialect=st.sampled_from(FUZZ_DIALECTS),
)
def test_scanner_survives_any_blocks(blocks: list[str], dialect: Dialect) -> None:
    """Blocks straight to the scanner, even ones parse_whatsapp never makes: no crash."""
    scanner = whatsapp._native_scanner(dialect, ParseStats())
    for block in blocks:
        for message in scanner.feed(block):
            assert isinstance(message, Message)
    scanner.finish()


# --- memory --------------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * 4


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_repeated_parses_hold_no_memory(tmp_path: Path) -> None:
    path = parse_bench.generated_export(tmp_path, 20_000, parse_bench.DEFAULT_SEED)
    watched = [Message, Media, MessageKind.TEXT, MessageKind.MEDIA, MediaType.UNKNOWN]

    def parse() -> int:
        return sum(1 for _ in export.iter_messages(path))

    for _ in range(3):
        parse()
    gc.collect()
    refs, rss = [sys.getrefcount(x) for x in watched], _rss_kib()
    for _ in range(20):  # 400,000 messages: a leak of one small object each shows
        assert parse() == 20_000
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == refs
    assert _rss_kib() - rss < 4096
