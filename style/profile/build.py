"""Build one persona's style profile from parsed chats (the only entry point that computes).

The chats become one column store (`Timeline`), the silences choose the conversation gap,
the timeline is cut into conversations and turns, and each measure reads the columns it
needs: a handful of vectorised passes plus one tokenising pass per side for the lexicon.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta
from operator import attrgetter
from pathlib import Path

import numpy as np

from style.errors import StyleError
from style.messages import Chat, Message, MessageKind
from style.parse import ExportLimits, load_chats
from style.profile import lexicon
from style.profile.conversations import (
    EPOCH,
    PERSONA,
    TEXT,
    Conversations,
    Timeline,
    chat_columns,
    choose_gap,
    concatenate,
    segment,
    silences,
)
from style.profile.emoji import emoji_profile
from style.profile.errors import ProfileWarning, UnknownPersonaError
from style.profile.flow import flow_profile
from style.profile.length import length_profile, text_lengths
from style.profile.model import (
    LexiconProfile,
    MessageCounts,
    Profile,
    ProfileOptions,
    Segmentation,
    Source,
    TextStyle,
)
from style.profile.timing import timing_profile, use_fine_only
from style.profile.typography import typography_profile

TOP_FORMS = 10
"""Greetings, sign-offs, laughs, stretched words and abbreviations kept in the profile."""


def build_profile(
    chats: Chat | Iterable[Chat],
    persona: str,
    *,
    gap_minutes: float | None = None,
    min_messages: int = 50,
    top_terms: int = 25,
    min_term_count: int = 5,
    mattr_window: int = 100,
) -> Profile:
    """Measure how `persona` writes across `chats` (one-to-one or group, any number).

    Args:
        chats: parsed chats; conversations never span two of them.
        persona: the author name exactly as in the export.
        gap_minutes: silence that starts a new conversation; None chooses it from the data.
        min_messages: below this many messages by the persona, the profile carries a warning.
        top_terms: signature words and phrases kept.
        min_term_count: times the persona must use a word or phrase for it to be a signature.
        mattr_window: window (tokens) of the moving-average type-token ratio.

    Raises:
        UnknownPersonaError: the persona wrote nothing in any chat.
    """
    chats = [chats] if isinstance(chats, Chat) else list(chats)
    if not chats:
        raise StyleError("no chats to profile; give at least one export")
    if gap_minutes is not None and gap_minutes <= 0:
        raise StyleError(f"gap_minutes must be positive, not {gap_minutes}")
    options = ProfileOptions(
        gap_minutes=gap_minutes,
        min_messages=min_messages,
        top_terms=top_terms,
        min_term_count=min_term_count,
        mattr_window=mattr_window,
    )
    notes: list[str] = []
    parts: list[Timeline] = []
    sources: list[Source] = []
    mine: list[Message] = []
    next_id = 1
    for chat in chats:
        timeline, next_id, digest = chat_columns(chat, persona, first_author=next_id)
        own = [m for m in chat.messages if m.author == persona]
        sources.append(_source(chat, timeline, digest))
        if (timeline.author == PERSONA).any():
            parts.append(timeline)
            mine += own
    if not parts:
        raise UnknownPersonaError(persona, _participants(chats))
    for source in sources:
        if not source.persona_messages:
            notes.append(f"chat {source.sha256[:12]} has no messages by {persona}; it was left out")
    timeline = parts[0] if len(parts) == 1 else concatenate(parts)

    counts = _counts(mine, timeline)
    if counts.messages < min_messages:
        notes.append(
            f"{persona} has only {counts.messages} messages (at least {min_messages} are "
            "needed for a reliable profile); treat these numbers as rough"
        )

    choice = choose_gap(
        silences(timeline), override_s=None if gap_minutes is None else gap_minutes * 60
    )
    conversations = segment(timeline, choice.gap_s)
    present = np.bincount(
        conversations.conv[timeline.author == PERSONA], minlength=conversations.count
    )
    segmentation = Segmentation(
        gap_s=choice.gap_s,
        method=choice.method,
        gaps=choice.gaps,
        histogram=choice.histogram,
        conversations=conversations.count,
        with_persona=int((present > 0).sum()),
    )

    fine_only = use_fine_only(timeline, conversations)
    if not timeline.fine[timeline.author == PERSONA].any():
        notes.append(
            "every export has whole-minute timestamps: latencies are rounded to minutes, "
            "and pauses inside bursts and typing speed cannot be measured"
        )
    elif not fine_only:
        notes.append("few replies have second-resolution timestamps; latencies mix in minutes")

    texts = timeline.texts
    is_text = timeline.kind == TEXT
    own_texts = [texts[i] for i in np.flatnonzero(is_text & (timeline.author == PERSONA))]
    other_texts = [texts[i] for i in np.flatnonzero(is_text & (timeline.author != PERSONA))]
    if not own_texts:
        notes.append(f"{persona} sent no text messages; lexicon and typography are empty")
    if not other_texts:
        notes.append("nobody else wrote text: signature words cannot be contrasted")

    emoji = emoji_profile(own_texts)
    lexicon_profile, words, chat_forms = _lexicon(
        own_texts, other_texts, timeline, conversations, emoji.laughing, options
    )
    profile = Profile(
        persona=persona,
        options=options,
        sources=sources,
        counts=counts,
        conversations=segmentation,
        length=length_profile(timeline, conversations, own_texts),
        timing=timing_profile(timeline, conversations, fine_only=fine_only),
        lexicon=lexicon_profile,
        emoji=emoji,
        typography=typography_profile(
            own_texts,
            words,
            chat_forms=chat_forms,
            emoji_share=emoji.message_share if own_texts else None,
        ),
        flow=flow_profile(timeline, conversations, fine_only=fine_only),
        warnings=notes,
    )
    for note in notes:
        warnings.warn(note, ProfileWarning, stacklevel=2)
    return profile


def profile_exports(
    paths: Sequence[str | Path],
    persona: str,
    *,
    limits: ExportLimits | None = None,
    gap_minutes: float | None = None,
    min_messages: int = 50,
    top_terms: int = 25,
    min_term_count: int = 5,
    mattr_window: int = 100,
) -> Profile:
    """Load every chat of every export in `paths` and build the persona's profile."""
    chats = [chat for path in paths for chat in load_chats(path, limits=limits or ExportLimits())]
    return build_profile(
        chats,
        persona,
        gap_minutes=gap_minutes,
        min_messages=min_messages,
        top_terms=top_terms,
        min_term_count=min_term_count,
        mattr_window=mattr_window,
    )


