"""The offline persona: she answers with her own past reply whose context best fits the chat.

No keys, no GPU, no network: an `ExchangeIndex` of the training split is searched with the
chat's history, and the best reply not yet used in this chat is sent. `Prompt.strength` 1
sends the best match verbatim; lower values sample among the top matches and vary them
lightly (elongations, laugh lengths, a reaction bubble borrowed from another match), never
with words the persona did not write. docs/retrieval.md has the details and the numbers.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence

from bot.backends.base import Prompt, Reply
from bot.errors import BackendUnavailable
from bot.exchanges import ExchangeIndex, ScoredExchange, reply_key
from style.profile import find_emoji
from style.profile.lexicon import WORD_RE, laugh_family

__all__ = ["RetrievalBackend"]

TOP_K = 8
"""Matches sampled from when strength is below 1."""
MEMORY = 1_000
"""Replies remembered per chat, so none comes back before this many others were sent."""
MAX_CHATS = 10_000
"""Chats remembered; the one idle longest is forgotten first."""
RECENT_TURNS = 50
"""History turns whose persona replies are never sent again."""
INLINE_LIMIT = 20_000
"""Indexes up to this many exchanges are searched on the event loop (well under 1 ms a
query); larger ones in a worker thread (a few ms at 100k, which would stall other chats)."""

_STRETCH = re.compile(r"([^\W\d_])\1{2,}")
"""A letter written three or more times ("sooo", "lmaooo")."""
_LAUGH = re.compile(r"\b((?:h[ae]){2,}|(?:j[ae]){2,})(h?)\b", re.IGNORECASE)
"""A laugh of repeated syllables ("hahaha", "hehe", "jajaja"), maybe ending in "h"."""


class RetrievalBackend:
    """Answers with the persona's best-matching past reply, never repeating one in a chat."""

    name = "retrieval"

    def __init__(
        self,
        index: ExchangeIndex,
        *,
        rng: random.Random | None = None,
        top_k: int = TOP_K,
        memory: int = MEMORY,
        max_chats: int = MAX_CHATS,
    ) -> None:
        self._index = index
        self._rng = rng or random.Random()
        self._top_k = max(1, top_k)
        self._memory = max(1, memory)
        self._max_chats = max(1, max_chats)
        self._used: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    async def reply(self, prompt: Prompt) -> Reply:
        """The persona's reply to the last turn of `prompt.history`."""
        started = time.perf_counter()
        if not len(self._index):
            raise BackendUnavailable(
                "the exchange index is empty; build it from a dataset's training split "
                "(ExchangeIndex.from_dataset_dir)"
            )
        recent = {
            reply_key(turn.bubbles)
            for turn in prompt.history[-RECENT_TURNS:]
            if turn.role == "assistant"
        }
        used = self._chat(prompt.chat_id)
        found = await self._search(prompt, used.keys() | recent)
        found = [r for r in found if r.exchange.reply_id not in used]  # another call's pick
        while not found and used:
            # every reply this chat could get was sent: the one sent longest ago comes back
            while used and used.popitem(last=False)[0] in recent:
                pass
            found = await self._search(prompt, used.keys() | recent)
        if not found:  # everything the index holds is in the recent history
            found = await self._search(prompt, ())
        strength = min(1.0, max(0.0, prompt.strength))
        chosen = _pick(found, strength, self._rng)
        bubbles = chosen.exchange.reply
        if strength < 1.0:
            bubbles = _varied(bubbles, [r for r in found if r is not chosen], strength, self._rng)
        used[chosen.exchange.reply_id] = None
        used.move_to_end(chosen.exchange.reply_id)
        while len(used) > self._memory:
            used.popitem(last=False)
        return Reply(bubbles=bubbles, backend=self.name, latency_s=time.perf_counter() - started)

    def _chat(self, chat_id: str) -> OrderedDict[str, None]:
        """The replies used in this chat, oldest first (created, and made most recent)."""
        used = self._used.get(chat_id)
        if used is None:
            used = self._used[chat_id] = OrderedDict()
            while len(self._used) > self._max_chats:
                self._used.popitem(last=False)
        self._used.move_to_end(chat_id)
        return used

    async def _search(self, prompt: Prompt, exclude: Collection[str]) -> list[ScoredExchange]:
        exclude = frozenset(exclude)
        if len(self._index) <= INLINE_LIMIT:
            return self._index.search(
                prompt.history, k=self._top_k, now=prompt.now, exclude=exclude
            )
        return await asyncio.to_thread(
            self._index.search, prompt.history, k=self._top_k, now=prompt.now, exclude=exclude
        )


def _pick(found: Sequence[ScoredExchange], strength: float, rng: random.Random) -> ScoredExchange:
    """The best result at strength 1; below, a softmax draw whose temperature grows as it falls.

    p_i ~ exp((s_i / s_best - 1) / T), T = 0.05 + 0.45 * (1 - strength): at 0.2 a match
    scoring 70% of the best is drawn half as often as the best; at 0.9, 25 times less.
    """
    if strength >= 1.0 or len(found) == 1:
        return found[0]
    best = found[0].score or 1.0
    temperature = 0.05 + 0.45 * (1.0 - strength)
    weights = [math.exp((r.score / best - 1.0) / temperature) for r in found]
    return rng.choices(found, weights=weights)[0]


def _varied(
    bubbles: tuple[str, ...],
    others: Sequence[ScoredExchange],
    strength: float,
    rng: random.Random,
) -> tuple[str, ...]:
    """The reply lightly varied, each change with probability (1 - strength) / 2.

    A stretched letter one longer or shorter (never below three), a laugh one syllable
    longer or shorter (never below two), and a reaction bubble (only emoji or laughs) taken
    from another top match. Nothing is invented: every word stays one the persona wrote.
    """
    chance = (1.0 - strength) / 2.0

    def stretch(match: re.Match[str]) -> str:
        if rng.random() >= chance:
            return match.group(0)
        size = len(match.group(0)) + rng.choice((-1, 1))
        return match.group(1) * max(3, size)

    def laugh(match: re.Match[str]) -> str:
        syllables = match.group(1)
        if rng.random() >= chance:
            return match.group(0)
        count = len(syllables) // 2 + rng.choice((-1, 1))
        return syllables[:2] * max(2, count) + match.group(2)

    out = [_LAUGH.sub(laugh, _STRETCH.sub(stretch, bubble)) for bubble in bubbles]
    if len(out) < 3 and rng.random() < chance:
        reactions = [
            bubble
            for other in others
            for bubble in other.exchange.reply
            if _is_reaction(bubble) and bubble not in out
        ]
        if reactions:
            out.append(rng.choice(reactions))
    return tuple(out)


def _is_reaction(bubble: str) -> bool:
    """A bubble of only emoji and written laughs ("😂😂", "hahah 💀")."""
    words = WORD_RE.findall(bubble.casefold())
    if not all(laugh_family(word) for word in words):
        return False
    return bool(words) or bool(find_emoji(bubble))
