"""The service: the upload flow (checks, summary, questions, consent, storage), chatting, notify.

Real SQLite files and the bundled sample export as the uploaded document; the transport is a
fake `Outbox` that records what the service sent, the job runner and scheduler are fakes.
`test_admin.py` imports the fakes and helpers from here.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.channels import Choice, DocumentRef, Incoming
from bot.errors import DownloadError
from bot.jobs import Job, JobBusyError, JobUpdate
from bot.personas import list_personas, load_persona, save_style_strength
from bot.scheduler import Schedule, ScheduleError
from bot.service import PersonaService, chat_address
from bot.settings import Settings
from bot.uploads import refresh_persona
from bot.worker import JobKind
from style.messages import MessageKind
from style.parse import load_chats
from style.sample import sample_paths

ADMIN = "1"
STRANGER = "2"
CHAT = "100"
SAMPLE = sample_paths()[0]  # "WhatsApp Chat with Sam.txt": Maya and Sam
_ids = itertools.count(1)


# --- fakes --------------------------------------------------------------------------------


@dataclass
class Sent:
    """One call the service made on the outbox."""

    kind: str
    chat_id: str
    text: str = ""
    choices: tuple[Choice, ...] = ()
    on: bool | None = None


class FakeOutbox:
    """Records every call; `download` copies the local file registered under the file id."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.files: dict[str, Path] = {}
        self.downloads = 0

    async def send_text(self, chat_id: str, text: str) -> None:
        self.sent.append(Sent("text", chat_id, text))

    async def send_choices(self, chat_id: str, text: str, choices: list[Choice]) -> None:
        self.sent.append(Sent("choices", chat_id, text, tuple(choices)))

    async def typing(self, chat_id: str, on: bool) -> None:
        self.sent.append(Sent("typing", chat_id, on=on))

    async def download(self, document: DocumentRef, dest: Path, *, max_bytes: int) -> Path:
        self.downloads += 1
        source = self.files[document.file_id]
        if source.stat().st_size > max_bytes:
            raise DownloadError(f"the file is larger than {max_bytes} bytes")
        shutil.copyfile(source, dest)
        return dest

    def texts(self, chat_id: str = CHAT) -> list[str]:
        return [s.text for s in self.sent if s.kind == "text" and s.chat_id == chat_id]

    def questions(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "choices"]

    def clear(self) -> None:
        self.sent.clear()


