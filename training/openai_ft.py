"""OpenAI fine-tuning jobs, the optional legacy path: upload, train, track, register.

OpenAI has closed self-serve fine-tuning to new users and is retiring it
(`training.dataset.estimate.OPENAI_WIND_DOWN_NOTE`); local LoRA training is the main path.
This module is for accounts that can still fine-tune, and is off unless the caller allows
uploads (the CLI passes `Settings.openai_fine_tuning`).

Privacy: only a dataset whose `dataset_card.json` records a scrub report, and whose OpenAI
files still have the hashes the card recorded, is uploaded; the bytes hashed are the bytes
sent. Message text is never logged; job ids and statuses are, at INFO.

Restarts: every job is stored in the `openai_jobs` table as soon as OpenAI has created it,
with the last event seen and the metrics so far, so `OpenAIJobs.watch` picks unfinished jobs
up again in a new process without uploading or creating anything, and reports only events it
has not reported before. A job's model version is registered (ready or failed) before its
stored status becomes final, so a crash in between registers it on the next poll.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlite_utils import Database

from training.dataset.card import CARD_FILE
from training.dataset.estimate import (
    OPENAI_WIND_DOWN_NOTE,
    Estimate,
    SplitTokens,
    Target,
    TokenCounts,
    estimate,
)
from training.dataset.formats.openai import (
    EVAL_FILE,
    MAX_TOKENS_PER_EXAMPLE,
    MIN_EXAMPLES,
    TOKENS_PER_MESSAGE,
    TRAIN_FILE,
    TokenCounter,
    count_texts,
    counter_name,
    per_message_tokens,
    rough_token_count,
    validate_openai_jsonl,
)
from training.db import migrate
from training.errors import DatasetError, TrainingError
from training.registry import (
    BackendKind,
    ModelStatus,
    Registry,
    UnknownVersionError,
    persona_slug,
)

if TYPE_CHECKING:
    import openai
    from openai.types.fine_tuning import FineTuningJob

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "CostEstimate",
    "DEFAULT_MODEL",
    "FineTuningDisabledError",
    "JobEvent",
    "JobStore",
    "OPENAI_WIND_DOWN_NOTE",
    "OpenAIAuthError",
    "OpenAIDataset",
    "OpenAIFineTuningError",
    "OpenAIJobConfig",
    "OpenAIJobs",
    "OpenAINotConfiguredError",
    "OpenAIRequestError",
    "OpenAIUnavailableError",
    "PollResult",
    "RemoteJob",
    "TERMINAL_STATUSES",
    "TrackedJob",
    "UnknownJobError",
    "UnscrubbedDatasetError",
    "auto_epochs",
    "default_suffix",
    "estimate_cost",
    "load_dataset",
    "openai_client",
    "require_upload_allowed",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4.1-mini-2025-04-14"
"""A model OpenAI lists as fine-tunable (supervised) at the time of writing."""

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
MAX_SUFFIX = 64
"""OpenAI's limit on `suffix` (the create-job parameter's documentation)."""
MAX_SEED = 2**31 - 1

# OpenAI's default epochs for `n_epochs="auto"`, as its cookbook "Data preparation and
# analysis for chat model fine-tuning" computes it: 3, raised for small files so that
# examples × epochs reaches 100 (at most 25 epochs), lowered for large ones so it stays
# under 25,000 (at least 1).
AUTO_TARGET_EPOCHS = 3
AUTO_MIN_TARGET_EXAMPLES = 100
AUTO_MAX_TARGET_EXAMPLES = 25_000
AUTO_MIN_EPOCHS = 1
AUTO_MAX_EPOCHS = 25

METRIC_KEYS = (
    "step",
    "total_steps",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)
"""What `metrics` events carry that is worth keeping; the last value of each is kept."""

_KEY_HINT = "WA_PERSONA_OPENAI_API_KEY"

Auto = Literal["auto"]


# --- errors ---------------------------------------------------------------------------------


class OpenAIFineTuningError(TrainingError):
    """Base class of this module's errors."""


