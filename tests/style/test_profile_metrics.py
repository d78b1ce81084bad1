"""Every measure on chats whose statistics are known by construction.

`known_chat` is a one-to-one chat, 20 evenings (2024-01-01 is a Monday), each at 20:00:00:

    O  "Is it ok?"                          20:00:00
    P  "hahaha ok😂" "omg sooo u" "hahaha ok😂"   30 s later, then 2 s apart
    O  "Fine."                              60 s after P's last message
    P  "omg sooo u" "hahaha ok😂" "omg sooo u"   30 s later, then 2 s apart

so P always replies after 30 s, in bursts of 3 messages 2 s apart, every message is 10
characters, and every other message ends with 😂.
"""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta

import pytest

from style.errors import StyleError
from style.messages import Chat, Media, MediaType, Message, MessageKind
from style.profile import Profile, ProfileWarning, UnknownPersonaError, build_profile

A = "hahaha ok😂"
B = "omg sooo u"
DAY0 = datetime(2024, 1, 1, 20, 0, 0)


def text(ts: datetime, author: str, words: str) -> Message:
    return Message(ts=ts, author=author, text=words)


def make_chat(messages: list[Message], source: str = "test") -> Chat:
    people = list(dict.fromkeys(m.author for m in messages if m.author))
    return Chat(source=source, dialect="test", messages=messages, participants=people)


def known_messages(days: int = 20, start: datetime = DAY0) -> list[Message]:
    messages = []
    for day in range(days):
        t = start + timedelta(days=day)
        messages.append(text(t, "O", "Is it ok?"))
        t += timedelta(seconds=30)
        for i, words in enumerate((A, B, A)):
            messages.append(text(t + timedelta(seconds=2 * i), "P", words))
        t += timedelta(seconds=4 + 60)
        messages.append(text(t, "O", "Fine."))
        t += timedelta(seconds=30)
        for i, words in enumerate((B, A, B)):
            messages.append(text(t + timedelta(seconds=2 * i), "P", words))
    return messages


@pytest.fixture(scope="module")
def known() -> Profile:
    return build_profile(make_chat(known_messages()), "P", gap_minutes=60)


def constant(dist, value: float, count: int) -> None:
    assert dist.count == count
    for stat in (dist.mean, dist.min, dist.p10, dist.p25, dist.median, dist.p75, dist.p90):
        assert stat == value
    assert dist.max == value


# --- length ------------------------------------------------------------------------------


def test_every_message_is_ten_characters(known):
    constant(known.length.chars, 10.0, 120)


def test_words_split_on_whitespace(known):
    words = known.length.words
    assert (words.count, words.mean, words.median, words.min, words.max) == (120, 2.5, 2.5, 2, 3)


def test_bursts_are_three_messages_two_seconds_apart(known):
    constant(known.length.burst_size, 3.0, 40)
    constant(known.length.burst_gap_s, 2.0, 80)
    constant(known.length.turn_chars, 30.0, 40)
    assert known.length.multi_message_share == 1.0


def test_burst_histogram_counts_whole_messages(known):
    histogram = known.length.burst_size.histogram
    assert histogram.counts[2] == 40  # the bin 2.5..3.5
    assert sum(histogram.counts) == 40


# --- timing ------------------------------------------------------------------------------


def test_reply_latency_is_always_thirty_seconds(known):
    constant(known.timing.latency_s, 30.0, 40)
    assert known.timing.resolution_s == 1
    assert known.timing.replied_within == {"1m": 1.0, "5m": 1.0, "15m": 1.0, "1h": 1.0}


def test_latency_by_hour_indexes_the_answered_message(known):
    by_hour = known.timing.latency_by_hour
    assert len(by_hour) == 24
    constant(by_hour[20], 30.0, 40)
    assert all(by_hour[h].count == 0 and by_hour[h].median is None for h in range(24) if h != 20)


def test_activity_is_weekday_by_hour(known):
    activity = known.timing.activity
    assert len(activity) == 7 and all(len(row) == 24 for row in activity)
    # 20 days from Monday: three of each weekday but Sunday, six messages a day at 20h
    assert [row[20] for row in activity] == [18, 18, 18, 18, 18, 18, 12]
    assert sum(map(sum, activity)) == 120
    assert known.timing.hours[20] == 1.0
    assert known.timing.part_of_day == {
        "night": 0.0,
        "morning": 0.0,
        "afternoon": 0.0,
        "evening": 1.0,
    }
    assert known.timing.weekdays == [0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.1]


def test_typing_speed_is_ten_characters_in_two_seconds(known):
    typing = known.timing.typing
    assert typing.chars_per_second == 5.0
    assert typing.pairs == 80
    constant(typing.rate, 5.0, 80)


