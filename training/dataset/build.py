"""Build the training and evaluation samples of one persona from parsed chats.

    chats = load_chats("WhatsApp Chat with Sam.txt")
    build = build_dataset(chats, "Maya", DatasetConfig(eval_share=0.1))
    build.train, build.eval, build.filters, build.stats

The steps, each in one pass (docs/dataset.md has the details):

1. Scrub the messages when asked (before anything is read from them) and take the profile
   (given, or built here): its gap cuts conversations, its numbers write the persona card.
2. Cut every chat into conversations and turns once (`conversations.py`).
3. Split whole conversations by start time, across all chats together: the latest
   `eval_share` are held out, so nothing of an evaluation conversation reaches training.
4. For every persona turn, the per-reply filters and the longest run of turns before it
   that fits the token budget; then the set filters (`filters.py`).
5. Windows: every kept persona turn is trained in exactly one sample, either with the
   other kept turns of its stretch of conversation ("chunk") or alone ("sliding"); other
   persona turns in a sample are context. Then shorter-context copies (`augment.py`).
"""

from __future__ import annotations

import bisect
import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from style.messages import Chat, Message
from style.parse import ExportLimits, load_chats
from style.profile import Profile, UnknownPersonaError, build_profile
from style.scrub import Scrubber
from training.dataset import filters
from training.dataset.augment import augmented_copy, context_cuts
from training.dataset.config import DatasetConfig
from training.dataset.conversations import (
    Conversation,
    authored,
    chat_digest,
    cut_conversations,
    seconds,
)
from training.dataset.persona_card import persona_card, time_of_day
from training.dataset.samples import Sample, Split
from training.dataset.tokens import EstimatedCounter, TokenCounter, load_token_counter
from training.errors import DatasetError

logger = logging.getLogger(__name__)

_AUTHOR = attrgetter("author")


@dataclass(slots=True)
class TokenStats:
    """Tokens per sample (system prompt, turns, the template's tokens per message and once per
    sample) in one split."""

    total: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    max: int | None = None

    @classmethod
    def of(cls, values: Sequence[int]) -> TokenStats:
        """Summarise a list of per-sample token counts."""
        if not values:
            return cls()
        array = np.asarray(values, dtype=np.int64)
        p50, p95 = np.percentile(array, [50, 95])
        return cls(
            total=int(array.sum()),
            mean=round(float(array.mean()), 2),
            p50=round(float(p50), 2),
            p95=round(float(p95), 2),
            max=int(array.max()),
        )


@dataclass(slots=True)
class SplitStats:
    """What one split holds: conversations, samples, turns, bubbles and tokens."""

    conversations: int = 0
    """Conversations with a persona turn assigned to this split."""
    samples: int = 0
    augmented: int = 0
    turns: int = 0
    """Turns over all samples (context and trained)."""
    trained_turns: int = 0
    """Assistant turns that carry loss, over all samples (augmented copies included)."""
    trained_bubbles: int = 0
    """Bubbles of the trained replies (a reply of three messages counts three)."""
    trained_tokens: int = 0
    """Tokens of the trained replies alone: the tokens that carry loss."""
    tokens: TokenStats = field(default_factory=TokenStats)


@dataclass(slots=True)
class BuildStats:
    """Counts of a build, never text."""

    train: SplitStats
    eval: SplitStats
    conversations: int
    """All conversations the chats were cut into, with or without the persona."""
    persona_conversations: int
    persona_turns: int
    """Persona turns before filtering: the candidates for training and evaluation."""
    messages: dict[str, int]
    """Authored messages by what became of them: text, media, deleted, *_dropped, empty,
    system (left out), scrubbed (dropped by the scrubber)."""
    long_bubble_chars: int
    """The longest bubble a trained reply may have (see the `long_paste` filter)."""
    tokenizer: str
    exact_tokens: bool
    gap_method: str


@dataclass(slots=True)
class DatasetSource:
    """One chat the dataset was built from, by content hash (the profile's `Source.sha256`)."""

    sha256: str
    dialect: str
    messages: int
    """Authored, non-system messages."""
    persona_messages: int
    group: bool
    train_samples: int = 0
    eval_samples: int = 0


