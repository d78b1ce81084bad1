"""Conversation flow: who starts and ends, how long it runs, how questions are answered."""

from __future__ import annotations

import numpy as np

from style.profile.conversations import PERSONA, Conversations, IntArray, Timeline
from style.profile.distributions import CHAR_EDGES, COUNT_EDGES, LATENCY_EDGES, share, summarise
from style.profile.model import FlowProfile, ReplyStats
from style.profile.timing import replies


def flow_profile(
    timeline: Timeline, conversations: Conversations, *, fine_only: bool
) -> FlowProfile:
    """Flow of the conversations the persona wrote in.

    A turn "asks" when one of its text messages contains "?". `after_question` summarises the
    persona's turns that answer such a turn, `otherwise` her other replies; `answer_rate` is
    the share of the others' asking turns that the persona's turn follows directly.
    """
    count = conversations.count
    author = timeline.author
    present = np.bincount(conversations.conv[author == PERSONA], minlength=count) > 0
    started = author[conversations.conv_first] == PERSONA
    last_word = author[conversations.conv_last] == PERSONA
    turn_conv = conversations.turn_conv
    mine = conversations.turn_author == PERSONA
    turns = np.bincount(turn_conv, minlength=count)[present]
    my_turns = np.bincount(turn_conv[mine], minlength=count)[present]
    duration = (timeline.t[conversations.conv_last] - timeline.t[conversations.conv_first])[present]

    asks = np.add.reduceat(timeline.question.astype(np.int64), conversations.turn_first) > 0
    answering = replies(timeline, conversations)
    after = asks[answering - 1]
    theirs = np.flatnonzero(~mine & asks)
    followed = theirs + 1 < turn_conv.size
    nxt = np.minimum(theirs + 1, turn_conv.size - 1)
    answered = followed & mine[nxt] & (turn_conv[nxt] == turn_conv[theirs])
    return FlowProfile(
        conversations=int(present.sum()),
        started_share=share(int(started[present].sum()), int(present.sum())),
        last_word_share=share(int(last_word[present].sum()), int(present.sum())),
        turns=summarise(turns, COUNT_EDGES),
        persona_turns=summarise(my_turns, COUNT_EDGES),
        duration_s=summarise(duration, LATENCY_EDGES, log=True),
        after_question=_reply_stats(timeline, conversations, answering[after], fine_only),
        otherwise=_reply_stats(timeline, conversations, answering[~after], fine_only),
        answer_rate=share(int(answered.sum()), int(theirs.size)),
    )


def _reply_stats(
    timeline: Timeline, conversations: Conversations, turns: IntArray, fine_only: bool
) -> ReplyStats:
    first = conversations.turn_first[turns]
    end = conversations.turn_end[turns]
    timed = first[timeline.fine[first]] if fine_only else first
    cumulative = np.concatenate(([0], np.cumsum(timeline.chars)))
    return ReplyStats(
        turns=int(turns.size),
        latency_s=summarise(timeline.t[timed] - timeline.t[timed - 1], LATENCY_EDGES, log=True),
        messages=summarise(end - first, COUNT_EDGES),
        chars=summarise(cumulative[end] - cumulative[first], CHAR_EDGES),
    )
