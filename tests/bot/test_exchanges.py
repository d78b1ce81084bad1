"""The exchange index: BM25 over past contexts, fallbacks, time of day, sources and files."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import bot.exchanges
from bot.backends.base import ChatTurn
from bot.exchanges import (
    TURN_WEIGHTS,
    ContextTurn,
    Exchange,
    ExchangeIndex,
    ExchangeIndexError,
    reply_key,
    tokenize,
)
from style.parse import load_chats
from style.sample import sample_paths
from training.dataset import (
    CONVERSATION_START,
    DatasetBuild,
    DatasetConfig,
    Sample,
    Turn,
    build_dataset,
    write_card,
    write_dataset,
)

EVENING = datetime(2024, 3, 12, 21, 0)
MORNING = datetime(2024, 3, 12, 9, 0)


def turn(role: str, *bubbles: str) -> ContextTurn:
    return ContextTurn("user" if role == "them" else "assistant", bubbles)


def exchange(
    number: int, context: list[tuple[str, str]], *reply: str, hour: int | None = None
) -> Exchange:
    """An exchange from (who, text) turns, "them" being the user; ids are literal."""
    turns = tuple(turn(who, text) for who, text in context)
    return Exchange(
        id=f"ex{number}",
        context=turns,
        reply=reply,
        reply_id=reply_key(reply),
        hour=hour,
        part_of_day=None if hour is None else bot.exchanges.part_of_day(hour),
    )


def said(*texts: str) -> list[ChatTurn]:
    """A live history alternating user / persona, ending with the user's turn."""
    count = len(texts)
    return [
        ChatTurn("user" if (count - i) % 2 else "assistant", (text,), EVENING)
        for i, text in enumerate(texts)
    ]


def replies(found: list) -> list[tuple[str, ...]]:
    return [item.exchange.reply for item in found]


FILLER = [
    exchange(100 + i, [("them", f"is the {word} in the {place}")], f"filler {i}")
    for i, (word, place) in enumerate(
        [("cat", "house"), ("car", "garage"), ("tea", "pot"), ("key", "door"), ("pen", "bag")]
    )
]


@pytest.fixture(scope="module")
def maya() -> DatasetBuild:
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    return build_dataset(chats, "Maya", DatasetConfig())


# --- matching ----------------------------------------------------------------------------


def test_a_shared_rare_word_beats_shared_common_words():
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", "is it in the box or is it in the bag")], "common words"),
            exchange(2, [("them", "lasagna")], "rare word"),
            *FILLER,
        ]
    )
    found = index.search(said("is the lasagna in the oven"), k=10)
    assert found[0].exchange.reply == ("rare word",)
    assert found[0].source == "match"
    assert ("common words",) in replies(found[1:])  # it matched, lower


def test_scores_are_okapi_bm25_with_weighted_turns():
    """One exchange's score, recomputed by hand from the documented formula."""
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", "pizza tonight"), ("me", "yes"), ("them", "berlin")], "a"),
            exchange(2, [("them", "berlin berlin trip")], "b"),
            exchange(3, [("them", "nothing here")], "c"),
        ]
    )
    lengths = [1.0 * 1 + 0.4 * 1 + 0.3 * 2, 1.0 * 3, 1.0 * 2]  # weighted tokens per context
    average = sum(lengths) / 3

    def term(df: int, tf: float, length: float) -> float:
        idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
        return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * length / average))

    found = index.search([ChatTurn("user", ("berlin pizza",), EVENING)], k=1)
    expected = term(2, 1.0, lengths[0]) + term(1, 0.3, lengths[0])
    assert found[0].exchange.id == "ex1"
    assert found[0].score == pytest.approx(expected, rel=1e-5)


def test_the_latest_user_turn_outweighs_older_turns_in_past_contexts():
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", "berlin trip"), ("me", "ok"), ("them", "pizza tonight")], "p"),
            exchange(2, [("them", "pizza tonight"), ("me", "ok"), ("them", "berlin trip")], "b"),
        ]
    )
    assert replies(index.search(said("pizza tonight", "hm", "berlin trip"), k=2)) == [
        ("b",),
        ("p",),
    ]
    assert replies(index.search(said("berlin trip", "hm", "pizza tonight"), k=2)) == [
        ("p",),
        ("b",),
    ]


