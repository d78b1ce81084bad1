"""Capitals, punctuation, tone, formality and languages of the persona's text messages.

Formality is a score from 0 (chatty) to 1 (formal): the mean of four shares, each of which
reads 1 for textbook writing:

    capitalised     messages starting with a capital (of those starting with a cased letter)
    punctuated      messages ending with . ! ? or an ellipsis
    standard_words  1 - min(1, chat forms per message), chat forms being listed
                    abbreviations and slang, written laughs and stretched words
    emoji_free      1 - share of messages with an emoji

A part with nothing to measure (no message starts with a letter) is left out of the mean.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import repeat

from style.profile.distributions import share
from style.profile.emoji import is_emoji_tail
from style.profile.languages import language_shares
from style.profile.model import TypographyProfile

ENDINGS = ("period", "exclamation", "question", "ellipsis", "emoji", "other", "none")
_PUNCT = {".": "period", "!": "exclamation", "?": "question", "…": "ellipsis"}


def ending_of(char: str) -> str:
    """Category of a message's last character ("" for an empty message is "none")."""
    if char in _PUNCT:
        return _PUNCT[char]
    if not char or char.isalnum():
        return "none"
    if not char.isascii() and is_emoji_tail(char):
        return "emoji"
    return "other"


_FIRST = operator.itemgetter(slice(0, 1))
_LAST = operator.itemgetter(slice(-1, None))


def _count(
    texts: Sequence[str], needle: str, test: Callable[[str, str], bool] = operator.contains
) -> int:
    """How many texts pass `test(text, needle)`, at C speed."""
    return sum(map(test, texts, repeat(needle)))


def _both(texts: Sequence[str], first: str, second: str) -> int:
    return sum(1 for text in texts if first in text and second in text)


def typography_profile(
    texts: Sequence[str],
    words: Counter[str],
    *,
    chat_forms: int,
    emoji_share: float | None,
) -> TypographyProfile:
    """Measure `texts` (one persona's text messages); `words` are their token counts."""
    n = len(texts)
    heads = "".join(map(_FIRST, texts))
    lower = sum(map(str.islower, heads))
    upper = sum(map(str.isupper, heads))
    stripped = list(map(str.rstrip, texts))
    last = Counter(map(_LAST, stripped))
    endings = Counter(dict.fromkeys(ENDINGS, 0))
    for char, count in last.items():
        endings[ending_of(char)] += count
    dotted = _count(stripped, "..", str.endswith)
    endings["period"] -= dotted
    endings["ellipsis"] += dotted
    caps = sum(1 for text in filter(str.isupper, texts) if sum(map(str.isalpha, text)) >= 3)
    capitalised = share(upper, upper + lower)
    punctuated = share(n - endings["emoji"] - endings["other"] - endings["none"], n)
    parts = {
        "capitalised": capitalised,
        "punctuated": punctuated,
        "standard_words": round(1 - min(1.0, chat_forms / n), 4) if n else None,
        "emoji_free": None if emoji_share is None or not n else round(1 - emoji_share, 4),
    }
    known = [v for v in parts.values() if v is not None]
    languages = language_shares(words)
    return TypographyProfile(
        lowercase_start=share(lower, upper + lower),
        capitalised_start=capitalised,
        all_caps=share(caps, n),
        ending={k: share(v, n) or 0.0 for k, v in endings.items()},
        multi_exclamation=share(_count(texts, "!!"), n),
        multi_question=share(_count(texts, "??"), n),
        ellipsis=share(_count(texts, "..") + _count(texts, "…") - _both(texts, "..", "…"), n),
        question=share(_count(texts, "?"), n),
        formality=round(sum(known) / len(known), 4) if known else None,
        formality_parts=parts,
        languages=languages,
        primary_language=next(iter(languages), None),
    )
