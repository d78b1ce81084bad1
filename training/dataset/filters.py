"""Quality filters: which persona replies are worth training on, each removal counted.

They run on the persona's turns (a reply and the user turn before it), in this order; a
reply is counted by the first filter that removes it. A removed reply is never trained on
but stays in its conversation as context.

1. `media_only`: the reply has no words of the persona, only placeholders ("[photo]").
   The bot cannot send media, so it should not learn to answer with "[sticker]".
2. `url_only`: every bubble of the reply is a link (or a scrubbed "[URL]").
3. `long_paste`: a bubble longer than `max_bubble_chars` or than `long_bubble_factor` times
   the persona's 99th-percentile bubble: a forward or a paste, not how she writes.
4. `too_long`: the reply and the turn before it do not fit the token budget.
5. `duplicate` / `near_duplicate`: the reply and the user turn before it repeat an earlier
   reply of the same split, exactly or after `near_key` normalisation.
6. `eval_overlap`: a training reply whose key is also an evaluation reply's.
7. `frequent_reply`: beyond the cap, further training replies with the same normalised
   text ("ok", "haha", "😂") are thinned evenly over time.
8. `chat_share`: with several chats, the chats over `max_chat_share` are thinned evenly.

1-5 apply to both splits; 6-8 to training only, so the evaluation split keeps the real mix
of replies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence

import numpy as np

FILTERS: dict[str, str] = {
    "media_only": "reply is only media or deleted-message placeholders",
    "url_only": "reply is only links",
    "long_paste": "reply has a bubble too long to be typed (a paste or a forward)",
    "too_long": "reply and the turn before it exceed the token budget",
    "duplicate": "same reply to the same message as an earlier reply",
    "near_duplicate": "same reply to the same message after normalisation",
    "eval_overlap": "training reply that repeats an evaluation reply",
    "frequent_reply": "reply over the cap for one short reply such as 'ok' or 'haha'",
    "chat_share": "thinned so no chat exceeds its share of the training replies",
}
"""Every filter, in the order they run, with what it removes (for the dataset card)."""

URL_TAG = "[URL]"
"""What the scrubber writes for a link; a reply of only these is link-only too."""

_URL_ONLY = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+|\[URL\]", re.IGNORECASE)
_PUNCTUATION = re.compile(r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~¡¿«»‹›‘’‚“”„…–—·•]+")
_STRETCH = re.compile(r"([^\W\d_]|[^\w\s])\1+")  # letters, emoji; not digits
_LAUGH = re.compile(r"\b(?:[aeh]?(?:[hj][aeiou]+){2,}[hj]?|l+o+l+|l+m+a+o+)\b")


def new_counts() -> dict[str, int]:
    """Every filter at zero, in `FILTERS` order."""
    return dict.fromkeys(FILTERS, 0)


def near_key(text: str) -> str:
    """Text reduced to what a near-duplicate shares with it.

    Case folded; punctuation dropped; repeated letters and emoji kept once ("sooo" -> "so",
    "goood" and "good" -> "god", "😂😂😂" -> "😂"; digits stay, "11" is not "1"); laughs
    reduced to "haha" ("hahahah", "jajaja", "hehe", "lmaooo", "lol"); whitespace collapsed.
    Emoji are kept, so "😂" and "❤️" differ.
    """
    text = _PUNCTUATION.sub(" ", text.casefold())
    text = _LAUGH.sub("haha", _STRETCH.sub(r"\1", text))
    return " ".join(text.split())


class NearKeys:
    """`near_key` of whole turns, bubble by bubble: each distinct bubble is normalised once.

    Chats repeat their short bubbles ("ok", "haha", "omg") far more than whole turns, so
    the cache makes the regex work proportional to the distinct bubbles.
    """

    def __init__(self) -> None:
        self._cache = _KeyCache()

    def __call__(self, bubbles: Sequence[str]) -> str:
        """The turn's key: its bubbles' keys joined by U+001F."""
        if len(bubbles) == 1:
            return self._cache[bubbles[0]]
        return "\x1f".join(map(self._cache.__getitem__, bubbles))


class _KeyCache(dict[str, str]):
    def __missing__(self, text: str) -> str:
        key = self[text] = near_key(text)
        return key


def has_link(text: str) -> bool:
    """A quick test that `text` may hold a link (no regex): the gate before `is_url_only`."""
    return "://" in text or "www." in text or "WWW." in text or URL_TAG in text


def is_url_only(bubbles: Sequence[str]) -> bool:
    """True when every bubble is nothing but links."""
    return all(_URL_ONLY.sub("", bubble).strip() == "" for bubble in bubbles) and bool(bubbles)


def long_bubble_limit(lengths: Sequence[int] | np.ndarray, max_chars: int, factor: float) -> int:
    """The longest bubble a trained reply may have: `max_chars`, or `factor` x the p99."""
    if factor <= 0 or len(lengths) == 0:
        return max_chars
    p99 = float(np.percentile(np.asarray(lengths, dtype=np.int64), 99))
    return min(max_chars, max(1, math.ceil(factor * p99)))


def keep_first(keys: Sequence[Hashable]) -> list[bool]:
    """True for the first occurrence of each key."""
    # built backwards, each key's dict entry ends on its earliest position
    first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
    keep = np.zeros(len(keys), dtype=np.bool_)
    keep[np.fromiter(first.values(), np.int64, len(first))] = True
    return keep.tolist()


def reply_cap(samples: int, repeats: int | None, share: float) -> int | None:
    """How many samples one normalised reply may have: the larger of `repeats` and share."""
    if repeats is None:
        return None
    return max(repeats, math.floor(share * samples))


def cap_repeats(keys: Sequence[Hashable], cap: int) -> list[bool]:
    """Keep at most `cap` items per key, spread evenly over their occurrences (in order)."""
    where: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        where.setdefault(key, []).append(i)
    keep = [True] * len(keys)
    for positions in where.values():
        if len(positions) > cap:
            _thin(positions, cap, keep)
    return keep


def chat_limits(counts: dict[int, int], share: float) -> dict[int, int]:
    """Per chat, the most samples it may keep so that none exceeds `share` of the total.

    The largest chats are lowered to one common level L: the highest L with
    L <= share x sum(min(count, L)). A share below 1 / (number of chats) cannot hold; it is
    raised to that, which evens the chats out.
    """
    if len(counts) < 2:
        return dict(counts)
    share = max(share, 1.0 / len(counts))
    sizes = list(counts.values())

    def fits(level: int) -> bool:
        return level <= share * sum(min(n, level) for n in sizes) + 1e-9

    low, high = 0, max(sizes)  # fits(0) holds; the set where it holds is an interval
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return {chat: min(n, low) for chat, n in counts.items()}


def thin_to(groups: Sequence[Hashable], limits: dict[Hashable, int]) -> list[bool]:
    """Keep at most `limits[group]` items of each group, spread evenly over them."""
    where: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        where.setdefault(group, []).append(i)
    keep = [True] * len(groups)
    for group, positions in where.items():
        if len(positions) > limits.get(group, len(positions)):
            _thin(positions, limits[group], keep)
    return keep


def count_removed(keep: Sequence[bool]) -> int:
    """How many items a keep-mask removes."""
    return len(keep) - sum(keep)


def _thin(positions: list[int], cap: int, keep: list[bool]) -> None:
    chosen = set(np.linspace(0, len(positions) - 1, cap).round().astype(int).tolist())
    if len(chosen) < cap:  # rounding collided; top up with the first unchosen ones
        for index in range(len(positions)):
            if len(chosen) == cap:
                break
            chosen.add(index)
    for index, position in enumerate(positions):
        if index not in chosen:
            keep[position] = False
