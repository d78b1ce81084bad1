"""Token counts of a dataset build and what training on it may cost, per training target.

Every figure here is a rough planning number, not a quote:

- Tokens are counted with the `token_counter` you pass: the model's tokenizer
  (`training.dataset.tokens.load_token_counter`) or `rough_token_count`, the builder's
  tokenizer-free estimate (UTF-8 bytes / 3.2, leaning high). Each message adds
  `tokens_per_message` for the chat template's role header and end-of-turn marker, and each
  sample `tokens_per_sample` for what the template adds once per chat (a BOS, a system
  header), as the builder sizes samples.
- OpenAI bills every token of the training file once per epoch:
  cost = train tokens × epochs × price per 1M tokens / 1M. The default price is a parameter
  (`OPENAI_USD_PER_1M_TRAINING_TOKENS`); check OpenAI's pricing page. OpenAI is winding down
  self-serve fine-tuning, see `OPENAI_WIND_DOWN_NOTE`.
- Local LoRA time = epochs × train tokens ÷ throughput (tokens/s) of a hardware profile. The
  default throughputs are order-of-magnitude guesses for a Hugging Face peft/TRL run, not
  measurements; evaluation passes, model loading and saving are not included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from training.dataset.formats import DatasetLike, split_samples
from training.dataset.formats.openai import (
    TokenCounter,
    count_texts,
    counter_name,
    per_message_tokens,
    rough_token_count,
)
from training.dataset.samples import BUBBLE_SEPARATOR, Sample
from training.errors import DatasetError

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "CONSUMER_GPU_7B_QLORA_TOKENS_PER_S",
    "CPU_SMOLLM2_135M_TOKENS_PER_S",
    "DEFAULT_EPOCHS",
    "DEFAULT_TARGETS",
    "Estimate",
    "H100_7B_LORA_TOKENS_PER_S",
    "H100_USD_PER_HOUR",
    "OPENAI_USD_PER_1M_TRAINING_TOKENS",
    "OPENAI_WIND_DOWN_NOTE",
    "SplitTokens",
    "TEMPLATE_TOKENS_PER_MESSAGE",
    "TEMPLATE_TOKENS_PER_SAMPLE",
    "Target",
    "TokenCounts",
    "count_openai_file",
    "count_tokens",
    "default_targets",
    "estimate",
    "estimate_table",
    "rough_token_count",
]

OPENAI_WIND_DOWN_NOTE = (
    "OpenAI is winding down self-serve fine-tuning (announced 7 May 2026): organisations that "
    "have not fine-tuned recently can no longer start jobs, and no new training jobs are "
    "accepted after 6 January 2027. Check https://developers.openai.com/api/docs/deprecations "
    "before planning on it."
)

OPENAI_USD_PER_1M_TRAINING_TOKENS = 5.00
"""gpt-4.1-mini's list price for training tokens (2025); gpt-4o-mini was $3, gpt-4.1 $25."""

CPU_SMOLLM2_135M_TOKENS_PER_S = 100.0
"""LoRA on SmolLM2-135M with 2 CPU cores (fp32, PyTorch): a guess from ~0.5 GFLOP per token."""

CONSUMER_GPU_7B_QLORA_TOKENS_PER_S = 1_500.0
"""QLoRA (4-bit) on a 7B model on one 24 GB consumer GPU (RTX 3090/4090 class)."""

H100_7B_LORA_TOKENS_PER_S = 6_000.0
"""bf16 LoRA on a 7B model on one H100, without sequence packing tricks."""

H100_USD_PER_HOUR = 2.50
"""A typical on-demand rental price for one H100; your own hardware costs only power."""

DEFAULT_EPOCHS = 3

TEMPLATE_TOKENS_PER_MESSAGE = 4
"""The chat template's role header and end-of-turn marker, as the builder counts them
(`training.dataset.tokens.MESSAGE_OVERHEAD`); a counter's own `per_message` wins."""

TEMPLATE_TOKENS_PER_SAMPLE = 1
"""The chat template's tokens once per sample (a BOS), as the builder's estimate counts them
(`training.dataset.tokens.SAMPLE_OVERHEAD`); a counter's own `per_sample` wins."""


