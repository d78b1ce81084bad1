"""Emoji: one compiled expression for whole emoji sequences, and the persona's emoji habits.

The expression matches what a phone shows as one emoji: flags (two regional indicators),
subdivision flags (a black flag and tag characters), keycaps (`1️⃣`), a base with an optional
variation selector and skin-tone modifier, and any number of those joined by zero-width
joiners (`👩🏽‍💻`, `🏳️‍🌈`, `❤️‍🔥`). It is built from code-point tables below instead of the
`emoji` package, so `style` stays light.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

from style.profile.model import EmojiProfile, top_forms

# Code points with Emoji=Yes in the Basic Multilingual Plane (Unicode emoji-data.txt).
# Those outside U+2600..U+27BF are mostly plain symbols in running text (©, ™, arrows), so
# they count as emoji only when a variation selector 16 asks for emoji presentation, unless
# they are Emoji_Presentation=Yes (⌚, ⏰, ⭐, ⭕...), which phones always draw as emoji.
_BMP_PICTOGRAPHS = (
    "\u2600-\u2604\u260e\u2611\u2614\u2615\u2618\u261d\u2620\u2622\u2623\u2626\u262a"
    "\u262e\u262f\u2638-\u263a\u2640\u2642\u2648-\u2653\u265f\u2660\u2663\u2665\u2666"
    "\u2668\u267b\u267e\u267f\u2692-\u2697\u2699\u269b\u269c\u26a0\u26a1\u26a7\u26aa"
    "\u26ab\u26b0\u26b1\u26bd\u26be\u26c4\u26c5\u26c8\u26ce\u26cf\u26d1\u26d3\u26d4"
    "\u26e9\u26ea\u26f0-\u26f5\u26f7-\u26fa\u26fd\u2702\u2705\u2708-\u270d\u270f\u2712"
    "\u2714\u2716\u271d\u2721\u2728\u2733\u2734\u2744\u2747\u274c\u274e\u2753-\u2755"
    "\u2757\u2763\u2764\u2795-\u2797\u27a1\u27b0\u27bf"
)
_BMP_PRESENTATION = "\u231a\u231b\u23e9-\u23ec\u23f0\u23f3\u25fd\u25fe\u2b1b\u2b1c\u2b50\u2b55"
_BMP_TEXT_DEFAULT = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u2328\u23cf\u23ed-\u23ef"
    "\u23f1\u23f2\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb\u25fc\u2934\u2935"
    "\u2b05-\u2b07\u3030\u303d\u3297\u3299"
)
# Supplementary pictographs: everything from mahjong tiles to the newest symbols, except the
# regional indicators (flags) and the skin-tone modifiers, which are matched on their own.
_SUPPLEMENTARY = "\U0001f000-\U0001f1e5\U0001f200-\U0001f3fa\U0001f400-\U0001faff"
REGIONAL = "\U0001f1e6-\U0001f1ff"
TONES = "\U0001f3fb-\U0001f3ff"
VS16 = "\ufe0f"
VS15 = "\ufe0e"
ZWJ = "\u200d"
KEYCAP = "\u20e3"
TAGS = "\U000e0020-\U000e007e"
CANCEL_TAG = "\U000e007f"

_BASE = (
    f"(?:[{_BMP_PICTOGRAPHS}{_BMP_PRESENTATION}{_SUPPLEMENTARY}][{VS16}{VS15}]?"
    f"|[{_BMP_TEXT_DEFAULT}]{VS16})"
)
_ELEMENT = f"(?:{_BASE}[{TONES}]?|[{TONES}])"
_JOINED = f"(?:[{_BMP_TEXT_DEFAULT}]{VS16}?|{_ELEMENT})"  # after a ZWJ, ♀ needs no VS16
_SEQUENCE = (
    f"\U0001f3f4[{TAGS}]+{CANCEL_TAG}"  # 🏴󠁧󠁢󠁳󠁣󠁴󠁿 subdivision flags
    f"|[{REGIONAL}]{{1,2}}"  # 🇬🇧 country flags (a lone indicator is still drawn)
    f"|[0-9#*]{VS16}?{KEYCAP}"  # 1️⃣ keycaps
    f"|{_ELEMENT}(?:{ZWJ}{_JOINED})*"
)
EMOJI_RE = re.compile(_SEQUENCE)
"""One match per emoji as displayed: ZWJ sequences, flags, keycaps, skin tones included."""

TONE_NAMES = {
    "\U0001f3fb": "light",
    "\U0001f3fc": "medium-light",
    "\U0001f3fd": "medium",
    "\U0001f3fe": "medium-dark",
    "\U0001f3ff": "dark",
}
# Pictographs in U+2600..U+27BF that phones draw as emoji even without VS16.
_DEFAULT_EMOJI = re.compile(
    f"[{_BMP_PRESENTATION}\u2614\u2615\u2648-\u2653\u267f\u2693\u26a1\u26aa\u26ab\u26bd"
    "\u26be\u26c4\u26c5\u26ce\u26d4\u26ea\u26f2\u26f3\u26f5\u26fa\u26fd\u2705\u270a"
    "\u270b\u2728\u274c\u274e\u2753-\u2755\u2757\u2795-\u2797\u27b0\u27bf]"
)
_TONE_STRIP = str.maketrans(dict.fromkeys(map(ord, TONE_NAMES), None) | {ord(VS15): VS16})
_CANDIDATE = re.compile("[\u20e3-\U0010ffff]")
"""Every emoji holds a code point from U+20E3 (keycap) up; a cheap first search."""
_LAST_IS_EMOJI = re.compile(f"(?:{_SEQUENCE})$")

LAUGHING_EMOJI = ("😂", "🤣", "😆", "😹")


def find_emoji(text: str) -> list[str]:
    """Every emoji in `text`, in order, one string per displayed emoji."""
    if text.isascii() or (first := _CANDIDATE.search(text)) is None:
        return []
    return EMOJI_RE.findall(text, max(0, first.start() - 2))


def normalize(emoji: str) -> str:
    """The emoji without its skin tone, spelled as Unicode's fully-qualified form.

    A lone symbol that defaults to text presentation gets VS16 (`❤` becomes `❤️`); one that
    is drawn as emoji anyway loses a redundant VS16 (`✨️` becomes `✨`).
    """
    key = emoji.translate(_TONE_STRIP)
    base = key.rstrip(VS16)
    if len(base) == 1 and base < "\U00010000":
        return base if _DEFAULT_EMOJI.match(base) else base + VS16
    return key


def ends_with_emoji(text: str) -> bool:
    """True when the last visible thing in `text` is an emoji."""
    text = text.rstrip()
    return bool(text) and not text[-1].isascii() and _LAST_IS_EMOJI.search(text) is not None


def emoji_profile(texts: Sequence[str], *, top: int = 15) -> EmojiProfile:
    """Emoji rate, favourites, where they sit in a message, repeats and skin tones."""
    counts: Counter[str] = Counter()
    positions = Counter({"only": 0, "end": 0, "start": 0, "inline": 0})
    run_lengths = Counter({"1": 0, "2": 0, "3": 0, "4+": 0})
    tones = Counter(dict.fromkeys(TONE_NAMES.values(), 0))
    total = toned = with_emoji = 0
    keys: dict[str, tuple[str, str | None]] = {}
    finditer, candidate = EMOJI_RE.finditer, _CANDIDATE.search
    for text in texts:
        if text.isascii():
            continue
        first = candidate(text)
        if first is None:
            continue
        matches = list(finditer(text, max(0, first.start() - 2)))
        if not matches:
            continue
        with_emoji += 1
        total += len(matches)
        head = not text[: matches[0].start()].strip()
        tail = not text[matches[-1].end() :].strip()
        if head and tail:
            positions[_only_or_end(text, matches)] += 1
        else:
            positions["end" if tail else "start" if head else "inline"] += 1
        run, previous, previous_end = 0, "", -1
        for match in matches:
            found = match.group()
            known = keys.get(found)
            if known is None:
                known = keys[found] = (normalize(found), _tone(found))
            key, tone = known
            counts[key] += 1
            if tone is not None:
                tones[tone] += 1
                toned += 1
            if key == previous and match.start() == previous_end:
                run += 1
            else:
                if run:
                    run_lengths[_run_bucket(run)] += 1
                run = 1
            previous, previous_end = key, match.end()
        run_lengths[_run_bucket(run)] += 1
    runs = sum(run_lengths.values())
    return EmojiProfile(
        emoji=total,
        per_message=_ratio(total, len(texts)) or 0.0,
        message_share=_ratio(with_emoji, len(texts)) or 0.0,
        top=top_forms(counts, top),
        position={k: _ratio(v, with_emoji) or 0.0 for k, v in positions.items()},
        runs=runs,
        repeated_share=_ratio(runs - run_lengths["1"], runs) or 0.0,
        run_lengths=dict(run_lengths),
        skin_tones=dict(tones),
        toned_share=_ratio(toned, total) or 0.0,
        laughing=sum(counts[normalize(face)] for face in LAUGHING_EMOJI),
    )


def _tone(emoji: str) -> str | None:
    for tone, name in TONE_NAMES.items():
        if tone in emoji:
            return name
    return None


def _only_or_end(text: str, matches: list[re.Match[str]]) -> str:
    """A message that starts and ends with emoji: "only" if nothing but emoji and spaces."""
    gaps = (text[a.end() : b.start()] for a, b in pairwise(matches))
    return "only" if all(not gap.strip() for gap in gaps) else "end"


def _run_bucket(run: int) -> str:
    return "4+" if run >= 4 else str(run)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


_TAIL = re.compile(
    f"[{_BMP_PICTOGRAPHS}{_BMP_PRESENTATION}{_SUPPLEMENTARY}{REGIONAL}{TONES}"
    f"{VS16}{KEYCAP}{CANCEL_TAG}]"
)


def is_emoji_tail(char: str) -> bool:
    """True when `char` can be the last code point of an emoji (a cheap per-character test)."""
    return _TAIL.match(char) is not None