@dataclass(slots=True)
class DatasetBuild:
    """The samples of a build and everything the dataset card needs to describe them."""

    persona: str
    train: list[Sample]
    eval: list[Sample]
    filters: dict[str, int]
    """Samples removed by each filter (`filters.FILTERS`, in order)."""
    stats: BuildStats
    gap_s: float
    config: DatasetConfig
    sources: list[DatasetSource]
    card: str
    """The persona card: every sample's system prompt (before the time-of-day line)."""
    scrub: dict[str, Any] | None = None
    """The scrubber's report (counts only) when messages were scrubbed."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the samples, JSON-ready (what a dataset card records)."""
        return {
            "persona": self.persona,
            "config": self.config.to_dict(),
            "gap_s": self.gap_s,
            "filters": dict(self.filters),
            "stats": asdict(self.stats),
            "sources": [asdict(source) for source in self.sources],
            "card": self.card,
            "scrub": self.scrub,
            "notes": list(self.notes),
        }


ScrubberFactory = Callable[[Sequence[Message]], Scrubber]


def build_dataset(
    chats: Sequence[Chat],
    persona: str,
    config: DatasetConfig | None = None,
    *,
    profile: Profile | None = None,
    scrubber: Scrubber | None = None,
    token_counter: TokenCounter | None = None,
) -> DatasetBuild:
    """Turn `chats` into training and evaluation samples that teach a model to be `persona`.

    Args:
        chats: parsed chats (one-to-one or group, any number); conversations never span two.
        persona: the author to learn, exactly as named in the exports.
        config: the build settings; defaults to `DatasetConfig()`.
        profile: the persona's style profile; built here from the (scrubbed) chats if None.
        scrubber: scrubs every message before turns are built; overrides `config.scrub_mode`.
        token_counter: counts tokens; default `load_token_counter(config.tokenizer)`.

    Raises:
        UnknownPersonaError: the persona wrote nothing in these chats.
        DatasetError: bad settings, or nothing of the persona's left to train on.
    """
    config = config or DatasetConfig()
    config.validate()
    with _gc_paused():
        return _build(list(chats), persona, config, profile, scrubber, token_counter)


