"""The offline retrieval persona: best past reply, no repeats in a chat, strength, sample data."""

from __future__ import annotations

import random
import re
from datetime import datetime

import pytest

from bot.backends import ChatTurn, Prompt, Reply, RetrievalBackend
from bot.errors import BackendUnavailable
from bot.exchanges import ContextTurn, Exchange, ExchangeIndex, reply_key, tokenize
from style.parse import load_chats
from style.sample import sample_paths
from training.dataset import CONVERSATION_START, DatasetBuild, DatasetConfig, build_dataset

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 3, 12, 21, 0)


@pytest.fixture(scope="module")
def maya() -> DatasetBuild:
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    return build_dataset(chats, "Maya", DatasetConfig())


@pytest.fixture(scope="module")
def maya_index(maya: DatasetBuild) -> ExchangeIndex:
    return ExchangeIndex.from_samples(maya.train)


def exchange(number: int, context: str, *reply: str) -> Exchange:
    return Exchange(
        id=f"ex{number}",
        context=(ContextTurn("user", (context,)),),
        reply=reply,
        reply_id=reply_key(reply),
    )


PIZZA = ExchangeIndex.build(
    [
        exchange(1, "pizza tonight?", "omg yes"),
        exchange(2, "pizza tomorrow?", "maybe"),
        exchange(3, "pizza or pasta", "pasta obviously"),
    ]
)


def prompt(*texts: str, chat: str = "chat-1", strength: float = 1.0) -> Prompt:
    """A prompt whose history alternates user / persona and ends with the user's turn."""
    count = len(texts)
    history = tuple(
        ChatTurn("user" if (count - i) % 2 else "assistant", (text,), NOW)
        for i, text in enumerate(texts)
    )
    return Prompt(persona="Maya", chat_id=chat, history=history, now=NOW, strength=strength)


async def test_strength_one_sends_the_best_match_verbatim():
    first = await RetrievalBackend(PIZZA, rng=random.Random(1)).reply(prompt("pizza tonight?"))
    second = await RetrievalBackend(PIZZA, rng=random.Random(2)).reply(prompt("pizza tonight?"))
    assert first.bubbles == second.bubbles == ("omg yes",)
    assert first.backend == "retrieval"
    assert first.model is None
    assert first.latency_s > 0


async def test_replies_are_not_repeated_in_a_chat_until_all_are_used():
    backend = RetrievalBackend(PIZZA)
    sent = [(await backend.reply(prompt("pizza tonight?"))).bubbles for _ in range(5)]
    # all three once, best first; then the one sent longest ago comes back, and so on
    assert sent == [("omg yes",), ("maybe",), ("pasta obviously",), ("omg yes",), ("maybe",)]


async def test_many_calls_in_one_chat_never_repeat(maya_index):
    backend = RetrievalBackend(maya_index)
    sent = [
        reply_key((await backend.reply(prompt("omg did you see that?"))).bubbles)
        for _ in range(300)
    ]
    assert len(set(sent)) == 300


async def test_chats_are_independent():
    backend = RetrievalBackend(PIZZA)
    first = await backend.reply(prompt("pizza tonight?", chat="a"))
    other = await backend.reply(prompt("pizza tonight?", chat="b"))
    again = await backend.reply(prompt("pizza tonight?", chat="a"))
    assert first.bubbles == other.bubbles == ("omg yes",)
    assert again.bubbles == ("maybe",)


async def test_a_reply_the_persona_just_sent_is_not_sent_again():
    backend = RetrievalBackend(PIZZA)
    reply = await backend.reply(prompt("pizza tonight?", "OMG  yes", "pizza tonight?"))
    assert reply.bubbles == ("maybe",)


async def test_memory_per_chat_is_bounded():
    backend = RetrievalBackend(PIZZA, memory=2)
    sent = [(await backend.reply(prompt("pizza tonight?"))).bubbles for _ in range(4)]
    assert sent == [("omg yes",), ("maybe",), ("pasta obviously",), ("omg yes",)]


