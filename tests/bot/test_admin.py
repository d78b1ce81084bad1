"""Slash commands: what each does for an admin, that nobody else can use them, /forget for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.jobs import JobRunner
from bot.personas import list_personas, load_persona, prepare_persona
from bot.service import PersonaService, chat_address
from bot.settings import Settings
from bot.worker import MessageQueue, WorkerSpec
from tests.bot.test_service import (
    ADMIN,
    CHAT,
    SAMPLE,
    STRANGER,
    FakeJobs,
    FakeOutbox,
    FakeScheduler,
    copy_of,
    incoming,
    make_service,
    press,
    settings_for,
    teach,
    teach_maya,
)
from tests.fakes.openai_server import API_KEY, VLLM_SAMPLING_PARAMETERS, FakeOpenAI
from training.db import connect
from training.registry import BackendKind, ModelStatus, Registry

NEEDLE = "zebra-quartz flamingo 7731"
MAYA = chat_address("telegram", CHAT)


@pytest.fixture(scope="module")
def maya_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach_maya(tmp_path_factory.mktemp("maya"))


@pytest.fixture
def ready(maya_dir: Path, tmp_path: Path) -> Settings:
    return copy_of(maya_dir, tmp_path)


async def command(
    service: PersonaService, outbox: FakeOutbox, text: str, *, user: str = ADMIN
) -> str:
    """Send `text` and return the service's last reply."""
    await service.handle(incoming(text, user=user), outbox)
    return outbox.texts()[-1]


def register(registry: Registry, *versions: tuple[str, ModelStatus]) -> Registry:
    """OpenAI-compatible versions of Maya (remote ids as given)."""
    for remote_id, status in versions:
        registry.create(
            "Maya",
            BackendKind.OPENAI_COMPATIBLE,
            status=status,
            remote_id=remote_id,
            endpoint="http://127.0.0.1:9/v1",
            metrics={"eval_loss": 1.25},
        )
    return registry


# --- who may ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_non_admins_are_refused_politely_and_nothing_happens(ready: Settings) -> None:
    jobs, scheduler = FakeJobs(), FakeScheduler()
    service, outbox = make_service(ready, jobs=jobs, scheduler=scheduler), FakeOutbox()
    registry = register(service.registry, ("maya-ft-1", ModelStatus.READY))
    persona_json = (ready.data_dir / "personas" / "maya" / "persona.json").read_bytes()
    count = service.uploads.message_count("Maya")
    service.store.bind(MAYA, "Maya")

    for text in (
        "/retrain",
        "/evaluate maya-v1",
        "/status",
        "/models",
        "/use maya-v1",
        "/persona Maya",
        "/schedule 0 3 * * *",
        "/forget Maya",
        "/retrain@WaPersonaBot Maya",
    ):
        name = text.split()[0][1:].split("@")[0]
        assert await command(service, outbox, text, user=STRANGER) == (
            f"Sorry, /{name} is only for the bot's admins."
        )

    assert jobs.calls == [] and scheduler.crons == {}
    assert outbox.questions() == []
    assert registry.active("Maya") is None
    assert service.uploads.message_count("Maya") == count
    assert (ready.data_dir / "personas" / "maya" / "persona.json").read_bytes() == persona_json
    await service.close()


@pytest.mark.anyio
async def test_a_non_admin_pressing_forget_deletes_nothing(ready: Settings) -> None:
    service, outbox = make_service(ready), FakeOutbox()
    count = service.uploads.message_count("Maya")

    await service.handle(incoming(choice="forget:yes:maya", user=STRANGER), outbox)

    assert outbox.texts()[-1] == "Sorry, only the bot's admins can delete personas."
    assert service.uploads.message_count("Maya") == count
    assert [info.name for info in list_personas(ready)] == ["Maya"]
    await service.close()


