"""OpenAI fine-tuning jobs: the real `openai` client against a local fake API, real SQLite."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from style.parse import load_chats
from style.sample import sample_paths
from tests.fakes.openai_server import FakeOpenAI, Step, failing, metrics_event, succeeding
from training.dataset import DatasetConfig, build_dataset, write_card, write_dataset
from training.db import connect
from training.errors import DatasetError
from training.openai_ft import (
    FineTuningDisabledError,
    JobEvent,
    OpenAIAuthError,
    OpenAIDataset,
    OpenAIFineTuningError,
    OpenAIJobConfig,
    OpenAIJobs,
    OpenAINotConfiguredError,
    OpenAIRequestError,
    OpenAIUnavailableError,
    TrackedJob,
    UnknownJobError,
    UnscrubbedDatasetError,
    auto_epochs,
    estimate_cost,
    load_dataset,
    openai_client,
)
from training.registry import BackendKind, ModelStatus, Registry

MODEL_ID = "ft:gpt-4.1-mini-2025-04-14:org-fake:maya:AbC123"
TRAINING_METRICS = [
    metrics_event(1, 3, 2.5),
    metrics_event(2, 3, 2.0, valid_loss=2.2, valid_mean_token_accuracy=0.41),
    metrics_event(3, 3, 1.5),
]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample export's Maya dataset (OpenAI files and card), scrubbed and unscrubbed."""
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    folders = {}
    for name, scrub_mode in (("scrubbed", "redact"), ("unscrubbed", None)):
        build = build_dataset(chats, "Maya", DatasetConfig(scrub_mode=scrub_mode))
        folder = tmp_path_factory.mktemp(name)
        files = write_dataset(build, folder, formats=("openai",))
        write_card(build, folder, files)
        folders[name] = folder
    return folders


