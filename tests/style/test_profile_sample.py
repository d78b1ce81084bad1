"""The bundled sample: Maya's profile shows what the generator gave her, and Sam's does not."""

from __future__ import annotations

import warnings

import pytest

from style.parse import load_chats
from style.profile import Profile, ProfileWarning, build_profile, measure_texts, profile_exports
from style.sample import sample_paths


@pytest.fixture(scope="module")
def chats():
    return [chat for path in sample_paths() for chat in load_chats(path)]


@pytest.fixture(scope="module")
def maya(chats) -> Profile:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileWarning)
        return build_profile(chats, "Maya")


@pytest.fixture(scope="module")
def sam(chats) -> Profile:
    return build_profile(chats, "Sam")


def test_path_api_gives_the_same_profile(maya):
    assert profile_exports(sample_paths(), "Maya") == maya


def test_maya_signature_words_are_her_slang(maya):
    words = {t.term for t in maya.lexicon.signature_words}
    assert {"u", "ur", "im", "omg", "tbh", "ngl", "sooo", "literally"} <= words
    assert maya.lexicon.signature_words[0].term == "u"


def test_maya_signature_phrases(maya):
    phrases = {t.term for t in maya.lexicon.signature_phrases}
    assert {"no bc", "wait what", "ok so"} <= phrases


def test_maya_avoids_the_others_spelling(maya):
    avoided = {t.term for t in maya.lexicon.avoided_words}
    assert {"you", "i'm"} <= avoided


def test_maya_writes_in_the_evening(maya, sam):
    assert maya.timing.part_of_day["evening"] > 0.7
    assert maya.timing.part_of_day["evening"] > sam.timing.part_of_day["evening"]
    busiest = max(range(24), key=lambda hour: maya.timing.hours[hour])
    assert 20 <= busiest <= 23


def test_maya_replies_within_a_minute_and_sam_does_not(maya, sam):
    assert maya.timing.latency_s.median <= 60
    assert maya.timing.replied_within["1m"] > 0.5
    assert sam.timing.latency_s.median >= 300
    assert maya.timing.resolution_s == 1  # from the iOS group chat, which has seconds


def test_maya_bursts_and_types(maya):
    assert maya.length.multi_message_share > 0.5
    assert maya.length.burst_gap_s.median <= 30
    assert 0.5 < maya.timing.typing.chars_per_second < 10


def test_maya_laughs_stretches_and_abbreviates(maya):
    lex = maya.lexicon
    assert {"hahah", "hahaha", "lmaooo"} <= {f.form for f in lex.laughter.forms}
    assert {"sooo", "yesss"} <= {f.form for f in lex.elongation.forms}
    assert {"u", "omg", "tbh"} <= {f.form for f in lex.abbreviations.forms}
    assert {"hiii", "heyyy"} <= {f.form for f in lex.greetings}
    assert "byeee" in {f.form for f in lex.sign_offs}


def test_maya_emoji(maya, sam):
    assert maya.emoji.top[0].form == "😂"
    assert maya.emoji.position["end"] > 0.8
    assert maya.emoji.repeated_share > 0.2
    assert maya.emoji.per_message > 5 * sam.emoji.per_message


def test_maya_is_lowercase_and_informal_and_sam_is_not(maya, sam):
    assert maya.typography.lowercase_start > 0.9
    assert maya.typography.formality < 0.4
    assert sam.typography.capitalised_start > 0.9
    assert sam.typography.formality > 0.9
    assert maya.typography.primary_language == sam.typography.primary_language == "en"


def test_sample_conversations_are_cut_at_the_valley(maya):
    assert maya.conversations.method == "valley"
    assert 3600 <= maya.conversations.gap_s <= 6 * 3600
    assert maya.flow.conversations > 500


def test_sample_sources(maya):
    pair, group = maya.sources
    assert (pair.group, pair.resolution_s, pair.participants) == (False, 60, 2)
    assert (group.group, group.resolution_s, group.participants) == (True, 1, 4)
    assert maya.counts.messages > 5000 and 0 < maya.counts.media_share < 0.1


def test_measure_texts_agrees_with_the_profile(chats, maya):
    texts = [
        m.text for chat in chats for m in chat.messages if m.author == "Maya" and m.kind == "text"
    ]
    measured = measure_texts(texts)
    assert measured.messages == maya.counts.text
    assert measured.chars == maya.length.chars
    assert measured.emoji == maya.emoji
    assert measured.typography == maya.typography
    assert measured.laughter == maya.lexicon.laughter
    assert measured.abbreviations == maya.lexicon.abbreviations


def test_measure_texts_tells_tidy_replies_apart(maya):
    tidy = measure_texts(["Sounds good, see you at eight.", "Thanks! That works for me."])
    assert tidy.typography.formality > 0.9 > 0.4 > maya.typography.formality
    assert tidy.emoji.per_message == 0.0