def test_conversation_ends_are_counted_by_hour(known):
    assert known.timing.starts_by_hour == [0] * 24
    assert known.timing.ends_by_hour[20] == 20 and sum(known.timing.ends_by_hour) == 20


# --- lexicon -----------------------------------------------------------------------------


def fightin_words_z(yp: int, yo: int, n_p: int, n_o: int) -> float:
    alpha, alpha0 = yp + yo, n_p + n_o
    delta = math.log((yp + alpha) / (n_p + alpha0 - yp - alpha)) - math.log(
        (yo + alpha) / (n_o + alpha0 - yo - alpha)
    )
    return delta / math.sqrt(1 / (yp + alpha) + 1 / (yo + alpha))


def test_token_counts(known):
    assert known.lexicon.tokens == 300  # (2 + 3) tokens x 3 x 2 turns x 20 evenings
    assert known.lexicon.types == 5


def test_signature_words_use_the_informative_prior_z(known):
    words = {t.term: t for t in known.lexicon.signature_words}
    assert set(words) == {"hahaha", "omg", "sooo", "u"}
    # P: 300 tokens; O: "is it ok fine" x 20 = 80 tokens
    assert words["u"].z == pytest.approx(fightin_words_z(60, 0, 300, 80), abs=1e-3)
    assert all(t.z == words["u"].z for t in words.values())
    assert (words["u"].count, words["u"].others) == (60, 0)


def test_avoided_words_are_the_others_words(known):
    avoided = {t.term: t for t in known.lexicon.avoided_words}
    assert set(avoided) == {"is", "it", "fine", "ok"}
    # "ok" is 20% of P's words and 25% of O's: P uses it, but relatively less
    assert (avoided["ok"].count, avoided["ok"].others) == (60, 20)
    assert avoided["ok"].z == pytest.approx(fightin_words_z(60, 20, 300, 80), abs=1e-3)
    assert avoided["ok"].z > avoided["is"].z  # shared words are less distinctive


def test_signature_phrases_do_not_cross_messages(known):
    phrases = {t.term: t.count for t in known.lexicon.signature_phrases}
    assert phrases == {"hahaha ok": 60, "omg sooo": 60, "sooo u": 60}


def test_laughter_counts_words_and_laughing_emoji(known):
    laughter = known.lexicon.laughter
    assert laughter.per_message == 1.0
    assert laughter.families == {"emoji": 60, "haha": 60}
    assert [(f.form, f.count) for f in laughter.forms] == [("hahaha", 60)]


def test_elongation_and_abbreviations(known):
    lex = known.lexicon
    assert lex.elongation.per_message == 0.5
    assert [(f.form, f.count) for f in lex.elongation.forms] == [("sooo", 60)]
    assert [(f.form, f.count) for f in lex.elongation.words] == [("so", 60)]
    assert lex.abbreviations.per_message == 1.0
    assert lex.abbreviations.per_100_words == 40.0
    assert {f.form for f in lex.abbreviations.forms} == {"omg", "u"}


def test_mattr_of_a_five_word_cycle_is_five_over_the_window(known):
    richness = known.lexicon.richness
    assert (richness.mattr, richness.window, richness.tokens) == (0.05, 100, 300)


# --- emoji and typography ----------------------------------------------------------------


def test_laughing_emoji_ends_every_other_message(known):
    emoji = known.emoji
    assert (emoji.emoji, emoji.per_message, emoji.message_share) == (60, 0.5, 0.5)
    assert [(f.form, f.count) for f in emoji.top] == [("😂", 60)]
    assert emoji.position == {"only": 0.0, "end": 1.0, "start": 0.0, "inline": 0.0}
    assert (emoji.runs, emoji.repeated_share, emoji.run_lengths) == (
        60,
        0.0,
        {"1": 60, "2": 0, "3": 0, "4+": 0},
    )
    assert emoji.toned_share == 0.0 and emoji.laughing == 60


def test_typography_of_lowercase_unpunctuated_messages(known):
    typo = known.typography
    assert (typo.lowercase_start, typo.capitalised_start, typo.all_caps) == (1.0, 0.0, 0.0)
    assert typo.ending["emoji"] == 0.5 and typo.ending["none"] == 0.5
    assert typo.question == 0.0 and typo.multi_exclamation == 0.0
    # chat forms: "hahaha" in A, "omg" "sooo" "u" in B -> 2 a message, capped at 1
    assert typo.formality_parts == {
        "capitalised": 0.0,
        "punctuated": 0.0,
        "standard_words": 0.0,
        "emoji_free": 0.5,
    }
    assert typo.formality == 0.125


