"""Find personal data in one text: spans and kinds only, never copies of the values.

Every detector runs on a same-length copy of the text in which odd spaces and dashes
(U+00A0, U+202F, U+2011...) are plain ones and bidi marks are spaces, so spans index
the original. A few C-level checks decide which detectors a text needs at all: most
chat messages have no digit, "@", "/" or ":" and meet only the names pattern.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers

from style.scrub.checksums import IBAN_LENGTHS, iban_valid, luhn_valid
from style.scrub.names import build_name_index, name_spans
from style.scrub.phones import PhonePolicy, find_phones, glued_to_code


class PiiKind(StrEnum):
    """A kind of personal data; the value is also its redaction tag, upper-cased."""

    PHONE = "phone"
    EMAIL = "email"
    URL = "url"
    IBAN = "iban"
    CARD = "card"
    IP = "ip"
    NAME = "name"
    BLOCKED = "blocked"

    @property
    def tag(self) -> str:
        """The redaction placeholder, e.g. `[PHONE]`."""
        return f"[{self.value.upper()}]"


# When two findings overlap, the longer wins; at equal length, the earlier kind here.
PRIORITY = (
    PiiKind.EMAIL,
    PiiKind.URL,
    PiiKind.IBAN,
    PiiKind.CARD,
    PiiKind.IP,
    PiiKind.PHONE,
    PiiKind.BLOCKED,
    PiiKind.NAME,
)
_RANK = {kind: rank for rank, kind in enumerate(PRIORITY)}


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """Where one piece of personal data sits in a text: `text[start:end]`."""

    start: int
    end: int
    kind: PiiKind


_SPACES = (
    "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_MARKS = "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_NORMALISE = str.maketrans({**dict.fromkeys(_SPACES + _MARKS, " "), **dict.fromkeys(_DASHES, "-")})

_EMAIL = re.compile(
    r"(?<![\w.+%-])\w(?:[\w.+%'-]*\w)?@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}(?![\w-])"
)
_URL_CHARS = r"[\w\-.~:/?#\[\]@!$&'()*+,;=%]"
_URL = re.compile(
    rf"(?<![\w@])(?:(?:https?|ftp)://{_URL_CHARS}+|www\.{_URL_CHARS}+"
    rf"|(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+[a-z]{{2,24}}/{_URL_CHARS}*)",
    re.IGNORECASE,
)
# Bare links ("example.com/u/anna") count only under a country code or a common generic TLD.
_TLDS = frozenset(region.lower() for region in phonenumbers.SUPPORTED_REGIONS) | {
    "com", "org", "net", "edu", "gov", "mil", "int", "info", "biz", "io", "ai", "app", "dev",
    "me", "tv", "co", "uk", "eu", "xyz", "online", "site", "shop", "store", "blog", "tech",
    "cloud", "page", "link", "live", "news", "club", "life", "world", "today", "top", "ly",
    "gg", "fm", "to", "so", "asia", "travel", "museum", "mobi", "name", "pro", "example", "test",
}  # fmt: skip
_URL_TRAILING = ".,;:!?'\"*"
_IBAN = re.compile(r"(?<![^\W_])[A-Z]{2}\d\d(?:[ -]?[A-Z0-9]){11,32}", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"(?<![\w+])\d+(?:[ -]\d+)*(?![\w+])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%\w+)?")
_VERSION_BEFORE = re.compile(r"\b(?:version|ver|build|release|firmware|v)\.?\s*$", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_CARD_PREFIXES = ("2", "34", "37", "30", "36", "38", "39", "35", "4", "5", "6")


class PiiDetector:
    """Finds personal data in texts; build once, then call `find` per text."""

    def __init__(
        self,
        *,
        region: str | None = None,
        names: Collection[str] = (),
        keep_names: Collection[str] = (),
        blocklist: Collection[str] = (),
        phones: PhonePolicy = "shaped",
    ) -> None:
        self.region = region.upper() if region else None
        self.names = build_name_index(names, keep_names)
        words = sorted({w.strip() for w in blocklist if w.strip()}, key=lambda w: (-len(w), w))
        self._blocklist = (
            re.compile(
                r"(?<!\w)(?:"
                + "|".join(r"\s+".join(map(re.escape, w.split())) for w in words)
                + r")(?!\w)",
                re.IGNORECASE,
            )
            if words
            else None
        )
        self._phones: PhonePolicy = phones

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in `text`, in order; overlaps keep the longest."""
        if not text:
            return []
        if not text.isascii():
            text = text.translate(_NORMALISE)
        found: list[Finding] = []
        if self.names.pattern is not None:
            found += (Finding(s, e, PiiKind.NAME) for s, e in name_spans(text, self.names))
        if self._blocklist is not None:
            found += (Finding(*m.span(), PiiKind.BLOCKED) for m in self._blocklist.finditer(text))
        if "@" in text:
            found += (Finding(*m.span(), PiiKind.EMAIL) for m in _EMAIL.finditer(text))
        if "/" in text or "www." in text or "WWW." in text:
            found += (Finding(s, e, PiiKind.URL) for s, e in _urls(text))
        if ":" in text:
            found += (Finding(s, e, PiiKind.IP) for s, e in _ipv6(text))
        if _DIGIT.search(text):
            found += (Finding(s, e, PiiKind.IBAN) for s, e in _ibans(text))
            found += (Finding(s, e, PiiKind.CARD) for s, e in _cards(text))
            found += (Finding(s, e, PiiKind.IP) for s, e in _ipv4(text))
            found += (
                Finding(s, e, PiiKind.PHONE)
                for s, e in find_phones(text, self.region, policy=self._phones)
            )
        return resolve(found)


