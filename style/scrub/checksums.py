"""Checksums that tell a real IBAN or card number from a run of digits that looks like one."""

from __future__ import annotations

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
"""Registered IBAN lengths by country (SWIFT IBAN registry); others may be 15 to 34 long."""


def luhn_valid(digits: str) -> bool:
    """True when a string of digits passes the Luhn check every payment card carries."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def luhn_check_digit(digits: str) -> str:
    """The digit that makes `digits` + it Luhn-valid (to build fictional card numbers)."""
    return next(d for d in "0123456789" if luhn_valid(digits + d))


def _iban_number(compact: str) -> int:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged))


def iban_valid(iban: str) -> bool:
    """True when an IBAN (spaces allowed) has its country's length and passes mod-97."""
    compact = iban.replace(" ", "").replace("-", "").upper()
    if not (15 <= len(compact) <= 34 and compact.isalnum() and compact.isascii()):
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    length = IBAN_LENGTHS.get(compact[:2])
    if length is not None and len(compact) != length:
        return False
    return _iban_number(compact) % 97 == 1


def iban_with_check_digits(country: str, bban: str) -> str:
    """A compact IBAN for `country` and `bban` with correct check digits (for fixtures)."""
    check = 98 - _iban_number(f"{country}00{bban}".upper()) % 97
    return f"{country}{check:02d}{bban}".upper()