# --- flow and counts ---------------------------------------------------------------------


def test_flow_of_the_known_chat(known):
    flow = known.flow
    assert flow.conversations == 20
    assert (flow.started_share, flow.last_word_share, flow.answer_rate) == (0.0, 1.0, 1.0)
    constant(flow.turns, 4.0, 20)
    constant(flow.persona_turns, 2.0, 20)
    constant(flow.duration_s, 128.0, 20)


def test_answers_after_a_question_versus_otherwise(known):
    after, otherwise = known.flow.after_question, known.flow.otherwise
    assert after.turns == otherwise.turns == 20
    constant(after.latency_s, 30.0, 20)
    constant(after.messages, 3.0, 20)
    constant(after.chars, 30.0, 20)


def test_counts_and_sources_of_a_one_to_one_chat(known):
    assert known.counts.messages == known.counts.text == 120
    assert known.counts.chat_messages == 160
    assert known.counts.persona_share == 0.75
    (source,) = known.sources
    assert (source.messages, source.persona_messages, source.participants) == (160, 120, 2)
    assert source.group is False
    assert (source.first, source.last) == ("2024-01-01", "2024-01-20")
    assert source.resolution_s == 1 and len(source.sha256) == 64


def test_gap_override_is_recorded(known):
    assert (known.conversations.gap_s, known.conversations.method) == (3600.0, "override")
    assert known.conversations.conversations == 20
    assert known.options.gap_minutes == 60


def test_the_chosen_gap_separates_the_evenings():
    profile = build_profile(make_chat(known_messages()), "P")
    assert profile.conversations.method == "valley"
    assert 600 <= profile.conversations.gap_s <= 12 * 3600
    assert profile.conversations.conversations == 20


# --- group chats, several exports, media -------------------------------------------------


def group_messages(evenings: int = 10) -> list[Message]:
    messages = []
    for day in range(evenings):
        t = datetime(2024, 3, 4, 21, 0, 0) + timedelta(days=day)
        for offset, author, words in (
            (0, "Maya", "heyyy everyone"),
            (60, "Ann", "Hi!"),
            (100, "Ben", "Hello, what's up?"),
            (110, "Maya", "nothing much"),
            (200, "Cy", "Good night."),
            (205, "Maya", "ok byeee 😂"),
        ):
            messages.append(text(t + timedelta(seconds=offset), author, words))
    return messages


@pytest.fixture(scope="module")
def group() -> Profile:
    return build_profile(make_chat(group_messages()), "Maya", gap_minutes=30, min_messages=10)


def test_group_latency_counts_from_whoever_wrote_last(group):
    latency = group.timing.latency_s
    assert (latency.count, latency.min, latency.median, latency.max) == (20, 5.0, 7.5, 10.0)
    assert group.flow.after_question.latency_s.median == 10.0  # after Ben's question
    assert group.flow.otherwise.latency_s.median == 5.0  # after Cy's good night


def test_group_chat_source_and_flow(group):
    (source,) = group.sources
    assert source.group is True and source.participants == 4
    assert group.flow.started_share == 1.0 and group.flow.last_word_share == 1.0
    constant(group.flow.turns, 6.0, 10)
    constant(group.flow.persona_turns, 3.0, 10)
    assert group.flow.answer_rate == 1.0
    assert group.warnings == []


def test_greetings_and_sign_offs(group):
    lex = group.lexicon
    assert [(f.form, f.count) for f in lex.greetings] == [("heyyy everyone", 10)]
    assert [(f.form, f.count) for f in lex.sign_offs] == [("byeee", 10)]
    assert lex.greeting_share == 1.0 and lex.sign_off_share == 1.0


def test_conversations_never_span_two_exports():
    first = known_messages(days=1)
    start = first[-1].ts + timedelta(seconds=40)  # would continue the conversation
    second = known_messages(days=1, start=start)
    together = build_profile(make_chat(first + second), "P", gap_minutes=60, min_messages=1)
    apart = build_profile(
        [make_chat(first, "a"), make_chat(second, "b")], "P", gap_minutes=60, min_messages=1
    )
    assert together.conversations.conversations == 1
    assert apart.conversations.conversations == 2
    assert apart.timing.latency_s.count == 4  # the first reply of each export, not 40 s
    assert apart.sources[0].sha256 != apart.sources[1].sha256


def test_identical_chats_hash_the_same_and_add_up():
    chats = [make_chat(known_messages(days=3), "a"), make_chat(known_messages(days=3), "b")]
    profile = build_profile(chats, "P", gap_minutes=60, min_messages=1)
    assert profile.sources[0].sha256 == profile.sources[1].sha256
    assert profile.counts.messages == 2 * 18
    assert profile.flow.conversations == 6