def _build(
    chats: list[Chat],
    persona: str,
    config: DatasetConfig,
    profile: Profile | None,
    scrubber: Scrubber | None,
    token_counter: TokenCounter | None,
) -> DatasetBuild:
    if not chats:
        raise DatasetError("no chats to build a dataset from; give at least one export")
    columns = [(messages, seconds(messages)) for messages in map(authored, chats)]
    sources, authors = _sources(chats, columns, persona)
    original = columns  # the sources' hashes are of the chats as given, before scrubbing
    if not authors[persona]:
        raise UnknownPersonaError(
            persona, dict(sorted(authors.items(), key=lambda item: (-item[1], item[0])))
        )
    if profile is not None and profile.persona != persona:
        raise DatasetError(
            f"the profile is {profile.persona!r}'s, not {persona!r}'s; build the profile "
            "for the same persona"
        )
    names = [*authors, *(name for chat in chats for name in chat.participants)]

    # 1. privacy first, then the profile on what is left
    if scrubber is None and config.scrub_mode is not None:
        everything = [m for chat in chats for m in chat.messages]
        scrubber = Scrubber.for_messages(everything, config.scrub_mode, keep_names=[persona])
    kept_before = sum(source.messages for source in sources)
    if scrubber is not None:
        chats = [_scrubbed(chat, scrubber) for chat in chats]
        columns = [(messages, seconds(messages)) for messages in map(authored, chats)]
        if not any(m.author == persona for messages, _ in columns for m in messages):
            raise DatasetError(
                f"the scrubber renamed {persona!r} or dropped all their messages; build it "
                f"with keep_names=[{persona!r}]"
            )
    if profile is None:
        profile = build_profile(chats, persona, gap_minutes=config.gap_minutes)
        if scrubber is None:  # the profile hashed these very chats already
            for source, measured in zip(sources, profile.sources, strict=True):
                source.sha256 = measured.sha256
    for source, (messages, t) in zip(sources, original, strict=True):
        if not source.sha256:
            source.sha256 = chat_digest(messages, t)
    del original
    gap_s = config.gap_minutes * 60 if config.gap_minutes else profile.conversations.gap_s
    gap_method = "override" if config.gap_minutes else profile.conversations.method
    counter = token_counter or load_token_counter(config.tokenizer)
    card = persona_card(
        profile, template=config.card_template, extra=config.card_extra, avoid=names
    )

    # 2. conversations and turns, cut once
    cut = cut_conversations(
        chats,
        [source.sha256 for source in sources],
        persona,
        gap_s,
        media=config.media,
        deleted=config.deleted,
        speaker_names=config.speaker_names,
        columns=columns,
    )
    if scrubber is not None:
        cut.messages["scrubbed"] = kept_before - cut.messages["messages"]
    conversations = sorted(cut.conversations, key=lambda c: (c.start, c.chat, c.index))
    persona_turns = sum(len(c.turns) // 2 for c in conversations)
    if (
        not persona_turns
        and scrubber is not None
        and not any(message.author == persona for messages, _ in columns for message in messages)
    ):
        raise DatasetError(
            f"the scrubber renamed {persona!r}; build it with keep_names=[{persona!r}]"
        )
    if not persona_turns:
        raise DatasetError(
            f"{persona} has no turns to learn from: none of their messages is text or "
            "media that is kept (use media='placeholder' to keep media)"
        )
    _count_tokens(conversations, counter)

    # 3. the split: whole conversations, by start time
    held_out = _held_out(conversations, config.eval_share)

    # 4. one window per persona turn, with the per-reply filters
    counts = filters.new_counts()
    limit = filters.long_bubble_limit(
        cut.persona_lengths, config.max_bubble_chars, config.long_bubble_factor
    )
    candidates = _candidates(conversations, held_out, card, counter, config, limit, counts)

    # 5. set-level filters, samples, augmentation
    train, evaluation = _filter(candidates, config, counts)
    chat_ids = [source.sha256[:16] for source in sources]
    train_windows = _windows(train, conversations, config.windows, config.max_tokens)
    eval_windows = _windows(evaluation, conversations, config.windows, config.max_tokens)
    train_samples = _samples(train_windows, conversations, chat_ids, "train")
    eval_samples = _samples(eval_windows, conversations, chat_ids, "eval")
    if not train_samples:
        removed = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
        raise DatasetError(
            f"no training samples are left for {persona} ({persona_turns} persona turns; "
            f"removed: {removed or 'none'}); loosen the filters or give more chats"
        )
    if config.augment_contexts:
        train_samples, train_windows = _augment(
            train_samples, train_windows, conversations, config.augment_contexts
        )

    by_chat = {source.sha256[:16]: source for source in sources}
    for sample in train_samples:
        if not sample.augmented:
            by_chat[sample.chat].train_samples += 1
    for sample in eval_samples:
        by_chat[sample.chat].eval_samples += 1
    stats = BuildStats(
        train=_split_stats(
            train_samples, train_windows, conversations, len(conversations) - len(held_out)
        ),
        eval=_split_stats(eval_samples, eval_windows, conversations, len(held_out)),
        conversations=cut.total,
        persona_conversations=len(conversations),
        persona_turns=persona_turns,
        messages=dict(sorted(cut.messages.items())),
        long_bubble_chars=limit,
        tokenizer=counter.name,
        exact_tokens=counter.exact,
        gap_method=gap_method,
    )
    notes = _notes(counter, conversations, eval_samples, config)
    return DatasetBuild(
        persona=persona,
        train=train_samples,
        eval=eval_samples,
        filters=counts,
        stats=stats,
        gap_s=float(gap_s),
        config=config,
        sources=sources,
        card=card,
        scrub=scrubber.report.to_dict() if scrubber is not None else None,
        notes=notes,
    )


def build_from_exports(
    paths: Sequence[str | Path],
    persona: str,
    config: DatasetConfig | None = None,
    *,
    limits: ExportLimits | None = None,
    profile: Profile | None = None,
    make_scrubber: ScrubberFactory | None = None,
    token_counter: TokenCounter | None = None,
) -> DatasetBuild:
    """Load every chat of every export in `paths` and build the persona's dataset.

    `make_scrubber(messages)` builds the scrubber from all loaded messages (so it reads
    the export's names and phone region), e.g.
    `lambda ms: Scrubber.for_messages(ms, "redact", keep_names=[persona])`.
    """
    chats = [chat for path in paths for chat in load_chats(path, limits=limits or ExportLimits())]
    scrubber = None
    if make_scrubber is not None:
        scrubber = make_scrubber([m for chat in chats for m in chat.messages])
    return build_dataset(
        chats, persona, config, profile=profile, scrubber=scrubber, token_counter=token_counter
    )


# --- steps -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    """A persona turn that passed the per-reply filters, with its window and keys."""

    conversation: int
    """Index into the sorted conversations."""
    turn: int
    start: int
    """First turn of the window (a user turn)."""
    tokens: int
    """Tokens of the window from `start` to this turn, system prompt and the template's
    once-per-sample tokens included."""
    system: str
    room: int
    """Tokens the turns of a sample with this system prompt may take: `max_tokens - room` is
    what the sample spends besides its turns (system prompt, `per_sample`)."""
    chat: int
    eval: bool
    exact: tuple[str, str]
    near: tuple[str, str]
    reply: str
    """The near key of the reply alone (for the frequent-reply cap)."""


def _count_tokens(conversations: list[Conversation], counter: TokenCounter) -> None:
    for conversation in conversations:
        conversation.contents = [turn.content for turn in conversation.turns]
    counts = counter.count([text for c in conversations for text in c.contents])
    extra = counter.per_message
    position = 0
    for conversation in conversations:
        size = len(conversation.turns)
        conversation.tokens = [n + extra for n in counts[position : position + size]]
        position += size


def _held_out(conversations: list[Conversation], share: float) -> set[int]:
    """Indices (into the start-sorted list) of the evaluation conversations."""
    n = len(conversations)
    if share <= 0 or n < 2:
        return set()
    count = min(n - 1, max(1, round(n * share)))
    cut = n - count
    # a tie in start time at the cut would put "simultaneous" conversations on both sides
    while 0 < cut < n and conversations[cut].start == conversations[cut - 1].start:
        cut -= 1
    if cut == 0:
        cut = n - count
        while cut < n and conversations[cut].start == conversations[cut - 1].start:
            cut += 1
        if cut == n:
            return set()
    return set(range(cut, n))


def _candidates(
    conversations: list[Conversation],
    held_out: set[int],
    card: str,
    counter: TokenCounter,
    config: DatasetConfig,
    limit: int,
    counts: dict[str, int],
) -> list[_Candidate]:
    systems: dict[str, tuple[str, int]] = {}
    near = filters.NearKeys()
    with_time = config.time_of_day
    url_only = config.drop_url_only
    max_tokens = config.max_tokens
    # what a sample's turns may take: the budget less its system prompt (a message) and the
    # tokens the template adds once per chat
    overhead = counter.per_message + counter.per_sample
    budget = max_tokens - counter.count([card])[0] - overhead
    near_users = config.dedupe == "near"
    has_link, is_url_only = filters.has_link, filters.is_url_only
    candidates: list[_Candidate] = []
    for number, conversation in enumerate(conversations):
        turns, tokens, contents = conversation.turns, conversation.tokens, conversation.contents
        text_bubbles, longest = conversation.text_bubbles, conversation.longest
        prefix = conversation.prefix = [0, *accumulate(tokens)]
        evaluation = number in held_out
        chat = conversation.chat
        for i in range(1, len(turns), 2):
            reply = turns[i]
            if not text_bubbles[i]:
                counts["media_only"] += 1
                continue
            content = contents[i]
            if url_only and has_link(content) and is_url_only(reply.bubbles):
                counts["url_only"] += 1
                continue
            if longest[i] > limit:
                counts["long_paste"] += 1
                continue
            system, room = card, budget
            if with_time and reply.ts is not None:
                line = time_of_day(reply.ts)
                if line not in systems:  # one string per line, shared by its samples
                    text = f"{card}\n{line}"
                    systems[line] = (text, max_tokens - counter.count([text])[0] - overhead)
                system, room = systems[line]
            # the first user turn s (an even index) with prefix[i + 1] - prefix[s] <= room
            start = bisect.bisect_left(prefix, prefix[i + 1] - room, 0, i)
            start += start & 1
            if start > i - 1:
                counts["too_long"] += 1
                continue
            reply_key = near(reply.bubbles)
            candidates.append(
                _Candidate(
                    number,
                    i,
                    start,
                    prefix[i + 1] - prefix[start] + max_tokens - room,
                    system,
                    room,
                    chat,
                    evaluation,
                    (content, contents[i - 1]),
                    (reply_key, near(turns[i - 1].bubbles) if near_users else ""),
                    reply_key,
                )
            )
    return candidates


def _filter(
    candidates: list[_Candidate], config: DatasetConfig, counts: dict[str, int]
) -> tuple[list[_Candidate], list[_Candidate]]:
    train = [c for c in candidates if not c.eval]
    evaluation = [c for c in candidates if c.eval]
    if config.dedupe != "off":
        train = _dedupe(train, config, counts)
        evaluation = _dedupe(evaluation, config, counts)
        seen = {c.near if config.dedupe == "near" else c.exact for c in evaluation}
        before = len(train)
        train = [c for c in train if (c.near if config.dedupe == "near" else c.exact) not in seen]
        counts["eval_overlap"] += before - len(train)
    cap = filters.reply_cap(len(train), config.max_reply_repeats, config.max_reply_share)
    if cap is not None:
        keep = filters.cap_repeats([c.reply for c in train], cap)
        counts["frequent_reply"] += filters.count_removed(keep)
        train = [c for c, k in zip(train, keep, strict=True) if k]
    if config.max_chat_share is not None:
        per_chat = Counter(c.chat for c in train)
        limits = filters.chat_limits(dict(per_chat), config.max_chat_share)
        keep = filters.thin_to([c.chat for c in train], limits)
        counts["chat_share"] += filters.count_removed(keep)
        train = [c for c, k in zip(train, keep, strict=True) if k]
    return train, evaluation


def _dedupe(
    candidates: list[_Candidate], config: DatasetConfig, counts: dict[str, int]
) -> list[_Candidate]:
    keep = filters.keep_first([c.exact for c in candidates])
    counts["duplicate"] += filters.count_removed(keep)
    candidates = [c for c, k in zip(candidates, keep, strict=True) if k]
    if config.dedupe == "near":
        keep = filters.keep_first([c.near for c in candidates])
        counts["near_duplicate"] += filters.count_removed(keep)
        candidates = [c for c, k in zip(candidates, keep, strict=True) if k]
    return candidates


@dataclass(slots=True)
class _Window:
    """Where a sample lies in its conversation, and which of its turns are trained."""

    conversation: int
    start: int
    end: int
    """Index of its last turn (a trained assistant turn)."""
    trained: tuple[int, ...]
    tokens: int


def _windows(
    kept: list[_Candidate], conversations: list[Conversation], mode: str, max_tokens: int
) -> list[tuple[_Window, str]]:
    """The samples' windows (with their system prompts), in conversation order.

    "sliding": one window per kept persona turn, reaching back as far as the budget allows,
    with only that turn trained. "chunk": consecutive kept turns of a conversation share a
    window as long as it fits; a window keeps at most half its room as context before its
    first trained turn, so the rest holds turns to train.
    """
    if mode == "sliding":
        return [
            (_Window(c.conversation, c.start, c.turn, (c.turn,), c.tokens), c.system) for c in kept
        ]
    out: list[tuple[_Window, str]] = []
    j = 0
    while j < len(kept):
        first = kept[j]
        prefix = conversations[first.conversation].prefix
        k = first.turn
        # the first user turn s with at most half the room before k; the user turn k - 1
        # always stays, however long, so the window starts with the message k answers
        start = bisect.bisect_left(prefix, prefix[k] - first.room // 2, 0, k - 1)
        start = max(first.start, start + (start & 1))  # k must still fit
        trained = [k]
        j += 1
        while (
            j < len(kept)
            and kept[j].conversation == first.conversation
            and prefix[kept[j].turn + 1] - prefix[start] <= first.room
        ):
            trained.append(kept[j].turn)
            j += 1
        end = trained[-1]
        tokens = prefix[end + 1] - prefix[start] + max_tokens - first.room
        out.append((_Window(first.conversation, start, end, tuple(trained), tokens), first.system))
    return out


def _samples(
    windows: list[tuple[_Window, str]],
    conversations: list[Conversation],
    chat_ids: list[str],
    split: Split,
) -> list[Sample]:
    samples = []
    for window, system in windows:
        conversation = conversations[window.conversation]
        start, end = window.start, window.end
        trained = window.trained
        if len(trained) == 1:
            turns = (*conversation.history(start, end), conversation.turns[end])
        elif len(trained) == (end - start + 1) // 2:  # every reply in it is trained
            turns = tuple(conversation.turns[start : end + 1])
        else:
            chosen = set(trained)
            history = conversation.history(start, end + 1)
            turns = tuple(
                conversation.turns[i] if i in chosen else history[i - start]
                for i in range(start, end + 1)
            )
        samples.append(
            Sample(
                system,
                turns,
                conversation.id,
                chat_ids[conversation.chat],
                split,
                False,
                {"turn": str(end)},
            )
        )
    return samples


def _augment(
    samples: list[Sample],
    windows: list[tuple[_Window, str]],
    conversations: list[Conversation],
    contexts: Sequence[int],
) -> tuple[list[Sample], list[tuple[_Window, str]]]:
    """The samples, each followed by shorter-context copies of each of its trained turns."""
    out: list[Sample] = []
    out_windows: list[tuple[_Window, str]] = []
    for sample, (window, system) in zip(samples, windows, strict=True):
        out.append(sample)
        out_windows.append((window, system))
        conversation = conversations[window.conversation]
        prefix = conversation.prefix
        # the system prompt and per-sample tokens: what the window spends besides its turns
        overhead = window.tokens - (prefix[window.end + 1] - prefix[window.start])
        for k in window.trained:
            for keep in context_cuts(k + 1 - window.start, contexts):
                start = k + 1 - keep
                turns = (*conversation.history(start, k), conversation.turns[k])
                out.append(augmented_copy(sample, turns, k))
                tokens = prefix[k + 1] - prefix[start] + overhead
                out_windows.append((_Window(window.conversation, start, k, (k,), tokens), system))
    return out, out_windows


def _split_stats(
    samples: list[Sample],
    windows: list[tuple[_Window, str]],
    conversations: list[Conversation],
    assigned: int,
) -> SplitStats:
    trained = [(conversations[w.conversation], k) for w, _ in windows for k in w.trained]
    return SplitStats(
        conversations=assigned,
        samples=len(samples),
        augmented=sum(1 for s in samples if s.augmented),
        turns=sum(len(s.turns) for s in samples),
        trained_turns=len(trained),
        trained_bubbles=sum(len(c.turns[k].bubbles) for c, k in trained),
        trained_tokens=sum(c.tokens[k] for c, k in trained),
        tokens=TokenStats.of([w.tokens for w, _ in windows]),
    )


def _notes(
    counter: TokenCounter,
    conversations: list[Conversation],
    eval_samples: list[Sample],
    config: DatasetConfig,
) -> list[str]:
    notes = []
    if isinstance(counter, EstimatedCounter):
        notes.append(f"token counts are estimated: {counter.reason}")
    if config.eval_share > 0 and not eval_samples:
        if len(conversations) < 2:
            notes.append("only one conversation has the persona: nothing is held out")
        else:
            notes.append("the held-out conversations left no evaluation samples")
    return notes


# --- helpers -----------------------------------------------------------------------------


def _sources(
    chats: list[Chat], columns: list[tuple[list[Message], np.ndarray]], persona: str
) -> tuple[list[DatasetSource], Counter[str]]:
    """Each chat's counts (the hash comes later), and everyone's messages over all chats."""
    sources = []
    everyone: Counter[str] = Counter()
    for chat, (messages, _) in zip(chats, columns, strict=True):
        authors = Counter(map(_AUTHOR, messages))
        everyone.update(authors)
        sources.append(
            DatasetSource(
                sha256="",  # filled in once the profile is there (it may have hashed it)
                dialect=chat.dialect,
                messages=len(messages),
                persona_messages=authors[persona],
                group=chat.is_group or len(authors) > 2,
            )
        )
    return sources, everyone


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while turns and samples are made.

    A build allocates millions of small, acyclic objects (turns, samples, keys); the
    collector would rescan the growing heap again and again (a third of the build time on
    a million messages) and free nothing. Reference counting still frees everything.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scrubbed(chat: Chat, scrubber: Scrubber) -> Chat:
    return Chat(
        source=chat.source,
        dialect=chat.dialect,
        messages=list(scrubber.scrub_messages(chat.messages)),
        participants=list(chat.participants),
        unparsed_lines=chat.unparsed_lines,
    )