class FineTuningDisabledError(OpenAIFineTuningError):
    """Uploading training data to OpenAI is not allowed by the settings."""


class OpenAINotConfiguredError(OpenAIFineTuningError):
    """No OpenAI API key is configured."""


class UnscrubbedDatasetError(OpenAIFineTuningError):
    """The dataset was built without scrubbing, or changed after its card was written."""


class UnknownJobError(OpenAIFineTuningError):
    """No stored job has this id."""


class OpenAIAuthError(OpenAIFineTuningError):
    """OpenAI refused the key (401) or the request for this account (403)."""


class OpenAIUnavailableError(OpenAIFineTuningError):
    """OpenAI could not be reached (network, timeout)."""


class OpenAIRequestError(OpenAIFineTuningError):
    """OpenAI answered with an error (bad request, not found, rate limit, server error)."""


# --- what a job is asked to do ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenAIJobConfig:
    """A supervised fine-tuning job's settings; "auto" lets OpenAI choose."""

    model: str = DEFAULT_MODEL
    n_epochs: int | Auto = "auto"
    batch_size: int | Auto = "auto"
    learning_rate_multiplier: float | Auto = "auto"
    suffix: str | None = None
    """Added to the fine-tuned model's name; default: the persona's slug."""
    seed: int | None = None
    """Makes a job reproducible; OpenAI picks one when unset."""

    def validate(self) -> None:
        """Raise OpenAIFineTuningError naming the first setting OpenAI would refuse."""
        if not self.model.strip():
            raise OpenAIFineTuningError("model is empty; give a fine-tunable OpenAI model id")
        for name in ("n_epochs", "batch_size"):
            value = getattr(self, name)
            if value != "auto" and (type(value) is not int or value < 1):
                raise OpenAIFineTuningError(f"{name} must be 'auto' or at least 1, not {value!r}")
        lr = self.learning_rate_multiplier
        if lr != "auto" and (
            isinstance(lr, bool)
            or not isinstance(lr, int | float)
            or not math.isfinite(lr)
            or lr <= 0
        ):
            raise OpenAIFineTuningError(
                f"learning_rate_multiplier must be 'auto' or a positive number, not {lr!r}"
            )
        if self.suffix is not None and not 0 < len(self.suffix) <= MAX_SUFFIX:
            raise OpenAIFineTuningError(
                f"suffix must be 1 to {MAX_SUFFIX} characters, not {len(self.suffix)}"
            )
        if self.seed is not None and (type(self.seed) is not int or not 0 <= self.seed <= MAX_SEED):
            raise OpenAIFineTuningError(f"seed must be 0 to {MAX_SEED}, not {self.seed!r}")

    def method(self) -> dict[str, Any]:
        """The create-job `method` parameter: supervised, with these hyperparameters."""
        return {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": self.n_epochs,
                    "batch_size": self.batch_size,
                    "learning_rate_multiplier": self.learning_rate_multiplier,
                }
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def default_suffix(persona: str) -> str:
    """The persona's slug ("Zoë" -> "zoe"), cut to OpenAI's suffix limit."""
    return persona_slug(persona)[:MAX_SUFFIX].strip("-")


