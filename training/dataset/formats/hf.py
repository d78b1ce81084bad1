"""Hugging Face chat JSONL (`{"messages": [...]}` a line), our trainer's input, and an Axolotl
config snippet that reads it.

A line is exactly `{"messages": sample.messages()}`: the system prompt (when there is one),
then user and assistant turns alternating, ending with an assistant turn. TRL's `SFTTrainer`,
Axolotl's `chat_template` type and LLaMA-Factory (as its "openai" flavour of sharegpt) all read
this shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from training.dataset.samples import Turn

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
AXOLOTL_FILE = "axolotl.yaml"

_SYSTEM = b'{"role":"system","content":'
_USER = b'{"role":"user","content":'
_ASSISTANT = b'{"role":"assistant","content":'


def hf_message(turn: Turn, content: bytes) -> bytes:
    """One turn's message; `content` is its JSON-encoded text, as UTF-8."""
    return (_USER if turn.role == "user" else _ASSISTANT) + content + b"}"


def hf_line(system: bytes | None, messages: Sequence[bytes]) -> bytes:
    """One JSONL line: the system message (from JSON-encoded `system`), then `messages`."""
    head = b'{"messages":[' + _SYSTEM + system + b"}," if system else b'{"messages":['
    return head + b",".join(messages) + b"]}\n"


def axolotl_yaml(train: Path, eval_: Path | None, *, context_turns: int = 0) -> str:
    """An Axolotl `datasets:`/`test_datasets:` snippet for our HF JSONL, loss on assistant turns.

    Written by hand (PyYAML is not a dependency); every scalar that could need quoting is a
    JSON string, which YAML reads as a double-quoted scalar.
    """
    lines = [
        "# Axolotl dataset entries written by wa-persona. Merge them into your Axolotl config;",
        "# base_model, adapter, lora_*, sequence_len and the rest stay yours to choose.",
        "# type chat_template uses the model's own chat template (set chat_template: to",
        "# override it); loss is computed on assistant turns only, and on the end-of-turn",
        "# token after each of them.",
    ]
    if context_turns:
        lines += [
            f"# {context_turns:,} assistant turns in {train.name} are context only (already",
            "# learned in another sample). roles_to_train trains them too. To skip them, point",
            f"# path at {_sibling(train, 'openai_train.jsonl')} and add",
            "# `message_field_training: weight` (its assistant messages carry weight 0/1).",
        ]
    lines += ["datasets:", *_entry(train, split=False)]
    if eval_ is not None:
        lines += ["test_datasets:", *_entry(eval_, split=True)]
    return "\n".join(lines) + "\n"


def _entry(path: Path, *, split: bool) -> list[str]:
    quoted = json.dumps(str(path))
    entry = [
        f"  - path: {quoted}",
        "    ds_type: json",
        f"    data_files: [{quoted}]",
    ]
    if split:  # a local JSON file loads as a single split named "train"
        entry.append('    split: "train"')
    entry += [
        "    type: chat_template",
        '    field_messages: "messages"',
        "    message_property_mappings:",
        '      role: "role"',
        '      content: "content"',
        '    roles_to_train: ["assistant"]',
        '    train_on_eos: "turn"',
    ]
    return entry


def _sibling(path: Path, name: str) -> str:
    return str(path.with_name(name))
