"""The persona's past exchanges, searchable by how well their context matches a live chat.

An exchange is one reply the persona really sent, with the few turns before it. The index
is built from the training split of a dataset only (already scrubbed), so nothing of an
evaluation conversation can come back. Matching is Okapi BM25 over the contexts, each
context turn weighted by how close it is to the reply (BM25F-style), with a mild boost for
exchanges from the same part of day; docs/retrieval.md has the formula and the numbers.

    index = ExchangeIndex.from_dataset_dir("out/dataset")
    index.save("out/exchanges.npz")
    best = ExchangeIndex.load("out/exchanges.npz").search(history, k=5, now=now)
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any, Literal, Protocol
from zipfile import BadZipFile

import numpy as np
import numpy.typing as npt

from bot.errors import BotError
from style.profile import EMOJI_RE
from style.profile.emoji import normalize as normalize_emoji
from style.profile.lexicon import (
    WORD_RE,
    clean,
    greeting,
    is_stretched,
    laugh_family,
    squeezed,
)
from training.dataset.persona_card import PARTS_OF_DAY
from training.dataset.samples import BUBBLE_SEPARATOR, CONVERSATION_START, Sample

__all__ = [
    "CONTEXT_TURNS",
    "INDEX_VERSION",
    "TIME_BOOST",
    "TURN_WEIGHTS",
    "ContextTurn",
    "Exchange",
    "ExchangeIndex",
    "ExchangeIndexError",
    "ScoredExchange",
    "TurnLike",
    "only_greeting",
    "part_of_day",
    "reply_key",
    "tokenize",
]

logger = logging.getLogger(__name__)

INDEX_VERSION = 1
"""Bumped whenever the saved file's layout or the scoring changes; older files are refused."""

CONTEXT_TURNS = 4
"""Turns kept before each reply (the user turn answered, and a little before)."""

TURN_WEIGHTS = (1.0, 0.4, 0.3, 0.15)
"""Weight of a context turn by its distance from the reply: the user turn being answered,
the persona's turn before it, the user turn before that, and one more. The same weights
apply to the live history, counted back from its last turn."""

K1, B = 1.2, 0.75
"""Okapi BM25's term-frequency saturation and length normalisation."""

TIME_BOOST = 0.1
"""Score multiplier bonus (x1.1) for an exchange from the same part of day as `now`."""

Role = Literal["user", "assistant"]
Source = Literal["match", "opener", "greeting", "generic"]

_PARTS = tuple(name for _, name in PARTS_OF_DAY)
_PART_OF_HOUR = tuple(
    next(name for start, name in reversed(PARTS_OF_DAY) if hour >= start) for hour in range(24)
)
_SYSTEM_TIME = re.compile(r"It is \w+ (night|morning|afternoon|evening)\.\s*$")
_TOKEN_RE = re.compile(f"{WORD_RE.pattern}|\x01|{EMOJI_RE.pattern}")
"""A word (the style profile's), a chunk separator, or one emoji as displayed."""
_CHUNK = 20_000
_BOOST = np.float32(1.0 + TIME_BOOST)
_PARTITION_AT = 4096


class ExchangeIndexError(BotError):
    """An exchange index cannot be built or read."""


