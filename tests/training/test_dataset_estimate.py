"""Token counts and the cost/time arithmetic of training estimates, on a tiny literal build."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from rich.console import Console

from training.dataset.estimate import (
    OPENAI_WIND_DOWN_NOTE,
    TEMPLATE_TOKENS_PER_MESSAGE,
    TEMPLATE_TOKENS_PER_SAMPLE,
    Target,
    count_tokens,
    default_targets,
    estimate,
    estimate_table,
    rough_token_count,
)
from training.dataset.samples import Sample, Turn
from training.errors import DatasetError

# With token_counter=len every character is a token; with ONE_EACH one template token per
# message and one per sample (its BOS).
ONE_EACH = {"tokens_per_message": 1, "tokens_per_sample": 1}
TRAIN = [
    Sample(  # system 4 + "hi" 2 + "yo" 2 + "ok" 2 + "sure"+"\n\n"+"!" 7 = 17 text, 5 messages
        # + 1 BOS: 23 tokens
        system="abcd",
        turns=(
            Turn("user", ("hi",)),
            Turn("assistant", ("yo",), train=False),
            Turn("user", ("ok",)),
            Turn("assistant", ("sure", "!")),
        ),
        conversation="c1",
        chat="x",
        split="train",
    ),
    Sample(  # system 4 + "hey" 3 + "hello" 5 = 12 text, 3 messages + 1 BOS: 16 tokens
        system="abcd",
        turns=(Turn("user", ("hey",)), Turn("assistant", ("hello",))),
        conversation="c2",
        chat="x",
        split="train",
    ),
]
EVAL = [
    Sample(  # "q" 1 + "a" 1 = 2 text, 2 messages (no system prompt) + 1 BOS: 5 tokens
        system="",
        turns=(Turn("user", ("q",)), Turn("assistant", ("a",))),
        conversation="c3",
        chat="x",
        split="eval",
    )
]


@dataclass
class Build:
    train: list[Sample]
    eval: list[Sample]


BUILD = Build(TRAIN, EVAL)


def test_count_tokens_per_split() -> None:
    counts = count_tokens(BUILD, token_counter=len, **ONE_EACH)
    train = counts.train
    assert (train.samples, train.messages) == (2, 8)
    assert train.total == (17 + 5 + 1) + (12 + 3 + 1)
    assert train.assistant == 2 + 7 + 5
    assert train.trained == 7 + 5  # the context-only "yo" carries no loss
    assert (train.p50_example, train.p95_example, train.max_example) == (16, 23, 23)
    assert (counts.eval.total, counts.eval.trained, counts.eval.messages) == (5, 1, 2)
    assert (counts.tokens_per_message, counts.tokens_per_sample) == (1, 1)


def test_tokens_per_sample_are_added_once_to_every_sample() -> None:
    without = count_tokens(BUILD, token_counter=len, tokens_per_message=1, tokens_per_sample=0)
    with_header = count_tokens(BUILD, token_counter=len, tokens_per_message=1, tokens_per_sample=20)
    assert with_header.train.total - without.train.total == 2 * 20
    assert with_header.eval.total - without.eval.total == 20
    assert with_header.train.max_example == without.train.max_example + 20
    assert with_header.train.trained == without.train.trained  # no loss on template tokens


def test_a_plain_function_gets_the_builders_default_overheads() -> None:
    counts = count_tokens(BUILD, token_counter=len)
    assert counts.tokens_per_message == TEMPLATE_TOKENS_PER_MESSAGE == 4
    assert counts.tokens_per_sample == TEMPLATE_TOKENS_PER_SAMPLE == 1
    assert counts.eval.total == 2 + 2 * 4 + 1


def test_openai_cost_is_tokens_times_epochs_times_price() -> None:
    target = Target("openai", "openai", usd_per_1m_tokens=2.0)
    [result] = estimate(BUILD, token_counter=len, targets=[target], epochs=4, **ONE_EACH)
    assert result.processed_tokens == 39 * 4
    assert result.trained_tokens == 12 * 4
    assert result.cost_usd == pytest.approx(39 * 4 * 2.0 / 1_000_000)
    assert result.seconds is None


def test_local_time_is_epochs_times_tokens_over_throughput() -> None:
    own = Target("cpu", "local", tokens_per_s=10.0)
    rented = Target("gpu", "local", tokens_per_s=39.0, usd_per_hour=3.6)
    cpu, gpu = estimate(BUILD, token_counter=len, targets=[own, rented], epochs=3, **ONE_EACH)
    assert cpu.seconds == pytest.approx(39 * 3 / 10.0)
    assert cpu.cost_usd is None
    assert gpu.seconds == pytest.approx(3.0)
    assert gpu.cost_usd == pytest.approx(3.0 / 3600 * 3.6)


class BatchCounter:
    """Like training.dataset.tokens' counters: a batch method and its own overheads."""

    name = "two per text"
    per_message = 10
    per_sample = 3

    def count(self, texts: Sequence[str]) -> list[int]:
        return [2] * len(texts)


def test_batch_counter_and_its_overhead_are_used() -> None:
    counts = count_tokens(BUILD, token_counter=BatchCounter())
    assert counts.counter == "two per text"
    assert (counts.tokens_per_message, counts.tokens_per_sample) == (10, 3)
    assert counts.train.total == 8 * (2 + 10) + 2 * 3


def test_default_targets_cover_openai_and_three_local_profiles() -> None:
    targets = default_targets(openai_usd_per_1m_tokens=1.0, cpu_tokens_per_s=5.0)
    assert [t.kind for t in targets] == ["openai", "local", "local", "local"]
    assert targets[0].usd_per_1m_tokens == 1.0
    assert targets[1].tokens_per_s == 5.0
    assert "SmolLM2-135M" in targets[1].name and "H100" in targets[3].name


def test_one_estimate_per_default_target() -> None:
    results = estimate(BUILD, token_counter=rough_token_count)
    assert [r.target for r in results] == list(default_targets())
    assert all(r.epochs == 3 for r in results)


def test_table_shows_every_target_and_warns_about_openai() -> None:
    console = Console(record=True, width=200)
    console.print(estimate_table(estimate(BUILD, token_counter=len, **ONE_EACH)))
    text = console.export_text()
    for target in default_targets():
        assert target.name in text
    assert "rough planning figures" in text
    assert "winding down self-serve fine-tuning" in text
    assert "train 2 samples, 39 tokens" in text
    assert OPENAI_WIND_DOWN_NOTE.startswith("OpenAI is winding down")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("hello world", 4), ("a" * 32, 10), ("a" * 33, 11), ("😂", 2), ("café", 2)],
)
def test_rough_token_count_is_utf8_bytes_over_3_2_rounded_up(text: str, tokens: int) -> None:
    assert rough_token_count(text) == tokens


def test_epochs_below_one_are_refused() -> None:
    with pytest.raises(DatasetError, match="epochs must be at least 1"):
        estimate(BUILD, token_counter=len, epochs=0)
