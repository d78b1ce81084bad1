"""Parse WhatsApp .txt exports, in every dialect we have seen, into Message objects.

A WhatsApp export has no format declaration: the header of each message
(`[3/27/22, 21:41:35] Maya: hi`, `27.03.22, 21:41 - Maya: hi`, ...) depends on the phone's
OS, locale and app version. Parsing therefore happens in two steps:

1. `detect_dialect` learns the header's *shape* (brackets, separators, clock) from the
   first headers and compiles one strict expression for exactly that shape. It then reads
   the header dates and `choose_order` picks the date order (D/M/Y, M/D/Y, Y/M/D, ...):
   orders are charged for every date they make impossible, and ties go to the order that
   keeps the chat most chronological. The file is read until the evidence is decisive, to
   the end if need be, so a file whose first 90% is ambiguous is decided by its last 10%.
2. `parse_whatsapp` cuts the text at that expression's matches and yields messages. Lines
   that are not headers of this shape (lines that merely *look* like another dialect's
   header, or carry an impossible date) continue the previous message.

Both steps take the text whole or as an iterable of pieces (lines or ~1 MB blocks), so a
file on disk is streamed twice in constant memory.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import chain, groupby, islice, pairwise
from typing import Any

from style.errors import NotAChatError
from style.messages import Message, MessageKind
from style.parse.markers import (
    CLASSIFY_HEADS,
    DOCUMENT_OMITTED,
    DROP_INVISIBLE,
    INVISIBLE,
    OMITTED,
    classify,
    is_encryption_notice,
    needs_classifying,
)

try:  # the C inner loop (style/parse/_scan.c), built by setup.py where a compiler exists
    _native: Any = importlib.import_module("style.parse._scan")
except ImportError:
    _native = None

_M = f"[{INVISIBLE}]*"
_SP = "[ \u00a0\u202f]"
_DIGIT = "[0-9\u0660-\u0669\u06f0-\u06f9]"
_AMPM = (
    r"(?:[AaPp]\.?[ \u00a0\u202f]?[Mm]\.?|ص|م|午前|午後|오전|오후"
    r"|vorm\.|nachm\.|morgens|mittags|abends|nachts|in the (?:morning|afternoon|evening))"
)
_NUM = f"R?{_DIGIT}{{1,4}}"
_DATE_SEP = r"(?:[./\-]|\.[ ])"
_GENERIC_DATE = (
    f"(?P<date>{_NUM}{_M}(?P<ds>{_DATE_SEP})[ ]?{_M}{_NUM}{_M}{_DATE_SEP}[ ]?{_M}{_NUM}"
    r"(?: BE)?\.?)"
)
_GENERIC_TIME = (
    f"(?P<time>{_DIGIT}{{1,2}}(?P<ts>[:.]){_DIGIT}{{2}}(?:[:.]{_DIGIT}{{2}})?)"
    f"(?:(?P<aps>{_SP}?)(?P<ampm>{_AMPM}))?\\.?"
)
_DT_SEP = r"(?P<dts>[,،]?[ \u00a0]|,|[ ](?:klo|à|um|alle|om|a las|às|в|o)[ ])"
_GENERIC_HEADER = re.compile(
    f"{_M}(?P<open>\\[)?{_M}"
    f"(?:{_GENERIC_DATE}{_DT_SEP}{_GENERIC_TIME}"
    f"|(?P<tfirst>{_DIGIT}{{1,2}}:{_DIGIT}{{2}}(?::{_DIGIT}{{2}})?),[ ]"
    f"(?P<date2>{_NUM}/{_NUM}/{_NUM}))"
    f"{_M}(?(open)\\][ \u00a0]?|(?P<hs>[ \u00a0][-–][ \u00a0]|:[ ]|;[ ]))"
    r"(?P<rest>.*)",
    re.DOTALL,
)

_ORDERS = ("DMY", "MDY", "YMD", "YDM", "DYM", "MYD")
"""Tie-break preference when the whole file cannot decide (most locales first)."""

_NUMBER = re.compile(r"R?\d+")


@dataclass(frozen=True, slots=True)
class Dialect:
    """The header shape and date order of one export; `name` reads like `[M/D/Y, 12h:MM:SS]`."""

    bracketed: bool
    date_sep: str
    datetime_sep: str
    time_sep: str
    header_sep: str
    twelve_hour: bool
    seconds: bool
    time_first: bool
    marked_date: bool  # Arabic exports put RLMs between the date's numbers
    era: bool  # Buddhist (2565 BE) or Japanese Reiwa (R4) years
    order: str = "DMY"

    @property
    def name(self) -> str:
        """A human-readable description, shown by `wa-persona parse --summary`."""
        date = self.date_sep.strip().join(self.order)
        clock = f"{'12h' if self.twelve_hour else '24h'}{self.time_sep}MM"
        if self.seconds:
            clock += f"{self.time_sep}SS"
        body = (
            f"{clock}{self.datetime_sep.rstrip()} {date}"
            if self.time_first
            else (f"{date}{self.datetime_sep.rstrip() or ''} {clock}")
        )
        if self.bracketed:
            return f"iOS [{body}]"
        kind = "Android" if self.header_sep.strip() in "-–" else "old iOS"
        return f"{kind} {body}{self.header_sep.rstrip()}"

    def header_pattern(self, *, dates_only: bool = False) -> re.Pattern[str]:
        """The expression that finds this dialect's headers (and nothing else) after a newline.

        It runs over `_newline_led` blocks; a literal "\\n" first lets `re` skip ahead fast.

        Groups: the whole header, its date and its time (with AM/PM); with `dates_only`, just
        the date, so `findall` returns a list of strings without building match objects.
        """

        def group(name: str) -> str:
            return "(?:" if dates_only else f"(?P<{name}>"

        ds = re.escape(self.date_sep.strip())
        date_sep = f"{ds}[ ]?" if self.date_sep.endswith(" ") else ds
        num = r"R?\d{1,4}" if self.era else r"\d{1,4}"
        if self.marked_date:
            date = f"{num}{_M}{date_sep}{_M}{num}{_M}{date_sep}{_M}{num}"
        else:
            date = f"{num}{date_sep}{num}{date_sep}{num}"
        date = f"(?P<date>{date}(?: BE)?\\.?)" if self.era else f"(?P<date>{date}\\.?)"
        tsep = re.escape(self.time_sep)
        ampm = f"{_SP}?{_AMPM}" if self.twelve_hour else ""
        time = f"{group('time')}\\d{{1,2}}{tsep}\\d{{2}}(?:{tsep}\\d{{2}})?{ampm})\\.?"
        dts = re.escape(self.datetime_sep).replace("\\ ", "[ \u00a0]")
        stamp = f"{time}{dts}{date}" if self.time_first else f"{date}{dts}{time}"
        if self.bracketed:
            end = f"{_M}\\][ \u00a0]?"
        else:
            end = _M + re.escape(self.header_sep).replace("\\ ", "[ \u00a0]")
        prefix = f"{_M}\\[{_M}" if self.bracketed else _M
        return re.compile(f"\\n{group('header')}{prefix}{stamp}{end})")


def _shape(found: re.Match[str]) -> Dialect:
    time_first = found["tfirst"] is not None
    date = found["date2"] if time_first else found["date"]
    return Dialect(
        bracketed=found["open"] is not None,
        date_sep="/" if time_first else found["ds"],
        datetime_sep=", " if time_first else found["dts"].replace("\u00a0", " "),
        time_sep=":" if time_first else found["ts"],
        header_sep="" if found["open"] else found["hs"].replace("\u00a0", " ").replace("–", "-"),
        twelve_hour=found["ampm"] is not None,
        seconds=(found["tfirst"] or found["time"]).count(found["ts"] or ":") == 2,
        time_first=time_first,
        marked_date=not date.isascii(),
        era="R" in date or "BE" in date,
    )


def date_fields(date: str) -> tuple[str, str, str] | None:
    """The three numbers of a header date as written, calendar suffixes included."""
    numbers = _NUMBER.findall(date)  # \d and int() read Eastern Arabic digits too
    if len(numbers) != 3:
        return None
    return numbers[0], numbers[1], numbers[2]


def _year(field: str, buddhist: bool) -> int:
    if field.startswith("R"):  # Japanese Reiwa era: R1 = 2019
        return 2018 + int(field[1:])
    year = int(field)
    if len(field) <= 2:
        return 2000 + year  # every peer reads two-digit years as 20YY
    return year - 543 if buddhist else year


def _to_datetime(fields: tuple[str, str, str], order: str, buddhist: bool) -> datetime | None:
    by_role = dict(zip(order, fields, strict=True))
    day, month, year = by_role["D"], by_role["M"], by_role["Y"]
    if day.startswith("R") or month.startswith("R") or len(day) > 2 or len(month) > 2:
        return None
    if len(year) == 3:
        return None
    try:
        return datetime(_year(year, buddhist), int(month), int(day))
    except ValueError:
        return None


def choose_order(dates: Iterable[str], *, decisive: int = 3) -> str:
    """Pick the date order under which the file's dates are valid and most chronological.

    `dates` is the file's header dates in file order (repeats are fine). Each order is
    charged one point per distinct date it makes impossible; the cheapest orders survive,
    so one odd line (a quoted date) cannot flip a file. Reading stops early once a single
    order is flawless and every other has `decisive` impossible dates. If several orders
    tie, the one with the smallest total jump between consecutive dates wins, since real
    chats move forward a day at a time.
    """
    impossible = dict.fromkeys(_ORDERS, 0)
    sequence: list[str] = []
    seen: set[str] = set()
    for date, _ in groupby(dates):
        sequence.append(date)
        if date in seen:
            continue
        seen.add(date)
        fields = date_fields(date)
        if fields is None:
            continue
        for order in _ORDERS:
            if _to_datetime(fields, order, "BE" in date) is None:
                impossible[order] += 1
        flawless = [o for o, n in impossible.items() if n == 0]
        if len(flawless) == 1 and all(n >= decisive for n in impossible.values() if n):
            return flawless[0]
    fewest = min(impossible.values())
    candidates = [o for o in _ORDERS if impossible[o] == fewest]
    if len(candidates) == 1:
        return candidates[0]

    def total_jump(order: str) -> int:
        day: dict[str, datetime | None] = {}
        for date in sequence:
            if date not in day:
                fields = date_fields(date)
                day[date] = fields and _to_datetime(fields, order, "BE" in date)
        valid = [d for d in map(day.__getitem__, sequence) if d is not None]
        return sum(abs((b - a).days) for a, b in pairwise(valid))

    return min(candidates, key=lambda order: (total_jump(order), _ORDERS.index(order)))


def detect_dialect(
    text: str | Iterable[str], *, source: str = "<text>", sample: int = 200
) -> Dialect:
    """Learn the header shape from the first `sample` headers and the date order from all.

    `text` is the whole export or its pieces in order (lines, or blocks of many lines).
    """
    shapes: Counter[Dialect] = Counter()
    consumed: list[str] = []
    blocks = _lines_whole([text] if isinstance(text, str) else text)
    for block in blocks:
        consumed.append(block)
        for line in islice(block.split("\n", sample * 20), sample * 20):
            found = _GENERIC_HEADER.match(line)
            if found is not None:
                shapes[_shape(found)] += 1
                if shapes.total() >= sample:
                    break
        if shapes.total() >= sample or sum(map(len, consumed)) > 4 * 2**20:
            break
    if not shapes:
        raise NotAChatError(source, "no WhatsApp message header found; is this a chat export?")
    shape = shapes.most_common(1)[0][0]
    findall = shape.header_pattern(dates_only=True).findall
    led = _newline_led(_lines_whole(chain(consumed, blocks)))
    dates = chain.from_iterable(map(findall, led))
    return replace(shape, order=choose_order(dates))


def _lines_whole(blocks: Iterable[str]) -> Iterator[str]:
    """Re-cut arbitrary text pieces at line ends, with every line ending turned into "\\n"."""
    carry = ""
    for block in blocks:
        block = carry + block
        if "\r" in block:
            if block.endswith("\r"):  # the "\n" of a CRLF may open the next piece
                block, carry = block[:-1], "\r"
            else:
                carry = ""
            block = block.replace("\r\n", "\n").replace("\r", "\n")
            cut = block.rfind("\n") + 1
            block, carry = block[:cut], block[cut:] + carry
        else:
            cut = block.rfind("\n") + 1
            block, carry = block[:cut], block[cut:]
        if block:
            yield block
    if carry:
        yield carry.replace("\r\n", "\n").replace("\r", "\n")


def _newline_led(blocks: Iterable[str]) -> Iterator[str]:
    """Move each block's final newline to the front of the next one.

    Joined, the blocks are "\\n" + the text, so every line (the first included) starts
    right after a newline, and a message's text never ends with the newline of its line.
    """
    for block in blocks:
        yield "\n" + (block[:-1] if block[-1:] == "\n" else block)


@dataclass(slots=True)
class ParseStats:
    """What a parse saw besides messages; filled in while the iterator runs."""

    lines: int = 0
    unparsed_lines: int = 0
    first_unparsed_line: int | None = None

    def note_unparsed(self, line: int, count: int = 1) -> None:
        """Count lines kept as continuation text (or skipped before the first header)."""
        self.unparsed_lines += count
        if self.first_unparsed_line is None:
            self.first_unparsed_line = line


_MERIDIEM = {
    "am": False,
    "pm": True,
    "ص": False,
    "م": True,
    "午前": False,
    "午後": True,
    "오전": False,
    "오후": True,
    "vorm": False,
    "morgens": False,
    "nachts": False,
    "nachm": True,
    "mittags": True,
    "abends": True,
    "inthemorning": False,
    "intheafternoon": True,
    "intheevening": True,
}
_AMPM_NOISE = str.maketrans("", "", ". \u00a0\u202f")


_CLOCK = re.compile(r"(\d+)[:.](\d+)(?:[:.](\d+))?[ \u00a0\u202f]?(.*)")


def _time_of_day(clock: str) -> timedelta | None:
    """`21:04`, `9.04.05`, `9:04 p. m.` -> time since midnight; None when impossible."""
    found = _CLOCK.fullmatch(clock)
    if found is None:
        return None
    hour, minute = int(found[1]), int(found[2])
    second = int(found[3]) if found[3] else 0
    if found[4]:
        afternoon = _MERIDIEM.get(found[4].translate(_AMPM_NOISE).lower())
        if afternoon and hour < 12:
            hour += 12
        elif afternoon is False and hour == 12:
            hour = 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    return timedelta(hours=hour, minutes=minute, seconds=second)


_UNSEEN: Any = object()
TEXT = MessageKind.TEXT
_QUOTES = ('"', "“", "”")


def parse_whatsapp(
    text: str | Iterable[str], dialect: Dialect, *, stats: ParseStats | None = None
) -> Iterator[Message]:
    """Yield one Message per header; everything up to the next header is its text.

    `text` is the whole export or its pieces in order; blocks of ~1 MB are fastest: one
    C-level `split` per block cuts it into (header, date, time, body) runs, and the loop
    below only converts them. Header-shaped lines with an impossible date or time stay in
    the previous message's text and are counted in `stats`; lines before the first header
    have no message to join and are counted and skipped.
    """
    stats = stats if stats is not None else ParseStats()
    scanner = _native_scanner(dialect, stats)
    if scanner is not None:  # same messages and stats from C (_scan.c), which also cuts
        for piece in [text] if isinstance(text, str) else text:  # pieces as _lines_whole does
            yield from scanner.feed(piece)
        last = scanner.finish()
        stats.lines = scanner.line
        yield from last
        return

    split = dialect.header_pattern().split
    order, time_first = dialect.order, dialect.time_first
    days: dict[str, datetime | None] = {}
    times: dict[str, timedelta | None] = {}
    build = _MessageBuilder()
    chat_names = build.chat_names

    ts: datetime | None = None  # the pending message, yielded when the next header comes
    body = ""
    more: list[str] = []  # continuation pieces beyond the pending message's block
    start = line = 0  # the pending message's header line; the line being read
    for block in _newline_led(_lines_whole([text] if isinstance(text, str) else text)):
        pieces = split(block)
        head = pieces[0]  # continues the pending message (or precedes the first header)
        if head:
            if ts is None:
                stats.note_unparsed(line + 1, head.count("\n"))
            else:
                more.append(head)
            line += head.count("\n")
        runs = iter(pieces)
        next(runs)
        for header, date, clock, text_after in zip(runs, runs, runs, runs, strict=True):
            line += 1
            if time_first:  # `split` returns groups in pattern order
                date, clock = clock, date
            day = days.get(date, _UNSEEN)
            if day is _UNSEEN:
                fields = date_fields(date)
                day = days[date] = (
                    None if fields is None else _to_datetime(fields, order, "BE" in date)
                )
            offset = times.get(clock, _UNSEEN)
            if offset is _UNSEEN:
                offset = times[clock] = _time_of_day(clock)
            if day is None or offset is None:  # shaped like a header, but not one
                stats.note_unparsed(line, 1 + text_after.count("\n"))
                if ts is not None:
                    more.append(f"\n{header}{text_after}")
                line += text_after.count("\n")
                continue

            if ts is not None:
                rest = body if not more else "".join([body, *more])
                # The hot path: plain text after a printable, quote-free "Name: ".
                cut = rest.find(": ", 0, 82)
                author = rest[:cut] if cut > 0 else ""
                text = rest[cut + 2 :]
                if (
                    author
                    and (author.isascii() or author.isprintable())
                    and "\n" not in author
                    and '"' not in author
                    and "“" not in author
                    and author not in chat_names
                    and not needs_classifying(text)
                    and not text.startswith(author)
                ):
                    yield Message(ts, author, text, TEXT, False, None, start)
                else:
                    yield build(ts, rest, start)
                more = []
            ts = day + offset
            body = text_after
            start = line
            line += text_after.count("\n")
    stats.lines = line
    if ts is not None:
        yield build(ts, body if not more else "".join([body, *more]), start)


def _native_scanner(dialect: Dialect, stats: ParseStats) -> Any:
    """The C version of the loop above for this dialect, or None to run the Python one."""
    if _native is None:
        return None
    build = _MessageBuilder()
    try:
        return _native.Scanner(
            dialect,
            stats,
            build,
            build.chat_names,
            message=Message,
            text_kind=TEXT,
            needs_classifying=needs_classifying,
            heads=CLASSIFY_HEADS,
            omitted=OMITTED,
            suffixes=DOCUMENT_OMITTED,
            invisible=INVISIBLE,
            ampm=_AMPM,
        )
    except _native.Unsupported:  # time first, eras, marked dates: the Python loop does them
        return None


class _MessageBuilder:
    """Split author from text, classify, build the Message; remember the chat's own name."""

    def __init__(self) -> None:
        self.chat_names: set[str] = set()

    def __call__(self, ts: datetime, rest: str, line: int) -> Message:
        """Build the message whose header line (after the date) and continuation are `rest`."""
        end = rest.find("\n")
        first = rest if end < 0 else rest[:end]
        cut = first.find(": ")
        author: str | None
        if cut > 0:
            author, text = rest[:cut], rest[cut + 2 :]
        elif first.endswith(":"):  # `Carol:` with nothing after it
            author, text = first[:-1], rest[len(first) + 1 :]
        elif first.endswith(":.") and ":" not in first[:-2]:  # a disappeared message
            return Message(ts, first[:-2], "", MessageKind.DELETED, line=line)
        else:
            author, text = None, rest
        if author is not None:
            if len(author) > 80 or any(quote in author for quote in _QUOTES):
                author, text = None, rest  # `X changed the subject to "a: b"`
            elif not author.isascii():
                author = author.translate(DROP_INVISIBLE).strip()
        found = classify(text, author, chat_name=author in self.chat_names)
        if author is not None:
            if found.kind is MessageKind.SYSTEM and is_encryption_notice(text):
                self.chat_names.add(author)
            elif found.kind is MessageKind.TEXT:
                self.chat_names.discard(author)  # a contact named like the chat: a person
        return Message(
            ts, author, found.text, found.kind, found.edited, found.media, line, found.notice
        )
