"""Chat samples to token ids and labels, with loss only on the replies the dataset trains.

A sample is rendered once with the tokenizer's own chat template and tokenized once. The
loss covers exactly the characters of each trained assistant turn plus its end-of-turn
token(s): from the end of `render(messages[:i], add_generation_prompt=True)` to the end of
`render(messages[:i+1])`. That needs a template where rendering a conversation's start gives
a prefix of rendering all of it ("prefix-preserving"), which is checked for every turn.
Every token that overlaps a trained span is a loss token (transformers' assistant mask does
the same), the rest are labelled -100.

`openai_train.jsonl` marks each assistant turn with `weight` 1 (learn) or 0 (context only);
without it, `train.jsonl` is read and every assistant turn is learned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import DatasetError, TrainingError

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "ChatTemplateError",
    "DatasetFiles",
    "IGNORE_INDEX",
    "Sample",
    "TokenizedSplit",
    "dataset_files",
    "loss_spans",
    "read_samples",
    "tokenize_chat",
    "tokenize_file",
]

IGNORE_INDEX = -100
"""The label of tokens that carry no loss (PyTorch's cross-entropy default)."""

Message = dict[str, str]

_BATCH = 512  # samples rendered, then tokenized in one call


class ChatTemplateError(TrainingError):
    """The tokenizer or its chat template cannot locate the replies to learn."""


@dataclass(frozen=True, slots=True)
class DatasetFiles:
    """The files of a dataset folder that training reads."""

    train: Path
    eval: Path | None
    weighted: bool  # the files carry per-turn `weight`s (the OpenAI format)


@dataclass(frozen=True, slots=True)
class Sample:
    """One chat: its messages (role and content) and the assistant turns that carry loss."""

    messages: list[Message]
    trained: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TokenizedSplit:
    """One split as token ids and labels, with what was left out and why."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    samples: int  # samples read from the file
    too_long: int  # left out: more tokens than max_length
    no_loss: int  # left out: no trained turn (every weight 0)
    control_tokens: int  # left out: message text containing the tokenizer's special tokens

    @property
    def tokens(self) -> int:
        """Tokens of the kept samples."""
        return sum(map(len, self.input_ids))

    @property
    def loss_tokens(self) -> int:
        """Tokens that carry loss."""
        return sum(label != IGNORE_INDEX for labels in self.labels for label in labels)

    def summary(self) -> dict[str, int]:
        """Counts for the manifest (never text)."""
        return {
            "samples": self.samples,
            "kept": len(self.input_ids),
            "too_long": self.too_long,
            "no_loss": self.no_loss,
            "control_tokens": self.control_tokens,
            "tokens": self.tokens,
            "loss_tokens": self.loss_tokens,
        }


def dataset_files(dataset_dir: Path) -> DatasetFiles:
    """The weighted OpenAI files when present, else the plain HF chat files."""
    for train_name, eval_name, weighted in (
        ("openai_train.jsonl", "openai_eval.jsonl", True),
        ("train.jsonl", "eval.jsonl", False),
    ):
        train = dataset_dir / train_name
        if train.is_file():
            eval_ = dataset_dir / eval_name
            return DatasetFiles(train, eval_ if eval_.is_file() else None, weighted)
    raise DatasetError(
        f"{dataset_dir}: no openai_train.jsonl or train.jsonl; build a dataset with "
        "`wa-persona dataset EXPORT --persona NAME -o DIR` and pass that folder"
    )


def read_samples(path: Path, *, weighted: bool) -> Iterator[Sample]:
    """The chats of a JSONL file; with `weighted`, only assistant turns of weight 1 train."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                raw = record["messages"]
                messages = [{"role": m["role"], "content": m["content"]} for m in raw]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(
                    f"{path} line {number}: not a chat sample ({type(exc).__name__}); expected "
                    '{"messages": [{"role": ..., "content": ...}, ...]}'
                ) from exc
            trained = tuple(
                i
                for i, message in enumerate(raw)
                if message["role"] == "assistant" and (not weighted or message.get("weight") == 1)
            )
            yield Sample(messages, trained)


def loss_spans(
    tokenizer: Any, messages: Sequence[Message], trained: Sequence[int]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character spans of the trained turns (reply + end of turn).

    Raises:
        ChatTemplateError: the template renders a conversation's start differently from the
            start of the whole conversation, so a reply's characters cannot be located.
    """
    text = _render(tokenizer, messages)
    spans = []
    for i in trained:
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True)
        through = text if i == len(messages) - 1 else _render(tokenizer, messages[: i + 1])
        if not (
            text.startswith(prompt) and text.startswith(through) and len(through) > len(prompt)
        ):
            raise ChatTemplateError(
                f"the chat template of {tokenizer.name_or_path} is not prefix-preserving: the "
                f"conversation rendered up to message {i + 1} is not the start of the whole "
                "conversation, so the reply to learn cannot be located. Set model.chat_template "
                "to a template that renders each message the same way whatever follows it (as "
                "the Mistral presets do; see docs/training.md)"
            )
        spans.append((len(prompt), len(through)))
    return text, spans


def tokenize_chat(
    tokenizer: Any, messages: Sequence[Message], trained: Sequence[int]
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one chat; labels are -100 outside the trained turns."""
    text, spans = loss_spans(tokenizer, messages, trained)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    return ids, _labels(ids, encoding["offset_mapping"], spans)


def tokenize_file(tokenizer: Any, path: Path, *, weighted: bool, max_length: int) -> TokenizedSplit:
    """Tokenize every sample of a dataset file; samples over `max_length` tokens are left out.

    A long sample is left out rather than cut: its reply to learn comes last, so cutting the
    end loses it, and cutting the start drops the system prompt it is answered under. The
    dataset builder already keeps samples under its token budget, so this is rare; the
    counts say how many.
    """
    _check_tokenizer(tokenizer)
    control = _control_tokens(tokenizer)
    input_ids: list[list[int]] = []
    labels: list[list[int]] = []
    read = too_long = no_loss = with_control = 0
    batch: list[tuple[str, list[tuple[int, int]]]] = []

    def flush() -> None:
        nonlocal too_long
        if not batch:
            return
        encodings = tokenizer(
            [text for text, _ in batch], add_special_tokens=False, return_offsets_mapping=True
        )
        for ids, offsets, (_, spans) in zip(
            encodings["input_ids"], encodings["offset_mapping"], batch, strict=True
        ):
            if len(ids) > max_length:
                too_long += 1
                continue
            input_ids.append(list(ids))
            labels.append(_labels(ids, offsets, spans))
        batch.clear()

    for sample in read_samples(path, weighted=weighted):
        read += 1
        if not sample.trained:
            no_loss += 1
            continue
        if control and any(token in m["content"] for m in sample.messages for token in control):
            with_control += 1
            continue
        batch.append(loss_spans(tokenizer, sample.messages, sample.trained))
        if len(batch) == _BATCH:
            flush()
    flush()
    return TokenizedSplit(input_ids, labels, read, too_long, no_loss, with_control)


def _check_tokenizer(tokenizer: Any) -> None:
    """Refuse a tokenizer that cannot give character offsets or has no chat template."""
    if not getattr(tokenizer, "is_fast", False):
        raise ChatTemplateError(
            f"{tokenizer.name_or_path}: a fast (Rust) tokenizer is needed to map the replies to "
            "tokens; this model only has a slow one"
        )
    if not tokenizer.chat_template:
        raise ChatTemplateError(
            f"{tokenizer.name_or_path}: the tokenizer has no chat template; use an instruct/chat "
            "model or set model.chat_template"
        )


def _render(
    tokenizer: Any, messages: Sequence[Message], *, add_generation_prompt: bool = False
) -> str:
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def _labels(
    ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[int]:
    """Each token's id where it overlaps a span, else -100 (spans and offsets are in order)."""
    labels = [IGNORE_INDEX] * len(ids)
    span = 0
    for index, (start, end) in enumerate(offsets):
        while span < len(spans) and start >= spans[span][1]:
            span += 1
        if span == len(spans):
            break
        if end > spans[span][0]:
            labels[index] = ids[index]
    return labels


def _control_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The special tokens (`<|im_end|>`...) that must not appear in message text."""
    return tuple(
        token.content for token in tokenizer.added_tokens_decoder.values() if token.special
    )