# --- the dataset that may be uploaded -----------------------------------------------------


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
        digest = _sha256(path.read_bytes())
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc}); rebuild the dataset") from exc
    if digest != recorded:
        raise UnscrubbedDatasetError(
            f"{path} is not the file {CARD_FILE} describes (its sha256 differs), so it may not "
            "be scrubbed; rebuild the dataset with `wa-persona dataset`"
        )
    return path, digest


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# --- what it may cost ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """A rough price of one job, not a quote: training tokens × epochs × price."""

    model: str
    epochs: int
    epochs_note: str
    """Where `epochs` comes from: the setting, or OpenAI's "auto" rule."""
    estimate: Estimate
    """The figures (`training.dataset.estimate`): tokens per split, billed tokens, USD."""

    @property
    def train_tokens(self) -> int:
        """Tokens of the training file, one epoch."""
        return self.estimate.tokens.train.total

    @property
    def eval_tokens(self) -> int:
        """Tokens of the validation file (scored during training, not billed)."""
        return self.estimate.tokens.eval.total

    @property
    def billed_tokens(self) -> int:
        """Training tokens × epochs: what OpenAI bills."""
        return self.estimate.processed_tokens

    @property
    def usd(self) -> float:
        """The estimated price in US dollars."""
        return self.estimate.cost_usd or 0.0