@dataclass
class FakeJobs:
    """Records what was asked and returns queued jobs; `busy` refuses as a busy runner does."""

    calls: list[tuple[str, str, str | None, str, str]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    busy: bool = False

    async def retrain(self, persona: str, *, requested_by: str, notify_chat: str) -> Job:
        return self._start("retrain", persona, None, requested_by, notify_chat)

    async def evaluate(
        self, persona: str, version: str | None = None, *, requested_by: str, notify_chat: str
    ) -> Job:
        return self._start("evaluate", persona, version, requested_by, notify_chat)

    def list(self) -> Sequence[Job]:
        return list(reversed(self.jobs))

    def running(self) -> Sequence[Job]:
        return [job for job in self.jobs if not job.finished]

    def _start(self, kind: JobKind, persona: str, version: str | None, by: str, notify: str) -> Job:
        if self.busy:
            raise JobBusyError(f"{persona} is already retraining (job 1, step 5/10)")
        self.calls.append((kind, persona, version, by, notify))
        job = Job(
            id=len(self.jobs) + 1,
            kind=kind,
            persona=persona,
            status="queued",
            requested_by=by,
            notify_chat=notify,
            created_at=datetime.now(UTC),
            started_at=None,
            finished_at=None,
            progress=None,
            result=None,
            error=None,
        )
        self.jobs.append(job)
        return job


@dataclass
class FakeScheduler:
    """Keeps schedules in a dict; a crontab that is not five fields is refused."""

    crons: dict[str, str] = field(default_factory=dict)

    def set_schedule(self, persona: str, cron: str) -> datetime:
        if len(cron.split()) != 5:
            raise ScheduleError(f"{cron!r} is not a crontab schedule; give 5 fields")
        self.crons[persona] = cron
        return datetime(2030, 1, 6, 3, 0)

    def clear_schedule(self, persona: str) -> bool:
        return self.crons.pop(persona, None) is not None

    def schedules(self) -> Sequence[Schedule]:
        return [Schedule(persona, cron, None) for persona, cron in sorted(self.crons.items())]


# --- helpers ------------------------------------------------------------------------------


def settings_for(data_dir: Path, **values: object) -> Settings:
    values.setdefault("admin_ids", [f"telegram:{ADMIN}"])
    values.setdefault("backends", ["retrieval"])
    return Settings(_env_file=None, data_dir=data_dir, database=None, **values)  # type: ignore[call-arg]


def make_service(settings: Settings, **values: object) -> PersonaService:
    values.setdefault("jobs", FakeJobs())
    values.setdefault("scheduler", FakeScheduler())
    values.setdefault("simulate_typing", False)
    return PersonaService(settings, rng=random.Random(7), **values)  # type: ignore[arg-type]


def incoming(
    text: str | None = None,
    *,
    user: str = ADMIN,
    chat: str = CHAT,
    document: DocumentRef | None = None,
    choice: str | None = None,
) -> Incoming:
    return Incoming(
        channel="telegram",
        chat_id=chat,
        user_id=user,
        message_id=str(next(_ids)),
        at=datetime(2024, 3, 12, 21, 0),
        text=text,
        document=document,
        choice=choice,
    )


async def upload(
    service: PersonaService,
    outbox: FakeOutbox,
    path: Path,
    *,
    name: str | None = None,
    size: int | None = None,
    size_unknown: bool = False,
    user: str = ADMIN,
    chat: str = CHAT,
) -> None:
    file_id = f"file-{next(_ids)}"
    outbox.files[file_id] = path
    said = None if size_unknown else size or path.stat().st_size
    document = DocumentRef(file_id, name or path.name, None, said)
    await service.handle(incoming(document=document, user=user, chat=chat), outbox)


async def press(
    service: PersonaService,
    outbox: FakeOutbox,
    label: str,
    *,
    user: str = ADMIN,
    chat: str = CHAT,
) -> None:
    """Press the button of the last question whose label starts with `label`."""
    choices = outbox.questions()[-1].choices
    choice = next(c for c in choices if c.label.startswith(label))
    await service.handle(incoming(choice=choice.payload, user=user, chat=chat), outbox)


async def teach(
    service: PersonaService,
    outbox: FakeOutbox,
    path: Path,
    persona: str = "Maya",
    *,
    user: str = ADMIN,
) -> None:
    """Upload `path` as `user`, pick `persona`, consent."""
    await upload(service, outbox, path, user=user)
    await press(service, outbox, persona, user=user)
    await press(service, outbox, "Yes", user=user)


def authored(path: Path) -> Counter[str]:
    """Messages per author in an export, as the service counts them."""
    return Counter(
        m.author
        for chat in load_chats(path)
        for m in chat.messages
        if m.author and m.kind is not MessageKind.SYSTEM
    )


def sample_zip(folder: Path) -> Path:
    """The sample chat as WhatsApp's "Export chat" zip."""
    path = folder / "WhatsApp Chat - Sam.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(SAMPLE, "WhatsApp Chat with Sam.txt")
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def teach_maya(data: Path) -> Path:
    """A data dir where an admin taught the sample's Maya in chat 100."""

    async def build() -> None:
        service = make_service(settings_for(data))
        await teach(service, FakeOutbox(), SAMPLE)
        await service.close()

    asyncio.run(build())
    return data


def copy_of(template: Path, tmp_path: Path) -> Settings:
    """Settings on a copy of a data dir, for a test to change."""
    shutil.copytree(template, tmp_path / "data")
    return settings_for(tmp_path / "data")


@pytest.fixture(scope="module")
def maya_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach_maya(tmp_path_factory.mktemp("maya"))


@pytest.fixture
def ready(maya_dir: Path, tmp_path: Path) -> Settings:
    return copy_of(maya_dir, tmp_path)


# --- the upload flow ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_uploaded_export_is_summarised_confirmed_stored_and_chatted_with(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path / "data")
    service, outbox = make_service(settings), FakeOutbox()
    counts = authored(SAMPLE)

    await upload(service, outbox, SAMPLE)
    summary = outbox.texts()[-1]
    assert summary.startswith("WhatsApp Chat with Sam.txt: 1 chat")
    assert f"Maya: {counts['Maya']:,} messages" in summary
    assert f"Sam: {counts['Sam']:,} messages" in summary
    assert "01 Jan 2024 to 31 Dec 2024" in summary and "Android" in summary
    who = outbox.questions()[-1]
    assert sorted(c.label.split(" (")[0] for c in who.choices) == ["Maya", "Sam"]
    assert list_personas(settings) == []  # nothing is stored before consent

    await press(service, outbox, "Maya")
    assert "right to use these messages" in outbox.questions()[-1].text
    await press(service, outbox, "Yes")

    assert "Learning how Maya writes…" in outbox.texts()
    done = outbox.texts()[-1]
    assert done.startswith(f"Maya is ready: {counts.total():,} new messages stored")
    assert "/retrain" in done and "/evaluate" in done
    assert service.uploads.message_count("Maya") == counts.total()
    assert load_persona(settings, "Maya").info.counts["persona_messages"] == counts["Maya"]
    assert service.store.persona_for(chat_address("telegram", CHAT)) == "Maya"
    kept = list((settings.data_dir / "uploads").glob("*.txt"))
    assert len(kept) == 1 and kept[0].read_bytes() == SAMPLE.read_bytes()
    assert kept[0].stat().st_mode & 0o777 == 0o600
    assert list((settings.data_dir / "uploads" / "pending").iterdir()) == []
    await service.close()


@pytest.mark.anyio
async def test_a_zip_export_goes_through_the_same_flow(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    service, outbox = make_service(settings), FakeOutbox()

    await teach(service, outbox, sample_zip(tmp_path))

    assert outbox.texts()[0].startswith("WhatsApp Chat - Sam.zip: 1 chat")
    assert outbox.texts()[-1].startswith("Maya is ready")
    assert service.uploads.message_count("Maya") == authored(SAMPLE).total()
    assert [info.name for info in list_personas(settings)] == ["Maya"]
    await service.close()


@pytest.mark.anyio
async def test_uploading_the_same_chat_again_as_a_zip_stores_no_message_twice(
    ready: Settings, tmp_path: Path
) -> None:
    service, outbox = make_service(ready), FakeOutbox()
    before = service.uploads.message_count("Maya")

    await teach(service, outbox, sample_zip(tmp_path))

    assert outbox.texts()[-1].startswith(f"Maya is ready: 0 new messages stored ({before:,} I")
    assert service.uploads.message_count("Maya") == before
    assert service.uploads.upload_count("Maya") == 2
    await service.close()


@pytest.mark.anyio
async def test_an_overlapping_export_adds_only_its_new_messages(tmp_path: Path) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    early, late = tmp_path / "early.txt", tmp_path / "late.txt"
    early.write_text("".join(lines[: len(lines) * 6 // 10]), encoding="utf-8")
    late.write_text("".join(lines[len(lines) * 4 // 10 :]), encoding="utf-8")
    settings = settings_for(tmp_path / "data")
    service, outbox = make_service(settings), FakeOutbox()

    await teach(service, outbox, early)
    await teach(service, outbox, late)

    total, first = authored(SAMPLE).total(), authored(early).total()
    done = outbox.texts()[-1]
    assert done.startswith(f"Maya is ready: {total - first:,} new messages stored")
    assert f"({authored(late).total() - (total - first):,} I already had)" in done
    assert service.uploads.message_count("Maya") == total
    assert len(service.uploads.chats("Maya")) == 1  # the second export continues the first
    await service.close()


@pytest.mark.anyio
async def test_declining_consent_discards_the_file_and_stores_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    service, outbox = make_service(settings), FakeOutbox()

    await upload(service, outbox, SAMPLE)
    await press(service, outbox, "Maya")
    await press(service, outbox, "No")

    assert outbox.texts()[-1] == "Okay. I deleted the file and stored nothing."
    assert service.uploads.message_count("Maya") == 0
    assert service.db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 0
    assert list_personas(settings) == []
    assert [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()] == []
    await press(service, outbox, "Yes")  # the old button does nothing now
    assert "no longer waiting" in outbox.texts()[-1]
    assert service.uploads.message_count("Maya") == 0
    await service.close()


@pytest.mark.anyio
async def test_a_garbage_file_gets_a_clear_reply_and_the_persona_is_kept(
    ready: Settings, tmp_path: Path
) -> None:
    service, outbox = make_service(ready), FakeOutbox()
    persona_files = tree(ready.data_dir / "personas")
    count = service.uploads.message_count("Maya")
    garbage = tmp_path / "chat.txt"
    garbage.write_bytes(b"\x00\x01\x02 not a chat \xff\xfe" * 50)

    await upload(service, outbox, garbage)

    assert outbox.texts()[-1].startswith("I couldn't read that as a chat export:")
    assert "Nothing was stored" in outbox.texts()[-1]
    assert str(tmp_path) not in outbox.texts()[-1] and "pending" not in outbox.texts()[-1]
    assert outbox.questions() == []
    assert tree(ready.data_dir / "personas") == persona_files
    assert service.uploads.message_count("Maya") == count
    assert list((ready.data_dir / "uploads" / "pending").iterdir()) == []
    await service.close()


@pytest.mark.anyio
async def test_a_persona_that_cannot_be_built_keeps_nothing_and_the_earlier_one_intact(
    ready: Settings, tmp_path: Path
) -> None:
    service, outbox = make_service(ready), FakeOutbox()
    persona_files = tree(ready.data_dir / "personas")
    count = service.uploads.message_count("Maya")
    tiny = tmp_path / "WhatsApp Chat with Zed.txt"
    tiny.write_text("12/03/2024, 21:00 - Zed: hi\n12/03/2024, 21:01 - Maya: hey\n")

    await teach(service, outbox, tiny, persona="Zed")

    assert outbox.texts()[-1].startswith("I couldn't learn from that export (")
    assert "Nothing of it was kept" in outbox.texts()[-1]
    assert service.uploads.message_count("Zed") == 0
    assert service.db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 1
    assert tree(ready.data_dir / "personas") == persona_files
    assert service.uploads.message_count("Maya") == count
    await service.close()


@pytest.mark.anyio
async def test_a_file_over_the_size_limit_is_refused_without_downloading(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path / "data", max_upload_mb=1)
    service, outbox = make_service(settings), FakeOutbox()

    await upload(service, outbox, SAMPLE, size=5 * 2**20)
    assert outbox.texts()[-1].startswith("That file is 5.0 MB; the most I accept is 1 MB.")
    assert outbox.downloads == 0

    big = tmp_path / "big.txt"
    big.write_bytes(SAMPLE.read_bytes() * 4)  # the platform did not say its size
    await upload(service, outbox, big, size_unknown=True)
    assert outbox.texts()[-1].startswith("I couldn't fetch that file")
    assert list((settings.data_dir / "uploads" / "pending").iterdir()) == []
    await service.close()


@pytest.mark.anyio
async def test_files_that_are_no_chat_export_type_are_refused(tmp_path: Path) -> None:
    service, outbox = make_service(settings_for(tmp_path / "data")), FakeOutbox()

    await upload(service, outbox, SAMPLE, name="holiday.pdf")

    assert "WhatsApp exports (the .txt or .zip" in outbox.texts()[-1]
    assert "result.json" in outbox.texts()[-1]
    assert outbox.downloads == 0
    await service.close()


@pytest.mark.anyio
async def test_only_admins_upload_unless_uploads_from_anyone(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    closed, outbox = make_service(settings), FakeOutbox()
    await upload(closed, outbox, SAMPLE, user=STRANGER)
    assert outbox.texts()[-1] == "Sorry, only the bot's admins can add chat exports here."
    assert outbox.downloads == 0 and outbox.questions() == []
    await closed.close()

    open_ = make_service(settings, uploads_from_anyone=True)
    await teach(open_, outbox, SAMPLE, user=STRANGER)
    assert outbox.texts()[-1].startswith("Maya is ready")
    row = open_.db.execute("SELECT sender FROM uploads").fetchone()
    assert row[0] == f"telegram:{STRANGER}"
    await open_.close()


@pytest.mark.anyio
async def test_only_the_uploader_answers_the_questions(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", admin_ids=["telegram:1", "telegram:2"])
    service, outbox = make_service(settings), FakeOutbox()

    await upload(service, outbox, SAMPLE)
    await press(service, outbox, "Maya", user=STRANGER)

    assert outbox.texts()[-1] == "Only the person who sent the export can answer that."
    assert len(outbox.questions()) == 1
    await service.close()


@pytest.mark.anyio
async def test_a_pending_upload_survives_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    outbox = FakeOutbox()
    first = make_service(settings)
    await upload(first, outbox, SAMPLE)
    await first.close()

    second = make_service(settings)
    await press(second, outbox, "Maya")
    await second.close()

    third = make_service(settings)
    await press(third, outbox, "Yes")
    assert outbox.texts()[-1].startswith("Maya is ready")
    assert third.uploads.message_count("Maya") == authored(SAMPLE).total()
    await third.close()


# --- chatting -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_text_gets_mayas_own_replies_as_separate_messages(ready: Settings) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    service, outbox = make_service(ready, simulate_typing=True, sleep=sleep), FakeOutbox()

    await service.handle(incoming("are u coming tonight?"), outbox)
    await service.engine.wait(chat_address("telegram", CHAT))

    bubbles = tuple(outbox.texts())
    assert bubbles
    replies = {exchange.reply for exchange in load_persona(ready, "Maya").index.exchanges}
    assert bubbles in replies
    typing = [s.on for s in outbox.sent if s.kind == "typing"]
    assert typing[0] is True and typing[-1] is False
    assert waits and sum(waits) > 0  # she took her time, as the profile says
    turns = service.store.history(chat_address("telegram", CHAT))
    assert [t.role for t in turns] == ["user", "assistant"]
    await service.close()


@pytest.mark.anyio
async def test_a_persona_rebuilt_elsewhere_is_loaded_again(ready: Settings) -> None:
    service, outbox = make_service(ready), FakeOutbox()
    await service.handle(incoming("hey"), outbox)
    await service.engine.wait(chat_address("telegram", CHAT))
    before = service.engine.persona("Maya")

    refresh_persona(ready, "Maya")  # what a retrain job's worker does first
    save_style_strength(ready, "Maya", 0.3)
    await service.handle(incoming("still there?"), outbox)
    await service.engine.wait(chat_address("telegram", CHAT))

    after = service.engine.persona("Maya")
    assert after is not before
    assert after.strength == 0.3
    await service.close()


@pytest.mark.anyio
async def test_an_unbound_chat_gets_the_only_persona(ready: Settings) -> None:
    service, outbox = make_service(ready), FakeOutbox()

    await service.handle(incoming("hey", chat="200", user=STRANGER), outbox)
    await service.engine.wait(chat_address("telegram", "200"))

    assert service.store.persona_for(chat_address("telegram", "200")) == "Maya"
    assert outbox.texts("200")
    await service.close()


@pytest.mark.anyio
async def test_an_unbound_chat_is_told_how_to_pick_or_make_a_persona(
    ready: Settings, tmp_path: Path
) -> None:
    empty, outbox = make_service(settings_for(tmp_path / "empty")), FakeOutbox()
    await empty.handle(incoming("hey", chat="200"), outbox)
    assert outbox.texts("200")[-1].startswith("I don't know anyone's style yet. Send me a chat")
    await empty.close()

    service = make_service(ready)
    await teach(service, outbox, SAMPLE, persona="Sam")
    await service.handle(incoming("hey", chat="200"), outbox)
    assert (
        outbox.texts("200")[-1] == "Who should answer here? Pick one: /persona Maya, /persona Sam"
    )
    await service.handle(incoming("hey", chat="200", user=STRANGER), outbox)
    assert outbox.texts("200")[-1].startswith("An admin has to pick who answers in this chat")
    assert service.store.persona_for(chat_address("telegram", "200")) is None
    await service.close()


@pytest.mark.anyio
async def test_messages_without_text_get_a_polite_reply(ready: Settings) -> None:
    service, outbox = make_service(ready), FakeOutbox()

    await service.handle(incoming(None), outbox)

    assert outbox.texts() == [
        "I can only read text here (and chat exports as files). Could you type it?"
    ]
    await service.close()


# --- job progress -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_job_progress_reaches_the_chat_that_asked_or_every_admin(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", admin_ids=["telegram:1", "whatsapp:4915"])
    service = make_service(settings)
    telegram, whatsapp = FakeOutbox(), FakeOutbox()
    service.register_outbox("telegram", telegram)
    service.register_outbox("whatsapp", whatsapp)
    jobs = FakeJobs()
    asked = await jobs.retrain("Maya", requested_by="telegram:1", notify_chat="telegram:100")
    scheduled = await jobs.retrain("Maya", requested_by="schedule", notify_chat="")

    await service.notify(JobUpdate(asked, "Maya: step 10/100", final=False))
    await service.notify(JobUpdate(scheduled, "Maya: maya-v2 is now active", final=True))

    assert telegram.texts("100") == ["Maya: step 10/100"]
    assert telegram.texts("1") == ["Maya: maya-v2 is now active"]
    assert whatsapp.texts("4915") == ["Maya: maya-v2 is now active"]
    await service.close()


# --- input limits -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_text_over_the_length_limit_is_refused_before_the_persona_sees_it(
    ready: Settings,
) -> None:
    service, outbox = make_service(ready, max_text_chars=4000), FakeOutbox()
    address = chat_address("telegram", CHAT)
    turns = len(service.store.history(address, 1000))

    await service.handle(incoming("ha" * 2001), outbox)

    assert outbox.texts() == [
        "That message is 4,002 characters long; I read at most 4,000 at a time. Could you "
        "send it in shorter parts?"
    ]
    assert len(service.store.history(address, 1000)) == turns  # nothing reached the engine
    await service.handle(incoming("ha" * 2000), outbox)
    await service.engine.wait(address)
    assert service.store.history(address, 1000)[-2].turn.bubbles == ("ha" * 2000,)
    await service.close()


def bomb(path: Path, *, lie_about_size: bool = False) -> Path:
    """A WhatsApp export zip of ~16 KB whose chat expands to 16 MB (or says it is 4 KB)."""
    header = b"12/03/2024, 21:00 - Maya: hi\n12/03/2024, 21:01 - Sam: hey\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("WhatsApp Chat with Sam.txt", header + b"\0" * 16 * 2**20)
    if lie_about_size:  # rewrite the declared size in the local and central headers
        raw = bytearray(path.read_bytes())
        for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            at = raw.find(signature)
            raw[at + offset : at + offset + 4] = (4096).to_bytes(4, "little")
        path.write_bytes(bytes(raw))
    return path


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("lie_about_size", "reason"),
    [
        (False, r"entry 'WhatsApp Chat with Sam\.txt' expands \d{4}x; refusing a likely zip bomb"),
        (True, r"is damaged and cannot be read \(Bad CRC-32 for file 'WhatsApp Chat with Sam"),
    ],
    ids=["honest-sizes", "lying-sizes"],
)
async def test_a_zip_bomb_is_refused_with_a_clear_reply_and_nothing_is_stored(
    tmp_path: Path, lie_about_size: bool, reason: str
) -> None:
    settings = settings_for(tmp_path / "data")
    service, outbox = make_service(settings), FakeOutbox()
    path = bomb(tmp_path / "WhatsApp Chat - Sam.zip", lie_about_size=lie_about_size)
    assert path.stat().st_size < 64 * 1024 < settings.max_upload_mb * 2**20

    await upload(service, outbox, path)

    [reply] = outbox.texts()
    assert re.match(f"I couldn't read that as a chat export: {reason}", reply)
    assert reply.endswith("Nothing was stored.")
    assert str(tmp_path) not in reply
    assert outbox.questions() == []
    assert service.db.execute("SELECT COUNT(*) FROM pending_uploads").fetchone()[0] == 0
    assert service.db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 0
    assert service.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()] == []
    assert list_personas(settings) == []
    await service.close()
