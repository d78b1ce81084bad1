"""Start, track and cancel OpenAI fine-tuning jobs, and register the models they make.

Message text is never logged; job ids and statuses are, at INFO. `OpenAIJobs.watch` picks
unfinished stored jobs up again in a new process without uploading or creating anything, and
reports only events it has not reported before. A job's model version is registered (ready or
failed) before its stored status becomes final, so a crash in between registers it on the
next poll.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from training.errors import DatasetError
from training.openai_ft.client import openai_errors, require_upload_allowed
from training.openai_ft.config import OpenAIJobConfig, default_suffix
from training.openai_ft.dataset import OpenAIDataset, read_checked
from training.openai_ft.errors import OpenAIFineTuningError
from training.openai_ft.store import TERMINAL_STATUSES, JobStore, TrackedJob, now
from training.registry import BackendKind, ModelStatus, Registry, UnknownVersionError

if TYPE_CHECKING:
    import openai
    from openai.types.fine_tuning import FineTuningJob

__all__ = [
    "METRIC_KEYS",
    "EventCallback",
    "JobEvent",
    "OpenAIJobs",
    "PollResult",
    "RemoteJob",
    "UpdateCallback",
]

logger = logging.getLogger(__name__)

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
        train = read_checked(dataset.train, dataset.train_sha256)
        valid = read_checked(dataset.eval, dataset.eval_sha256) if dataset.eval else None
        options: dict[str, Any] = {"suffix": suffix, "method": config.method()}
        if config.seed is not None:
            options["seed"] = config.seed
        uploaded: list[str] = []
        try:
            with openai_errors("uploading the training data"):
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
            with openai_errors("creating the fine-tuning job"):
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
        started = now()
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
                created_at=started,
                updated_at=started,
            )
        )
        logger.info("OpenAI job %s started for %s: %s", job.id, version.version, job.status)
        return tracked

    def poll(self, job_id: str) -> PollResult:
        """Fetch the job's status and new events, store them, register a finished job."""
        tracked = self.store.get(job_id)
        with openai_errors(f"checking job {job_id}"):
            remote = self.client.fine_tuning.jobs.retrieve(job_id)
        return self._refresh(tracked, remote)

    def cancel(self, job_id: str) -> TrackedJob:
        """Ask OpenAI to cancel the job; its version is marked failed ("cancelled")."""
        tracked = self.store.get(job_id)
        if tracked.finished:
            raise OpenAIFineTuningError(
                f"job {job_id} has already {tracked.status}; there is nothing to cancel"
            )
        with openai_errors(f"cancelling job {job_id}"):
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
        with openai_errors("listing fine-tuning jobs"):
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
                with openai_errors(f"deleting the unused upload {file_id}"):
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
        with openai_errors(f"reading the events of job {tracked.job_id}"):
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


def _error_text(error: Any) -> str:
    """A failed job's `error` object as one line: "message (code, param)"."""
    if error is None:
        return "failed without an error message"
    details = ", ".join(
        part for part in (getattr(error, "code", None), getattr(error, "param", None)) if part
    )
    message = getattr(error, "message", None) or "failed without an error message"
    return f"{message} ({details})" if details else message