@dataclass(frozen=True, slots=True)
class SplitTokens:
    """Token counts of one split for one epoch."""

    split: str
    samples: int
    messages: int
    total: int
    """Every token the model reads: system prompts, all turns and template overhead (per
    message and per sample)."""
    assistant: int
    """Text tokens of assistant turns."""
    trained: int
    """Text tokens of assistant turns that carry loss (`Turn.train`)."""
    p50_example: int
    p95_example: int
    max_example: int


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Both splits' token counts and how they were counted."""

    train: SplitTokens
    eval: SplitTokens
    counter: str
    tokens_per_message: int
    tokens_per_sample: int = 0
    """What the template adds once per sample; 0 where only the messages were counted (the
    OpenAI files, counted as OpenAI's cookbook does)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the model could be trained, with its price or throughput."""

    name: str
    kind: Literal["openai", "local"]
    usd_per_1m_tokens: float | None = None
    """OpenAI: the price of 1M training tokens."""
    tokens_per_s: float | None = None
    """Local: training throughput in tokens per second."""
    usd_per_hour: float | None = None
    """Local: what an hour of the hardware costs, when it is rented."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Estimate:
    """The rough cost and time of training one target on one build."""

    target: Target
    epochs: int
    tokens: TokenCounts
    processed_tokens: int
    """Train tokens × epochs: what is billed (OpenAI) or pushed through the model (local)."""
    trained_tokens: int
    """Loss-carrying tokens × epochs."""
    cost_usd: float | None
    seconds: float | None


def default_targets(
    *,
    openai_usd_per_1m_tokens: float = OPENAI_USD_PER_1M_TRAINING_TOKENS,
    cpu_tokens_per_s: float = CPU_SMOLLM2_135M_TOKENS_PER_S,
    consumer_gpu_tokens_per_s: float = CONSUMER_GPU_7B_QLORA_TOKENS_PER_S,
    h100_tokens_per_s: float = H100_7B_LORA_TOKENS_PER_S,
    h100_usd_per_hour: float | None = H100_USD_PER_HOUR,
) -> tuple[Target, ...]:
    """The four targets we plan for, with their figures overridable."""
    return (
        Target(
            "OpenAI gpt-4.1-mini",
            "openai",
            usd_per_1m_tokens=openai_usd_per_1m_tokens,
            note="winding down, see below",
        ),
        Target(
            "cpu-2-cores SmolLM2-135M LoRA",
            "local",
            tokens_per_s=cpu_tokens_per_s,
            note="own machine",
        ),
        Target(
            "1× consumer GPU 7B QLoRA",
            "local",
            tokens_per_s=consumer_gpu_tokens_per_s,
            note="24 GB card",
        ),
        Target(
            "1× H100 7B LoRA",
            "local",
            tokens_per_s=h100_tokens_per_s,
            usd_per_hour=h100_usd_per_hour,
            note="rented" if h100_usd_per_hour is not None else "",
        ),
    )


DEFAULT_TARGETS = default_targets()


def count_tokens(
    build: DatasetLike | Sequence[Sample],
    *,
    token_counter: TokenCounter = rough_token_count,
    tokens_per_message: int | None = None,
    tokens_per_sample: int | None = None,
) -> TokenCounts:
    """Count the tokens of both splits for one epoch.

    `tokens_per_message` defaults to the counter's `per_message`, else
    `TEMPLATE_TOKENS_PER_MESSAGE`; `tokens_per_sample` to its `per_sample`, else
    `TEMPLATE_TOKENS_PER_SAMPLE`.
    """
    if tokens_per_message is None:
        tokens_per_message = per_message_tokens(token_counter, TEMPLATE_TOKENS_PER_MESSAGE)
    if tokens_per_sample is None:
        tokens_per_sample = _per_sample_tokens(token_counter)
    train, eval_ = split_samples(build)
    overhead = (tokens_per_message, tokens_per_sample)
    return TokenCounts(
        train=_split_tokens("train", train, token_counter, *overhead),
        eval=_split_tokens("eval", eval_, token_counter, *overhead),
        counter=counter_name(token_counter),
        tokens_per_message=tokens_per_message,
        tokens_per_sample=tokens_per_sample,
    )


def estimate(
    build: DatasetLike | Sequence[Sample],
    *,
    token_counter: TokenCounter,
    targets: Sequence[Target] = DEFAULT_TARGETS,
    epochs: int = DEFAULT_EPOCHS,
    tokens_per_message: int | None = None,
    tokens_per_sample: int | None = None,
    counts: TokenCounts | None = None,
) -> list[Estimate]:
    """One estimate per target: tokens per epoch, cost and time for `epochs` epochs.

    Pass `counts` (from `count_tokens`) to reuse a count already made.
    """
    if epochs < 1:
        raise DatasetError(f"epochs must be at least 1, not {epochs}")
    if counts is None:
        counts = count_tokens(
            build,
            token_counter=token_counter,
            tokens_per_message=tokens_per_message,
            tokens_per_sample=tokens_per_sample,
        )
    processed = counts.train.total * epochs
    estimates = []
    for target in targets:
        cost: float | None = None
        seconds: float | None = None
        if target.kind == "openai" and target.usd_per_1m_tokens is not None:
            cost = processed * target.usd_per_1m_tokens / 1_000_000
        if target.kind == "local" and target.tokens_per_s:
            seconds = processed / target.tokens_per_s
            if target.usd_per_hour is not None:
                cost = seconds / 3600 * target.usd_per_hour
        estimates.append(
            Estimate(
                target=target,
                epochs=epochs,
                tokens=counts,
                processed_tokens=processed,
                trained_tokens=counts.train.trained * epochs,
                cost_usd=cost,
                seconds=seconds,
            )
        )
    return estimates


def estimate_table(estimates: Sequence[Estimate]) -> Table:
    """The estimates as a rich table, with the token counts and caveats in its caption."""
    from rich.table import Table

    epochs = sorted({item.epochs for item in estimates})
    table = Table(
        title=f"Training on this dataset, {'/'.join(map(str, epochs))} epochs: "
        "rough planning figures, not quotes"
    )
    table.add_column("target")
    table.add_column("tokens", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("time", justify="right")
    table.add_column("assumes", justify="right")
    table.add_column("note")
    for item in estimates:
        target = item.target
        if target.kind == "openai":
            rate = f"${target.usd_per_1m_tokens:,.2f}/1M" if target.usd_per_1m_tokens else "?"
        else:
            rate = f"{target.tokens_per_s:,.0f} tok/s" if target.tokens_per_s else "?"
            if target.usd_per_hour is not None:
                rate += f", ${target.usd_per_hour:,.2f}/h"
        table.add_row(
            target.name,
            f"{item.processed_tokens:,}",
            f"${item.cost_usd:,.2f}" if item.cost_usd is not None else "–",
            _duration(item.seconds) if item.seconds is not None else "–",
            rate,
            target.note,
        )
    caption = []
    if estimates:
        counts = estimates[0].tokens
        train, eval_ = counts.train, counts.eval
        caption.append(
            f"Per epoch: train {train.samples:,} samples, {train.total:,} tokens "
            f"({train.trained:,} trained); eval {eval_.samples:,} samples, {eval_.total:,} "
            f"tokens. Counted with {counts.counter}. Local times exclude evaluation and "
            "loading."
        )
    if any(item.target.kind == "openai" for item in estimates):
        caption.append(f"[bold red]{OPENAI_WIND_DOWN_NOTE}[/]")
    table.caption = "\n".join(caption) or None
    return table


def _per_sample_tokens(counter: TokenCounter) -> int:
    """The counter's own tokens per sample when it has them, else the builder's default."""
    value = getattr(counter, "per_sample", None)
    return value if isinstance(value, int) else TEMPLATE_TOKENS_PER_SAMPLE


def _split_tokens(
    split: str,
    samples: Sequence[Sample],
    token_counter: TokenCounter,
    per_message: int,
    per_sample: int,
) -> SplitTokens:
    # Samples share their context turns and most share one system prompt: count each distinct
    # text object once, in one batch (fast with a real tokenizer). Keys are ids; the objects
    # stay referenced by `objects`, so an id cannot be reused while the table lives.
    index: dict[int, int] = {}
    objects: list[object] = []
    texts: list[str] = []
    for sample in samples:
        if sample.system and id(sample.system) not in index:
            index[id(sample.system)] = len(texts)
            objects.append(sample.system)
            texts.append(sample.system)
        for turn in sample.turns:
            if id(turn) not in index:
                index[id(turn)] = len(texts)
                objects.append(turn)
                texts.append(BUBBLE_SEPARATOR.join(turn.bubbles))
    counts = count_texts(token_counter, texts)
    sizes: list[int] = []
    messages = assistant = trained = 0
    for sample in samples:
        size = per_sample
        if sample.system:
            size += counts[index[id(sample.system)]] + per_message
            messages += 1
        for turn in sample.turns:
            count = counts[index[id(turn)]]
            size += count + per_message
            if turn.role == "assistant":
                assistant += count
                if turn.train:
                    trained += count
        messages += len(sample.turns)
        sizes.append(size)
    return _split_figures(split, sizes, messages=messages, assistant=assistant, trained=trained)


def count_openai_file(
    split: str,
    path: Path,
    *,
    token_counter: TokenCounter = rough_token_count,
    tokens_per_message: int,
) -> SplitTokens:
    """Token counts of one written OpenAI JSONL file (a validated one: every line an example).

    Assistant messages carry loss unless their `weight` is 0, as OpenAI trains them.
    """
    sizes: list[int] = []
    messages = assistant = trained = 0
    with path.open("rb") as handle:
        for line in handle:
            example = json.loads(line)["messages"]
            counts = count_texts(token_counter, [m.get("content") or "" for m in example])
            for message, count in zip(example, counts, strict=True):
                if message.get("role") == "assistant":
                    assistant += count
                    trained += count if message.get("weight", 1) == 1 else 0
            messages += len(example)
            sizes.append(sum(counts) + tokens_per_message * len(example))
    return _split_figures(split, sizes, messages=messages, assistant=assistant, trained=trained)


def _split_figures(
    split: str, sizes: list[int], *, messages: int, assistant: int, trained: int
) -> SplitTokens:
    """A split's counts from its examples' sizes (in tokens) and its message totals."""
    sizes.sort()
    return SplitTokens(
        split=split,
        samples=len(sizes),
        messages=messages,
        total=sum(sizes),
        assistant=assistant,
        trained=trained,
        p50_example=_percentile(sizes, 0.50),
        p95_example=_percentile(sizes, 0.95),
        max_example=sizes[-1] if sizes else 0,
    )


def _percentile(ordered: list[int], q: float) -> int:
    """The nearest-rank percentile of an ordered list (0 when empty)."""
    if not ordered:
        return 0
    return ordered[max(1, math.ceil(len(ordered) * q)) - 1]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