def measure_texts(texts: Iterable[str]) -> TextStyle:
    """Length, emoji, typography, laughs, stretched words and slang of any messages.

    The same code as the profile's, so a model's replies can be held against the persona's
    numbers (the evaluator's job). Stretched words are traced to the words in `texts` alone.
    """
    texts = list(texts)
    counts = lexicon.count_tokens(texts, lexicon.Vocabulary())
    emoji = emoji_profile(texts)
    chars, words = text_lengths(texts)
    return TextStyle(
        messages=len(texts),
        chars=chars,
        words=words,
        emoji=emoji,
        typography=typography_profile(
            texts,
            counts.words,
            chat_forms=lexicon.chat_form_count(counts.words),
            emoji_share=emoji.message_share if texts else None,
        ),
        laughter=lexicon.laughter(counts.words, emoji.laughing, len(texts), top=TOP_FORMS),
        elongation=lexicon.elongation(counts.words, Counter(), len(texts), top=TOP_FORMS),
        abbreviations=lexicon.abbreviations(
            counts.words, sum(counts.words.values()), len(texts), top=TOP_FORMS
        ),
    )


# --- pieces ------------------------------------------------------------------------------


def _lexicon(
    own_texts: list[str],
    other_texts: list[str],
    timeline: Timeline,
    conversations: Conversations,
    laughing_emoji: int,
    options: ProfileOptions,
) -> tuple[LexiconProfile, Counter[str], int]:
    top, least = options.top_terms, options.min_term_count
    vocabulary = lexicon.Vocabulary()
    own = lexicon.count_tokens(own_texts, vocabulary)
    others = lexicon.count_tokens(
        other_texts, vocabulary, pairs_among=lexicon.frequent_pairs(own, least)
    )
    own_n, other_n = sum(own.words.values()), sum(others.words.values())
    favoured, avoided = lexicon.signature_terms(
        own.words, others.words, own_n, other_n, top=top, min_count=least
    )
    phrases, _ = lexicon.signature_terms(
        Counter({" ".join(p): n for p, n in own.pairs.items() if n >= least}),
        Counter({" ".join(p): n for p, n in others.pairs.items()}),
        own.pair_total,
        others.pair_total,
        top=top,
        min_count=least,
    )
    openers, closers = _openers_and_closers(timeline, conversations)
    greetings, greeting_share = lexicon.greeting_forms(openers, top=TOP_FORMS)
    sign_offs, sign_off_share = lexicon.sign_off_forms(closers, top=TOP_FORMS)
    messages = len(own_texts)
    laughter = lexicon.laughter(own.words, laughing_emoji, messages, top=TOP_FORMS)
    elongation = lexicon.elongation(own.words, others.words, messages, top=TOP_FORMS)
    abbreviations = lexicon.abbreviations(own.words, own_n, messages, top=TOP_FORMS)
    chat_forms = lexicon.chat_form_count(own.words)
    profile = LexiconProfile(
        tokens=own_n,
        types=len(own.words),
        signature_words=favoured,
        signature_phrases=phrases,
        avoided_words=avoided,
        greetings=greetings,
        greeting_share=greeting_share,
        sign_offs=sign_offs,
        sign_off_share=sign_off_share,
        laughter=laughter,
        elongation=elongation,
        abbreviations=abbreviations,
        richness=lexicon.richness(own.sequence, options.mattr_window),
    )
    return profile, own.words, chat_forms


