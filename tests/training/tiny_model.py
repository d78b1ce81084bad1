"""A tiny chat model built offline, and a Maya dataset to train it on (pytest fixtures).

The model is a random 2-layer Llama; its byte-level BPE tokenizer is trained on the bundled
sample's text, so it splits the Maya dataset into sensible pieces. The ChatML template wraps
each assistant reply and its `<|im_end|>\\n` in `{% generation %}` markers, as TRL asks, so
`return_assistant_tokens_mask=True` works. Nothing is downloaded: training a real model is
the same code path with a bigger folder.

Use the fixtures by importing them into a conftest or test module:
`from tests.training.tiny_model import tiny_dataset_dir, tiny_model_dir`. Each is built once
per session (in the session's temporary folder, reused when a second module imports them).
`tiny_run_config` makes a TrainConfig that trains the tiny model in seconds (`TINY_RUN`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pytest

from training.progress import ProgressEvent
from training.sft import RunResult

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>\\n' }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|pad|>", "<|im_start|>", "<|im_end|>")
VOCAB_SIZE = 768
# The first quarter of the sample year: 212 training and 24 held-out samples. The whole
# year is four times slower to tokenize and evaluate and covers nothing more.
SAMPLE_CUTOFF = datetime(2024, 4, 1)


# Settings that make a training run of the tiny model take seconds: six steps of four
# samples, an evaluation (and checkpoint) every three, no warmup, a learning rate the random
# model notices. Tests change what they test with dotted overrides.
TINY_RUN: dict[str, object] = {
    "training.max_steps": 6,
    "training.batch_size": 4,
    "training.learning_rate": 1e-3,
    "training.warmup": 0,
    "training.gradient_checkpointing": False,
    "eval.every": 3,
}


def tiny_run_config(
    model_dir: Path, dataset_dir: Path, out_dir: Path, overrides: dict[str, object] | None = None
):
    """A TrainConfig for the tiny model; `overrides` use dotted keys ({"lora.r": 8})."""
    from training.config import TrainConfig

    values: dict[str, object] = {"model": {"name": str(model_dir)}, "dataset": str(dataset_dir)}
    for key, value in {**TINY_RUN, "output.dir": str(out_dir), **(overrides or {})}.items():
        *sections, leaf = key.split(".")
        node = values
        for section in sections:
            node = node.setdefault(section, {})  # type: ignore[assignment]
        node[leaf] = value
    return TrainConfig.model_validate(values)


@dataclass(frozen=True)
class TinyRun:
    """A finished training run and the progress events it emitted."""

    result: RunResult
    events: list[ProgressEvent]

    @property
    def run_dir(self) -> Path:
        return self.result.run_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Llama chat model and tokenizer (ChatML with generation markers).

    Also puts torch on one thread: a tiny model runs fastest on one, and two threads on a
    busy 2-core machine are about five times slower.
    """
    pytest.importorskip("transformers")
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.getbasetemp() / "tiny-model"
    if (folder / "config.json").is_file():
        return folder
    return build_tiny_model(folder)


@pytest.fixture(scope="session")
def tiny_dataset_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """Maya's dataset folder (every format and the card) from the bundled sample's Q1,
    with exact token counts from the tiny tokenizer."""
    folder = tmp_path_factory.getbasetemp() / "maya-dataset"
    if (folder / "dataset_card.json").is_file():
        return folder
    return build_maya_dataset(folder, tiny_model_dir)


def build_tiny_model(out_dir: Path, *, seed: int = 0) -> Path:
    """Write a tiny random Llama and its tokenizer into `out_dir` (save_pretrained); return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_maya_dataset(out_dir: Path, tokenizer_dir: Path) -> Path:
    """Write Maya's dataset from the bundled sample (before SAMPLE_CUTOFF) into `out_dir`."""
    from style.parse import load_chats
    from style.profile import ProfileWarning
    from style.sample import sample_paths
    from training.dataset import (
        DatasetConfig,
        build_dataset,
        load_token_counter,
        write_card,
        write_dataset,
    )

    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    chats = [replace(c, messages=[m for m in c.messages if m.ts < SAMPLE_CUTOFF]) for c in chats]
    counter = load_token_counter(tokenizer_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileWarning)
        build = build_dataset(chats, "Maya", DatasetConfig(), token_counter=counter)
    files = write_dataset(build, out_dir, token_counter=counter)
    write_card(build, out_dir, files, token_counter=counter)
    return out_dir


def build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """A byte-level BPE tokenizer trained on the bundled sample chats, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from style.sample import sample_paths

    texts = [line for path in sample_paths() for line in path.read_text("utf-8").splitlines()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
    )
