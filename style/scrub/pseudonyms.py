"""Fictional stand-ins that stay the same for the same original, so chats stay coherent.

Names are drawn from fixed lists by a salted hash of the original, so one salt gives the
same stand-in in every run and never the original (nor any other name the export knows).
Everything else is numbered in order of first appearance and lives in ranges set aside
for fiction and documentation: Ofcom's drama numbers, example.com, RFC 5737 / 3849
addresses, a GB IBAN and a Visa number that pass their checksums but belong to no one.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Sequence

from style.scrub.checksums import iban_with_check_digits, luhn_check_digit

FIRST_NAMES = (
    "Alex", "Ari", "Asha", "Bea", "Cal", "Cleo", "Dani", "Dara", "Eli", "Ellis", "Emre", "Esme",
    "Ezra", "Fern", "Finn", "Gabi", "Hana", "Idris", "Ines", "Ira", "Isla", "Jae", "Jude", "Juno",
    "Kai", "Kira", "Lale", "Lark", "Leni", "Levi", "Lina", "Lior", "Luca", "Mae", "Mara", "Marlo",
    "Mika", "Milo", "Nadia", "Nico", "Nia", "Noor", "Oona", "Orla", "Otis", "Pia", "Quinn",
    "Remy", "Rhea", "Rina", "Rio", "Romy", "Ronan", "Rumi", "Sami", "Sana", "Sol", "Suki", "Tala",
    "Tamsin", "Teo", "Thea", "Tove", "Uma", "Vale", "Vera", "Wren", "Yara", "Yuri", "Zara",
    "Zeno", "Zora"
)  # fmt: skip
SURNAMES = (
    "Abara", "Aldous", "Bellamy", "Brandt", "Castell", "Corrin", "Dalby", "Delacroix", "Ellery",
    "Farrow", "Fenwick", "Galloway", "Hale", "Hartigan", "Ivers", "Jansen", "Kestrel",
    "Lindqvist", "Marlowe", "Navarro", "Okonkwo", "Pell", "Quist", "Rowan", "Sandoval",
    "Sorensen", "Tamura", "Thorne", "Umber", "Varga", "Whitlock", "Yarrow", "Zeller"
)  # fmt: skip
_DRAMA_PHONES = (
    "+44 7700 900",
    "+44 20 7946 0",
    "+44 161 496 0",
    "+44 121 496 0",
    "+44 117 496 0",
    "+44 113 496 0",
    "+44 131 496 0",
    "+44 141 496 0",
    "+44 151 496 0",
    "+44 1632 960",
)
_TEST_NETS = ("192.0.2.", "198.51.100.", "203.0.113.")


class Pseudonyms:
    """Hands out stand-ins: `name_word`, `phone`, `email`, `url`, `iban`, `card`, `ip`."""

    def __init__(self, salt: str, *, avoid: Collection[str] = ()) -> None:
        self._salt = salt
        self._avoid = {word.casefold() for name in avoid for word in name.split()}
        self._given: dict[tuple[str, str], str] = {}
        self._taken: set[tuple[str, str]] = set()
        self._counts: Counter[str] = Counter()

    def name_word(self, word: str, *, surname: bool = False) -> str:
        """A fictional first name (or surname) for `word`, in `word`'s letter case."""
        pool = SURNAMES if surname else FIRST_NAMES
        role = "surname" if surname else "first"
        key = (role, word.casefold())
        if key not in self._given:
            self._given[key] = self._draw(role, word.casefold(), pool)
        return _same_case(self._given[key], word)

    def phone(self, key: str) -> str:
        """A UK drama number (`+44 7700 900xxx` first) for the number spelt `key`."""
        return self._numbered("phone", key, _drama_phone)

    def email(self, key: str) -> str:
        """`userN@example.com`."""
        return self._numbered("email", key.casefold(), lambda n: f"user{n}@example.com")

    def url(self, key: str) -> str:
        """`https://example.com/linkN`."""
        return self._numbered("url", key, lambda n: f"https://example.com/link{n}")

    def iban(self, key: str) -> str:
        """A checksum-valid GB IBAN at the made-up bank XMPL."""
        return self._numbered("iban", key, _fictional_iban)

    def card(self, key: str) -> str:
        """A Luhn-valid Visa-shaped number starting 4000 0000 0000."""
        return self._numbered("card", key, _fictional_card)

    def ip(self, key: str, *, v6: bool) -> str:
        """A documentation address: 192.0.2.N (RFC 5737) or 2001:db8::N (RFC 3849)."""
        if v6:
            return self._numbered("ipv6", key, lambda n: f"2001:db8::{n:x}")
        return self._numbered("ipv4", key, _test_net)

    def _numbered(self, kind: str, key: str, make: Callable[[int], str]) -> str:
        if (kind, key) not in self._given:
            self._counts[kind] += 1
            stand_in = make(self._counts[kind])
            if _plain(stand_in) == _plain(key):  # the original was itself fictional
                self._counts[kind] += 1
                stand_in = make(self._counts[kind])
            self._given[kind, key] = stand_in
        return self._given[kind, key]

    def _draw(self, role: str, original: str, pool: Sequence[str]) -> str:
        digest = hashlib.sha256(f"{self._salt}\0{role}\0{original}".encode()).digest()
        start = int.from_bytes(digest[:8], "big")
        for lap in range(1, 100):
            for step in range(len(pool)):
                candidate = pool[(start + step) % len(pool)]
                if lap > 1:
                    candidate = f"{candidate}{lap}"
                folded = candidate.casefold()
                free = (role, folded) not in self._taken
                if free and folded != original and folded not in self._avoid:
                    self._taken.add((role, folded))
                    return candidate
        raise RuntimeError("ran out of stand-in names")  # needs ~7,500 distinct names


def _plain(value: str) -> str:
    return "".join(c for c in value.casefold() if c.isalnum())


def _same_case(stand_in: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return stand_in.upper()
    if like[:1].islower():
        return stand_in.lower()
    return stand_in


def _drama_phone(n: int) -> str:
    block, number = divmod(n - 1, 999)
    return f"{_DRAMA_PHONES[block % len(_DRAMA_PHONES)]}{number + 1:03d}"


def _test_net(n: int) -> str:
    block, host = divmod(n - 1, 254)
    return f"{_TEST_NETS[block % len(_TEST_NETS)]}{host + 1}"


def _fictional_iban(n: int) -> str:
    compact = iban_with_check_digits("GB", f"XMPL000000{n % 10**8:08d}")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _fictional_card(n: int) -> str:
    body = f"400000000000{n % 1000:03d}"
    digits = body + luhn_check_digit(body)
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
