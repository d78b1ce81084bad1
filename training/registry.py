"""The model registry: every trained or imported model is a numbered version with a status.

A version (`maya-v3`) records what the bot needs to load or call a model (backend kind, path,
remote id, endpoint), where it came from (base model, dataset hash, config) and how it did
(metrics). Exactly one version per persona may be active; the bot answers with it.

Status transitions (anything else raises `RegistryError`):

    training -> ready | failed
    ready    -> active (activate) | retired
    active   -> ready (another version activated) | retired
    retired  -> active (activate) | ready
    failed   -> (final)
"""

from __future__ import annotations

import builtins
import difflib
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlite_utils import Database

from training.db import connect, migrate
from training.errors import TrainingError

__all__ = [
    "BackendKind",
    "ModelStatus",
    "ModelVersion",
    "Registry",
    "RegistryError",
    "UnknownVersionError",
    "import_model",
    "persona_slug",
]

COMPONENT = "registry"

MIGRATIONS = [
    """
    CREATE TABLE model_versions (
        version TEXT PRIMARY KEY,
        persona TEXT NOT NULL,
        slug TEXT NOT NULL,
        number INTEGER NOT NULL CHECK (number >= 1),
        kind TEXT NOT NULL
            CHECK (kind IN ('local-adapter', 'local-model', 'openai', 'openai-compatible')),
        status TEXT NOT NULL
            CHECK (status IN ('training', 'failed', 'ready', 'active', 'retired')),
        base_model TEXT,
        path TEXT,
        remote_id TEXT,
        endpoint TEXT,
        dataset_sha256 TEXT,
        metrics TEXT NOT NULL DEFAULT '{}',
        config TEXT NOT NULL DEFAULT '{}',
        notes TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (slug, number)
    );
    CREATE UNIQUE INDEX model_versions_one_active ON model_versions (persona)
        WHERE status = 'active';
    CREATE INDEX model_versions_by_persona ON model_versions (persona, created_at);
    """,
]

_SLUG_MAX = 40
# Letters NFKD does not decompose into ASCII.
_LATIN_EXTRA = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "œ": "oe", "Œ": "oe", "ł": "l",
     "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "ı": "i"}
)  # fmt: skip


class ModelStatus(StrEnum):
    """Where a version is in its life."""

    TRAINING = "training"
    FAILED = "failed"
    READY = "ready"
    ACTIVE = "active"
    RETIRED = "retired"


class BackendKind(StrEnum):
    """How the bot reaches the model."""

    LOCAL_ADAPTER = "local-adapter"
    LOCAL_MODEL = "local-model"
    OPENAI = "openai"
    OPENAI_COMPATIBLE = "openai-compatible"


class RegistryError(TrainingError):
    """A registry request that cannot be done as asked (a refused status change, bad values)."""


class UnknownVersionError(RegistryError):
    """No version has this name."""


# Status changes `update` and `retire` may make; activation has its own rules in `activate`.
_TRANSITIONS: dict[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.TRAINING: frozenset({ModelStatus.READY, ModelStatus.FAILED}),
    ModelStatus.READY: frozenset({ModelStatus.RETIRED}),
    ModelStatus.ACTIVE: frozenset({ModelStatus.RETIRED}),
    ModelStatus.RETIRED: frozenset({ModelStatus.READY}),
    ModelStatus.FAILED: frozenset(),
}
_ACTIVATABLE = frozenset({ModelStatus.READY, ModelStatus.RETIRED})


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered model: how to reach it, where it came from, how it did."""

    version: str
    persona: str
    kind: BackendKind
    status: ModelStatus
    base_model: str | None
    path: str | None
    remote_id: str | None
    endpoint: str | None
    dataset_sha256: str | None
    metrics: dict[str, float]
    config: dict[str, object]
    notes: str | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (enums as their values, times as ISO 8601)."""
        return {
            "version": self.version,
            "persona": self.persona,
            "kind": self.kind.value,
            "status": self.status.value,
            "base_model": self.base_model,
            "path": self.path,
            "remote_id": self.remote_id,
            "endpoint": self.endpoint,
            "dataset_sha256": self.dataset_sha256,
            "metrics": dict(self.metrics),
            "config": dict(self.config),
            "notes": self.notes,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def persona_slug(persona: str) -> str:
    """Lowercase ASCII letters, digits and hyphens for `persona` ("Zoë" -> "zoe").

    Names with no Latin letters (e.g. Cyrillic) get a stable hash-based slug instead.
    """
    ascii_name = (
        unicodedata.normalize("NFKD", persona.translate(_LATIN_EXTRA))
        .encode("ascii", "ignore")
        .decode("ascii")
    )
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:_SLUG_MAX].strip("-")
    if slug:
        return slug
    return "persona-" + hashlib.sha256(persona.encode("utf-8")).hexdigest()[:8]


