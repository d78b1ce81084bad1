"""`wa-persona analyze`: Claude's style card from a scrubbed sample of the training split.

The real `anthropic` client talks to the local fake Anthropic API; the persona is prepared
from the bundled sample in the test's own data dir.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anthropic
import pytest
from aiohttp import web
from typer.testing import CliRunner

from bot.backends.base import ChatTurn, Prompt
from bot.backends.claude import ClaudeBackend
from bot.backends.factory import build_backend
from bot.backends.local import LocalBackend
from bot.backends.openai_chat import OpenAIChatBackend
from bot.cli import app
from bot.personas import load_persona, prepare_persona
from bot.service import _stamp
from bot.settings import Settings
from bot.style_analysis import (
    CLAUDE_CARD_FILE,
    RemoteNotAllowedError,
    StyleAnalysis,
    analyze_persona,
    save_card,
)
from tests.bot.prepared import prepare_quarter_sample, settings_for
from tests.fakes.anthropic_server import API_KEY, FakeAnthropic, RecordedRequest
from tests.fakes.server import serve_in_thread
from training.registry import BackendKind, ModelStatus, Registry

runner = CliRunner()

CLAUDE_CARD = (
    "You write in lowercase, in bursts of two or three short messages, and laugh with "
    "'hahah' or 😂."
)
PHONE = "+44 7700 900123"
EVAL_ONLY = "zebra crossing at the eval split"
NOW = datetime(2024, 3, 12, 21, 0, tzinfo=UTC)
MODEL = "claude-test-model"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Maya prepared once from a quarter of the sample (about a second); its data dir."""
    folder = tmp_path_factory.mktemp("prepared")
    prepare_quarter_sample(folder, ["Maya"])
    return folder / "data"


