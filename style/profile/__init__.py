"""The measured writing style of one person: a versioned, JSON-serialisable profile.

    chats = load_chats("WhatsApp Chat with Sam.txt")
    profile = build_profile(chats, "Maya")
    Path("profile.json").write_text(profile.to_json())

See docs/profile.md for every field and how it is computed.
"""

from style.profile.build import build_profile, measure_texts, profile_exports
from style.profile.conversations import choose_gap
from style.profile.emoji import EMOJI_RE, emoji_profile, find_emoji
from style.profile.errors import ProfileFormatError, ProfileWarning, UnknownPersonaError
from style.profile.model import (
    PROFILE_VERSION,
    Abbreviations,
    Distribution,
    Elongation,
    EmojiProfile,
    FlowProfile,
    Form,
    Histogram,
    Laughter,
    LengthProfile,
    LexiconProfile,
    MessageCounts,
    Profile,
    ProfileOptions,
    ReplyStats,
    Richness,
    Segmentation,
    Source,
    Term,
    TextStyle,
    TimingProfile,
    TypingSpeed,
    TypographyProfile,
)

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "Abbreviations",
    "Distribution",
    "EMOJI_RE",
    "Elongation",
    "EmojiProfile",
    "FlowProfile",
    "Form",
    "Histogram",
    "Laughter",
    "LengthProfile",
    "LexiconProfile",
    "MessageCounts",
    "PROFILE_VERSION",
    "Profile",
    "ProfileFormatError",
    "ProfileOptions",
    "ProfileWarning",
    "ReplyStats",
    "Richness",
    "Segmentation",
    "Source",
    "Term",
    "TextStyle",
    "TimingProfile",
    "TypingSpeed",
    "TypographyProfile",
    "UnknownPersonaError",
    "build_profile",
    "choose_gap",
    "emoji_profile",
    "find_emoji",
    "measure_texts",
    "profile_exports",
]