def _openers_and_closers(
    timeline: Timeline, conversations: Conversations
) -> tuple[list[str], list[str]]:
    texts, author, kind = timeline.texts, timeline.author, timeline.kind
    first = conversations.conv_first
    opened = first[(author[first] == PERSONA) & (kind[first] == TEXT)]
    own = np.flatnonzero((author == PERSONA) & (kind == TEXT))
    conv = conversations.conv[own]
    last_of_conv = own[np.append(conv[1:] != conv[:-1], True)] if own.size else own
    return [texts[i] for i in opened], [texts[i] for i in last_of_conv]


def _counts(mine: list[Message], timeline: Timeline) -> MessageCounts:
    kinds = Counter(map(attrgetter("kind"), mine))
    media_types = Counter(
        m.media.type.value for m in mine if m.kind == MessageKind.MEDIA and m.media is not None
    )
    authored = sum(n for kind, n in kinds.items() if kind != MessageKind.SYSTEM)
    chat_messages = timeline.size
    return MessageCounts(
        messages=authored,
        text=kinds[MessageKind.TEXT],
        media=kinds[MessageKind.MEDIA],
        deleted=kinds[MessageKind.DELETED],
        system=kinds[MessageKind.SYSTEM],
        edited=sum(map(attrgetter("edited"), mine)),
        media_share=_share(kinds[MessageKind.MEDIA], authored),
        deleted_share=_share(kinds[MessageKind.DELETED], authored),
        media_types=dict(sorted(media_types.items(), key=lambda item: (-item[1], item[0]))),
        chat_messages=chat_messages,
        persona_share=_share(authored, chat_messages),
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _source(chat: Chat, timeline: Timeline, digest: str) -> Source:
    participants = int(np.unique(timeline.author).size)
    days = (timeline.t.min(), timeline.t.max()) if timeline.size else None
    return Source(
        sha256=digest,
        dialect=chat.dialect,
        messages=timeline.size,
        persona_messages=int((timeline.author == PERSONA).sum()),
        participants=participants,
        group=participants > 2,
        first=None if days is None else _date(days[0]),
        last=None if days is None else _date(days[1]),
        resolution_s=1 if timeline.size and bool(timeline.fine[0]) else 60,
    )


def _date(seconds: float) -> str:
    return (EPOCH + timedelta(seconds=float(seconds))).date().isoformat()


def _participants(chats: list[Chat]) -> dict[str, int]:
    counts: Counter[str] = Counter(
        m.author
        for chat in chats
        for m in chat.messages
        if m.author is not None and m.kind != MessageKind.SYSTEM
    )
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
