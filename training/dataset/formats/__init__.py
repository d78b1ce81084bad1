"""Write one dataset build in the formats trainers read.

- `hf`: Hugging Face chat JSONL, `train.jsonl` / `eval.jsonl` (our trainer's input), plus
  `axolotl.yaml`, Axolotl dataset entries that read those files.
- `openai`: OpenAI fine-tuning JSONL, `openai_train.jsonl` / `openai_eval.jsonl`, with `weight`
  0/1 on every assistant message, checked by `validate_openai_jsonl` after writing.
- `sharegpt`: `sharegpt_train.json` / `sharegpt_eval.json` and LLaMA-Factory's
  `dataset_info.json`.

Line N of every train file is the same sample, so a problem reported for `openai_train.jsonl`
line N can be read in `train.jsonl` line N. Writing is one pass over the samples, straight to
UTF-8 bytes: each distinct turn is JSON-encoded once (samples share their context turns),
its message in each format cached for its conversation, and lines are joined and written in
batches. An empty eval split writes no eval files (and removes those of an earlier build).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from operator import attrgetter
from pathlib import Path
from typing import IO, Protocol

from training.dataset.formats import hf, openai, sharegpt
from training.dataset.formats.hf import axolotl_yaml, hf_line, hf_message
from training.dataset.formats.openai import (
    MAX_TOKENS_PER_EXAMPLE,
    MIN_EXAMPLES,
    TokenCounter,
    openai_message,
    rough_token_count,
    validate_openai_jsonl,
)
from training.dataset.formats.sharegpt import (
    dataset_info,
    dataset_info_json,
    sharegpt_message,
    sharegpt_record,
)
from training.dataset.samples import BUBBLE_SEPARATOR, Sample, Turn
from training.errors import DatasetError

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "DatasetLike",
    "FORMATS",
    "MAX_TOKENS_PER_EXAMPLE",
    "MIN_EXAMPLES",
    "TokenCounter",
    "axolotl_yaml",
    "dataset_info",
    "rough_token_count",
    "split_samples",
    "validate_openai_jsonl",
    "write_dataset",
]

FORMATS = ("hf", "openai", "sharegpt")

_BATCH = 2048  # samples per write: big enough to amortize the call, small enough to stream
_encode = json.encoder.encode_basestring  # type: ignore[attr-defined]
"""The C encoder `json.dumps(text, ensure_ascii=False)` uses for a str, without its overhead."""
_role = attrgetter("role")
_train = attrgetter("train")


class DatasetLike(Protocol):
    """What a dataset build offers the writers: its samples, split in two."""

    @property
    def train(self) -> Sequence[Sample]: ...

    @property
    def eval(self) -> Sequence[Sample]: ...


def split_samples(
    build_or_samples: DatasetLike | Iterable[Sample],
) -> tuple[Sequence[Sample], Sequence[Sample]]:
    """(train, eval) of a build, or of loose samples by their `split`."""
    if hasattr(build_or_samples, "train") and hasattr(build_or_samples, "eval"):
        return build_or_samples.train, build_or_samples.eval
    train: list[Sample] = []
    eval_: list[Sample] = []
    for sample in build_or_samples:  # type: ignore[union-attr]
        (train if sample.split == "train" else eval_).append(sample)
    return train, eval_


def write_dataset(
    build_or_samples: DatasetLike | Iterable[Sample],
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    name: str = "wa_persona",
    max_tokens_per_example: int = MAX_TOKENS_PER_EXAMPLE,
    token_counter: TokenCounter = rough_token_count,
    min_examples: int = MIN_EXAMPLES,
) -> dict[str, Path]:
    """Write the build's samples in `formats`; return the written files by role.

    Keys: `hf_train`, `hf_eval`, `axolotl`, `openai_train`, `openai_eval`, `sharegpt_train`,
    `sharegpt_eval`, `dataset_info` (eval keys only with an eval split).

    Args:
        name: the dataset's name in LLaMA-Factory's `dataset_info.json` (`<name>_train`).
        max_tokens_per_example: OpenAI's per-example limit for the model you will train.
        token_counter: counts tokens for that limit; the default is a rough estimate.
        min_examples: OpenAI's minimum number of training examples.

    Raises:
        DatasetError: an unknown format, no training samples, a malformed sample, or an
            OpenAI file that OpenAI would reject (the OpenAI files are then removed).
    """
    if isinstance(formats, str):
        formats = (formats,)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        given = repr(unknown[0]) if unknown else "none"
        raise DatasetError(f"unknown format {given}; choose from {', '.join(FORMATS)}")
    train, eval_ = split_samples(build_or_samples)
    if not train:
        raise DatasetError("no training samples to write; the build kept no persona replies")
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [f for f in FORMATS if f in formats]
    files, context_turns = _write_split("train", train, out_dir, chosen)
    if eval_:
        files.update(_write_split("eval", eval_, out_dir, chosen)[0])
    else:  # an eval file left by an earlier build would describe other conversations
        stale = _paths("eval", out_dir)
        for fmt in chosen:
            stale[fmt].unlink(missing_ok=True)
    if "hf" in chosen:
        path = out_dir / hf.AXOLOTL_FILE
        yaml = axolotl_yaml(
            files["hf_train"].resolve(),
            files["hf_eval"].resolve() if "hf_eval" in files else None,
            context_turns=context_turns,
        )
        path.write_text(yaml, encoding="utf-8")
        files["axolotl"] = path
    if "sharegpt" in chosen:
        path = out_dir / sharegpt.DATASET_INFO_FILE
        path.write_text(dataset_info_json(name, with_eval=bool(eval_)), encoding="utf-8")
        files["dataset_info"] = path
    if "openai" in chosen:
        _check_openai(files, max_tokens_per_example, token_counter, min_examples)
    return files


def _write_split(
    split: str, samples: Sequence[Sample], out_dir: Path, chosen: list[str]
) -> tuple[dict[str, Path], int]:
    """Write one split in every chosen format in one pass; count context-only turns."""
    paths = _paths(split, out_dir)
    do_hf, do_openai, do_sharegpt = ("hf" in chosen, "openai" in chosen, "sharegpt" in chosen)
    # A sample repeats turns of the samples before it (its context), as the same Turn
    # objects: each turn is encoded once per conversation, by id. The turn is kept in the
    # value, so its id cannot be reused while the cache lives.
    cache: dict[int, _Messages] = {}
    conversation: str | None = None
    system_text: str | None = None
    system: bytes | None = None
    context_turns = 0
    with ExitStack() as stack:
        handles: dict[str, IO[bytes]] = {
            fmt: stack.enter_context(paths[fmt].open("wb")) for fmt in chosen
        }
        hf_lines: list[bytes] = []
        openai_lines: list[bytes] = []
        sharegpt_records: list[bytes] = []
        if do_sharegpt:
            handles["sharegpt"].write(b"[")
        for index, sample in enumerate(samples):
            if sample.conversation != conversation:
                conversation = sample.conversation
                cache.clear()
            if sample.system != system_text:  # one persona card is shared by most samples
                system_text = sample.system
                system = _encode(system_text).encode() if system_text else None
            turns = sample.turns
            if (
                not turns
                or len(turns) % 2
                or tuple(map(_role, turns)) != _alternating(len(turns))
                or not turns[-1].train
            ):
                raise _malformed(sample, split, index)
            context_turns += len(turns) // 2 - sum(map(_train, turns[1::2]))
            get = cache.get
            _, hf_messages, openai_messages, sharegpt_messages = zip(
                *[get(id(turn)) or _messages(turn, cache) for turn in turns], strict=True
            )
            if do_hf:
                hf_lines.append(hf_line(system, hf_messages))
            if do_openai:
                openai_lines.append(hf_line(system, openai_messages))
            if do_sharegpt:
                # One record a line, the comma before every record but the first.
                record = sharegpt_record(system, sharegpt_messages)
                sharegpt_records.append(b",\n" + record if index else b"\n" + record)
            if index % _BATCH == _BATCH - 1:
                _flush(handles, hf_lines, openai_lines, sharegpt_records)
        _flush(handles, hf_lines, openai_lines, sharegpt_records)
        if do_sharegpt:
            handles["sharegpt"].write(b"\n]\n")
    return {f"{fmt}_{split}": paths[fmt] for fmt in chosen}, context_turns


_Messages = tuple[Turn, bytes, bytes, bytes]


def _paths(split: str, out_dir: Path) -> dict[str, Path]:
    """Each format's file for one split."""
    if split == "train":
        return {
            "hf": out_dir / hf.TRAIN_FILE,
            "openai": out_dir / openai.TRAIN_FILE,
            "sharegpt": out_dir / sharegpt.TRAIN_FILE,
        }
    return {
        "hf": out_dir / hf.EVAL_FILE,
        "openai": out_dir / openai.EVAL_FILE,
        "sharegpt": out_dir / sharegpt.EVAL_FILE,
    }


