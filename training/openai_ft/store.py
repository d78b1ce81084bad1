"""The `openai_jobs` table: every job started here, so tracking survives a restart.

Each job is stored as soon as OpenAI has created it, with the last event seen and the
metrics so far.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from training.db import migrate
from training.openai_ft.errors import UnknownJobError

__all__ = ["COMPONENT", "MIGRATIONS", "TERMINAL_STATUSES", "JobStore", "TrackedJob", "now"]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
COMPONENT = "openai_jobs"
MIGRATIONS = [
    """
    CREATE TABLE openai_jobs (
        job_id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        persona TEXT NOT NULL,
        model TEXT NOT NULL,
        dataset TEXT NOT NULL,
        training_file TEXT NOT NULL,
        validation_file TEXT,
        status TEXT NOT NULL,
        fine_tuned_model TEXT,
        trained_tokens INTEGER,
        error TEXT,
        metrics TEXT NOT NULL DEFAULT '{}',
        last_event_id TEXT,
        last_event_at INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX openai_jobs_by_status ON openai_jobs (status, created_at);
    """,
]


@dataclass(frozen=True, slots=True)
class TrackedJob:
    """A fine-tuning job as stored here: what was sent, where it is, what it made."""

    job_id: str
    version: str
    """The registry version the job trains (`maya-v3`)."""
    persona: str
    model: str
    dataset: str
    training_file: str
    validation_file: str | None
    status: str
    fine_tuned_model: str | None
    trained_tokens: int | None
    error: str | None
    metrics: dict[str, float]
    """The last value of each `METRIC_KEYS` entry seen in the job's metrics events."""
    last_event_id: str | None
    last_event_at: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        """Succeeded, failed or cancelled, and registered as such."""
        return self.status in TERMINAL_STATUSES


_COLUMNS = (
    "job_id, version, persona, model, dataset, training_file, validation_file, status,"
    " fine_tuned_model, trained_tokens, error, metrics, last_event_id, last_event_at,"
    " created_at, updated_at"
)


class JobStore:
    """The `openai_jobs` table: every job started here, so tracking survives restarts."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, COMPONENT, MIGRATIONS)

    def add(self, job: TrackedJob) -> TrackedJob:
        """Store a newly created job."""
        row = asdict(job)
        row["metrics"] = json.dumps(row["metrics"], sort_keys=True)
        row["created_at"] = job.created_at.isoformat()
        row["updated_at"] = job.updated_at.isoformat()
        names = _COLUMNS.replace(" ", "").split(",")
        self.db.execute(
            f"INSERT INTO openai_jobs ({_COLUMNS}) VALUES ({', '.join('?' * len(names))})",
            [row[name] for name in names],
        )
        return self.get(job.job_id)

    def get(self, job_id: str) -> TrackedJob:
        """The stored job `job_id`; `UnknownJobError` when there is none."""
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM openai_jobs WHERE job_id = ?", [job_id]
        ).fetchone()
        if row is None:
            raise UnknownJobError(
                f"no stored OpenAI job {job_id!r}; `wa-persona openai jobs` lists them"
            )
        return _job_from_row(row)

    def list(self) -> list[TrackedJob]:
        """Every stored job, newest first."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM openai_jobs ORDER BY created_at DESC, rowid DESC"
        ).fetchall()
        return [_job_from_row(row) for row in rows]

    def pending(self) -> list[TrackedJob]:
        """Jobs not yet finished (or finished but not yet registered), oldest first."""
        terminal = sorted(TERMINAL_STATUSES)
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM openai_jobs WHERE status NOT IN (?, ?, ?)"
            " ORDER BY created_at, rowid",
            terminal,
        ).fetchall()
        return [_job_from_row(row) for row in rows]

    def update(self, job_id: str, **changes: Any) -> TrackedJob:
        """Set the given columns (and `updated_at`)."""
        if "metrics" in changes:
            changes["metrics"] = json.dumps(changes["metrics"], sort_keys=True)
        columns = ", ".join(f"{name} = ?" for name in changes)
        self.db.execute(
            f"UPDATE openai_jobs SET {columns}, updated_at = ? WHERE job_id = ?",
            [*changes.values(), now().isoformat(), job_id],
        )
        return self.get(job_id)


def _job_from_row(row: Sequence[Any]) -> TrackedJob:
    values = dict(zip(_COLUMNS.replace(" ", "").split(","), row, strict=True))
    values["metrics"] = json.loads(values["metrics"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    values["updated_at"] = datetime.fromisoformat(values["updated_at"])
    return TrackedJob(**values)


def now() -> datetime:
    """The current time in UTC (what `created_at` and `updated_at` hold)."""
    return datetime.now(UTC)
