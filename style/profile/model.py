"""The typed, versioned style profile: plain dataclasses that round-trip through JSON.

Everything a later stage needs is a number, a short list or a summary of a distribution;
no message text is stored except the short signature words, phrases, greetings and sign-offs
themselves. `Profile.to_json()` / `Profile.from_json()` round-trip exactly.
"""

from __future__ import annotations

import json
import random
import types
import typing
from collections import Counter
from dataclasses import dataclass, field, fields, is_dataclass
from itertools import pairwise
from typing import Any, TypeVar

from style.profile.errors import ProfileFormatError

PROFILE_VERSION = 1
"""Bumped whenever a field changes meaning or disappears; readers refuse other versions."""

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
"""The knots `Distribution` keeps: min, p10, p25, median, p75, p90, max."""


@dataclass(slots=True)
class Histogram:
    """Counts between bin edges (`len(edges) == len(counts) + 1`), in the measured unit.

    Values outside the edges are counted in the first or last bin. `log` says the edges are
    evenly spaced in log10 (latencies, gaps), so charts should use a log axis.
    """

    edges: list[float]
    counts: list[int]
    log: bool = False


@dataclass(slots=True)
class Distribution:
    """Summary of a sample: count, mean and quantiles (None when the sample is empty)."""

    count: int
    mean: float | None = None
    min: float | None = None
    p10: float | None = None
    p25: float | None = None
    median: float | None = None
    p75: float | None = None
    p90: float | None = None
    max: float | None = None
    histogram: Histogram | None = None

    def quantile(self, q: float) -> float:
        """The q-quantile, interpolated linearly between the stored knots (0 <= q <= 1)."""
        knots = self.knots()
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be between 0 and 1, not {q}")
        for (q0, v0), (q1, v1) in pairwise(knots):
            if q <= q1:
                return v0 if q1 == q0 else v0 + (v1 - v0) * (q - q0) / (q1 - q0)
        return knots[-1][1]

    def sample(self, rng: random.Random) -> float:
        """A random draw that follows the stored quantiles (inverse-CDF sampling)."""
        return self.quantile(rng.random())

    def knots(self) -> list[tuple[float, float]]:
        """(quantile, value) pairs from min to max; raises on an empty distribution."""
        values = (self.min, self.p10, self.p25, self.median, self.p75, self.p90, self.max)
        if self.count == 0 or any(v is None for v in values):
            raise ValueError("the distribution is empty")
        return [(q, float(v)) for q, v in zip(QUANTILES, values, strict=True) if v is not None]


@dataclass(slots=True)
class Term:
    """A word or phrase and how much more (z > 0) or less the persona uses it than the others."""

    term: str
    count: int
    others: int
    z: float


@dataclass(slots=True)
class Form:
    """A written form (a greeting, a laugh, an emoji) and how often the persona used it."""

    form: str
    count: int


@dataclass(slots=True)
class ProfileOptions:
    """The settings a profile was built with, so it can be rebuilt the same way."""

    gap_minutes: float | None = None
    """Conversation gap override; None lets the data choose it."""
    min_messages: int = 50
    top_terms: int = 25
    min_term_count: int = 5
    mattr_window: int = 100


@dataclass(slots=True)
class Source:
    """One chat the profile was built from, identified by a hash of its messages."""

    sha256: str
    dialect: str
    messages: int
    persona_messages: int
    participants: int
    group: bool
    first: str | None
    last: str | None
    resolution_s: int
    """60 when every timestamp falls on a whole minute (most Android exports), else 1."""


@dataclass(slots=True)
class MessageCounts:
    """The persona's messages by kind; only text messages feed length and lexicon."""

    messages: int
    text: int
    media: int
    deleted: int
    system: int
    edited: int
    media_share: float | None
    deleted_share: float | None
    media_types: dict[str, int]
    chat_messages: int
    """Messages by everyone (system notices excluded) in the chats the persona wrote in."""
    persona_share: float | None


@dataclass(slots=True)
class Segmentation:
    """How messages were cut into conversations: a silence longer than `gap_s` starts one."""

    gap_s: float
    method: str
    """"valley", "tukey", "override" or "default"; see docs/profile.md."""
    gaps: int
    histogram: Histogram
    conversations: int
    with_persona: int


@dataclass(slots=True)
class LengthProfile:
    """How long the persona's messages and bursts are."""

    chars: Distribution
    words: Distribution
    burst_size: Distribution
    """Messages per persona turn (a turn: consecutive messages by one author)."""
    burst_gap_s: Distribution
    """Seconds between consecutive messages of one turn (second-resolution chats only)."""
    multi_message_share: float | None
    turn_chars: Distribution


@dataclass(slots=True)
class TypingSpeed:
    """Characters of a burst's next message divided by the seconds before it was sent."""

    chars_per_second: float | None
    pairs: int
    rate: Distribution


@dataclass(slots=True)
class TimingProfile:
    """When and how fast the persona writes. Hours are the export's local wall-clock hours."""

    resolution_s: int
    """1 when latencies come from second-resolution chats, 60 when only minutes were known."""
    latency_s: Distribution
    latency_by_hour: list[Distribution]
    """24 entries, indexed by the hour of the message being answered."""
    replied_within: dict[str, float | None]
    activity: list[list[int]]
    """7 x 24 message counts, weekday (0 = Monday) by hour."""
    hours: list[float]
    weekdays: list[float]
    part_of_day: dict[str, float]
    typing: TypingSpeed
    starts_by_hour: list[int]
    """Conversations the persona opened, by the hour of her first message."""
    ends_by_hour: list[int]
    """Conversations where the persona had the last word, by the hour of that message."""


