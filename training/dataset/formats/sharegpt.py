"""ShareGPT JSON for LLaMA-Factory, with its `dataset_info.json` entries.

A file is one JSON array, one record a line: `{"conversations": [{"from": "human", "value":
...}, {"from": "gpt", "value": ...}], "system": ...}`.
LLaMA-Factory wants `human` at odd positions and `gpt` at even ones, which our samples give
(they start with a user turn and alternate). It learns every `gpt` turn, context-only ones
included; its `mask_history: true` learns only the last turn of each sample instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from training.dataset.samples import Turn

TRAIN_FILE = "sharegpt_train.json"
EVAL_FILE = "sharegpt_eval.json"
DATASET_INFO_FILE = "dataset_info.json"

MESSAGES = "conversations"
SYSTEM = "system"
TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}

_HUMAN = b'{"from":"human","value":'
_GPT = b'{"from":"gpt","value":'


def sharegpt_message(turn: Turn, content: bytes) -> bytes:
    """One turn's message; `content` is its JSON-encoded text, as UTF-8."""
    return (_HUMAN if turn.role == "user" else _GPT) + content + b"}"


def sharegpt_record(system: bytes | None, messages: Sequence[bytes]) -> bytes:
    """One array element, without separator; `system` is JSON-encoded (or None)."""
    return b'{"conversations":[' + b",".join(messages) + b'],"system":' + (system or b'""') + b"}"


def dataset_info(name: str, *, with_eval: bool) -> dict[str, Any]:
    """The `dataset_info.json` entries: `<name>_train` and, with an eval split, `<name>_eval`."""
    files = {f"{name}_train": TRAIN_FILE}
    if with_eval:
        files[f"{name}_eval"] = EVAL_FILE
    return {
        key: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": MESSAGES, "system": SYSTEM},
            "tags": dict(TAGS),
        }
        for key, file_name in files.items()
    }


def dataset_info_json(name: str, *, with_eval: bool) -> str:
    """`dataset_info` as the file's text."""
    return json.dumps(dataset_info(name, with_eval=with_eval), indent=2) + "\n"