@pytest.mark.anyio
async def test_help_lists_what_the_sender_may_use(ready: Settings) -> None:
    service, outbox = make_service(ready), FakeOutbox()

    mine = await command(service, outbox, "/help", user=STRANGER)
    theirs = await command(service, outbox, "/help")

    assert mine.splitlines() == [
        "/start: Say what this bot does and how to begin.",
        "/help: List the commands you may use.",
    ]
    assert [line.split(":")[0] for line in theirs.splitlines()] == [
        "/start",
        "/help",
        "/status",
        "/persona NAME",
        "/retrain [PERSONA]",
        "/evaluate [VERSION]",
        "/models [PERSONA]",
        "/use VERSION",
        "/schedule CRON | off",
        "/forget PERSONA",
    ]
    start = await command(service, outbox, "/start", user=STRANGER)
    assert start.startswith("Hi!") and "Write anything and Maya answers." in start
    assert await command(service, outbox, "/dance") == (
        "I don't know /dance. /help lists what I can do."
    )
    await service.close()


# --- jobs ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_retrain_starts_a_job_that_reports_to_this_chat(ready: Settings) -> None:
    jobs = FakeJobs()
    service, outbox = make_service(ready, jobs=jobs), FakeOutbox()

    reply = await command(service, outbox, "/retrain")
    assert reply == "Retraining Maya (job 1). I'll report progress here."
    assert jobs.calls == [("retrain", "Maya", None, f"telegram:{ADMIN}", MAYA)]

    jobs.busy = True
    assert (await command(service, outbox, "/retrain maya")).startswith(
        "Not now: Maya is already retraining"
    )
    assert (await command(service, outbox, "/retrain Zed")).startswith(
        "I know no persona called Zed. Known: Maya."
    )
    assert len(jobs.calls) == 1
    await service.close()


@pytest.mark.anyio
async def test_evaluate_takes_a_version_or_the_active_one(ready: Settings) -> None:
    jobs = FakeJobs()
    service, outbox = make_service(ready, jobs=jobs), FakeOutbox()
    register(service.registry, ("maya-ft-1", ModelStatus.READY))

    assert (await command(service, outbox, "/evaluate maya-v1")).startswith(
        "Evaluating maya-v1 (job 1)."
    )
    assert (await command(service, outbox, "/evaluate")).startswith(
        "Evaluating Maya's active model (job 2)."
    )
    assert "maya-v9" in await command(service, outbox, "/evaluate maya-v9")
    assert [call[:3] for call in jobs.calls] == [
        ("evaluate", "Maya", "maya-v1"),
        ("evaluate", "Maya", None),
    ]
    await service.close()


def report_progress(spec: WorkerSpec, messages: MessageQueue) -> None:
    """A worker that retrains at once: what a real one reports, without the training."""
    messages.put({"type": "started", "pid": os.getpid()})
    messages.put({"type": "stage", "stage": "rebuild"})
    messages.put({"type": "registered", "version": "maya-v1"})
    messages.put({"type": "result", "result": {"version": "maya-v1", "activated": True}})


@pytest.mark.anyio
async def test_progress_of_a_real_job_reaches_the_admin_chat(ready: Settings) -> None:
    db = connect(ready.database_path())
    runner = JobRunner(
        ready,
        db,
        notify=lambda update: service.notify(update),
        message_count=lambda persona: service.uploads.message_count(persona),
        worker=report_progress,
    )
    service, outbox = make_service(ready, jobs=runner), FakeOutbox()
    service.register_outbox("telegram", outbox)

    await command(service, outbox, "/retrain")
    job = await runner.wait(runner.list()[0].id)

    assert job.status == "succeeded"
    news = outbox.texts()
    assert news[0] == f"Retraining Maya (job {job.id}). I'll report progress here."
    assert any(text.startswith(f"Maya: retraining started (job {job.id}") for text in news)
    assert "Maya: refreshing the persona's data" in news
    assert "Maya: training maya-v1" in news
    assert news[-1].startswith("Maya: maya-v1 ") and "is now active" in news[-1]
    assert job.request["messages"] == service.uploads.message_count("Maya")
    await runner.aclose()
    await service.close()
    db.close()