class TurnLike(Protocol):
    """What a turn needs to be searched with: `ChatTurn`, `ContextTurn` and dataset `Turn`."""

    @property
    def role(self) -> Role: ...

    @property
    def bubbles(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class ContextTurn:
    """One side's consecutive messages before a past reply (like `ChatTurn`, without time)."""

    role: Role
    bubbles: tuple[str, ...]

    @property
    def text(self) -> str:
        """The bubbles joined the way the training data joins them."""
        return BUBBLE_SEPARATOR.join(self.bubbles)


@dataclass(frozen=True, slots=True)
class Exchange:
    """A reply the persona sent, with the turns before it (oldest first, last one a user turn).

    `hour` is the reply's wall-clock hour when the source has it; `part_of_day` ("night",
    "morning", "afternoon", "evening") also when only a dataset's time line gives it.
    """

    id: str
    context: tuple[ContextTurn, ...]
    reply: tuple[str, ...]
    reply_id: str
    """`reply_key(reply)`: equal for replies that differ only in case or spacing."""
    hour: int | None = None
    part_of_day: str | None = None

    @property
    def opener(self) -> bool:
        """True when the persona started the conversation with this reply."""
        return bool(self.context) and self.context[-1].bubbles == (CONVERSATION_START,)


@dataclass(frozen=True, slots=True)
class ScoredExchange:
    """A search result: `source` says whether it matched the context or is a fallback."""

    exchange: Exchange
    score: float
    source: Source


def tokenize(text: str) -> list[str]:
    """Search tokens: casefolded words, laughs as their family, stretched words squeezed, emoji.

    Words are the style profile's (`WORD_RE`, `clean`: numbers dropped); "hahahah" and
    "haha" are both "haha", "sooo" gives "so" and "soo", each emoji is one token without
    its skin tone.
    """
    matches = _TOKEN_RE.findall(text.replace("\x01", " ").casefold())
    return list(chain.from_iterable(map(_raw_tokens, matches)))


@functools.lru_cache(maxsize=1 << 18)
def _raw_tokens(raw: str) -> tuple[str, ...]:
    """One match's tokens; cached, as words repeat and laughs take nine regexes."""
    if not WORD_RE.match(raw):
        return (normalize_emoji(raw),)
    word = clean(raw)
    if not word:
        return ()
    family = laugh_family(word)
    if family is not None:
        return (family,)
    if is_stretched(word):
        one, two = squeezed(word)
        return (one,) if one == two else (one, two)
    return (word,)


def only_greeting(bubbles: Sequence[str]) -> bool:
    """True for a turn that only greets ("heyyy", "hi maya!", "good morning 🌞"): a greeting
    and at most one more word (a name), nothing else."""
    text = " ".join(bubbles)
    found = greeting(text)
    if found is None or text == CONVERSATION_START:
        return False
    return len(WORD_RE.findall(text)) <= len(found.split()) + 1


def _greets(exchange: Exchange) -> bool:
    """Her reply to a bare greeting, or a conversation she opened with one ("hiii", ...)."""
    if not exchange.context:
        return False
    last = exchange.context[-1]
    if exchange.opener:
        return greeting(exchange.reply[0]) is not None
    return last.role == "user" and only_greeting(last.bubbles)


def reply_key(bubbles: Sequence[str]) -> str:
    """The id of a reply's wording: same for replies differing only in case and spacing."""
    text = " ".join(" ".join(bubbles).split()).casefold()
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def part_of_day(hour: int) -> str:
    """The part of day of a wall-clock hour (0-23), as the persona card names it."""
    return _PART_OF_HOUR[hour]


def _exchange(
    context: Sequence[ContextTurn],
    reply: tuple[str, ...],
    hour: int | None,
    part: str | None,
) -> Exchange:
    turns = tuple(context[-CONTEXT_TURNS:])
    key = reply_key(reply)
    return Exchange(
        id=_exchange_id(key, turns),
        context=turns,
        reply=reply,
        reply_id=key,
        hour=hour,
        part_of_day=part_of_day(hour) if hour is not None else part,
    )


def _exchange_id(reply_id: str, context: Sequence[ContextTurn]) -> str:
    """The id of (reply, user turn answered): what de-duplication treats as one exchange."""
    last = context[-1].text.casefold() if context else ""
    return hashlib.blake2b(f"{reply_id}\x00{last}".encode(), digest_size=8).hexdigest()


def _deduplicated(exchanges: Iterable[Exchange]) -> list[Exchange]:
    """One exchange per (user turn answered, reply), keeping the longest context seen."""
    kept: dict[tuple[str, str], int] = {}
    out: list[Exchange] = []
    for exchange in exchanges:
        last = exchange.context[-1].text.casefold() if exchange.context else ""
        key = (exchange.reply_id, last)
        position = kept.get(key)
        if position is None:
            kept[key] = len(out)
            out.append(exchange)
        elif len(exchange.context) > len(out[position].context):
            out[position] = exchange
    return out


class ExchangeIndex:
    """BM25 over the contexts of the persona's past replies, plus fallback pools.

    Postings are one CSR layout: the token with id t has documents `docs[offsets[t]:
    offsets[t + 1]]` and, aligned, their precomputed BM25 term scores `impacts` (idf times
    saturated weighted term frequency), so a query is a few slice-adds into one score array.
    """

    def __init__(
        self,
        exchanges: Sequence[Exchange],
        vocabulary: dict[str, int],
        offsets: npt.NDArray[np.int64],
        docs: npt.NDArray[np.int32],
        impacts: npt.NDArray[np.float32],
    ) -> None:
        """Use `build`, `from_samples`, `from_dataset_dir` or `load` instead."""
        self._exchanges = tuple(exchanges)
        self._vocabulary = vocabulary
        # postings held as intp: numpy converts int32 fancy indices to intp on every use,
        # which took half of a search's time (docs/benchmarks.md, "Persona engine")
        self._offsets, self._impacts = offsets, impacts
        self._docs = np.asarray(docs, dtype=np.intp)
        self._by_id = {exchange.id: i for i, exchange in enumerate(self._exchanges)}
        self._groups: dict[str, int] = {}
        setdefault = self._groups.setdefault
        self._group = np.fromiter(
            (setdefault(e.reply_id, len(self._groups)) for e in self._exchanges), np.int64
        )
        self._part = np.fromiter(
            (_PARTS.index(e.part_of_day) if e.part_of_day else -1 for e in self._exchanges),
            np.int8,
        )
        self._opener = np.fromiter((e.opener for e in self._exchanges), np.bool_)
        self._greeted: npt.NDArray[np.bool_] | None = None  # built on the first greeting
        self._fallbacks: dict[
            tuple[Source, int | None], tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
        ] = {}
        self._chars: npt.NDArray[np.float64] | None = None

    # --- building ------------------------------------------------------------------------

    @classmethod
    def build(cls, exchanges: Iterable[Exchange]) -> ExchangeIndex:
        """Index `exchanges` (de-duplicated first) for BM25 search.

        Every distinct turn text is tokenised once, in large joined chunks; the weighted
        term frequencies, document lengths and BM25 impacts are then numpy array work.
        """
        kept = _deduplicated(exchanges)
        n = max(len(kept), 1)
        texts: dict[tuple[str, ...], int] = {}
        docs: list[int] = []
        turns: list[int] = []
        weights: list[float] = []
        for d, exchange in enumerate(kept):
            for turn, weight in zip(reversed(exchange.context), TURN_WEIGHTS, strict=False):
                if turn.bubbles != (CONVERSATION_START,):
                    docs.append(d)
                    turns.append(texts.setdefault(turn.bubbles, len(texts)))
                    weights.append(weight)
        vocabulary: dict[str, int] = {}
        starts, flat = _tokenized(list(map(BUBBLE_SEPARATOR.join, texts)), vocabulary)
        turn_of = np.asarray(turns, dtype=np.int64)
        sizes = starts[turn_of + 1] - starts[turn_of]
        # the token positions of every (document, turn) occurrence, concatenated
        first = np.repeat(starts[turn_of] - np.cumsum(sizes) + sizes, sizes)
        tokens = flat[first + np.arange(first.size)]
        docs_of = np.repeat(np.asarray(docs, dtype=np.int64), sizes)
        token_weights = np.repeat(np.asarray(weights, dtype=np.float64), sizes)
        lengths = np.bincount(docs_of, weights=token_weights, minlength=len(kept))
        unique, inverse = np.unique(tokens * n + docs_of, return_inverse=True)
        tf = np.bincount(inverse, weights=token_weights)
        token_of, doc_of = np.divmod(unique, n)
        df = np.bincount(token_of, minlength=len(vocabulary))
        offsets = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(df, out=offsets[1:])
        idf = np.log1p((len(kept) - df + 0.5) / (df + 0.5))
        average = float(lengths.mean()) if lengths.size and lengths.mean() > 0 else 1.0
        norm = K1 * (1.0 - B + B * lengths / average)
        impacts = idf[token_of] * tf * (K1 + 1.0) / (tf + norm[doc_of])
        logger.info("indexed %d exchanges, %d distinct tokens", len(kept), len(vocabulary))
        return cls(kept, vocabulary, offsets, doc_of.astype(np.int32), impacts.astype(np.float32))

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> ExchangeIndex:
        """Index every trained persona turn of the training samples, with the turns before it.

        Samples of the eval split are left out, so evaluating the retrieval persona stays
        honest; context-only persona turns (`train=False`) are left out as the model never
        learns them either. The hour comes from each reply's timestamp (`Turn.ts`), else the
        part of day from the sample's time-of-day line, if the dataset wrote one.
        """
        exchanges = []
        for sample in samples:
            if sample.split != "train":
                continue
            part = _system_part(sample.system)
            context = [ContextTurn(turn.role, turn.bubbles) for turn in sample.turns]
            for i, turn in enumerate(sample.turns):
                if turn.role != "assistant" or not turn.train or i == 0:
                    continue
                hour = turn.ts.hour if turn.ts is not None else None
                exchanges.append(_exchange(context[:i], turn.bubbles, hour, part))
        return cls.build(exchanges)

    @classmethod
    def from_dataset_dir(cls, path: str | os.PathLike[str]) -> ExchangeIndex:
        """Index the training split a `wa-persona dataset` folder holds (never `eval.jsonl`).

        Reads `openai_train.jsonl` when present (the same lines as `train.jsonl` with loss
        weights, so only trained replies are indexed), else `train.jsonl`, where every
        assistant turn counts. Lines carry no timestamps: the part of day comes from the
        system prompt's time-of-day line when the dataset was built with `time_of_day`.
        """
        folder = Path(path)
        sources = [folder / name for name in ("openai_train.jsonl", "train.jsonl")]
        source = next((path for path in sources if path.is_file()), None)
        if source is None:
            raise ExchangeIndexError(
                f"{folder} has no train.jsonl; build the dataset first (wa-persona dataset)"
            )
        exchanges = []
        with source.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    exchanges.extend(_line_exchanges(line, source, number))
        return cls.build(exchanges)

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to one `.npz` file: arrays plus a versioned JSON header.

        Turns are stored once (a reply is often the context of the next exchange), and
        exchanges as arrays of turn numbers, so loading builds few objects.
        """
        turns: dict[ContextTurn, int] = {}
        context_sizes, context_turns, reply_turns = [], [], []
        for e in self._exchanges:
            context_sizes.append(len(e.context))
            context_turns.extend(turns.setdefault(t, len(turns)) for t in e.context)
            reply = ContextTurn("assistant", e.reply)
            reply_turns.append(turns.setdefault(reply, len(turns)))
        header = {
            "version": INDEX_VERSION,
            "scoring": _scoring(),
            "vocabulary": list(self._vocabulary),
            "turns": [[t.role, t.bubbles] for t in turns],
            "ids": [e.id for e in self._exchanges],
            "reply_ids": [e.reply_id for e in self._exchanges],
        }
        starts = np.zeros(len(self._exchanges) + 1, dtype=np.int64)
        np.cumsum(context_sizes, out=starts[1:])
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            np.savez(
                out,
                header=np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), np.uint8),
                offsets=self._offsets,
                docs=self._docs.astype(np.int32),
                impacts=self._impacts,
                context_starts=starts,
                context_turns=np.asarray(context_turns, dtype=np.int32),
                reply_turns=np.asarray(reply_turns, dtype=np.int32),
                hours=np.asarray(
                    [-1 if e.hour is None else e.hour for e in self._exchanges], dtype=np.int8
                ),
                parts=self._part,
            )
        partial.replace(target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExchangeIndex:
        """Read an index written by `save`; refuses files of another version."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            header = json.loads(arrays["header"].tobytes().decode())
            version = header.get("version") if isinstance(header, dict) else None
            if version != INDEX_VERSION:
                raise ExchangeIndexError(
                    f"{path} is an exchange index of version {version}, this is version "
                    f"{INDEX_VERSION}; build it again from the dataset"
                )
            if header.get("scoring") != _scoring():
                raise ExchangeIndexError(
                    f"{path} was scored with other settings ({header.get('scoring')}); "
                    "build it again from the dataset"
                )
            turns = [ContextTurn(role, tuple(bubbles)) for role, bubbles in header["turns"]]
            starts = arrays["context_starts"].tolist()
            numbers = arrays["context_turns"].tolist()
            exchanges = [
                Exchange(
                    id=id_,
                    context=tuple(turns[j] for j in numbers[starts[i] : starts[i + 1]]),
                    reply=turns[reply].bubbles,
                    reply_id=reply_id,
                    hour=None if hour < 0 else hour,
                    part_of_day=None if part < 0 else _PARTS[part],
                )
                for i, (id_, reply_id, reply, hour, part) in enumerate(
                    zip(
                        header["ids"],
                        header["reply_ids"],
                        arrays["reply_turns"].tolist(),
                        arrays["hours"].tolist(),
                        arrays["parts"].tolist(),
                        strict=True,
                    )
                )
            ]
            vocabulary = {token: i for i, token in enumerate(header["vocabulary"])}
            offsets, docs, impacts = arrays["offsets"], arrays["docs"], arrays["impacts"]
        except (OSError, ValueError, KeyError, TypeError, IndexError, BadZipFile) as exc:
            raise ExchangeIndexError(
                f"{path} is not an exchange index ({exc}); build it again from the dataset"
            ) from exc
        return cls(exchanges, vocabulary, offsets, docs, impacts)

    # --- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._exchanges)

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        """Every indexed exchange, in index order."""
        return self._exchanges

    def search(
        self,
        history: Sequence[TurnLike],
        *,
        k: int,
        now: datetime | None = None,
        exclude: Collection[str] = (),
    ) -> list[ScoredExchange]:
        """The `k` best exchanges for a chat whose last turn is the one to answer.

        At most one exchange per distinct reply, best first; ties keep index order. When
        the history's last turn is `CONVERSATION_START` (or there is none) the persona's
        usual openers come back (`source="opener"`); when no context shares a token with
        the history, her most frequent replies (`source="generic"`). `exclude` holds
        exchange ids or reply ids (`Exchange.reply_id`, every exchange with that reply).
        `now` is the persona's wall-clock time; its part of day boosts exchanges from the
        same part by `TIME_BOOST`.
        """
        if k <= 0 or not self._exchanges:
            return []
        part = _PARTS.index(part_of_day(now.hour)) if now is not None else None
        banned = self._banned(exclude)
        if not history or history[-1].bubbles == (CONVERSATION_START,):
            found = self._fallback("opener", part, banned, k)
            return found or self._fallback("generic", part, banned, k)
        if only_greeting(history[-1].bubbles):
            # "hey" shares a token with many contexts and means none of them: answer as she
            # answered greetings or opened with one, else as she opens a conversation.
            found = self._fallback("greeting", part, banned, k)
            found = found or self._fallback("opener", part, banned, k)
            return found or self._fallback("generic", part, banned, k)
        candidates, values = self._matches(self._query(history), part, banned)
        if not candidates.size:
            return self._fallback("generic", part, banned, k)
        return self._top(candidates, values, k)

    def _query(self, history: Sequence[TurnLike]) -> dict[int, float]:
        """Query token ids and weights: a token weighs its latest turn's weight.

        `CONVERSATION_START` turns have no tokens, as in the index.
        """
        query: dict[int, float] = {}
        vocabulary = self._vocabulary
        for turn, weight in zip(reversed(history), TURN_WEIGHTS, strict=False):
            if turn.bubbles == (CONVERSATION_START,):
                continue
            for token in tokenize(BUBBLE_SEPARATOR.join(turn.bubbles)):
                t = vocabulary.get(token)
                if t is not None and query.get(t, 0.0) < weight:
                    query[t] = weight
        return query

    def _matches(
        self,
        query: dict[int, float],
        part: int | None,
        banned: npt.NDArray[np.bool_] | None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Exchanges sharing a token with the query, not banned, and their boosted scores.

        Term at a time: one scatter-add of weight x impacts per query token, in float32
        (twice as fast as float64). Pruning the long postings of common words (MaxScore)
        was tried and measured slower at 100k exchanges: binary searches cost more than
        the adds they save.
        """
        offsets, docs, impacts = self._offsets, self._docs, self._impacts
        scores = np.zeros(len(self._exchanges), dtype=np.float32)
        for t, weight in query.items():
            start, end = offsets[t], offsets[t + 1]
            scores[docs[start:end]] += np.float32(weight) * impacts[start:end]
        found = np.flatnonzero(scores)
        if banned is not None:
            found = found[~banned[found]]
        return found, scores[found] * self._boosts(found, part)

    def _boosts(
        self, candidates: npt.NDArray[np.int64], part: int | None
    ) -> npt.NDArray[np.float32]:
        if part is None:
            return np.ones(candidates.size, dtype=np.float32)
        return np.where(self._part[candidates] == part, _BOOST, np.float32(1.0))

    def _banned(self, exclude: Collection[str]) -> npt.NDArray[np.bool_] | None:
        if not exclude:
            return None
        groups = np.zeros(len(self._groups), dtype=np.bool_)
        groups[[self._groups[key] for key in exclude if key in self._groups]] = True
        banned = groups[self._group]
        banned[[self._by_id[key] for key in exclude if key in self._by_id]] = True
        return banned

    def _fallback(
        self, source: Source, part: int | None, banned: npt.NDArray[np.bool_] | None, k: int
    ) -> list[ScoredExchange]:
        """The first k of a fallback ranking (`_ranking`) that are not banned."""
        order, values = self._ranking(source, part)
        if banned is not None:
            keep = ~banned[order]
            order, values = order[keep], values[keep]
        exchanges = self._exchanges
        return [
            ScoredExchange(exchanges[d], value, source)
            for d, value in zip(order[:k].tolist(), values[:k].tolist(), strict=True)
        ]

    def _ranking(
        self, source: Source, part: int | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Openers, or all replies, ranked by how often the persona sent them.

        Score: the number of exchanges with that reply (for openers: opening a
        conversation), x (1 + `TIME_BOOST`) from the same part of day, plus 0.01 / (1 +
        characters), below any time boost, so shorter, more generic replies win a tie. One
        exchange per reply (its best); ties in index order; computed once per part of day.
        """
        key = (source, part)
        if key not in self._fallbacks:
            if self._chars is None:
                self._chars = np.fromiter(
                    (sum(map(len, e.reply)) for e in self._exchanges), np.float64
                )
            pool = self._pool(source)
            count = np.bincount(self._group[pool], minlength=len(self._groups))
            candidates = np.flatnonzero(pool)
            boosts = self._boosts(candidates, part).astype(np.float64)
            values = count[self._group[candidates]] * boosts + 0.01 / (
                1.0 + self._chars[candidates]
            )
            order = np.lexsort((candidates, -values))
            _, first = np.unique(self._group[candidates[order]], return_index=True)
            best = order[np.sort(first)]  # each reply's first place in the ranking
            self._fallbacks[key] = (candidates[best], values[best])
        return self._fallbacks[key]

    def _pool(self, source: Source) -> npt.NDArray[np.bool_]:
        """The exchanges a fallback ranks: openers, greetings (`_greets`), or all."""
        if source == "opener":
            return self._opener
        if source == "greeting":
            if self._greeted is None:
                self._greeted = np.fromiter(map(_greets, self._exchanges), np.bool_)
            return self._greeted
        return np.ones(len(self), dtype=np.bool_)

    def _top(
        self, candidates: npt.NDArray[np.int64], values: npt.NDArray[np.floating[Any]], k: int
    ) -> list[ScoredExchange]:
        """The best `k` matches with distinct replies, ties in index order."""
        exchanges = self._exchanges
        size = 16 * k + 64
        if candidates.size > max(_PARTITION_AT, size):
            # everything at least as good as the size-th best, ties included, so the
            # result is the full sort's whenever it holds k distinct replies
            threshold = -np.partition(-values, size - 1)[size - 1]
            head = np.flatnonzero(values >= threshold)
            found = self._distinct(candidates[head], values[head], k)
            if len(found) == k:
                return [ScoredExchange(exchanges[d], v, "match") for d, v in found]
        found = self._distinct(candidates, values, k)
        return [ScoredExchange(exchanges[d], v, "match") for d, v in found]

    def _distinct(
        self, candidates: npt.NDArray[np.int64], values: npt.NDArray[np.floating[Any]], k: int
    ) -> list[tuple[int, float]]:
        """(exchange, value) of the best candidate of each reply, best first, at most k."""
        order = np.lexsort((candidates, -values))
        seen: set[int] = set()
        found: list[tuple[int, float]] = []
        group = self._group
        for j in order.tolist():
            d = int(candidates[j])
            g = int(group[d])
            if g not in seen:
                seen.add(g)
                found.append((d, float(values[j])))
                if len(found) == k:
                    break
        return found


_BOUNDARY = -1
"""The token id of the separator between two texts tokenised in one chunk."""


class _TokenIds(dict[str, tuple[int, ...]]):
    """Raw match -> token ids, adding new tokens to the vocabulary on first sight."""

    def __init__(self, vocabulary: dict[str, int]) -> None:
        super().__init__({"\x01": (_BOUNDARY,)})
        self.vocabulary = vocabulary

    def __missing__(self, raw: str) -> tuple[int, ...]:
        vocabulary = self.vocabulary
        ids = tuple(vocabulary.setdefault(t, len(vocabulary)) for t in _raw_tokens(raw))
        self[raw] = ids
        return ids


def _tokenized(
    texts: list[str], vocabulary: dict[str, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Token ids of every text, flat, and where each text's start (CSR offsets).

    Texts are joined around a "\x01" separator, casefolded and matched with one regex
    call per chunk; each distinct match is mapped to ids once (`_TokenIds`).
    """
    ids = _TokenIds(vocabulary)
    parts: list[npt.NDArray[np.int64]] = []
    sizes: list[npt.NDArray[np.int64]] = []
    for at in range(0, len(texts), _CHUNK):
        chunk = [t.replace("\x01", " ") if "\x01" in t else t for t in texts[at : at + _CHUNK]]
        matches = _TOKEN_RE.findall(" \x01 ".join(chunk).casefold())
        found = np.fromiter(chain.from_iterable(map(ids.__getitem__, matches)), np.int64)
        cuts = np.flatnonzero(found == _BOUNDARY)
        edges = np.concatenate(([-1], cuts, [found.size]))
        sizes.append(np.diff(edges) - 1)
        parts.append(found[found != _BOUNDARY])
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    if sizes:
        np.cumsum(np.concatenate(sizes), out=starts[1:])
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return starts, flat


def _system_part(system: str) -> str | None:
    """The part of day of a system prompt's time line ("It is Tuesday evening."), if any."""
    found = _SYSTEM_TIME.search(system)
    return found.group(1) if found else None


def _line_exchanges(line: str, source: Path, number: int) -> list[Exchange]:
    """The exchanges of one dataset line: its trained assistant turns with their context."""
    try:
        messages: list[dict[str, Any]] = json.loads(line)["messages"]
        part = None
        turns: list[ContextTurn] = []
        exchanges = []
        for message in messages:
            role, content = message["role"], message["content"]
            if role == "system":
                part = _system_part(content)
                continue
            if role not in ("user", "assistant"):
                raise ValueError(f"unknown role {role!r}")
            bubbles = tuple(content.split(BUBBLE_SEPARATOR))
            if role == "assistant" and turns and message.get("weight", 1):
                exchanges.append(_exchange(turns, bubbles, None, part))
            turns.append(ContextTurn(role, bubbles))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ExchangeIndexError(
            f"{source} line {number} is not a chat sample ({exc}); write the dataset again "
            "with wa-persona dataset"
        ) from exc
    return exchanges


def _scoring() -> dict[str, Any]:
    """The scoring settings a saved index was made with (its impacts depend on them)."""
    return {"k1": K1, "b": B, "weights": list(TURN_WEIGHTS), "context_turns": CONTEXT_TURNS}