def test_media_deleted_and_system_are_counted_apart():
    t = DAY0
    messages = [*known_messages(days=3)]
    messages += [
        Message(t + timedelta(days=5), "P", "", MessageKind.MEDIA, media=Media(MediaType.IMAGE)),
        Message(t + timedelta(days=5, seconds=5), "P", "", MessageKind.MEDIA),
        Message(t + timedelta(days=5, seconds=9), "P", "", MessageKind.DELETED),
        Message(t + timedelta(days=5, seconds=20), "P", "Missed voice call", MessageKind.SYSTEM),
        Message(t + timedelta(days=5, seconds=30), None, "P added O", MessageKind.SYSTEM),
    ]
    profile = build_profile(make_chat(messages), "P", gap_minutes=60, min_messages=1)
    counts = profile.counts
    assert (counts.messages, counts.text, counts.media, counts.deleted, counts.system) == (
        21,
        18,
        2,
        1,
        1,
    )
    assert counts.media_share == round(2 / 21, 4)
    assert counts.media_types == {"image": 1}
    assert profile.length.chars.count == 18  # only text feeds length
    assert profile.length.burst_size.max == 3.0  # the media burst has 3 messages


def test_minute_resolution_chats_give_no_typing_speed():
    messages = [Message(m.ts.replace(second=0), m.author, m.text) for m in known_messages(days=10)]
    with pytest.warns(ProfileWarning, match="whole-minute"):
        profile = build_profile(make_chat(messages), "P", gap_minutes=60)
    assert profile.sources[0].resolution_s == 60
    assert profile.timing.resolution_s == 60
    assert profile.timing.typing.chars_per_second is None
    assert profile.length.burst_gap_s.count == 0
    assert profile.timing.latency_s.count == 20


def test_timezone_aware_timestamps_are_read_as_wall_clock():
    messages = [
        Message(m.ts.replace(tzinfo=UTC), m.author, m.text) for m in known_messages(days=10)
    ]
    profile = build_profile(make_chat(messages), "P", gap_minutes=60)
    assert profile.timing.latency_s.median == 30.0
    assert profile.timing.hours[20] == 1.0


def test_a_persona_with_only_media_gets_an_empty_lexicon():
    messages = [
        Message(
            DAY0 + timedelta(minutes=i, seconds=i), "P" if i % 2 else "O", "" if i % 2 else "Hi."
        )
        for i in range(20)
    ]
    for m in messages:
        if m.author == "P":
            m.kind = MessageKind.MEDIA
    with pytest.warns(ProfileWarning, match="no text messages"):
        profile = build_profile(make_chat(messages), "P", min_messages=1)
    assert profile.lexicon.tokens == 0 and profile.emoji.emoji == 0
    assert profile.length.chars.count == 0 and profile.typography.formality is None
    assert Profile.from_json(profile.to_json()) == profile


# --- warnings and errors -----------------------------------------------------------------


def test_too_few_messages_warns_with_the_count():
    with pytest.warns(ProfileWarning, match="only 12 messages"):
        profile = build_profile(make_chat(known_messages(days=2)), "P")
    assert any("only 12 messages" in w and "at least 50" in w for w in profile.warnings)


def test_enough_messages_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileWarning)
        profile = build_profile(make_chat(known_messages(days=20)), "P", gap_minutes=60)
    assert profile.warnings == []


def test_unknown_persona_lists_the_participants():
    with pytest.raises(UnknownPersonaError) as caught:
        build_profile(make_chat(group_messages(2)), "maya")
    message = str(caught.value)
    assert "'maya'" in message
    assert "'Maya' (6 messages)" in message and "'Ann' (2 messages)" in message
    assert "Did you mean 'Maya'?" in message
    assert isinstance(caught.value, StyleError)
    assert caught.value.participants["Maya"] == 6


def test_a_chat_without_the_persona_is_left_out_with_a_warning():
    chats = [make_chat(known_messages(days=10), "a"), make_chat(group_messages(2), "b")]
    with pytest.warns(ProfileWarning, match="no messages by P"):
        profile = build_profile(chats, "P", gap_minutes=60)
    assert [s.persona_messages for s in profile.sources] == [60, 0]
    assert profile.counts.chat_messages == 80


def test_no_chats_and_bad_gap_are_errors():
    with pytest.raises(StyleError, match="no chats"):
        build_profile([], "P")
    with pytest.raises(StyleError, match="gap_minutes"):
        build_profile(make_chat(known_messages(days=1)), "P", gap_minutes=0)
