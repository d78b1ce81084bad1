"""`dataset_card.json`: what a dataset build is made of, without any of its text.

The card records where the data came from (source hashes), what each filter removed, the
split (conversations, samples and time range per split), token statistics, the settings, the
written files (name, sha256, lines, bytes), the persona's name, when it was made and by which
version. It never holds message text or the system prompt, only their counts and hashes, so it
can be shared or committed next to a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from importlib import metadata
from operator import attrgetter
from pathlib import Path, PurePath
from typing import Any

from training.dataset.estimate import TokenCounts, count_tokens
from training.dataset.formats import DatasetLike, split_samples
from training.dataset.formats.openai import TokenCounter, rough_token_count
from training.dataset.samples import Sample

__all__ = ["CARD_FILE", "CARD_VERSION", "make_card", "write_card"]

_train = attrgetter("train")

CARD_FILE = "dataset_card.json"
CARD_VERSION = 1


def write_card(
    build: DatasetLike | Sequence[Sample],
    out_dir: Path,
    files: Mapping[str, Path],
    *,
    persona: str | None = None,
    token_counter: TokenCounter | None = None,
    tokens: TokenCounts | None = None,
    created_at: datetime | None = None,
) -> Path:
    """Write `dataset_card.json` for a build and the files written from it; return its path.

    Args:
        files: the written files by role, as `write_dataset` returns them.
        persona: the persona's name; default: the build's `persona` (or `config.persona`).
        token_counter: count tokens with this for the card's `tokens` section.
        tokens: token counts already made (`count_tokens`). With neither, a build that has
            `stats` (the builder's, token statistics included) is described by those and
            `tokens` is null; loose samples are counted with `rough_token_count`.
    """
    card = make_card(
        build,
        files,
        persona=persona,
        token_counter=token_counter,
        tokens=tokens,
        created_at=created_at,
    )
    path = out_dir / CARD_FILE
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def make_card(
    build: DatasetLike | Sequence[Sample],
    files: Mapping[str, Path],
    *,
    persona: str | None = None,
    token_counter: TokenCounter | None = None,
    tokens: TokenCounts | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """The card as a JSON-ready dict (see `write_card`)."""
    train, eval_ = split_samples(build)
    stats = getattr(build, "stats", None)
    if tokens is None and (token_counter is not None or stats is None):
        tokens = count_tokens(build, token_counter=token_counter or rough_token_count)
    token_section = None
    if tokens is not None:
        token_section = {
            "counter": tokens.counter,
            "tokens_per_message": tokens.tokens_per_message,
            "tokens_per_sample": tokens.tokens_per_sample,
            "train": _jsonable(tokens.train),
            "eval": _jsonable(tokens.eval),
        }
    config = getattr(build, "config", None)
    return {
        "card_version": CARD_VERSION,
        "persona": persona or _persona(build),
        "created_at": (created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "versions": {
            "wa_persona": _version(),
            "python": platform.python_version(),
        },
        "sources": _jsonable(getattr(build, "sources", None)),
        "filters": _jsonable(getattr(build, "filters", None)),
        "settings": _settings(config),
        "gap_s": _jsonable(getattr(build, "gap_s", None)),
        "split": {"train": _split(train), "eval": _split(eval_)},
        "system_prompts": _system_prompts([*train, *eval_]),
        "tokens": token_section,
        "stats": _jsonable(stats),
        "scrub": _jsonable(getattr(build, "scrub", None)),
        "notes": _jsonable(getattr(build, "notes", None)),
        "files": {key: _file(path) for key, path in files.items()},
    }


def _split(samples: Sequence[Sample]) -> dict[str, Any]:
    """Counts and time range of one split; a sample's first and last timed turns bound it."""
    conversations: set[str] = set()
    chats: set[str] = set()
    first: datetime | None = None
    last: datetime | None = None
    turns = assistant = trained = augmented = 0
    for sample in samples:
        conversations.add(sample.conversation)
        chats.add(sample.chat)
        augmented += sample.augmented
        sample_turns = sample.turns
        turns += len(sample_turns)
        replies = [t for t in sample_turns if t.role == "assistant"]
        assistant += len(replies)
        trained += sum(map(_train, replies))
        start = sample_turns[0].ts if sample_turns else None
        if start is None:  # e.g. the "(new conversation)" opener has no time
            start = next((t.ts for t in sample_turns if t.ts is not None), None)
        end = sample_turns[-1].ts if sample_turns else None
        if start is not None and (first is None or start < first):
            first = start
        if end is not None and (last is None or end > last):
            last = end
    return {
        "samples": len(samples),
        "conversations": len(conversations),
        "chats": len(chats),
        "augmented_samples": augmented,
        "turns": turns,
        "assistant_turns": assistant,
        "context_only_assistant_turns": assistant - trained,
        "first": first.isoformat() if first else None,
        "last": last.isoformat() if last else None,
    }


def _system_prompts(samples: Sequence[Sample]) -> dict[str, Any]:
    """How many distinct system prompts there are, by hash (never their text)."""
    digests: dict[str, int] = {}
    seen: dict[int, str] = {}  # id -> digest: most samples share one prompt object
    for sample in samples:
        digest = seen.get(id(sample.system))
        if digest is None:
            digest = seen[id(sample.system)] = _sha256(sample.system)
        digests[digest] = digests.get(digest, 0) + 1
    top = sorted(digests.items(), key=lambda item: -item[1])[:10]
    return {
        "distinct": len(digests),
        "most_used": [{"sha256": digest, "samples": count} for digest, count in top],
    }


def _file(path: Path) -> dict[str, Any]:
    """Name, sha256, line count and size of a written file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    lines = size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            lines += block.count(b"\n")
            size += len(block)
    return {"name": path.name, "sha256": digest.hexdigest(), "lines": lines, "bytes": size}


def _settings(config: object) -> Any:
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict())
    return _jsonable(config)


def _persona(build: object) -> str | None:
    for owner in (build, getattr(build, "config", None)):
        name = getattr(owner, "persona", None)
        if isinstance(name, str):
            return name
        name = getattr(name, "name", None)  # a persona object with a name
        if isinstance(name, str):
            return name
    return None


def _version() -> str | None:
    try:
        return metadata.version("wa-persona")
    except metadata.PackageNotFoundError:
        return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> Any:
    """Dataclasses, mappings, sequences, paths, dates and enums as plain JSON values."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return _jsonable(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)
