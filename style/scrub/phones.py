"""Phone numbers, found with libphonenumber's matcher and kept only when they look dialled.

`PhoneNumberMatcher` runs at `Leniency.POSSIBLE` (right length for the country) and each
match is then accepted when libphonenumber calls it valid, or when it is possible *and*
written the way people write phone numbers (an international `+`/`00` prefix, a bracketed
area code, or the country's trunk prefix with 10+ digits). `VALID` alone misses the
fictional ranges the sample uses (`+44 7700 900xxx`, US `555`); `POSSIBLE` alone also
takes dates, prices, versions and order numbers. `benchmarks/scrub_eval.py --phones`
measures all three.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Literal

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from style.messages import Message

PhonePolicy = Literal["shaped", "valid", "possible"]

# Six digits in a phone-like run: the cheap test that decides whether the matcher runs.
PHONE_HINT = re.compile(r"\d(?:[ ().\-/]{0,3}\d){5}")
_INTERNATIONAL = re.compile(r"\+\d[\d ().\-/]{5,22}\d")
_DATE_OR_TIME = re.compile(
    r"\d{4}[-./]\d\d?[-./]\d\d?|\d\d?[-./]\d\d?[-./]\d{2,4}|\d\d?[:.]\d\d(?:[:.]\d\d)?"
)
_IBAN_HEAD = re.compile(r"\b[A-Z]{2}\d\d(?:[ -]?[A-Z0-9]{4})*[ -]?$")
_CODE_BEFORE = re.compile(r"(?<!\S)[A-Z0-9]*\d[A-Z0-9]*[ -]$")
_CODE_AFTER = re.compile(r"[ -][A-Z0-9]*\d[A-Z0-9]*(?![^\s.,;:!?)])")
_BEFORE_REJECT = frozenset("#№$£€¥₹@/\\_")


def find_phones(
    text: str, region: str | None, *, policy: PhonePolicy = "shaped"
) -> list[tuple[int, int]]:
    """Spans of the phone numbers in `text`; national numbers need the `region` hint."""
    if not PHONE_HINT.search(text):
        return []
    trunk = (phonenumbers.ndd_prefix_for_region(region, True) or "") if region else ""
    spans = []
    for match in PhoneNumberMatcher(text, region, leniency=Leniency.POSSIBLE):
        start, end, raw = match.start, match.end, match.raw_string
        if raw.startswith("(") and ")" not in raw:
            start, raw = start + 1, raw[1:]  # "(+44 7700 900123)": the bracket is prose
        if _accept(text, start, end, raw, match.number, policy, trunk):
            spans.append((start, end))
    return spans


def glued_to_code(text: str, start: int, end: int) -> bool:
    """True when `text[start:end]` is a piece of a longer code: a neighbouring word (one
    space or dash away) is capitals and digits with a digit, or an IBAN-like head precedes."""
    return bool(
        _IBAN_HEAD.search(text, max(0, start - 40), start)
        or _CODE_BEFORE.search(text, max(0, start - 24), start)
        or _CODE_AFTER.match(text, end)
    )


def _accept(
    text: str,
    start: int,
    end: int,
    raw: str,
    number: phonenumbers.PhoneNumber,
    policy: PhonePolicy,
    trunk: str,
) -> bool:
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in _BEFORE_REJECT or after.isalpha() or after in "%€$£":
        return False
    if _DATE_OR_TIME.fullmatch(raw) or glued_to_code(text, start, end):
        return False
    digits = sum(c.isdigit() for c in raw)
    international = raw.startswith(("+", "00"))
    if not international and digits < 7:
        return False
    if policy == "possible":
        return True
    if not international and trunk and _trunk_missing(raw, number, trunk):
        return False  # "7750123456" in GB, where a national number is written 07750 123456
    if phonenumbers.is_valid_number(number):
        return True
    if policy == "valid" or not phonenumbers.is_possible_number(number):
        return False
    if international or (raw.startswith("(") and digits >= 10):
        return True
    return bool(trunk) and raw.startswith(trunk) and digits >= 10 and "." not in raw


def _trunk_missing(raw: str, number: phonenumbers.PhoneNumber, trunk: str) -> bool:
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    written = "".join(c for c in raw if c.isdigit())
    return national.startswith(trunk) and not written.startswith(trunk)


def phone_key(raw: str, region: str | None) -> str:
    """One spelling per number (E.164 where it parses), so pseudonyms stay consistent."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return "".join(c for c in raw if c.isdigit())
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def guess_region(messages: Iterable[Message]) -> str | None:
    """The country most international numbers in the export belong to (+44 -> "GB")."""
    regions: Counter[str] = Counter()
    for message in messages:
        fields = (message.author, message.text, message.notice)
        for field in fields:
            if field and "+" in field:
                regions.update(_regions(field))
    if not regions:
        return None
    return regions.most_common(1)[0][0]


def _regions(text: str) -> list[str]:
    found = []
    for candidate in _INTERNATIONAL.findall(text):
        try:
            number = phonenumbers.parse(candidate, None)
        except phonenumbers.NumberParseException:
            continue
        region = phonenumbers.region_code_for_country_code(number.country_code)
        if region != phonenumbers.UNKNOWN_REGION and phonenumbers.is_possible_number(number):
            found.append(region)
    return found
