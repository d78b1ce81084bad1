"""The dataset that may be uploaded: valid OpenAI files, scrubbed, unchanged since the card.

Only a dataset whose `dataset_card.json` records a scrub report, and whose OpenAI files still
have the hashes the card recorded, is uploaded; the bytes hashed are the bytes sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.dataset.card import CARD_FILE
from training.dataset.formats.openai import (
    EVAL_FILE,
    MAX_TOKENS_PER_EXAMPLE,
    MIN_EXAMPLES,
    TRAIN_FILE,
    TokenCounter,
    rough_token_count,
    validate_openai_jsonl,
)
from training.errors import DatasetError
from training.openai_ft.errors import UnscrubbedDatasetError
from training.run_outputs import file_sha256

__all__ = ["OpenAIDataset", "load_dataset", "read_checked"]


@dataclass(frozen=True, slots=True)
class OpenAIDataset:
    """A dataset folder checked for upload: valid OpenAI files, scrubbed, unchanged."""

    folder: Path
    persona: str | None
    """The persona the card says the dataset was built for."""
    train: Path
    train_sha256: str
    eval: Path | None
    eval_sha256: str | None
    scrub_mode: str
    """How the builder scrubbed it: redact, pseudonymize or drop."""


def load_dataset(
    folder: str | Path,
    *,
    max_tokens_per_example: int = MAX_TOKENS_PER_EXAMPLE,
    token_counter: TokenCounter = rough_token_count,
) -> OpenAIDataset:
    """Check a folder written by `wa-persona dataset` before anything of it is uploaded.

    Raises:
        DatasetError: no card, no OpenAI files, or files OpenAI would reject.
        UnscrubbedDatasetError: built without scrubbing, or changed since the card was written.
    """
    folder = Path(folder)
    card_path = folder / CARD_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(
            f"{folder}: no {CARD_FILE}; build the dataset with `wa-persona dataset`"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{card_path}: unreadable ({exc}); rebuild the dataset") from exc
    scrub = card.get("scrub") if isinstance(card, dict) else None
    if not isinstance(scrub, dict) or not scrub.get("mode"):
        raise UnscrubbedDatasetError(
            f"{folder} was built without scrubbing ({CARD_FILE} records no scrub report), "
            "and unscrubbed chats never leave this machine; rebuild it with scrubbing on "
            "(WA_PERSONA_SCRUB_TRAINING=true wa-persona dataset ...)"
        )
    files = card.get("files") or {}
    if "openai_train" not in files:
        raise DatasetError(
            f"{folder} has no OpenAI files; rebuild it with the openai format "
            "(`wa-persona dataset` writes it by default)"
        )
    train, train_sha = _checked_file(folder, files["openai_train"], TRAIN_FILE)
    eval_path = eval_sha = None
    if "openai_eval" in files:
        eval_path, eval_sha = _checked_file(folder, files["openai_eval"], EVAL_FILE)
    problems: list[str] = []
    for path, minimum in ((train, MIN_EXAMPLES), (eval_path, 1)):
        if path is not None:
            found = validate_openai_jsonl(
                path,
                max_tokens_per_example=max_tokens_per_example,
                token_counter=token_counter,
                min_examples=minimum,
            )
            problems += [f"{path.name} {problem}" for problem in found]
    if problems:
        more = f" (and {len(problems) - 5:,} more)" if len(problems) > 5 else ""
        raise DatasetError(
            f"OpenAI would reject {folder}: {'; '.join(problems[:5])}{more}; rebuild the dataset"
        )
    persona = card.get("persona")
    return OpenAIDataset(
        folder=folder,
        persona=persona if isinstance(persona, str) else None,
        train=train,
        train_sha256=train_sha,
        eval=eval_path,
        eval_sha256=eval_sha,
        scrub_mode=str(scrub["mode"]),
    )


def _checked_file(folder: Path, entry: Any, default_name: str) -> tuple[Path, str]:
    """The file a card entry describes, refused when its bytes are not the ones recorded."""
    name = entry.get("name", default_name) if isinstance(entry, dict) else default_name
    path = folder / Path(str(name)).name
    recorded = entry.get("sha256") if isinstance(entry, dict) else None
    try:
        digest = file_sha256(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc}); rebuild the dataset") from exc
    if digest != recorded:
        raise UnscrubbedDatasetError(
            f"{path} is not the file {CARD_FILE} describes (its sha256 differs), so it may not "
            "be scrubbed; rebuild the dataset with `wa-persona dataset`"
        )
    return path, digest


def read_checked(path: Path, sha256: str | None) -> bytes:
    """The file's bytes, refused when they are not the ones `load_dataset` checked."""
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != sha256:
        raise UnscrubbedDatasetError(
            f"{path} changed after it was checked; run the command again on the rebuilt dataset"
        )
    return content