# --- models and personas ------------------------------------------------------------------


@pytest.mark.anyio
async def test_status_shows_personas_data_jobs_models_schedules_and_backends(
    ready: Settings,
) -> None:
    jobs, scheduler = FakeJobs(), FakeScheduler()
    service, outbox = make_service(ready, jobs=jobs, scheduler=scheduler), FakeOutbox()
    count = service.uploads.message_count("Maya")
    await command(service, outbox, "/retrain")
    await command(service, outbox, "/schedule 0 3 * * *")
    await service.handle(incoming("hey"), outbox)
    await service.engine.wait(MAYA)

    lines = (await command(service, outbox, "/status")).splitlines()

    assert lines == [
        f"Maya: {count:,} messages from 1 upload; no trained model active; retrains 0 3 * * *",
        "Running: job 1 retrain Maya queued",
        "Maya backends: retrieval closed",
    ]
    await service.close()


@pytest.mark.anyio
async def test_models_lists_versions_and_use_switches_the_model_that_answers(
    ready: Settings,
) -> None:
    settings = ready.model_copy(
        update={
            "backends": ["openai", "retrieval"],
            "openai_compatible_api_key": SecretStr(API_KEY),
        }
    )
    fake = FakeOpenAI()  # plays vLLM serving two fine-tuned versions
    fake.extra_chat_parameters = VLLM_SAMPLING_PARAMETERS
    with fake.serve():
        assert fake.base_url is not None
        service, outbox = make_service(settings), FakeOutbox()
        registry = service.registry
        for remote_id in ("maya-ft-1", "maya-ft-2"):
            registry.create(
                "Maya",
                BackendKind.OPENAI_COMPATIBLE,
                status=ModelStatus.READY,
                remote_id=remote_id,
                endpoint=fake.base_url,
                metrics={"eval_loss": 1.25},
            )

        listed = (await command(service, outbox, "/models")).splitlines()
        assert [line.split(",")[0] for line in listed] == ["maya-v2: ready", "maya-v1: ready"]
        assert "eval_loss 1.25" in listed[0]

        assert await command(service, outbox, "/use maya-v1") == "Maya now answers with maya-v1."
        assert await command(service, outbox, "/use maya-v1") == "Maya now answers with maya-v1."
        fake.reply_with("hey you")
        await service.handle(incoming("hi"), outbox)
        await service.engine.wait(MAYA)
        assert outbox.texts()[-1] == "hey you"

        assert await command(service, outbox, "/use maya-v2") == (
            "Maya now answers with maya-v2 (was maya-v1)."
        )
        fake.reply_with("hiya")
        await service.handle(incoming("still there?"), outbox)
        await service.engine.wait(MAYA)
        assert outbox.texts()[-1] == "hiya"

        # another process (a retrain job) activates a version: the next message notices
        registry.activate("maya-v1")
        fake.reply_with("back to one")
        await service.handle(incoming("and now?"), outbox)
        await service.engine.wait(MAYA)
        assert outbox.texts()[-1] == "back to one"

        assert [body["model"] for body in fake.chat_bodies()] == [
            "maya-ft-1",
            "maya-ft-2",
            "maya-ft-1",
        ]
        assert "maya-v7" in await command(service, outbox, "/use maya-v7")
        await service.close()


@pytest.mark.anyio
async def test_persona_binds_this_chat(ready: Settings) -> None:
    prepare_persona(ready, "Sam", [SAMPLE])
    service, outbox = make_service(ready), FakeOutbox()

    assert await command(service, outbox, "/persona sam") == "Sam answers in this chat now."
    await service.handle(incoming("u ok?"), outbox)
    await service.engine.wait(MAYA)

    assert service.store.persona_for(MAYA) == "Sam"
    sams = {exchange.reply for exchange in load_persona(ready, "Sam").index.exchanges}
    assert tuple(outbox.texts()[1:]) in sams
    assert (await command(service, outbox, "/persona Zed")).startswith(
        "I know no persona called Zed. Known: Maya, Sam."
    )
    assert service.store.persona_for(MAYA) == "Sam"
    await service.close()