def auto_epochs(examples: int) -> int:
    """The epochs OpenAI picks for `n_epochs="auto"` (its cookbook's rule, see above)."""
    if examples < 1:
        return AUTO_TARGET_EPOCHS
    if examples * AUTO_TARGET_EPOCHS < AUTO_MIN_TARGET_EXAMPLES:
        return min(AUTO_MAX_EPOCHS, AUTO_MIN_TARGET_EXAMPLES // examples)
    if examples * AUTO_TARGET_EPOCHS > AUTO_MAX_TARGET_EXAMPLES:
        return max(AUTO_MIN_EPOCHS, AUTO_MAX_TARGET_EXAMPLES // examples)
    return AUTO_TARGET_EPOCHS


def estimate_cost(
    dataset: OpenAIDataset,
    config: OpenAIJobConfig,
    *,
    usd_per_1m_tokens: float,
    token_counter: TokenCounter = rough_token_count,
) -> CostEstimate:
    """Count the OpenAI files' tokens and price `config`'s epochs at `usd_per_1m_tokens`.

    Tokens are counted as OpenAI's cookbook does (contents plus 3 per message) with
    `token_counter`, by default the builder's UTF-8 estimate, which leans high.
    """
    per_message = per_message_tokens(token_counter, TOKENS_PER_MESSAGE)
    train = _file_tokens("train", dataset.train, token_counter, per_message)
    empty = SplitTokens("eval", 0, 0, 0, 0, 0, 0, 0, 0)
    eval_ = (
        _file_tokens("eval", dataset.eval, token_counter, per_message) if dataset.eval else empty
    )
    counts = TokenCounts(
        train=train, eval=eval_, counter=counter_name(token_counter), tokens_per_message=per_message
    )
    if config.n_epochs == "auto":
        epochs = auto_epochs(train.samples)
        note = (
            f"auto: OpenAI picks {epochs} for {train.samples:,} examples (3, raised so that "
            "examples × epochs ≥ 100, lowered so that it stays ≤ 25,000)"
        )
    else:
        epochs, note = config.n_epochs, "as set"
    target = Target(config.model, "openai", usd_per_1m_tokens=usd_per_1m_tokens)
    (figures,) = estimate((), token_counter=token_counter, targets=[target], epochs=epochs,
                          counts=counts)  # fmt: skip
    return CostEstimate(model=config.model, epochs=epochs, epochs_note=note, estimate=figures)


def _file_tokens(
    split: str, path: Path, token_counter: TokenCounter, per_message: int
) -> SplitTokens:
    """Token counts of one OpenAI JSONL file (a validated one: every line an example)."""
    sizes: list[int] = []
    messages = total = assistant = trained = 0
    with path.open("rb") as handle:
        for line in handle:
            example = json.loads(line)["messages"]
            counts = count_texts(token_counter, [m.get("content") or "" for m in example])
            size = sum(counts) + per_message * len(example)
            for message, count in zip(example, counts, strict=True):
                if message.get("role") == "assistant":
                    assistant += count
                    trained += count if message.get("weight", 1) == 1 else 0
            messages += len(example)
            total += size
            sizes.append(size)
    sizes.sort()

    def rank(q: float) -> int:  # nearest-rank percentile
        return sizes[max(1, math.ceil(len(sizes) * q)) - 1] if sizes else 0

    return SplitTokens(
        split=split,
        samples=len(sizes),
        messages=messages,
        total=total,
        assistant=assistant,
        trained=trained,
        p50_example=rank(0.50),
        p95_example=rank(0.95),
        max_example=sizes[-1] if sizes else 0,
    )


# --- the client ---------------------------------------------------------------------------


def openai_client(
    api_key: str | None,
    base_url: str | None = None,
    *,
    timeout: float = 120.0,
    max_retries: int = 2,
) -> openai.OpenAI:
    """The OpenAI client for these settings; `OpenAINotConfiguredError` without a key."""
    import openai  # here, not at the top: listing stored jobs needs no client

    if not api_key:
        raise OpenAINotConfiguredError(f"no OpenAI API key; set {_KEY_HINT} (a dry run needs none)")
    return openai.OpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def require_upload_allowed(allowed: bool) -> None:
    """Raise `FineTuningDisabledError` unless the settings allow uploads to OpenAI."""
    if not allowed:
        raise FineTuningDisabledError(
            "uploading training data to OpenAI is off (a legacy path: OpenAI has closed "
            "self-serve fine-tuning to new users and is retiring it); set "
            "WA_PERSONA_OPENAI_FINE_TUNING=true to allow it"
        )


@contextmanager
def _openai_errors(doing: str) -> Iterator[None]:
    """Turn the openai client's errors into this module's, saying what to do."""
    import openai

    try:
        yield
    except openai.AuthenticationError as exc:
        raise OpenAIAuthError(
            f"OpenAI refused the API key while {doing} ({_reason(exc)}); check {_KEY_HINT}"
        ) from exc
    except openai.PermissionDeniedError as exc:
        raise OpenAIAuthError(
            f"OpenAI refused this account while {doing} ({_reason(exc)}); OpenAI has closed "
            "self-serve fine-tuning to new users, see docs/openai-fine-tuning.md"
        ) from exc
    except openai.RateLimitError as exc:
        raise OpenAIRequestError(
            f"OpenAI's rate limit or quota stopped {doing} ({_reason(exc)}); try again later "
            "(`wa-persona openai watch` resumes tracking)"
        ) from exc
    except openai.APIConnectionError as exc:
        raise OpenAIUnavailableError(
            f"cannot reach OpenAI while {doing} ({exc.message}); check the network and "
            "WA_PERSONA_OPENAI_BASE_URL (`wa-persona openai watch` resumes tracking)"
        ) from exc
    except openai.APIStatusError as exc:
        raise OpenAIRequestError(
            f"OpenAI answered {exc.status_code} while {doing}: {_reason(exc)}"
        ) from exc
    except openai.APIError as exc:
        raise OpenAIRequestError(f"OpenAI error while {doing}: {exc.message}") from exc


def _reason(exc: openai.APIError) -> str:
    """OpenAI's own error message when the body has one."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message


# --- the job store ------------------------------------------------------------------------

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
            [*changes.values(), _now().isoformat(), job_id],
        )
        return self.get(job_id)


def _job_from_row(row: Sequence[Any]) -> TrackedJob:
    values = dict(zip(_COLUMNS.replace(" ", "").split(","), row, strict=True))
    values["metrics"] = json.loads(values["metrics"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    values["updated_at"] = datetime.fromisoformat(values["updated_at"])
    return TrackedJob(**values)


def _now() -> datetime:
    return datetime.now(UTC)


# --- the jobs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One event of a job, as OpenAI reports it (its messages are OpenAI's, not chat text)."""

    id: str
    created_at: datetime
    level: str
    message: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PollResult:
    """A job after one poll, and the events not reported before (oldest first)."""

    job: TrackedJob
    events: list[JobEvent]


@dataclass(frozen=True, slots=True)
class RemoteJob:
    """A job as OpenAI lists it; `tracked` when it is in this database."""

    job_id: str
    model: str
    status: str
    fine_tuned_model: str | None
    created_at: datetime
    tracked: bool


EventCallback = Callable[[TrackedJob, JobEvent], None]
UpdateCallback = Callable[[TrackedJob], None]


class OpenAIJobs:
    """Starts, tracks and cancels OpenAI fine-tuning jobs and registers what they make.

    Args:
        client: an `openai.OpenAI` client (`openai_client`); tests point it at a fake server.
        db: the wa-persona database (`training.db.connect`); holds the jobs and the registry.
        allow_upload: `Settings.openai_fine_tuning`; without it `start` uploads nothing.
        events_page_size: events asked for per request while catching up.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        db: Database,
        *,
        allow_upload: bool = False,
        events_page_size: int = 100,
    ) -> None:
        self.client = client
        self.store = JobStore(db)
        self.registry = Registry(db)
        self.allow_upload = allow_upload
        self.events_page_size = events_page_size

    def start(
        self, dataset: OpenAIDataset, persona: str, config: OpenAIJobConfig | None = None
    ) -> TrackedJob:
        """Upload the dataset, create the job, store it and register a training version.

        Raises:
            FineTuningDisabledError: uploads are not allowed (nothing is sent).
            UnscrubbedDatasetError: a file changed since `load_dataset` checked it.
            OpenAIFineTuningError: a bad setting, or OpenAI refused (mapped client errors).
        """
        require_upload_allowed(self.allow_upload)
        config = config or OpenAIJobConfig()
        config.validate()
        if dataset.persona is not None and dataset.persona != persona:
            raise DatasetError(
                f"{dataset.folder} was built for {dataset.persona!r}, not {persona!r}; "
                "give the persona the dataset was built for"
            )
        suffix = config.suffix or default_suffix(persona)
        train = _read_checked(dataset.train, dataset.train_sha256)
        valid = _read_checked(dataset.eval, dataset.eval_sha256) if dataset.eval else None
        options: dict[str, Any] = {"suffix": suffix, "method": config.method()}
        if config.seed is not None:
            options["seed"] = config.seed
        uploaded: list[str] = []
        try:
            with _openai_errors("uploading the training data"):
                train_file = self.client.files.create(
                    file=(dataset.train.name, train), purpose="fine-tune"
                )
                uploaded.append(train_file.id)
                if dataset.eval is not None and valid is not None:
                    valid_file = self.client.files.create(
                        file=(dataset.eval.name, valid), purpose="fine-tune"
                    )
                    uploaded.append(valid_file.id)
                    options["validation_file"] = valid_file.id
            with _openai_errors("creating the fine-tuning job"):
                job = self.client.fine_tuning.jobs.create(
                    model=config.model, training_file=train_file.id, **options
                )
        except OpenAIFineTuningError:
            self._delete_files(uploaded)  # no job uses them: no copy stays at OpenAI
            raise
        validation_file = options.get("validation_file")
        version = self.registry.create(
            persona,
            BackendKind.OPENAI,
            status=ModelStatus.TRAINING,
            base_model=config.model,
            dataset_sha256=dataset.train_sha256,
            config={
                **config.to_dict(),
                "suffix": suffix,
                "job_id": job.id,
                "training_file": train_file.id,
                "validation_file": validation_file,
                "dataset": str(dataset.folder),
                "scrub_mode": dataset.scrub_mode,
            },
        )
        now = _now()
        tracked = self.store.add(
            TrackedJob(
                job_id=job.id,
                version=version.version,
                persona=persona,
                model=config.model,
                dataset=str(dataset.folder),
                training_file=train_file.id,
                validation_file=validation_file,
                # a new job is validating; were it final already, the next poll registers it
                status="validating_files" if job.status in TERMINAL_STATUSES else job.status,
                fine_tuned_model=None,
                trained_tokens=None,
                error=None,
                metrics={},
                last_event_id=None,
                last_event_at=None,
                created_at=now,
                updated_at=now,
            )
        )
        logger.info("OpenAI job %s started for %s: %s", job.id, version.version, job.status)
        return tracked

    def poll(self, job_id: str) -> PollResult:
        """Fetch the job's status and new events, store them, register a finished job."""
        tracked = self.store.get(job_id)
        with _openai_errors(f"checking job {job_id}"):
            remote = self.client.fine_tuning.jobs.retrieve(job_id)
        return self._refresh(tracked, remote)

    def cancel(self, job_id: str) -> TrackedJob:
        """Ask OpenAI to cancel the job; its version is marked failed ("cancelled")."""
        tracked = self.store.get(job_id)
        if tracked.finished:
            raise OpenAIFineTuningError(
                f"job {job_id} has already {tracked.status}; there is nothing to cancel"
            )
        with _openai_errors(f"cancelling job {job_id}"):
            remote = self.client.fine_tuning.jobs.cancel(job_id)
        return self._refresh(tracked, remote).job

    def watch(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        interval: float,
        on_event: EventCallback | None = None,
        on_update: UpdateCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[TrackedJob]:
        """Poll the jobs (default: every unfinished stored job) until each has finished.

        `on_event` gets every event not reported before, oldest first; `on_update` gets each
        job after each poll. Everything is stored as it arrives, so an interrupted watch
        resumes where it stopped.
        """
        if interval <= 0:
            raise OpenAIFineTuningError(f"the poll interval must be positive, not {interval}")
        ids = list(job_ids) if job_ids else [job.job_id for job in self.store.pending()]
        jobs = {job_id: self.store.get(job_id) for job_id in ids}
        active = [job_id for job_id in jobs if not jobs[job_id].finished]
        while active:
            for job_id in active:
                result = self.poll(job_id)
                jobs[job_id] = result.job
                for event in result.events:
                    if on_event is not None:
                        on_event(result.job, event)
                if on_update is not None:
                    on_update(result.job)
            active = [job_id for job_id in active if not jobs[job_id].finished]
            if active:
                sleep(interval)
        return list(jobs.values())

    def pending(self) -> list[TrackedJob]:
        """Stored jobs that have not finished."""
        return self.store.pending()

    def remote(self, limit: int = 20) -> list[RemoteJob]:
        """The account's most recent jobs as OpenAI lists them, marked when tracked here."""
        known = {job.job_id for job in self.store.list()}
        with _openai_errors("listing fine-tuning jobs"):
            page = self.client.fine_tuning.jobs.list(limit=limit)
        return [
            RemoteJob(
                job_id=job.id,
                model=job.model,
                status=job.status,
                fine_tuned_model=job.fine_tuned_model,
                created_at=datetime.fromtimestamp(job.created_at, UTC),
                tracked=job.id in known,
            )
            for job in page.data
        ]

    def _delete_files(self, file_ids: list[str]) -> None:
        """Remove uploads that no job uses (best effort: a failure is logged)."""
        for file_id in file_ids:
            try:
                with _openai_errors(f"deleting the unused upload {file_id}"):
                    self.client.files.delete(file_id)
            except OpenAIFineTuningError as exc:
                logger.warning("could not delete OpenAI file %s: %s", file_id, exc)

    def _refresh(self, tracked: TrackedJob, remote: FineTuningJob) -> PollResult:
        """Store what OpenAI's view of the job and its new events say."""
        events = self._new_events(tracked)
        metrics = dict(tracked.metrics)
        for event in events:
            if event.type == "metrics":
                metrics.update(
                    (key, float(value))
                    for key, value in event.data.items()
                    if key in METRIC_KEYS
                    and isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                )
        error = _error_text(remote.error) if remote.status == "failed" else None
        if remote.status == "cancelled":
            error = "cancelled"
        progress: dict[str, Any] = {
            "metrics": metrics,
            "fine_tuned_model": remote.fine_tuned_model,
            "trained_tokens": remote.trained_tokens,
            "error": error,
        }
        if events:
            progress["last_event_id"] = events[-1].id
            progress["last_event_at"] = int(events[-1].created_at.timestamp())
        finishing = remote.status in TERMINAL_STATUSES and not tracked.finished
        if not finishing:
            progress["status"] = remote.status
        job = self.store.update(tracked.job_id, **progress)
        if finishing:
            self._register(job, remote.status)
            job = self.store.update(tracked.job_id, status=remote.status)
        if job.status != tracked.status:
            logger.info("OpenAI job %s (%s): %s", job.job_id, job.version, job.status)
        return PollResult(job=job, events=events)

    def _new_events(self, tracked: TrackedJob) -> list[JobEvent]:
        """Events after the last one stored, oldest first.

        OpenAI lists events newest first and pages towards older ones with `after`; the
        client follows those pages lazily, so reading stops at the first event already seen.
        """
        fresh: list[JobEvent] = []
        with _openai_errors(f"reading the events of job {tracked.job_id}"):
            for event in self.client.fine_tuning.jobs.list_events(
                tracked.job_id, limit=self.events_page_size
            ):
                if event.id == tracked.last_event_id or (
                    tracked.last_event_at is not None and event.created_at < tracked.last_event_at
                ):
                    break
                fresh.append(
                    JobEvent(
                        id=event.id,
                        created_at=datetime.fromtimestamp(event.created_at, UTC),
                        level=event.level,
                        message=event.message,
                        type=event.type or "message",
                        data=event.data if isinstance(event.data, dict) else {},
                    )
                )
        fresh.reverse()
        for event in fresh:
            logger.debug("OpenAI job %s event %s: %s", tracked.job_id, event.id, event.message)
        return fresh

    def _register(self, job: TrackedJob, status: str) -> None:
        """Mark the job's version ready (with the model id and metrics) or failed.

        A version no longer in training (registered by an earlier poll that crashed before
        storing the final status, or changed by hand) or no longer there is left as it is.
        """
        try:
            current = self.registry.get(job.version)
        except UnknownVersionError:
            logger.warning("OpenAI job %s: version %s is gone", job.job_id, job.version)
            return
        if current.status is not ModelStatus.TRAINING:
            logger.info(
                "OpenAI job %s: version %s is already %s", job.job_id, job.version, current.status
            )
            return
        metrics = dict(job.metrics)
        if job.trained_tokens is not None:
            metrics["trained_tokens"] = float(job.trained_tokens)
        if status == "succeeded" and job.fine_tuned_model:
            self.registry.update(
                job.version,
                status=ModelStatus.READY,
                remote_id=job.fine_tuned_model,
                metrics=metrics,
            )
        else:
            reason = job.error or f"the job {status} without a model"
            self.registry.update(
                job.version,
                status=ModelStatus.FAILED,
                metrics=metrics,
                notes=f"OpenAI job {job.job_id}: {reason}",
            )


def _read_checked(path: Path, sha256: str | None) -> bytes:
    """The file's bytes, refused when they are not the ones `load_dataset` checked."""
    content = path.read_bytes()
    if _sha256(content) != sha256:
        raise UnscrubbedDatasetError(
            f"{path} changed after it was checked; run the command again on the rebuilt dataset"
        )
    return content


def _error_text(error: Any) -> str:
    """A failed job's `error` object as one line: "message (code, param)"."""
    if error is None:
        return "failed without an error message"
    details = ", ".join(
        part for part in (getattr(error, "code", None), getattr(error, "param", None)) if part
    )
    message = getattr(error, "message", None) or "failed without an error message"
    return f"{message} ({details})" if details else message
