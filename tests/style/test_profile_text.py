"""Text measures on literal inputs: emoji sequences, laughs, greetings, MATTR, languages."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from rich._emoji_codes import EMOJI as RICH_EMOJI

from style.profile import EMOJI_RE, emoji_profile, find_emoji
from style.profile.emoji import ends_with_emoji, normalize
from style.profile.languages import language_shares
from style.profile.lexicon import (
    Vocabulary,
    count_tokens,
    elongation,
    greeting,
    laugh_family,
    log_odds_z,
    mattr,
    sign_off,
    squeezed,
)
from style.profile.typography import ending_of, typography_profile

# --- the emoji expression ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("family 👨‍👩‍👧‍👦 day", ["👨‍👩‍👧‍👦"]),
        ("🏳️‍🌈", ["🏳️‍🌈"]),
        ("❤️‍🔥🐻‍❄️", ["❤️‍🔥", "🐻‍❄️"]),
        ("coder 👩🏽‍💻", ["👩🏽‍💻"]),
        ("thumbs 👍🏽👍", ["👍🏽", "👍"]),
        ("🇬🇧🇩🇪", ["🇬🇧", "🇩🇪"]),
        ("press 1️⃣ or #️⃣", ["1️⃣", "#️⃣"]),
        ("🏴󠁧󠁢󠁳󠁣󠁴󠁿!", ["🏴󠁧󠁢󠁳󠁣󠁴󠁿"]),
        ("runner 🏃‍♀ no VS16", ["🏃‍♀"]),
        ("love ❤ and ❤️", ["❤", "❤️"]),
        ("😂😂😂", ["😂", "😂", "😂"]),
        ("©️ is emoji, © is not, ™ neither", ["©️"]),
        ("⭐ ⌚ ✨", ["⭐", "⌚", "✨"]),
        ("café naïve 12 # * → ok…", []),
    ],
)
def test_emoji_sequences_are_single_matches(text, expected):
    assert find_emoji(text) == expected


def test_every_emoji_in_richs_table_matches_whole():
    """Text-default symbols (©, ↔, ▶...) count only with VS16; ⎈ is not emoji at all."""
    missed = [
        e
        for e in RICH_EMOJI.values()
        if not EMOJI_RE.fullmatch(e) and not EMOJI_RE.fullmatch(e + "\ufe0f")
    ]
    assert missed == ["⎈"]


@pytest.mark.parametrize(
    ("emoji", "key"),
    [("❤", "❤️"), ("❤️", "❤️"), ("✨️", "✨"), ("👍🏽", "👍"), ("👩🏿‍💻", "👩‍💻"), ("🇬🇧", "🇬🇧")],
)
def test_normalize_drops_tones_and_fixes_presentation(emoji, key):
    assert normalize(emoji) == key


def test_ends_with_emoji():
    assert ends_with_emoji("ok 😂 ")
    assert ends_with_emoji("yes 👍🏽")
    assert not ends_with_emoji("😂 ok")
    assert not ends_with_emoji("")


def test_emoji_profile_positions_runs_and_tones():
    profile = emoji_profile(["😂😂😂", "ok 👍🏽", "👋🏿 hi", "so 🔥 good", "no emoji", "🔥 x 🔥"])
    assert profile.emoji == 8
    assert profile.message_share == round(5 / 6, 4)
    assert profile.position == {"only": 0.2, "end": 0.4, "start": 0.2, "inline": 0.2}
    assert profile.run_lengths == {"1": 5, "2": 0, "3": 1, "4+": 0}
    assert profile.repeated_share == round(1 / 6, 4)
    assert profile.skin_tones["medium"] == 1 and profile.skin_tones["dark"] == 1
    assert profile.toned_share == 0.25
    assert [(f.form, f.count) for f in profile.top[:2]] == [("🔥", 3), ("😂", 3)]
    assert profile.laughing == 3


def test_separated_identical_emoji_are_separate_runs():
    assert emoji_profile(["😂 😂"]).run_lengths["1"] == 2
    assert emoji_profile(["😂😂"]).run_lengths["2"] == 1


# --- words -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "family"),
    [
        ("haha", "haha"),
        ("hahahah", "haha"),
        ("ahahah", "haha"),
        ("hehe", "haha"),
        ("jajaja", "jaja"),
        ("jejeje", "jaja"),
        ("kkkkk", "kkk"),
        ("rsrsrs", "rsrs"),
        ("lol", "lol"),
        ("lool", "lol"),
        ("lmaooo", "lmao"),
        ("lmfao", "lmao"),
        ("xd", "xd"),
        ("mdrr", "mdr"),
        ("хахаха", "хаха"),
        ("ha", None),
        ("aha", None),
        ("kk", None),
        ("hash", None),
        ("hello", None),
    ],
)
def test_laugh_families(word, family):
    assert laugh_family(word) == family


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("heyyy", "heyyy"),
        ("Hello hello!", "hello hello"),
        ("hi all, quick one", "hi all"),
        ("Good morning ☀️", "good morning"),
        ("buenos días!!", "buenos días"),
        ("guysss", "guysss"),
        ("hey Sam, are you free", "hey"),
        ("all good?", None),
        ("ok so listen", None),
    ],
)
def test_greetings(text, form):
    assert greeting(text) == form


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("ok byeee", "byeee"),
        ("night night ✨", "night night"),
        ("sleep welll", "sleep welll"),
        ("love uuu ✨", "love uuu"),
        ("talk tmrw", "talk tmrw"),
        ("Good night!", "good night"),
        ("buenas noches", "buenas noches"),
        ("what are you doing later tonight with everyone at the bar", None),
        ("sounds good", None),
    ],
)
def test_sign_offs(text, form):
    assert sign_off(text) == form


def test_squeezed_offers_one_and_two_letter_runs():
    assert squeezed("welll") == ("wel", "well")
    assert squeezed("sooo") == ("so", "soo")
    assert squeezed("good") == ("good", "good")


def test_elongation_picks_the_real_word():
    words = Counter({"goood": 3, "sooo": 2, "zzz": 5, "hahaaa": 1})
    others = Counter({"good": 10, "so": 10, "soo": 1})
    result = elongation(words, others, 10, top=5)
    assert [(f.form, f.count) for f in result.words] == [("good", 3), ("so", 2)]
    assert result.per_message == 0.5  # "zzz" is one letter, "hahaaa" a laugh


def test_pairs_never_cross_messages():
    vocabulary = Vocabulary()
    counts = count_tokens(["no bc", "wait what"] * 3, vocabulary)
    assert counts.pairs == Counter({("no", "bc"): 3, ("wait", "what"): 3})
    assert (counts.tokens, counts.pair_total, counts.messages) == (12, 6, 6)


def test_tokens_keep_apostrophes_and_drop_numbers():
    counts = count_tokens(["I'm at 7, it’s 2024 ok"], Vocabulary())
    assert counts.words == Counter({"i'm": 1, "at": 1, "it's": 1, "ok": 1})


def test_log_odds_is_zero_for_equal_rates_and_signed_otherwise():
    z = log_odds_z([10, 30, 0], [10, 10, 20], 100, 100)
    assert z[0] == pytest.approx(0.0)
    assert z[1] > 0 > z[2]


def naive_mattr(sequence: list[int], window: int) -> float:
    windows = [sequence[i : i + window] for i in range(len(sequence) - window + 1)]
    return sum(len(set(w)) / window for w in windows) / len(windows)


@pytest.mark.parametrize("window", [1, 3, 10, 50])
def test_mattr_matches_the_definition(window):
    rng = random.Random(window)
    sequence = [rng.randrange(30) for _ in range(400)]
    exact = mattr(np.array(sequence, dtype=np.int64), window)
    assert exact == round(naive_mattr(sequence, window), 4)


def test_mattr_needs_a_full_window():
    assert mattr(np.arange(5, dtype=np.int64), 10) is None


# --- languages and typography ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "language"),
    [
        ("I think that you should come with me, it is really not that far", "en"),
        ("creo que el coche está en la calle pero no lo veo, ya sabes", "es"),
        ("eu acho que você não está em casa, então a gente vai pra praia", "pt"),
        ("ich glaube nicht, dass wir heute noch zu dir kommen können", "de"),
        ("je pense que nous allons au cinéma avec les enfants ce soir", "fr"),
        ("penso che questo sia molto bello, grazie per tutto e ciao", "it"),
        ("ik denk dat het niet goed is, maar we kunnen het proberen", "nl"),
        ("я думаю что это очень хорошо, спасибо и привет", "ru"),
    ],
)
def test_language_from_function_words(sentence, language):
    words = Counter(sentence.lower().replace(",", "").split())
    assert next(iter(language_shares(words))) == language


def test_language_mix_is_shared_out():
    words = Counter(["the", "and", "you", "that"] * 3 + ["los", "pero", "muy", "gracias"])
    assert language_shares(words) == {"en": 0.75, "es": 0.25}


@pytest.mark.parametrize(
    ("char", "ending"),
    [(".", "period"), ("!", "exclamation"), ("?", "question"), ("…", "ellipsis"),
     ("😂", "emoji"), ("a", "none"), ("7", "none"), (")", "other"), ("", "none")],
)  # fmt: skip
def test_ending_categories(char, ending):
    assert ending_of(char) == ending


def test_typography_of_literal_messages():
    texts = ["Hello there.", "what?", "WOW!!", "ok...", "fine 😂", "Right…"]
    typo = typography_profile(texts, Counter(), chat_forms=3, emoji_share=1 / 6)
    assert (typo.lowercase_start, typo.capitalised_start) == (0.5, 0.5)
    assert typo.all_caps == round(1 / 6, 4)
    assert typo.ending == {
        "period": round(1 / 6, 4),
        "exclamation": round(1 / 6, 4),
        "question": round(1 / 6, 4),
        "ellipsis": round(2 / 6, 4),
        "emoji": round(1 / 6, 4),
        "other": 0.0,
        "none": 0.0,
    }
    assert typo.multi_exclamation == round(1 / 6, 4)
    assert typo.ellipsis == round(2 / 6, 4)
    assert typo.formality_parts == {
        "capitalised": 0.5,
        "punctuated": round(5 / 6, 4),
        "standard_words": 0.5,
        "emoji_free": round(5 / 6, 4),
    }
    assert typo.formality == round((0.5 + round(5 / 6, 4) + 0.5 + round(5 / 6, 4)) / 4, 4)


def test_measure_texts_of_nothing_is_empty():
    from style.profile import measure_texts

    measured = measure_texts([])
    assert measured.messages == 0 and measured.chars.count == 0
    assert measured.typography.formality is None and measured.emoji.per_message == 0.0