async def test_forgets_the_chat_idle_longest_beyond_max_chats():
    backend = RetrievalBackend(PIZZA, max_chats=1)
    await backend.reply(prompt("pizza tonight?", chat="a"))
    await backend.reply(prompt("pizza tonight?", chat="b"))
    again = await backend.reply(prompt("pizza tonight?", chat="a"))
    assert again.bubbles == ("omg yes",)


async def test_an_empty_index_is_unavailable():
    with pytest.raises(BackendUnavailable, match="index is empty"):
        await RetrievalBackend(ExchangeIndex.build([])).reply(prompt("hi"))


def persona_tokens(index: ExchangeIndex) -> set[str]:
    return {token for e in index.exchanges for bubble in e.reply for token in tokenize(bubble)}


async def test_low_strength_varies_with_the_seed_but_keeps_the_persona_words(maya, maya_index):
    history = maya.eval[0].turns[:1]
    sent: set[tuple[str, ...]] = set()
    for seed in range(30):
        backend = RetrievalBackend(maya_index, rng=random.Random(seed))
        reply = await backend.reply(
            Prompt(persona="Maya", chat_id="c", history=history, now=NOW, strength=0.2)
        )
        sent.add(reply.bubbles)
    assert len(sent) > 3
    words = {token for bubbles in sent for bubble in bubbles for token in tokenize(bubble)}
    assert words <= persona_tokens(maya_index)


async def test_low_strength_only_stretches_letters_and_laughs():
    index = ExchangeIndex.build([exchange(1, "funny?", "sooo funny hahaha")])
    sent = set()
    for seed in range(40):
        backend = RetrievalBackend(index, rng=random.Random(seed))
        sent.add((await backend.reply(prompt("funny?", strength=0.0))).bubbles)
    shape = re.compile(r"so{3,} funny (?:ha){2,}")
    assert all(len(bubbles) == 1 and shape.fullmatch(bubbles[0]) for bubbles in sent)
    assert len(sent) > 2
    assert ("sooo funny hahaha",) in sent


async def test_low_strength_may_add_a_reaction_bubble_from_another_match():
    index = ExchangeIndex.build(
        [exchange(1, "pizza tonight?", "yes"), exchange(2, "pizza tomorrow?", "maybe", "😂😂")]
    )
    sent = set()
    for seed in range(40):
        backend = RetrievalBackend(index, rng=random.Random(seed))
        sent.add((await backend.reply(prompt("pizza tonight?", strength=0.0))).bubbles)
    assert ("yes", "😂😂") in sent
    assert {bubble for bubbles in sent for bubble in bubbles} <= {"yes", "maybe", "😂😂"}


# --- on the bundled sample ---------------------------------------------------------------


def assistant_replies(samples) -> set[tuple[str, ...]]:
    return {t.bubbles for s in samples for t in s.turns if t.role == "assistant"}


async def test_evaluation_messages_get_real_training_replies_never_held_out_ones(maya, maya_index):
    backend = RetrievalBackend(maya_index)
    trained = {t.bubbles for s in maya.train for t in s.turns if t.role == "assistant" and t.train}
    held_out = assistant_replies(maya.eval) - assistant_replies(maya.train)
    assert held_out
    for number, item in enumerate(maya.eval):
        for i, turn in enumerate(item.turns):
            if turn.role != "assistant":
                continue
            history = tuple(ChatTurn(t.role, t.bubbles, NOW) for t in item.turns[:i])
            reply = await backend.reply(
                Prompt(persona="Maya", chat_id=str(number), history=history, now=NOW)
            )
            assert reply.bubbles in trained
            assert reply.bubbles not in held_out


async def test_gibberish_never_seen_still_gets_a_real_reply(maya, maya_index):
    reply = await RetrievalBackend(maya_index).reply(prompt("zxqv blorptang frimble"))
    assert reply.bubbles in {e.reply for e in maya_index.exchanges}
    assert isinstance(reply, Reply)


async def test_a_new_conversation_gets_one_of_maya_openers(maya_index):
    backend = RetrievalBackend(maya_index)
    reply = await backend.reply(prompt(CONVERSATION_START))
    openers = {e.reply for e in maya_index.exchanges if e.opener}
    assert reply.bubbles in openers