@pytest.mark.anyio
async def test_schedule_sets_and_clears_this_chats_retraining(ready: Settings) -> None:
    scheduler = FakeScheduler()
    service, outbox = make_service(ready, scheduler=scheduler), FakeOutbox()

    reply = await command(service, outbox, "/schedule 0 3 * * 0")
    assert reply.startswith("Maya is retrained on schedule 0 3 * * 0")
    assert reply.endswith("next check 2030-01-06 03:00.")
    assert scheduler.crons == {"Maya": "0 3 * * 0"}

    assert "not a crontab" in await command(service, outbox, "/schedule every day")
    assert scheduler.crons == {"Maya": "0 3 * * 0"}

    reply = await command(service, outbox, "/schedule off")
    assert reply == "Maya is no longer retrained on a schedule."
    assert scheduler.crons == {}
    await service.close()


# --- /forget ------------------------------------------------------------------------------


def needle_files(folder: Path) -> list[str]:
    """Every file under `folder` whose raw bytes hold the distinctive text."""
    needle = NEEDLE.encode("utf-8")
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


@pytest.mark.anyio
async def test_forget_asks_first_then_deletes_everything_for_good(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    export = tmp_path / "WhatsApp Chat with Sam.txt"
    export.write_text(
        SAMPLE.read_text(encoding="utf-8") + f"31/12/2024, 23:59 - Maya: {NEEDLE}\n",
        encoding="utf-8",
    )
    scheduler = FakeScheduler()
    service, outbox = make_service(settings, scheduler=scheduler), FakeOutbox()
    await teach(service, outbox, export)
    prepare_persona(settings, "Sam", [SAMPLE])  # someone else, who stays
    await service.handle(incoming(f"remember {NEEDLE}?"), outbox)
    await service.engine.wait(MAYA)
    await command(service, outbox, "/schedule 0 3 * * *")
    run = settings.runs_dir() / "maya-20241231" / "adapter"
    run.mkdir(parents=True)
    (run / "adapter_model.safetensors").write_bytes(b"weights")
    service.registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY, path=run)
    assert {"wa-persona.db", "wa-persona.db-wal"} & set(needle_files(settings.data_dir))

    await command(service, outbox, "/forget maya")
    assert outbox.questions()[-1].text.startswith("Forget Maya for good?")
    await press(service, outbox, "No")
    assert outbox.texts()[-1] == "Okay, nothing was deleted."
    assert service.uploads.message_count("Maya") > 0

    await command(service, outbox, "/forget Maya")
    await press(service, outbox, "Yes")

    assert outbox.texts()[-1].startswith("Maya is forgotten: ")
    db = service.db
    for table in ("messages", "uploads", "message_chats", "pending_uploads", "model_versions"):
        rows = db.execute(f"SELECT COUNT(*) FROM {table} WHERE persona = 'Maya'").fetchone()[0]
        assert rows == 0, table
    assert db.execute("SELECT COUNT(*) FROM chat_turns").fetchone()[0] == 0
    assert service.store.persona_for(MAYA) is None
    assert scheduler.crons == {}
    assert [info.name for info in list_personas(settings)] == ["Sam"]
    assert not (settings.data_dir / "personas" / "maya").exists()
    assert not run.parent.exists()
    assert [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()] == []
    assert needle_files(settings.data_dir) == []  # database, WAL and every other file

    await command(service, outbox, "/forget Sam")  # prepared from files: nothing uploaded
    await press(service, outbox, "Yes")
    assert outbox.texts()[-1].startswith("Sam is forgotten: 0 messages, 0 uploads")
    assert list_personas(settings) == []
    await service.close()
    assert needle_files(settings.data_dir) == []