def test_the_latest_user_turn_outweighs_older_turns_of_the_live_chat():
    index = ExchangeIndex.build(
        [exchange(1, [("them", "pizza")], "about pizza"), exchange(2, [("them", "berlin")], "b")]
    )
    assert replies(index.search(said("pizza", "ok", "berlin"), k=1)) == [("b",)]
    assert TURN_WEIGHTS[0] > TURN_WEIGHTS[2]


def test_time_of_day_boost_breaks_a_tie():
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", "coffee?")], "morning answer", hour=9),
            exchange(2, [("them", "coffee?")], "evening answer", hour=21),
        ]
    )
    history = said("coffee?")
    assert replies(index.search(history, k=1, now=EVENING)) == [("evening answer",)]
    assert replies(index.search(history, k=1, now=MORNING)) == [("morning answer",)]
    assert replies(index.search(history, k=1)) == [("morning answer",)]  # no time: index order


def test_one_result_per_reply_however_many_exchanges_have_it():
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", "pizza tonight?")], "yesss"),
            exchange(2, [("them", "pizza tomorrow?")], "YESSS"),
            exchange(3, [("them", "pizza or pasta")], "pasta"),
        ]
    )
    found = index.search(said("pizza tonight?"), k=3)
    assert replies(found) == [("yesss",), ("pasta",)]


def test_exclude_takes_exchange_ids_and_reply_ids():
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", "pizza tonight?")], "yes"),
            exchange(2, [("them", "pizza tomorrow?")], "yes"),
            exchange(3, [("them", "pizza or pasta")], "pasta"),
        ]
    )
    history = said("pizza tonight?")
    assert [r.exchange.id for r in index.search(history, k=3, exclude={"ex1"})] == ["ex2", "ex3"]
    assert replies(index.search(history, k=3, exclude={reply_key(("yes",))})) == [("pasta",)]


def test_a_message_sharing_no_word_gets_the_most_frequent_replies():
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", "pizza?")], "omg yes"),
            exchange(2, [("them", "film tonight?")], "ok"),
            exchange(3, [("them", "are you coming")], "ok"),
            exchange(4, [("them", "did you see it")], "a long and specific answer"),
        ]
    )
    found = index.search(said("xqzv blorp"), k=2)
    assert [item.source for item in found] == ["generic", "generic"]
    assert replies(found) == [("ok",), ("omg yes",)]  # twice sent, then the shortest


def test_a_new_conversation_gets_the_persona_usual_openers():
    index = ExchangeIndex.build(
        [
            exchange(1, [("them", CONVERSATION_START)], "hiii", hour=9),
            exchange(2, [("them", CONVERSATION_START)], "guess what", hour=21),
            exchange(3, [("them", "new conversation please")], "not an opener"),
        ]
    )
    history = [ChatTurn("user", (CONVERSATION_START,), EVENING)]
    found = index.search(history, k=5, now=EVENING)
    assert replies(found) == [("guess what",), ("hiii",)]
    assert {item.source for item in found} == {"opener"}
    assert replies(index.search([], k=1, now=MORNING)) == [("hiii",)]
    later = [*history, ChatTurn("assistant", ("hey",), EVENING), *said("xqzv")]
    assert {item.source for item in index.search(later, k=3)} == {"generic"}


def test_without_openers_a_new_conversation_gets_generic_replies():
    index = ExchangeIndex.build([exchange(1, [("them", "pizza?")], "yes")])
    found = index.search([ChatTurn("user", (CONVERSATION_START,), EVENING)], k=1)
    assert [(item.exchange.reply, item.source) for item in found] == [(("yes",), "generic")]


GREETED = [
    exchange(1, [("them", "hey did you see the match")], "the match was unreal"),
    exchange(2, [("them", "heyyy")], "heyy u", "whats up"),
    exchange(3, [("them", "hi maya!")], "hiii"),
    exchange(4, [("them", CONVERSATION_START)], "ok so", "guess what"),
    exchange(5, [("them", CONVERSATION_START)], "hello hello", "hows ur mum"),
]