@pytest.fixture
def data_dir(prepared: Path, tmp_path: Path) -> Path:
    """A copy of the prepared data dir that the test may change."""
    return Path(shutil.copytree(prepared, tmp_path / "data"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        server.reply_with(CLAUDE_CARD)
        yield server


@pytest.fixture
def threaded_fake() -> Iterator[FakeAnthropic]:
    """The fake served from a thread, for the CLI (which runs its own event loop)."""
    fake = FakeAnthropic(default_text=CLAUDE_CARD)
    server = web.Application()
    server.add_routes(fake.routes())
    with serve_in_thread(server, name="fake-anthropic", on_stop=fake.stopping) as port:
        fake.port = port
        yield fake


def allowed(data_dir: Path, fake: FakeAnthropic, **values: object) -> Settings:
    """Settings that allow sending to Claude, at the fake."""
    defaults: dict[str, object] = {
        "allow_remote_backends": True,
        "anthropic_api_key": API_KEY,
        "anthropic_base_url": fake.base_url,
        "claude_model": MODEL,
    }
    return settings_for(data_dir, **{**defaults, **values})


def cli_env(data_dir: Path, fake: FakeAnthropic) -> dict[str, str]:
    return {
        "WA_PERSONA_DATA_DIR": str(data_dir),
        "WA_PERSONA_ALLOW_REMOTE_BACKENDS": "true",
        "WA_PERSONA_ANTHROPIC_API_KEY": API_KEY,
        "WA_PERSONA_ANTHROPIC_BASE_URL": fake.base_url,
        "WA_PERSONA_CLAUDE_MODEL": MODEL,
        "COLUMNS": "200",
    }


@pytest.fixture(autouse=True)
def no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WA_PERSONA_DATABASE", "WA_PERSONA_ANTHROPIC_API_KEY", "WA_PERSONA_SCRUB_MODE"):
        monkeypatch.delenv(name, raising=False)


def dataset(data_dir: Path) -> Path:
    return data_dir / "personas" / "maya" / "dataset"


def persona_bubbles(path: Path) -> set[str]:
    """Every persona bubble of a dataset file, whitespace folded as the request folds it."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        for message in json.loads(line)["messages"]:
            if message["role"] == "assistant":
                found.update(" ".join(b.split()) for b in message["content"].split("\n\n"))
    return found


def plant(path: Path, text: str) -> None:
    """Make `text` the first sample's last persona turn in a dataset file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    sample = json.loads(lines[0])
    turns = [m for m in sample["messages"] if m["role"] == "assistant"]
    turns[-1]["content"] = text
    lines[0] = json.dumps(sample, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def sent_messages(request: RecordedRequest) -> list[str]:
    content = request.body["messages"][0]["content"]
    return re.findall(r"<message>(.*?)</message>", content)


def client_for(fake: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.base_url, max_retries=0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({"allow_remote_backends": False}, "remote backends are not allowed"),
        ({"anthropic_api_key": None}, "no Anthropic API key is set"),
    ],
)
async def test_refused_unless_remote_allowed_and_keyed_and_nothing_is_sent(
    data_dir: Path, fake: FakeAnthropic, values: dict[str, object], missing: str
) -> None:
    settings = allowed(data_dir, fake, **values)
    client = client_for(fake)
    try:
        with pytest.raises(RemoteNotAllowedError) as raised:
            await analyze_persona(settings, "Maya", samples=150, client=client)
    finally:
        await client.close()
    message = str(raised.value)
    assert "send 150 of Maya's messages, scrubbed, to Anthropic" in message
    assert missing in message
    assert "WA_PERSONA_ALLOW_REMOTE_BACKENDS=true" in message
    assert "WA_PERSONA_ANTHROPIC_API_KEY" in message
    assert fake.requests == []


@pytest.mark.anyio
async def test_sends_exactly_samples_distinct_training_messages_and_returns_the_card(
    data_dir: Path, fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    train = persona_bubbles(dataset(data_dir) / "train.jsonl")
    analysis = await analyze_persona(allowed(data_dir, fake), "Maya", samples=40)
    [request] = fake.requests
    sent = sent_messages(request)
    assert len(sent) == len(set(sent)) == 40
    assert set(sent) <= train
    assert analysis == StyleAnalysis(
        persona="Maya",
        card=CLAUDE_CARD,
        messages=40,
        model=MODEL,
        usage=analysis.usage,
    )
    assert analysis.usage.input > 0 and analysis.usage.output > 0
    assert request.body["model"] == MODEL
    assert (
        load_persona(allowed(data_dir, fake), "Maya").card in request.body["messages"][0]["content"]
    )
    loud = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    distinctive = [text for text in sent if len(text) >= 12]
    assert distinctive and not [text for text in distinctive if any(text in x for x in loud)]


@pytest.mark.anyio
async def test_only_the_training_split_is_sent_and_phone_numbers_arrive_scrubbed(
    data_dir: Path, fake: FakeAnthropic
) -> None:
    plant(dataset(data_dir) / "train.jsonl", f"call me on {PHONE} ok")
    plant(dataset(data_dir) / "eval.jsonl", EVAL_ONLY)
    train = persona_bubbles(dataset(data_dir) / "train.jsonl")
    held_out = persona_bubbles(dataset(data_dir) / "eval.jsonl") - train
    analysis = await analyze_persona(allowed(data_dir, fake), "Maya", samples=100_000)
    [request] = fake.requests
    sent = sent_messages(request)
    assert analysis.messages == len(sent) > 500
    assert "call me on [PHONE] ok" in sent
    assert PHONE not in request.sent_text and "900123" not in request.sent_text
    assert EVAL_ONLY not in request.sent_text
    assert held_out and not held_out & set(sent)
    assert "[photo]" not in sent and "[sticker]" not in sent


@pytest.mark.anyio
async def test_the_same_seed_sends_the_same_request(data_dir: Path, fake: FakeAnthropic) -> None:
    settings = allowed(data_dir, fake)
    await analyze_persona(settings, "Maya", samples=30, seed=7)
    await analyze_persona(settings, "Maya", samples=30, seed=7)
    await analyze_persona(settings, "Maya", samples=30, seed=8)
    first, again, other = fake.requests
    assert first.body == again.body
    assert sent_messages(first) != sent_messages(other)


@pytest.mark.anyio
async def test_no_card_is_written_by_analysing_and_save_card_writes_0600(
    data_dir: Path, fake: FakeAnthropic
) -> None:
    settings = allowed(data_dir, fake)
    folder = data_dir / "personas" / "maya"
    analysis = await analyze_persona(settings, "maya", samples=5)
    assert not (folder / CLAUDE_CARD_FILE).exists()
    path = save_card(settings, analysis.persona, analysis.card)
    assert path == folder / CLAUDE_CARD_FILE
    assert path.read_text(encoding="utf-8") == CLAUDE_CARD + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir() if "partial" in p.name] == []


def test_cli_save_makes_the_claude_backend_send_the_new_card_and_others_keep_the_dataset_card(
    data_dir: Path, threaded_fake: FakeAnthropic, tmp_path: Path
) -> None:
    env = cli_env(data_dir, threaded_fake)
    settings = allowed(data_dir, threaded_fake)
    persona = load_persona(settings, "Maya")
    registry = Registry.open(tmp_path / "registry.db")
    before = build_backend("claude", persona, settings, registry)
    assert isinstance(before, ClaudeBackend) and before.card == persona.card
    asyncio.run(before.aclose())

    result = runner.invoke(app, ["analyze", "Maya", "--samples", "20", "--save"], env=env)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == CLAUDE_CARD
    assert "read 20 of Maya's training messages" in result.stderr
    assert "Saved to" in result.stderr and "Claude backend" in result.stderr
    path = data_dir / "personas" / "maya" / CLAUDE_CARD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8").strip() == CLAUDE_CARD

    persona = load_persona(settings, "Maya")
    claude = build_backend("claude", persona, settings, registry)
    assert isinstance(claude, ClaudeBackend)
    asyncio.run(_one_reply(claude))
    static = threaded_fake.requests[-1].system_blocks[0]["text"]
    assert static.startswith(CLAUDE_CARD) and persona.card not in static

    version = registry.create(
        "Maya",
        BackendKind.LOCAL_ADAPTER,
        status=ModelStatus.READY,
        base_model="tiny/base",
        path=str(tmp_path / "adapter"),
    )
    registry.activate(version.version)
    base = build_backend("base", persona, settings, registry)
    assert isinstance(base, LocalBackend) and base.card == persona.card
    served = Registry.open(tmp_path / "served.db")
    remote = served.create(
        "Maya",
        BackendKind.OPENAI_COMPATIBLE,
        status=ModelStatus.READY,
        remote_id="maya-v1",
        endpoint="http://127.0.0.1:8000/v1",
    )
    served.activate(remote.version)
    openai = build_backend("openai", persona, settings, served)
    assert isinstance(openai, OpenAIChatBackend) and openai.card == persona.card


async def _one_reply(claude: ClaudeBackend) -> None:
    history = (ChatTurn("user", ("hey how are u",), NOW),)
    try:
        await claude.reply(Prompt(persona="Maya", chat_id="c1", history=history, now=NOW))
    finally:
        await claude.aclose()


def test_cli_json_without_save_writes_nothing(data_dir: Path, threaded_fake: FakeAnthropic) -> None:
    env = cli_env(data_dir, threaded_fake)
    result = runner.invoke(app, ["analyze", "Maya", "--samples", "5", "--json"], env=env)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["card"] == CLAUDE_CARD
    assert (record["persona"], record["messages"], record["saved"]) == ("Maya", 5, None)
    assert record["usage"]["input"] > 0
    assert not (data_dir / "personas" / "maya" / CLAUDE_CARD_FILE).exists()
    assert len(sent_messages(threaded_fake.requests[0])) == 5


def test_a_rebuild_keeps_the_card_and_the_service_sees_a_new_one(
    data_dir: Path, tmp_path: Path
) -> None:
    settings = settings_for(data_dir)
    before = _stamp(load_persona(settings, "Maya").folder)
    path = save_card(settings, "Maya", CLAUDE_CARD)
    assert _stamp(path.parent) != before  # a running bot loads Maya again at her next message
    (tmp_path / "again").mkdir()
    prepare_quarter_sample(tmp_path / "again", [])  # the exports, written again
    exports = sorted((tmp_path / "again").glob("*.txt"))
    prepare_persona(settings, "Maya", exports)  # an upload or /retrain rebuilds her folder
    rebuilt = load_persona(settings, "Maya").folder / CLAUDE_CARD_FILE
    assert rebuilt.read_text(encoding="utf-8") == CLAUDE_CARD + "\n"
    assert stat.S_IMODE(rebuilt.stat().st_mode) == 0o600


def test_removing_the_persona_removes_its_claude_card(data_dir: Path) -> None:
    settings = settings_for(data_dir)
    path = save_card(settings, "Maya", CLAUDE_CARD)
    result = runner.invoke(
        app, ["persona", "remove", "Maya", "--yes"], env={"WA_PERSONA_DATA_DIR": str(data_dir)}
    )
    assert result.exit_code == 0, result.output
    assert not path.exists() and not path.parent.exists()


def test_cli_unknown_persona_exits_2_with_one_line(
    data_dir: Path, threaded_fake: FakeAnthropic
) -> None:
    env = cli_env(data_dir, threaded_fake)
    result = runner.invoke(app, ["analyze", "Nobody"], env=env)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: no persona named 'Nobody'")
    assert threaded_fake.requests == []


def test_cli_refusal_exits_2_with_one_line_and_sends_nothing(
    data_dir: Path, threaded_fake: FakeAnthropic
) -> None:
    env = {**cli_env(data_dir, threaded_fake), "WA_PERSONA_ALLOW_REMOTE_BACKENDS": "false"}
    result = runner.invoke(app, ["analyze", "Maya", "--samples", "12", "--save"], env=env)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "send 12 of Maya's messages, scrubbed, to Anthropic" in line
    assert "WA_PERSONA_ALLOW_REMOTE_BACKENDS=true" in line
    assert threaded_fake.requests == []
    assert not (data_dir / "personas" / "maya" / CLAUDE_CARD_FILE).exists()