class Registry:
    """The `model_versions` table of the wa-persona database.

    Safe across processes and across threads that each open their own `Registry`; one
    instance (one connection) must not be shared by threads writing at the same time.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, COMPONENT, MIGRATIONS)

    @classmethod
    def open(cls, path: str | Path) -> Registry:
        """The registry in the database file at `path` (created when missing)."""
        return cls(connect(path))

    def create(
        self,
        persona: str,
        kind: BackendKind,
        *,
        status: ModelStatus = ModelStatus.TRAINING,
        base_model: str | None = None,
        path: str | Path | None = None,
        remote_id: str | None = None,
        endpoint: str | None = None,
        dataset_sha256: str | None = None,
        config: dict[str, object] | None = None,
        metrics: dict[str, float] | None = None,
        notes: str | None = None,
    ) -> ModelVersion:
        """Register the persona's next version (`<slug>-v<n>`); safe across processes."""
        if not persona.strip():
            raise RegistryError("a model version needs a persona name; pass the persona's name")
        kind = _enum(BackendKind, kind, "kind")
        status = _enum(ModelStatus, status, "status")
        if status is ModelStatus.ACTIVE:
            raise RegistryError(
                "a new version cannot start active; create it ready, then call activate()"
            )
        slug = persona_slug(persona)
        # The write lock is taken before reading the highest number, so two processes
        # creating versions at once are serialized; UNIQUE(slug, number) backs this up.
        with self._write() as db:
            now = _now()
            row = db.execute(
                "SELECT COALESCE(MAX(number), 0) FROM model_versions WHERE slug = ?", [slug]
            ).fetchone()
            number = row[0] + 1
            version = f"{slug}-v{number}"
            db.execute(
                "INSERT INTO model_versions (version, persona, slug, number, kind, status,"
                " base_model, path, remote_id, endpoint, dataset_sha256, metrics, config,"
                " notes, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    version,
                    persona,
                    slug,
                    number,
                    kind.value,
                    status.value,
                    base_model,
                    None if path is None else str(path),
                    remote_id,
                    endpoint,
                    dataset_sha256,
                    json.dumps(_clean_metrics(metrics or {}), sort_keys=True),
                    _config_json(config or {}),
                    notes,
                    now,
                    now,
                ],
            )
        return self.get(version)

    def update(
        self,
        version: str,
        *,
        status: ModelStatus | None = None,
        path: str | Path | None = None,
        remote_id: str | None = None,
        metrics: dict[str, float] | None = None,
        notes: str | None = None,
    ) -> ModelVersion:
        """Change the given fields (None leaves one as is); metrics merge into the stored ones."""
        with self._write():
            current = self.get(version)
            changes: dict[str, object] = {}
            if status is not None:
                status = _enum(ModelStatus, status, "status")
                if status is not current.status:
                    _check_transition(current, status)
                    changes["status"] = status.value
            if path is not None:
                changes["path"] = str(path)
            if remote_id is not None:
                changes["remote_id"] = remote_id
            if metrics is not None:
                merged = {**current.metrics, **_clean_metrics(metrics)}
                changes["metrics"] = json.dumps(merged, sort_keys=True)
            if notes is not None:
                changes["notes"] = notes
            if changes:
                self._set(version, changes)
        return self.get(version)

    def get(self, version: str) -> ModelVersion:
        """The version named `version`; `UnknownVersionError` (with close matches) when none."""
        row = self.db.execute(f"{_SELECT} WHERE version = ?", [version]).fetchone()
        if row is None:
            raise self._unknown(version)
        return _from_row(row)

    def list(
        self, persona: str | None = None, *, statuses: Iterable[ModelStatus] | None = None
    ) -> builtins.list[ModelVersion]:
        """Versions, newest first, optionally of one persona and/or in the given statuses."""
        where: builtins.list[str] = []
        params: builtins.list[str] = []
        if persona is not None:
            where.append("persona = ?")
            params.append(persona)
        if statuses is not None:
            wanted = [_enum(ModelStatus, status, "status").value for status in statuses]
            where.append(f"status IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            params.extend(wanted)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.execute(
            f"{_SELECT}{clause} ORDER BY created_at DESC, rowid DESC", params
        ).fetchall()
        return [_from_row(row) for row in rows]

    def activate(self, version: str) -> ModelVersion:
        """Make `version` the one its persona's bot uses; the previous active one becomes ready."""
        with self._write():
            current = self.get(version)
            if current.status is ModelStatus.ACTIVE:
                return current
            if current.status not in _ACTIVATABLE:
                raise RegistryError(_refusal(current, ModelStatus.ACTIVE))
            now = _now()
            self.db.execute(
                "UPDATE model_versions SET status = 'ready', updated_at = ?"
                " WHERE persona = ? AND status = 'active'",
                [now, current.persona],
            )
            self._set(version, {"status": ModelStatus.ACTIVE.value}, now=now)
        return self.get(version)

    def active(self, persona: str) -> ModelVersion | None:
        """The persona's active version, or None when none is active."""
        row = self.db.execute(
            f"{_SELECT} WHERE persona = ? AND status = 'active'", [persona]
        ).fetchone()
        return None if row is None else _from_row(row)

    def retire(self, version: str) -> ModelVersion:
        """Take `version` out of use (an active one leaves its persona with none active)."""
        with self._write():
            current = self.get(version)
            if current.status is not ModelStatus.RETIRED:
                _check_transition(current, ModelStatus.RETIRED)
                self._set(version, {"status": ModelStatus.RETIRED.value})
        return self.get(version)

    def delete_persona(self, persona: str) -> builtins.list[ModelVersion]:
        """Remove every version of `persona` and return them, so the caller can delete files.

        Numbering for the persona starts again from 1 afterwards: nothing of it is kept.
        """
        with self._write():
            removed = self.list(persona)
            self.db.execute("DELETE FROM model_versions WHERE persona = ?", [persona])
        return removed

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One write transaction, taking SQLite's write lock at its start (BEGIN IMMEDIATE)."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _set(self, version: str, changes: dict[str, object], *, now: str | None = None) -> None:
        columns = ", ".join(f"{name} = ?" for name in changes)
        self.db.execute(
            f"UPDATE model_versions SET {columns}, updated_at = ? WHERE version = ?",
            [*changes.values(), now or _now(), version],
        )

    def _unknown(self, version: str) -> UnknownVersionError:
        names = [row[0] for row in self.db.execute("SELECT version FROM model_versions")]
        close = difflib.get_close_matches(version, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return UnknownVersionError(
            f"no model version {version!r}; {hint}`wa-persona models` lists the versions"
        )


def import_model(
    registry: Registry,
    persona: str,
    kind: BackendKind,
    *,
    path: str | Path | None = None,
    base_model: str | None = None,
    remote_id: str | None = None,
    endpoint: str | None = None,
    notes: str | None = None,
) -> ModelVersion:
    """Register a model trained elsewhere as a ready version, after checking it can be reached.

    A local adapter needs a folder with adapter_config.json (its base model is read from there
    when not given), a local model a folder with config.json, an OpenAI model its id, and an
    OpenAI-compatible server an http(s) base URL and the model name it serves.
    """
    kind = _enum(BackendKind, kind, "kind")
    given = {"path": path, "remote_id": remote_id, "endpoint": endpoint}
    needed = _IMPORT_FIELDS[kind]
    missing = [_FIELD_NAMES[name] for name in given if name in needed and not given[name]]
    extra = [_FIELD_NAMES[name] for name, value in given.items() if value and name not in needed]
    if missing:
        raise RegistryError(f"kind {kind} needs {' and '.join(missing)}")
    if extra:
        verb = "does" if len(extra) == 1 else "do"
        raise RegistryError(f"{' and '.join(extra)} {verb} not apply to kind {kind}")
    if path is not None:
        path = Path(path).expanduser().resolve()
        base_model = base_model or _check_local_folder(path, kind)
    if endpoint is not None:
        _check_endpoint(endpoint)
    return registry.create(
        persona,
        kind,
        status=ModelStatus.READY,
        base_model=base_model,
        path=path,
        remote_id=remote_id,
        endpoint=endpoint,
        notes=notes,
    )


# What each kind needs to be reached, and how the CLI names those fields.
_IMPORT_FIELDS = {
    BackendKind.LOCAL_ADAPTER: {"path"},
    BackendKind.LOCAL_MODEL: {"path"},
    BackendKind.OPENAI: {"remote_id"},
    BackendKind.OPENAI_COMPATIBLE: {"remote_id", "endpoint"},
}
_FIELD_NAMES = {"path": "a path (--path)", "remote_id": "a model id (--model)",
                "endpoint": "an endpoint (--endpoint)"}  # fmt: skip


def _check_local_folder(folder: Path, kind: BackendKind) -> str | None:
    """Refuse a folder that is not an adapter / model; return the adapter's base model."""
    marker = "adapter_config.json" if kind is BackendKind.LOCAL_ADAPTER else "config.json"
    what = "a PEFT adapter" if kind is BackendKind.LOCAL_ADAPTER else "a transformers model"
    if not folder.is_dir():
        raise RegistryError(f"{folder}: no such folder; give the folder that holds {marker}")
    if not (folder / marker).is_file():
        raise RegistryError(f"{folder}: no {marker}, so this is not {what} folder")
    if kind is not BackendKind.LOCAL_ADAPTER:
        return None
    try:
        adapter_config = json.loads((folder / marker).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{folder / marker}: unreadable ({exc})") from exc
    base = (
        adapter_config.get("base_model_name_or_path") if isinstance(adapter_config, dict) else None
    )
    return base if isinstance(base, str) and base else None


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(
            f"endpoint {endpoint!r} is not an http(s) URL; give the server's base URL, "
            "e.g. http://127.0.0.1:8000/v1"
        )


_COLUMNS = (
    "version, persona, kind, status, base_model, path, remote_id, endpoint, dataset_sha256,"
    " metrics, config, notes, created_at, updated_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM model_versions"


def _from_row(row: tuple[Any, ...]) -> ModelVersion:
    (version, persona, kind, status, base_model, path, remote_id, endpoint, dataset_sha256,
     metrics, config, notes, created_at, updated_at) = row  # fmt: skip
    return ModelVersion(
        version=version,
        persona=persona,
        kind=BackendKind(kind),
        status=ModelStatus(status),
        base_model=base_model,
        path=path,
        remote_id=remote_id,
        endpoint=endpoint,
        dataset_sha256=dataset_sha256,
        metrics=json.loads(metrics),
        config=json.loads(config),
        notes=notes,
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


_E = TypeVar("_E", bound=StrEnum)


def _enum(enum: type[_E], value: str, field: str) -> _E:
    """`value` as a member of `enum`, so callers may pass plain strings too."""
    try:
        return enum(value)
    except ValueError as exc:
        choices = ", ".join(member.value for member in enum)
        raise RegistryError(f"{field} must be one of {choices}, not {value!r}") from exc


def _check_transition(current: ModelVersion, target: ModelStatus) -> None:
    if target is ModelStatus.ACTIVE:
        raise RegistryError(f"use activate({current.version!r}) to make a version active")
    if target not in _TRANSITIONS[current.status]:
        raise RegistryError(_refusal(current, target))


def _refusal(current: ModelVersion, target: ModelStatus) -> str:
    """Why `current` cannot become `target`, and what to do instead."""
    name, status = current.version, current.status
    advice = {
        ModelStatus.TRAINING: "wait until it is ready, or mark it failed",
        ModelStatus.FAILED: "a failed version stays failed; train a new one with "
        "`wa-persona train` or activate another version",
        ModelStatus.READY: "activate it or retire it",
        ModelStatus.ACTIVE: "retire it, or activate another version of the persona",
        ModelStatus.RETIRED: "activate it, or mark it ready again",
    }[status]
    reason = f" ({current.notes})" if status is ModelStatus.FAILED and current.notes else ""
    return f"{name} is {status.value}{reason} and cannot become {target.value}; {advice}"


def _clean_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics as plain floats; refuses what is not a number (bools included)."""
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RegistryError(f"metric {name!r} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise RegistryError(f"metric {name!r} is {value}; record only finite numbers")
        clean[str(name)] = float(value)
    return clean


def _config_json(config: dict[str, object]) -> str:
    """The config as JSON; paths become strings, anything else unserializable is refused."""

    def default(value: object) -> str:
        if isinstance(value, PurePath):
            return str(value)
        raise TypeError(type(value).__name__)

    try:
        return json.dumps(config, sort_keys=True, default=default)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"config must be JSON-serializable ({exc})") from exc