def test_a_bare_greeting_gets_her_replies_to_greetings_not_a_context_that_says_hey():
    found = ExchangeIndex.build(GREETED).search(said("hey"), k=3)
    # equally frequent, so the shortest first
    assert replies(found) == [("hiii",), ("heyy u", "whats up"), ("hello hello", "hows ur mum")]
    assert {item.source for item in found} == {"greeting"}  # not "the match was unreal"
    more = ExchangeIndex.build(GREETED).search(said("hey did u see the match"), k=1)
    assert replies(more) == [("the match was unreal",)]  # more than a greeting: BM25


def test_without_replies_to_greetings_a_greeting_gets_openers_that_greet_first():
    index = ExchangeIndex.build([GREETED[0], *GREETED[3:]])
    assert replies(index.search(said("good morning 🌞"), k=1)) == [("hello hello", "hows ur mum")]
    openers = ExchangeIndex.build([GREETED[0], GREETED[3]])
    found = openers.search(said("hii"), k=1)
    assert [(item.exchange.reply, item.source) for item in found] == [
        (("ok so", "guess what"), "opener")
    ]


@pytest.mark.parametrize(
    ("text", "only"),
    [
        ("hey", True),
        ("heyyy", True),
        ("hii", True),
        ("hi maya!", True),
        ("good morning 🌞", True),
        ("what's up", True),
        ("hola", True),
        ("hey how are u", False),
        ("ok", False),
        ("speak soon", False),
        (CONVERSATION_START, False),
    ],
)
def test_only_greeting(text: str, only: bool) -> None:
    assert bot.exchanges.only_greeting((text,)) is only


def test_an_empty_index_finds_nothing():
    assert ExchangeIndex.build([]).search(said("hi"), k=3) == []


def test_large_indexes_rank_exactly_as_a_full_sort(monkeypatch):
    """Above 4,096 candidates the top is cut with argpartition; ties keep index order."""
    many = [
        exchange(i, [("them", f"pizza {'night' if i % 7 else 'day'} w{i % 50}")], f"r{i % 900}")
        for i in range(6000)
    ]
    index = ExchangeIndex.build(many)
    history = said("pizza night w3")
    fast = index.search(history, k=20, now=EVENING)
    monkeypatch.setattr(bot.exchanges, "_PARTITION_AT", 10**9)
    assert index.search(history, k=20, now=EVENING) == fast
    assert len({item.exchange.reply_id for item in fast}) == 20


def test_tokens_fold_case_laughs_and_stretched_words_and_keep_emoji():
    assert tokenize("OMG Sooo FUNNY hahahah 😂😂 👍🏽") == [
        "omg",
        "so",
        "soo",
        "funny",
        "haha",
        "😂",
        "😂",
        "👍",
    ]
    assert tokenize("hahaha") == tokenize("haha") == ["haha"]
    assert tokenize("it's 5 o'clock") == ["it's", "o'clock"]


def test_duplicates_keep_one_exchange_with_the_longest_context():
    short = exchange(1, [("them", "pizza?")], "yes")
    longer = exchange(2, [("them", "hungry?"), ("me", "very"), ("them", "PIZZA?")], "yes")
    index = ExchangeIndex.build([short, longer])
    assert [e.id for e in index.exchanges] == ["ex2"]


# --- sources -----------------------------------------------------------------------------


def sample(split: str, *turns: Turn, system: str = "card") -> Sample:
    return Sample(system, turns, "conv", "chat", split)  # type: ignore[arg-type]


def test_from_samples_indexes_trained_persona_turns_of_the_training_split_only():
    at = datetime(2024, 3, 12, 21, 5)
    samples = [
        sample(
            "train",
            Turn("user", ("pizza?",), at),
            Turn("assistant", ("already learned",), at, train=False),
            Turn("user", ("and pasta?",), at),
            Turn("assistant", ("yes", "both"), at),
        ),
        sample("eval", Turn("user", ("pizza?",), at), Turn("assistant", ("held out",), at)),
    ]
    index = ExchangeIndex.from_samples(samples)
    [only] = index.exchanges
    assert only.reply == ("yes", "both")
    assert only.context == (
        turn("them", "pizza?"),
        turn("me", "already learned"),
        turn("them", "and pasta?"),
    )
    assert (only.hour, only.part_of_day) == (21, "evening")


