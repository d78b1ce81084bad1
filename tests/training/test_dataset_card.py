"""dataset_card.json: counts, hashes and settings of a build, and never its text."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from training.dataset.card import CARD_FILE, make_card, write_card
from training.dataset.formats import write_dataset
from training.dataset.samples import Sample, Turn

SYSTEM = "You are Zephyrine. Reply in short lowercase bursts."
SECRET_WORDS = ("quokkaparade", "marzipanvault", "bellwether42", "Zephyrine")


def sample(n: int, split: str, *, chat: str = "chat-1", augmented: bool = False) -> Sample:
    return Sample(
        system=SYSTEM,
        turns=(
            Turn("user", ("see the quokkaparade?",), datetime(2024, 5, 1 + n, 10, 0)),
            Turn("assistant", ("marzipanvault lol",), datetime(2024, 5, 1 + n, 10, 1), False),
            Turn("user", ("bellwether42 tonight",), datetime(2024, 5, 1 + n, 10, 2)),
            Turn("assistant", ("yes", "omg"), datetime(2024, 5, 1 + n, 10, 5)),
        ),
        conversation=f"conv-{n // 2}",  # two samples per conversation
        chat=chat,
        split=split,  # type: ignore[arg-type]
        augmented=augmented,
    )


@dataclass
class Config:
    eval_share: float = 0.1
    max_tokens: int = 1024


@dataclass
class Build:
    train: list[Sample]
    eval: list[Sample]
    filters: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    sources: list[dict[str, str]] = field(default_factory=list)
    config: Config = field(default_factory=Config)
    gap_s: float = 5400.0
    persona: str = "Zephyrine"


@pytest.fixture
def build() -> Build:
    train = [sample(n, "train") for n in range(10)]
    train += [sample(10, "train", chat="chat-2", augmented=True)]
    return Build(
        train=train,
        eval=[sample(20, "eval"), sample(21, "eval")],
        filters={"dedupe": 4, "url_only": 1},
        stats={"persona_messages": 42},
        sources=[{"sha256": "ab" * 32, "kind": "whatsapp"}],
    )


@pytest.fixture
def written(build: Build, tmp_path: Path) -> tuple[dict[str, Path], Path]:
    files = write_dataset(build, tmp_path)
    card = write_card(build, tmp_path, files, created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    return files, card


def test_card_is_written_beside_the_files(written: tuple[dict[str, Path], Path]) -> None:
    files, card = written
    assert card == files["hf_train"].parent / CARD_FILE
    assert json.loads(card.read_text(encoding="utf-8"))["card_version"] == 1


def test_card_holds_no_message_text_or_system_prompt(
    written: tuple[dict[str, Path], Path],
) -> None:
    text = written[1].read_text(encoding="utf-8")
    for word in SECRET_WORDS[:3]:
        assert word not in text
    assert SYSTEM not in text and "lowercase bursts" not in text


def test_card_records_the_persona_name(written: tuple[dict[str, Path], Path]) -> None:
    card = json.loads(written[1].read_text(encoding="utf-8"))
    assert card["persona"] == "Zephyrine"


def test_card_counts_each_split(written: tuple[dict[str, Path], Path]) -> None:
    split = json.loads(written[1].read_text(encoding="utf-8"))["split"]
    assert split["train"] == {
        "samples": 11,
        "conversations": 6,
        "chats": 2,
        "augmented_samples": 1,
        "turns": 44,
        "assistant_turns": 22,
        "context_only_assistant_turns": 11,
        "first": "2024-05-01T10:00:00",
        "last": "2024-05-11T10:05:00",
    }
    assert split["eval"]["samples"] == 2
    assert split["eval"]["conversations"] == 1
    assert (split["eval"]["first"], split["eval"]["last"]) == (
        "2024-05-21T10:00:00",
        "2024-05-22T10:05:00",
    )


def test_card_copies_filters_sources_settings_and_gap(
    written: tuple[dict[str, Path], Path],
) -> None:
    card = json.loads(written[1].read_text(encoding="utf-8"))
    assert card["filters"] == {"dedupe": 4, "url_only": 1}
    assert card["scrub"] is None and card["notes"] is None
    assert card["sources"] == [{"sha256": "ab" * 32, "kind": "whatsapp"}]
    assert card["settings"] == {"eval_share": 0.1, "max_tokens": 1024}
    assert card["gap_s"] == 5400.0
    assert card["stats"] == {"persona_messages": 42}


def test_card_hashes_the_system_prompt(written: tuple[dict[str, Path], Path]) -> None:
    prompts = json.loads(written[1].read_text(encoding="utf-8"))["system_prompts"]
    digest = hashlib.sha256(SYSTEM.encode()).hexdigest()
    assert prompts == {"distinct": 1, "most_used": [{"sha256": digest, "samples": 13}]}


def test_card_lists_every_file_with_sha256_and_lines(
    written: tuple[dict[str, Path], Path],
) -> None:
    files, card_path = written
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert sorted(card["files"]) == sorted(files)
    for key, path in files.items():
        data = path.read_bytes()
        assert card["files"][key] == {
            "name": path.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "lines": data.count(b"\n"),
            "bytes": len(data),
        }
    assert card["files"]["hf_train"]["lines"] == 11
    assert card["files"]["openai_eval"]["lines"] == 2


def test_card_of_a_build_with_stats_takes_its_token_statistics_from_them(
    written: tuple[dict[str, Path], Path],
) -> None:
    card = json.loads(written[1].read_text(encoding="utf-8"))
    assert card["tokens"] is None
    assert card["stats"] == {"persona_messages": 42}


def test_card_counts_tokens_with_the_given_counter(build: Build) -> None:
    tokens = make_card(build, {}, token_counter=len)["tokens"]
    assert tokens["counter"] == "len"
    assert tokens["train"]["samples"] == 11
    assert tokens["train"]["messages"] == 55  # system + 4 turns each
    assert tokens["train"]["trained"] == 11 * len("yes\n\nomg")
    assert tokens["train"]["assistant"] == 11 * (len("yes\n\nomg") + len("marzipanvault lol"))


def test_card_records_the_template_tokens_per_message_and_per_sample(build: Build) -> None:
    class Counter:
        name = "words"
        per_message = 5
        per_sample = 21  # a BOS and a system header

        def count(self, texts):
            return [len(text.split()) for text in texts]

    tokens = make_card(build, {}, token_counter=Counter())["tokens"]
    assert (tokens["tokens_per_message"], tokens["tokens_per_sample"]) == (5, 21)
    words = len(SYSTEM.split()) + 3 + 2 + 2 + 2  # the four turns
    assert tokens["train"]["max_example"] == words + 5 * 5 + 21


def test_card_of_loose_samples_counts_tokens_roughly(build: Build) -> None:
    tokens = make_card(build.train, {})["tokens"]
    assert tokens["counter"] == "estimate (utf-8 bytes / 3.2)"
    assert 0 < tokens["train"]["trained"] < tokens["train"]["assistant"] < tokens["train"]["total"]


def test_card_records_when_and_which_version(written: tuple[dict[str, Path], Path]) -> None:
    card = json.loads(written[1].read_text(encoding="utf-8"))
    assert card["created_at"] == "2026-01-02T03:04:05+00:00"
    assert card["versions"]["wa_persona"] == "0.1.0"
    assert card["versions"]["python"].count(".") == 2


def test_card_of_loose_samples_leaves_build_fields_empty(build: Build) -> None:
    card = make_card(build.train, {}, persona="Zephyrine")
    assert card["filters"] is None and card["sources"] is None and card["settings"] is None
    assert card["split"]["train"]["samples"] == 11 and card["split"]["eval"]["samples"] == 0
    assert card["split"]["eval"]["first"] is None
