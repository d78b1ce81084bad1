"""The system prompt of every sample: a short persona card written from the style profile.

The card tells the model who it is and how that person writes (case, punctuation, length,
bursts, emoji, signature words, laughter, languages), in a few plain sentences, so a base
model starts close to the persona and the bot can send the same card at reply time.
Nothing but the profile's numbers and its short signature forms goes in; words that are
names of people in the chats are left out.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import datetime

from style.profile import Profile
from training.errors import DatasetError

DEFAULT_TEMPLATE = "You are {name}, texting friends on WhatsApp. {description}"
"""The card's default shape; `{description}` is every non-empty sentence below, in order."""

PARTS = ("case", "punctuation", "length", "bursts", "emoji", "words", "laughter", "languages")
"""The sentences a template can place one by one (`{case}`, `{emoji}`...)."""

LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "pt": "Portuguese",
    "de": "German",
    "fr": "French",
    "it": "Italian",
    "nl": "Dutch",
    "ru": "Russian",
}

PARTS_OF_DAY = ((0, "night"), (6, "morning"), (12, "afternoon"), (18, "evening"))
"""Hours where each part of day starts, as in the profile's `timing.part_of_day`."""

WORDS, PHRASES, EMOJI, LAUGHS = 8, 3, 5, 3
"""How many signature words, phrases, favourite emoji and laughs the card names."""

_WORD = re.compile(r"\w+")


def persona_card(
    profile: Profile,
    *,
    template: str | None = None,
    extra: str | None = None,
    avoid: Collection[str] = (),
) -> str:
    """The persona card for `profile`'s persona.

    Args:
        template: a `str.format` template over `name`, `description` and `PARTS`.
        extra: text appended after the card (a fact the model should know, a rule).
        avoid: words never to name as signature words or phrases (people's names).
    """
    values = card_fields(profile, avoid=avoid)
    try:
        card = (template or DEFAULT_TEMPLATE).format(**values)
    except (KeyError, IndexError) as exc:
        known = ", ".join("{" + key + "}" for key in values)
        raise DatasetError(f"card template uses unknown field {exc}; use any of {known}") from None
    except ValueError as exc:
        raise DatasetError(f"card template is not a valid format string: {exc}") from None
    card = " ".join(card.split())
    if extra:
        card = f"{card} {extra.strip()}"
    return card


def card_fields(profile: Profile, *, avoid: Collection[str] = ()) -> dict[str, str]:
    """The card's sentences by name (empty when the profile cannot say), plus `name`."""
    banned = {word.casefold() for name in avoid for word in _WORD.findall(name)}
    parts = {
        "case": _case(profile),
        "punctuation": _punctuation(profile),
        "length": _length(profile),
        "bursts": _bursts(profile),
        "emoji": _emoji(profile),
        "words": _words(profile, banned),
        "laughter": _laughter(profile),
        "languages": _languages(profile),
    }
    return {
        "name": profile.persona,
        "description": " ".join(text for text in parts.values() if text),
        **parts,
    }


def time_of_day(ts: datetime) -> str:
    """The reply's weekday and part of day as a sentence: "It is Tuesday evening."."""
    part = next(name for start, name in reversed(PARTS_OF_DAY) if ts.hour >= start)
    return f"It is {ts:%A} {part}."


# --- sentences ---------------------------------------------------------------------------


def _case(profile: Profile) -> str:
    style = profile.typography
    if style.lowercase_start is None or style.capitalised_start is None:
        return ""
    if style.lowercase_start >= 0.8:
        text = "You write in lowercase."
    elif style.capitalised_start >= 0.8:
        text = "You start messages with a capital letter."
    else:
        text = "You mix lowercase and capitalised messages."
    if (style.all_caps or 0.0) >= 0.05:
        text += " Now and then you write in ALL CAPS."
    return text


def _punctuation(profile: Profile) -> str:
    style = profile.typography
    if not style.ending:
        return ""
    period = style.ending.get("period", 0.0)
    if period < 0.1:
        text = "You rarely end a message with a full stop"
    elif period >= 0.4:
        text = "You end most messages with a full stop"
    else:
        text = "You sometimes end a message with a full stop"
    habits = [
        mark
        for mark, share, least in (
            ("!!", style.multi_exclamation, 0.05),
            ("??", style.multi_question, 0.05),
            ("...", style.ellipsis, 0.1),
        )
        if (share or 0.0) >= least
    ]
    if habits:
        text += " and like " + _join(f"'{mark}'" for mark in habits)
    return text + "."


def _length(profile: Profile) -> str:
    chars, words = profile.length.chars.median, profile.length.words.median
    if chars is None or words is None:
        return ""
    size = "short" if chars < 30 else "medium-length" if chars < 100 else "long"
    unit = "word" if round(words) == 1 else "words"
    return f"Your messages are {size}, typically {round(words)} {unit} ({round(chars)} characters)."


def _bursts(profile: Profile) -> str:
    share = profile.length.multi_message_share
    burst = profile.length.burst_size
    if share is None or burst.median is None or burst.p90 is None:
        return ""
    if share >= 0.3:
        usual, most = max(2, round(burst.median)), max(2, round(burst.p90))
        count = f"{usual}" if most <= usual else f"usually {usual}, up to {most}"
        return (
            f"You often send several messages in a row ({count}); separate them with a blank line."
        )
    if share >= 0.1:
        return "Now and then you send two messages in a row; separate them with a blank line."
    return "You usually send one message at a time."


def _emoji(profile: Profile) -> str:
    emoji = profile.emoji
    if emoji.emoji == 0 or emoji.message_share < 0.02:
        return "You rarely use emoji."
    share = emoji.message_share
    how = (
        "most messages"
        if share >= 0.5
        else "many messages"
        if share >= 0.25
        else "some messages"
        if share >= 0.08
        else "a few messages"
    )
    text = f"You put emoji in {how}"
    if emoji.position.get("end", 0.0) >= 0.6:
        text += ", usually at the end"
    favourites = [form.form for form in emoji.top[:EMOJI]]
    if favourites:
        text += f"; favourites: {' '.join(favourites)}"
    return text + "."


def _words(profile: Profile, banned: set[str]) -> str:
    laughs = {form.form for form in profile.lexicon.laughter.forms}

    def allowed(term: str) -> bool:
        pieces = _WORD.findall(term.casefold())
        return bool(pieces) and not banned.intersection(pieces) and term not in laughs

    words = [t.term for t in profile.lexicon.signature_words if allowed(t.term)][:WORDS]
    phrases = [t.term for t in profile.lexicon.signature_phrases if allowed(t.term)][:PHRASES]
    if not words and not phrases:
        return ""
    parts = []
    if words:
        parts.append("words you use a lot: " + ", ".join(words))
    if phrases:
        parts.append("phrases: " + ", ".join(f'"{p}"' for p in phrases))
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _laughter(profile: Profile) -> str:
    forms = [form.form for form in profile.lexicon.laughter.forms[:LAUGHS]]
    if profile.emoji.laughing and profile.emoji.top and profile.emoji.top[0].form == "😂":
        forms.append("😂")
    if not forms:
        return ""
    return "You laugh with " + _join(f'"{form}"' for form in forms) + "."


def _languages(profile: Profile) -> str:
    shares = profile.typography.languages
    if not shares:
        return ""
    named = [(LANGUAGE_NAMES.get(code, code), share) for code, share in shares.items()]
    if len(named) == 1 or named[0][1] >= 0.9:
        return f"You write in {named[0][0]}."
    others = _join(name for name, _ in named[1:])
    return f"You write mostly in {named[0][0]}, sometimes in {others}."


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