def test_from_samples_keeps_four_turns_of_context_at_most(maya: DatasetBuild):
    index = ExchangeIndex.from_samples(maya.train)
    assert max(len(e.context) for e in index.exchanges) == 4
    assert all(e.context[-1].role == "user" for e in index.exchanges)
    assert all(e.hour is not None for e in index.exchanges)


def write(build: DatasetBuild, folder: Path) -> Path:
    files = write_dataset(build, folder)
    write_card(build, folder, files)
    return folder


def hf_replies(path: Path) -> set[tuple[str, ...]]:
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        for message in json.loads(line)["messages"]:
            if message["role"] == "assistant":
                out.add(tuple(message["content"].split("\n\n")))
    return out


def test_from_dataset_dir_reads_the_training_split_and_never_eval(maya, tmp_path):
    folder = write(maya, tmp_path)
    index = ExchangeIndex.from_dataset_dir(folder)
    assert len(index) == len(ExchangeIndex.from_samples(maya.train))
    indexed = {e.reply for e in index.exchanges}
    eval_only = hf_replies(folder / "eval.jsonl") - hf_replies(folder / "train.jsonl")
    assert eval_only  # the check below means something
    assert not indexed & eval_only
    assert all(e.hour is None for e in index.exchanges)  # no timestamps in the files


def test_from_dataset_dir_takes_the_part_of_day_from_the_time_line(tmp_path):
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    build = build_dataset(chats, "Maya", DatasetConfig(time_of_day=True))
    index = ExchangeIndex.from_dataset_dir(write(build, tmp_path))
    parts = Counter(e.part_of_day for e in index.exchanges)
    assert None not in parts
    assert parts["evening"] > parts["morning"] > 0


def test_from_dataset_dir_without_a_dataset_says_to_build_one(tmp_path):
    with pytest.raises(ExchangeIndexError, match="wa-persona dataset"):
        ExchangeIndex.from_dataset_dir(tmp_path)


def test_from_dataset_dir_names_the_bad_line(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"messages": []}\nnot json\n', encoding="utf-8")
    with pytest.raises(ExchangeIndexError, match="line 2"):
        ExchangeIndex.from_dataset_dir(tmp_path)


# --- files -------------------------------------------------------------------------------


def test_save_and_load_give_identical_results(maya, tmp_path):
    index = ExchangeIndex.from_samples(maya.train)
    path = tmp_path / "exchanges.npz"
    index.save(path)
    loaded = ExchangeIndex.load(path)
    assert loaded.exchanges == index.exchanges
    for item in maya.eval[:40]:
        turns = item.turns[:-1]
        exclude = {index.exchanges[0].reply_id}
        for now in (EVENING, None):
            assert loaded.search(turns, k=8, now=now, exclude=exclude) == index.search(
                turns, k=8, now=now, exclude=exclude
            )
    opener = [ChatTurn("user", (CONVERSATION_START,), EVENING)]
    assert loaded.search(opener, k=3, now=MORNING) == index.search(opener, k=3, now=MORNING)


def test_load_refuses_another_version(maya, tmp_path):
    path = tmp_path / "exchanges.npz"
    ExchangeIndex.from_samples(maya.train[:20]).save(path)
    with np.load(path) as npz:
        arrays = dict(npz)
    header = json.loads(arrays["header"].tobytes())
    header["version"] = 0
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ExchangeIndexError, match=r"version 0.*build it again"):
        ExchangeIndex.load(path)


def test_load_refuses_a_file_that_is_not_an_index(tmp_path):
    path = tmp_path / "exchanges.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ExchangeIndexError, match="not an exchange index"):
        ExchangeIndex.load(path)


def test_an_empty_index_saves_and_loads(tmp_path):
    path = tmp_path / "empty.npz"
    ExchangeIndex.build([]).save(path)
    loaded = ExchangeIndex.load(path)
    assert len(loaded) == 0
    assert loaded.search(said("hi"), k=1) == []