def resolve(findings: list[Finding]) -> list[Finding]:
    """Drop findings that overlap a longer (or, at equal length, more specific) one."""
    if len(findings) < 2:
        return sorted(findings)
    chosen: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start - f.end, _RANK[f.kind], f.start)):
        if all(finding.end <= c.start or finding.start >= c.end for c in chosen):
            chosen.append(finding)
    return sorted(chosen)


@lru_cache(maxsize=16)
def _cached_detector(
    region: str | None,
    names: tuple[str, ...],
    keep_names: tuple[str, ...],
    blocklist: tuple[str, ...],
) -> PiiDetector:
    return PiiDetector(region=region, names=names, keep_names=keep_names, blocklist=blocklist)


def find_pii(
    text: str,
    *,
    region: str | None = None,
    names: Collection[str] = (),
    keep_names: Collection[str] = (),
    blocklist: Collection[str] = (),
) -> list[Finding]:
    """Personal data in one text; for many texts build one `PiiDetector` instead."""
    detector = _cached_detector(region, tuple(names), tuple(keep_names), tuple(blocklist))
    return detector.find(text)


def _urls(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _URL.finditer(text):
        start, end = match.span()
        while end > start and (
            text[end - 1] in _URL_TRAILING
            or (text[end - 1] in ")]" and _unbalanced(text[start:end]))
        ):
            end -= 1
        url = text[start:end]
        if "://" in url or (url[:4].lower() == "www." and "." in url[4:]) or _bare_link(url):
            spans.append((start, end))
    return spans


def _bare_link(url: str) -> bool:
    """A domain with a path and a real top-level domain: `example.com/x`, not `node.js/x`."""
    host = url.partition("/")[0]
    return "." in host and host.rpartition(".")[2].lower() in _TLDS


def _unbalanced(url: str) -> bool:
    return url.count(")") > url.count("(") or url.count("]") > url.count("[")


def _ibans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _IBAN.finditer(text):
        start = match.start()
        positions = [i for i in range(start, match.end()) if text[i].isalnum()]
        compact = "".join(text[i] for i in positions).upper()
        length = IBAN_LENGTHS.get(compact[:2])
        lengths = [length] if length else range(min(len(compact), 34), 14, -1)
        for size in lengths:
            if size > len(compact):
                continue
            end = positions[size - 1] + 1
            if end < len(text) and text[end].isalnum():
                continue  # the IBAN would end inside a word or a group
            if iban_valid(compact[:size]):
                spans.append((start, end))
                break
    return spans


def _cards(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _DIGIT_RUN.finditer(text):
        if glued_to_code(text, match.start(), match.end()):
            continue  # the tail of an IBAN or another code
        groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", match.group())]
        base = match.start()
        if sum(e - s for s, e in groups) < 13:
            continue
        i = 0
        while i < len(groups):
            for j in range(len(groups), i, -1):
                window = groups[i:j]
                digits = "".join(match.group()[s:e] for s, e in window)
                if 13 <= len(digits) <= 19 and _card_shaped(window, digits):
                    spans.append((base + window[0][0], base + window[-1][1]))
                    i = j - 1
                    break
            i += 1
    return spans


def _card_shaped(groups: list[tuple[int, int]], digits: str) -> bool:
    if not digits.startswith(_CARD_PREFIXES) or not luhn_valid(digits):
        return False
    if len(groups) == 1:
        return True
    sizes = [e - s for s, e in groups]
    return sizes[0] == 4 and all(3 <= size <= 6 for size in sizes[1:-1]) and sizes[-1] <= 6


def _ipv4(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        if _VERSION_BEFORE.search(text, max(0, match.start() - 12), match.start()):
            continue
        spans.append(match.span())
    return spans


def _ipv6(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _IPV6.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in ".:" and text[end - 2 : end] != "::":
            end -= 1
        candidate = text[start:end]
        if not any(c.isdigit() for c in candidate) or candidate.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        spans.append((start, end))
    return spans