@dataclass(slots=True)
class Laughter:
    """How the persona laughs in writing."""

    per_message: float | None
    families: dict[str, int]
    forms: list[Form]


@dataclass(slots=True)
class Elongation:
    """Stretched words ("sooo", "yesss")."""

    per_message: float | None
    forms: list[Form]
    words: list[Form]
    """The words behind the stretched forms ("sooo" and "soooo" both count for "so")."""


@dataclass(slots=True)
class Abbreviations:
    """Chat abbreviations and slang from a fixed multilingual list ("u", "idk", "tbh", "q")."""

    per_message: float | None
    per_100_words: float | None
    forms: list[Form]


@dataclass(slots=True)
class Richness:
    """Vocabulary richness: moving-average type-token ratio over `window` tokens."""

    mattr: float | None
    window: int
    tokens: int


@dataclass(slots=True)
class LexiconProfile:
    """Which words the persona favours, and how she greets, signs off, laughs and abbreviates."""

    tokens: int
    types: int
    signature_words: list[Term]
    signature_phrases: list[Term]
    avoided_words: list[Term]
    greetings: list[Form]
    greeting_share: float | None
    sign_offs: list[Form]
    sign_off_share: float | None
    laughter: Laughter
    elongation: Elongation
    abbreviations: Abbreviations
    richness: Richness


@dataclass(slots=True)
class EmojiProfile:
    """How many emoji, which ones, where in the message, repeated or not, with which skin tone."""

    emoji: int
    per_message: float
    message_share: float
    top: list[Form]
    position: dict[str, float]
    """Shares of emoji-bearing messages: "only" emoji, emoji at the "end", "start", "inline"."""
    runs: int
    repeated_share: float
    run_lengths: dict[str, int]
    skin_tones: dict[str, int]
    toned_share: float
    laughing: int


@dataclass(slots=True)
class TypographyProfile:
    """Capitals, punctuation, tone and languages."""

    lowercase_start: float | None
    capitalised_start: float | None
    all_caps: float | None
    ending: dict[str, float]
    multi_exclamation: float | None
    multi_question: float | None
    ellipsis: float | None
    question: float | None
    formality: float | None
    formality_parts: dict[str, float | None]
    languages: dict[str, float]
    primary_language: str | None


@dataclass(slots=True)
class ReplyStats:
    """The persona's turns that answer someone, summarised."""

    turns: int
    latency_s: Distribution
    messages: Distribution
    chars: Distribution


@dataclass(slots=True)
class FlowProfile:
    """Who starts, who ends, how long conversations run, how questions get answered."""

    conversations: int
    started_share: float | None
    last_word_share: float | None
    turns: Distribution
    persona_turns: Distribution
    duration_s: Distribution
    after_question: ReplyStats
    otherwise: ReplyStats
    answer_rate: float | None


@dataclass(slots=True)
class TextStyle:
    """The text-only measures of any list of messages, comparable with a profile's fields.

    `measure_texts(replies)` gives one for a model's replies; compare it with the persona's
    `profile.length.chars`, `profile.emoji`, `profile.typography` and `profile.lexicon`.
    """

    messages: int
    chars: Distribution
    words: Distribution
    emoji: EmojiProfile
    typography: TypographyProfile
    laughter: Laughter
    elongation: Elongation
    abbreviations: Abbreviations


@dataclass(slots=True)
class Profile:
    """The measured writing style of one person across one or more chats."""

    persona: str
    options: ProfileOptions
    sources: list[Source]
    counts: MessageCounts
    conversations: Segmentation
    length: LengthProfile
    timing: TimingProfile
    lexicon: LexiconProfile
    emoji: EmojiProfile
    typography: TypographyProfile
    flow: FlowProfile
    warnings: list[str] = field(default_factory=list)
    version: int = PROFILE_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `version` comes first."""
        data = _dump(self)
        return {"version": data.pop("version"), **data}

    def to_json(self, *, indent: int | None = 2) -> str:
        """The profile as JSON text (UTF-8 safe, emoji kept as characters)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Rebuild a profile from `to_dict()` output; refuses other versions."""
        if not isinstance(data, dict):
            raise ProfileFormatError("a profile must be a JSON object")
        version = data.get("version")
        if version != PROFILE_VERSION:
            raise ProfileFormatError(
                f"profile version {version!r} is not supported (this is version "
                f"{PROFILE_VERSION}); rebuild it with `wa-persona profile`"
            )
        return _load(cls, data, "profile")

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        """Parse `to_json()` output."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProfileFormatError(f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def top_forms(counts: Counter[str], n: int) -> list[Form]:
    """The n most frequent forms, ties broken alphabetically so output is stable."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Form(form, count) for form, count in ranked[:n] if count > 0]


# --- (de)serialisation -------------------------------------------------------------------

T = TypeVar("T")


def _dump(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _dump(item) for key, item in value.items()}
    return value


def _load(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ProfileFormatError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            raise ProfileFormatError(f"{where}: missing field {f.name!r}")
        values[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**values)


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None:
            if type(None) in options:
                return None
            raise ProfileFormatError(f"{where}: must not be null")
        return _convert(next(o for o in options if o is not type(None)), value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ProfileFormatError(f"{where}: expected a list")
        (item,) = typing.get_args(kind)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ProfileFormatError(f"{where}: expected an object")
        _, item = typing.get_args(kind)
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if is_dataclass(kind):
        return _load(kind, value, where)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    raise ProfileFormatError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