def _messages(turn: Turn, cache: dict[int, _Messages]) -> _Messages:
    """A turn's message in each format (hf, openai, sharegpt), remembered in `cache`."""
    content = _encode(BUBBLE_SEPARATOR.join(turn.bubbles)).encode()
    entry = (
        turn,
        hf_message(turn, content),
        openai_message(turn, content),
        sharegpt_message(turn, content),
    )
    cache[id(turn)] = entry
    return entry


@functools.cache
def _alternating(length: int) -> tuple[str, ...]:
    """The roles of a well-formed sample of `length` turns: user, assistant, user..."""
    return tuple("user" if i % 2 == 0 else "assistant" for i in range(length))


def _malformed(sample: Sample, split: str, index: int) -> DatasetError:
    return DatasetError(
        f"{split} sample {index} (conversation {sample.conversation}) is malformed: its turns "
        "must alternate user/assistant, start with a user turn and end with a trained "
        "assistant turn; this is a bug in the dataset builder"
    )


def _flush(
    handles: dict[str, IO[bytes]],
    hf_lines: list[bytes],
    openai_lines: list[bytes],
    sharegpt_records: list[bytes],
) -> None:
    for fmt, lines in (("hf", hf_lines), ("openai", openai_lines), ("sharegpt", sharegpt_records)):
        if lines:
            handles[fmt].write(b"".join(lines))
            lines.clear()


def _check_openai(
    files: dict[str, Path],
    max_tokens_per_example: int,
    token_counter: TokenCounter,
    min_examples: int,
) -> None:
    problems: list[str] = []
    for key, minimum in (("openai_train", min_examples), ("openai_eval", 1)):
        if key in files:
            found = validate_openai_jsonl(
                files[key],
                max_tokens_per_example=max_tokens_per_example,
                token_counter=token_counter,
                min_examples=minimum,
            )
            problems += [f"{files[key].name} {problem}" for problem in found]
    if not problems:
        return
    for key in ("openai_train", "openai_eval"):
        if key in files:
            files.pop(key).unlink(missing_ok=True)
    shown = "; ".join(problems[:5])
    more = f" (and {len(problems) - 5:,} more)" if len(problems) > 5 else ""
    raise DatasetError(
        f"OpenAI would reject the fine-tuning files, so they were removed: {shown}{more}. "
        "Line N is sample N of train.jsonl/eval.jsonl. Build more samples, shorten the "
        "context (fewer turns per sample), or leave out the openai format"
    )