@pytest.fixture
def dataset_dir(built: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the scrubbed dataset (tests may change its files)."""
    return Path(shutil.copytree(built["scrubbed"], tmp_path / "dataset"))


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().serve() as server:
        yield server


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "wa-persona.db"


def _jobs(fake: FakeOpenAI, db_path: Path, **options: object) -> OpenAIJobs:
    """A fresh client, database connection and OpenAIJobs, as a new process would make them."""
    client = openai_client(fake.api_key, fake.base_url, max_retries=0)
    options.setdefault("allow_upload", True)
    return OpenAIJobs(client, connect(db_path), **options)  # type: ignore[arg-type]


class Recorder:
    """Collects what `watch` reports, and the sleeps it asks for (without sleeping)."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.statuses: list[str] = []
        self.sleeps: list[float] = []

    def on_event(self, job: TrackedJob, event: JobEvent) -> None:
        self.events.append(event)

    def on_update(self, job: TrackedJob) -> None:
        self.statuses.append(job.status)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _watch(jobs: OpenAIJobs, recorder: Recorder, ids: list[str] | None = None) -> list[TrackedJob]:
    return jobs.watch(
        ids,
        interval=7.0,
        on_event=recorder.on_event,
        on_update=recorder.on_update,
        sleep=recorder.sleep,
    )


# --- starting a job -------------------------------------------------------------------------


def test_start_uploads_exactly_the_dataset_files(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    _jobs(fake, db_path).start(load_dataset(dataset_dir), "Maya")
    uploads = [r.body for r in fake.requests_to("POST", "/v1/files")]
    assert [(u["purpose"], u["file"].filename) for u in uploads] == [
        ("fine-tune", "openai_train.jsonl"),
        ("fine-tune", "openai_eval.jsonl"),
    ]
    assert uploads[0]["file"].content == (dataset_dir / "openai_train.jsonl").read_bytes()
    assert uploads[1]["file"].content == (dataset_dir / "openai_eval.jsonl").read_bytes()
    assert all(r.authorization == f"Bearer {fake.api_key}" for r in fake.requests)


def test_job_request_carries_files_suffix_seed_and_method_hyperparameters(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    config = OpenAIJobConfig(
        model="gpt-4o-mini-2024-07-18",
        n_epochs=4,
        batch_size="auto",
        learning_rate_multiplier=1.8,
        suffix="maya-test",
        seed=7,
    )
    job = _jobs(fake, db_path).start(load_dataset(dataset_dir), "Maya", config)
    (create,) = fake.requests_to("POST", "/v1/fine_tuning/jobs")
    train_id, eval_id = fake.files
    assert create.body == {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": train_id,
        "validation_file": eval_id,
        "suffix": "maya-test",
        "seed": 7,
        "method": {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": 4,
                    "batch_size": "auto",
                    "learning_rate_multiplier": 1.8,
                }
            },
        },
    }
    assert (job.job_id, job.training_file, job.validation_file) == (
        next(iter(fake.jobs)),
        train_id,
        eval_id,
    )


def test_start_registers_a_training_version_and_stores_the_job(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    dataset = load_dataset(dataset_dir)
    job = _jobs(fake, db_path).start(dataset, "Maya")
    version = Registry.open(db_path).get(job.version)
    assert (version.version, version.kind, version.status) == (
        "maya-v1",
        BackendKind.OPENAI,
        ModelStatus.TRAINING,
    )
    assert version.base_model == "gpt-4.1-mini-2025-04-14"
    assert version.dataset_sha256 == dataset.train_sha256
    assert version.config["job_id"] == job.job_id
    assert version.config["suffix"] == "maya"  # the persona's slug by default
    assert fake.requests_to("POST", "/v1/fine_tuning/jobs")[0].body["suffix"] == "maya"
    assert [j.job_id for j in _jobs(fake, db_path).pending()] == [job.job_id]
    assert job.status == "validating_files"


# --- following a job to its end -----------------------------------------------------------


def test_watch_to_success_registers_a_ready_version_with_model_and_metrics(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    fake.script = succeeding(MODEL_ID, trained_tokens=98_765, metrics=TRAINING_METRICS)
    jobs = _jobs(fake, db_path)
    started = jobs.start(load_dataset(dataset_dir), "Maya")
    recorder = Recorder()
    (finished,) = _watch(jobs, recorder)
    assert (finished.status, finished.fine_tuned_model) == ("succeeded", MODEL_ID)
    assert recorder.statuses == ["queued", "running", "succeeded"]
    assert recorder.sleeps == [7.0, 7.0]
    assert [e.id for e in recorder.events] == [e["id"] for e in fake.events[started.job_id]]
    version = Registry.open(db_path).get(started.version)
    assert (version.status, version.remote_id) == (ModelStatus.READY, MODEL_ID)
    assert version.metrics == {
        "step": 3.0,
        "total_steps": 3.0,
        "train_loss": 1.5,
        "valid_loss": 2.2,
        "valid_mean_token_accuracy": 0.41,
        "trained_tokens": 98_765.0,
    }
    assert jobs.pending() == []


def test_failed_job_marks_the_version_failed_with_openai_error(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    fake.script = failing("invalid_training_file", "Training file has too few examples", "file")
    jobs = _jobs(fake, db_path)
    started = jobs.start(load_dataset(dataset_dir), "Maya")
    (finished,) = _watch(jobs, Recorder())
    assert finished.status == "failed"
    assert finished.error == "Training file has too few examples (invalid_training_file, file)"
    version = Registry.open(db_path).get(started.version)
    assert version.status is ModelStatus.FAILED
    assert version.notes == f"OpenAI job {started.job_id}: {finished.error}"


def test_cancel_stops_the_job_and_marks_the_version_failed(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    jobs = _jobs(fake, db_path)
    started = jobs.start(load_dataset(dataset_dir), "Maya")
    cancelled = jobs.cancel(started.job_id)
    assert cancelled.status == "cancelled"
    assert fake.jobs[started.job_id]["status"] == "cancelled"
    assert len(fake.requests_to("POST", f"/v1/fine_tuning/jobs/{started.job_id}/cancel")) == 1
    version = Registry.open(db_path).get(started.version)
    assert (version.status, version.notes) == (
        ModelStatus.FAILED,
        f"OpenAI job {started.job_id}: cancelled",
    )
    assert jobs.pending() == []
    with pytest.raises(OpenAIFineTuningError, match="already cancelled"):
        jobs.cancel(started.job_id)


def test_watch_resumes_after_a_restart_without_new_uploads_jobs_or_repeated_events(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    fake.script = succeeding(MODEL_ID, metrics=TRAINING_METRICS)
    jobs = _jobs(fake, db_path)
    started = jobs.start(load_dataset(dataset_dir), "Maya")
    before = [e.id for e in jobs.poll(started.job_id).events]
    before += [e.id for e in jobs.poll(started.job_id).events]  # running: the metrics arrive
    assert jobs.store.get(started.job_id).status == "running"
    jobs.store.db.close()
    del jobs  # the process ends here; what follows is a new one

    recorder = Recorder()
    (finished,) = _watch(_jobs(fake, db_path, allow_upload=False), recorder)
    after = [e.id for e in recorder.events]
    assert finished.status == "succeeded"
    assert before + after == [e["id"] for e in fake.events[started.job_id]]
    assert not set(before) & set(after)
    assert len(fake.requests_to("POST", "/v1/files")) == 2  # train + eval, once
    assert len(fake.requests_to("POST", "/v1/fine_tuning/jobs")) == 1
    version = Registry.open(db_path).get(started.version)
    assert version.status is ModelStatus.READY
    assert version.metrics["train_loss"] == 1.5  # seen before the restart, kept in the store


def test_events_are_read_across_pages_oldest_first(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    many = [metrics_event(step, 25, 3.0 - step / 10) for step in range(1, 26)]
    fake.script = [Step("running", many), *succeeding(MODEL_ID)[2:]]
    jobs = _jobs(fake, db_path, events_page_size=4)
    started = jobs.start(load_dataset(dataset_dir), "Maya")
    first = jobs.poll(started.job_id).events
    pages = fake.requests_to("GET", f"/v1/fine_tuning/jobs/{started.job_id}/events")
    assert len(first) == 27  # created, validating, 25 steps
    assert len(pages) == 7
    assert [p.query.get("after") for p in pages[1:]] == [
        first[-4 * page].id for page in range(1, 7)
    ]
    assert [e.data["step"] for e in first[2:]] == list(range(1, 26))
    second = jobs.poll(started.job_id).events
    assert [e.message for e in second] == [
        f"New fine-tuned model created: {MODEL_ID}",
        "The job has successfully completed",
    ]
    assert [e.id for e in first + second] == [e["id"] for e in fake.events[started.job_id]]


def test_watch_defaults_to_unfinished_jobs(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    jobs = _jobs(fake, db_path)
    dataset = load_dataset(dataset_dir)
    done = jobs.start(dataset, "Maya")
    jobs.cancel(done.job_id)
    running = jobs.start(dataset, "Maya")
    polled_before = len(fake.requests_to("GET", f"/v1/fine_tuning/jobs/{done.job_id}"))
    finished = _watch(jobs, Recorder())
    assert [job.job_id for job in finished] == [running.job_id]
    assert len(fake.requests_to("GET", f"/v1/fine_tuning/jobs/{done.job_id}")) == polled_before
    assert [v.status for v in Registry.open(db_path).list("Maya")] == [
        ModelStatus.READY,
        ModelStatus.FAILED,
    ]


def test_info_logs_name_jobs_and_statuses_but_never_event_text(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script = succeeding(MODEL_ID, metrics=TRAINING_METRICS)
    caplog.set_level(logging.INFO, logger="training.openai_ft")
    jobs = _jobs(fake, db_path)
    started = jobs.start(load_dataset(dataset_dir), "Maya")
    _watch(jobs, Recorder())
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any(started.job_id in line and "succeeded" in line for line in logged)
    assert not any("Step 1/3" in line or "Fine-tuning job started" in line for line in logged)


# --- refusals and errors --------------------------------------------------------------------


def test_nothing_is_sent_while_the_setting_is_off(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    jobs = _jobs(fake, db_path, allow_upload=False)
    with pytest.raises(FineTuningDisabledError, match="WA_PERSONA_OPENAI_FINE_TUNING=true"):
        jobs.start(load_dataset(dataset_dir), "Maya")
    assert fake.requests == []
    assert Registry.open(db_path).list() == []


def test_unscrubbed_dataset_is_refused_before_any_request(
    built: dict[str, Path], fake: FakeOpenAI
) -> None:
    with pytest.raises(UnscrubbedDatasetError, match="WA_PERSONA_SCRUB_TRAINING=true"):
        load_dataset(built["unscrubbed"])
    assert fake.requests == []


def test_file_changed_after_the_card_is_refused(dataset_dir: Path) -> None:
    train = dataset_dir / "openai_train.jsonl"
    lines = train.read_bytes().splitlines(keepends=True)
    train.write_bytes(b"".join([*lines, lines[0]]))
    with pytest.raises(UnscrubbedDatasetError, match="sha256 differs"):
        load_dataset(dataset_dir)


def test_file_changed_after_the_check_is_not_uploaded(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    dataset = load_dataset(dataset_dir)
    (dataset_dir / "openai_train.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    with pytest.raises(UnscrubbedDatasetError, match="changed after it was checked"):
        _jobs(fake, db_path).start(dataset, "Maya")
    assert fake.requests == []


def test_dataset_without_card_is_refused(dataset_dir: Path) -> None:
    (dataset_dir / "dataset_card.json").unlink()
    with pytest.raises(DatasetError, match="wa-persona dataset"):
        load_dataset(dataset_dir)


def test_dataset_of_another_persona_is_refused(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    with pytest.raises(DatasetError, match="built for 'Maya', not 'Sam'"):
        _jobs(fake, db_path).start(load_dataset(dataset_dir), "Sam")
    assert fake.requests == []


def test_bad_key_is_a_clear_error(fake: FakeOpenAI, dataset_dir: Path, db_path: Path) -> None:
    client = openai_client("sk-wrong", fake.base_url, max_retries=0)
    jobs = OpenAIJobs(client, connect(db_path), allow_upload=True)
    with pytest.raises(OpenAIAuthError, match=r"refused the API key.*WA_PERSONA_OPENAI_API_KEY"):
        jobs.start(load_dataset(dataset_dir), "Maya")
    assert [r.authorization for r in fake.requests] == ["Bearer sk-wrong"]
    assert fake.files == {} and fake.jobs == {}
    assert Registry.open(db_path).list() == []


def test_refused_job_deletes_its_uploads_and_registers_nothing(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    jobs = _jobs(fake, db_path)
    with pytest.raises(OpenAIRequestError, match="gpt-2 is not available for fine-tuning"):
        jobs.start(load_dataset(dataset_dir), "Maya", OpenAIJobConfig(model="gpt-2"))
    deleted = [r.path for r in fake.requests if r.method == "DELETE"]
    assert deleted == ["/v1/files/file-000001", "/v1/files/file-000002"]
    assert fake.files == {} and fake.jobs == {}
    assert jobs.store.list() == [] and Registry.open(db_path).list() == []


def test_missing_key_names_the_setting() -> None:
    with pytest.raises(OpenAINotConfiguredError, match="WA_PERSONA_OPENAI_API_KEY"):
        openai_client(None)


def test_unreachable_api_is_a_clear_error(dataset_dir: Path, db_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = openai_client("sk-any", f"http://127.0.0.1:{port}/v1", max_retries=0)
    jobs = OpenAIJobs(client, connect(db_path), allow_upload=True)
    with pytest.raises(OpenAIUnavailableError, match="cannot reach OpenAI"):
        jobs.start(load_dataset(dataset_dir), "Maya")


def test_unknown_job_is_a_clear_error(fake: FakeOpenAI, db_path: Path) -> None:
    with pytest.raises(UnknownJobError, match="wa-persona openai jobs"):
        _jobs(fake, db_path).poll("ftjob-nope")
    assert fake.requests == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (OpenAIJobConfig(n_epochs=0), "n_epochs must be 'auto' or at least 1"),
        (OpenAIJobConfig(batch_size=2.5), "batch_size"),  # type: ignore[arg-type]
        (OpenAIJobConfig(learning_rate_multiplier=-1.0), "learning_rate_multiplier"),
        (OpenAIJobConfig(suffix="x" * 65), "suffix must be 1 to 64"),
        (OpenAIJobConfig(seed=-1), "seed"),
        (OpenAIJobConfig(model=" "), "model is empty"),
    ],
)
def test_bad_settings_are_refused_before_upload(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path, config: OpenAIJobConfig, message: str
) -> None:
    with pytest.raises(OpenAIFineTuningError, match=message):
        _jobs(fake, db_path).start(load_dataset(dataset_dir), "Maya", config)
    assert fake.requests == []


# --- the cost estimate ----------------------------------------------------------------------


def _handmade(tmp_path: Path, examples: int) -> OpenAIDataset:
    """A dataset folder of `examples` identical lines with a card recording a scrub."""
    line = {
        "messages": [
            {"role": "user", "content": "abcdefghij"},  # 10 bytes: ceil(10 / 3.2) = 4
            {"role": "assistant", "content": "hello", "weight": 1},  # 5 bytes: 2
        ]
    }
    train = tmp_path / "openai_train.jsonl"
    train.write_text((json.dumps(line) + "\n") * examples, encoding="utf-8")

    card = {
        "persona": "Maya",
        "scrub": {"mode": "redact"},
        "files": {
            "openai_train": {
                "name": train.name,
                "sha256": hashlib.sha256(train.read_bytes()).hexdigest(),
            }
        },
    }
    (tmp_path / "dataset_card.json").write_text(json.dumps(card), encoding="utf-8")
    return load_dataset(tmp_path)


def test_estimate_prices_training_tokens_times_epochs(tmp_path: Path) -> None:
    dataset = _handmade(tmp_path, 40)
    cost = estimate_cost(dataset, OpenAIJobConfig(n_epochs=2), usd_per_1m_tokens=5.0)
    assert cost.train_tokens == 40 * (4 + 2 + 2 * 3)  # contents + 3 tokens per message
    assert (cost.epochs, cost.epochs_note) == (2, "as set")
    assert cost.billed_tokens == 960
    assert cost.usd == pytest.approx(960 * 5.0 / 1_000_000)
    assert cost.eval_tokens == 0


def test_estimate_with_auto_epochs_uses_openai_rule(tmp_path: Path) -> None:
    cost = estimate_cost(_handmade(tmp_path, 10), OpenAIJobConfig(), usd_per_1m_tokens=3.0)
    assert cost.epochs == 10  # 10 examples × 3 < 100, so 100 // 10
    assert cost.epochs_note.startswith("auto: OpenAI picks 10 for 10 examples")
    assert cost.billed_tokens == 10 * 12 * 10


def test_auto_epochs_follow_openai_defaults() -> None:
    assert [auto_epochs(n) for n in (2, 10, 34, 100, 8_333, 8_334, 30_000)] == [
        25,
        10,
        3,
        3,
        3,
        2,
        1,
    ]


def test_estimate_counts_the_validation_file_apart(dataset_dir: Path) -> None:
    dataset = load_dataset(dataset_dir)
    cost = estimate_cost(dataset, OpenAIJobConfig(n_epochs=3), usd_per_1m_tokens=5.0)
    assert cost.estimate.tokens.train.samples == len(dataset.train.read_bytes().splitlines())
    assert cost.estimate.tokens.eval.samples == len(dataset.eval.read_bytes().splitlines())  # type: ignore[union-attr]
    assert cost.billed_tokens == cost.train_tokens * 3
    assert cost.eval_tokens > 0


def test_job_openai_no_longer_knows_is_a_clear_error(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    jobs = _jobs(fake, db_path)
    started = jobs.start(load_dataset(dataset_dir), "Maya")
    del fake.jobs[started.job_id]
    with pytest.raises(OpenAIRequestError, match="OpenAI answered 404 while checking job"):
        jobs.poll(started.job_id)
    assert jobs.store.get(started.job_id).status == "validating_files"


def test_remote_lists_the_account_jobs_marking_those_tracked_here(
    fake: FakeOpenAI, dataset_dir: Path, db_path: Path
) -> None:
    jobs = _jobs(fake, db_path)
    tracked = jobs.start(load_dataset(dataset_dir), "Maya")
    other = openai.OpenAI(api_key=fake.api_key, base_url=fake.base_url).fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=tracked.training_file
    )
    listed = jobs.remote()
    assert [(job.job_id, job.tracked) for job in listed] == [
        (other.id, False),
        (tracked.job_id, True),
    ]
    assert listed[1].model == "gpt-4.1-mini-2025-04-14"
