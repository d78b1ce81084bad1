"""The Claude few-shot backend, with the real `anthropic` client against a local fake API."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anthropic
import pytest

from bot.backends.base import ChatTurn, Prompt
from bot.backends.claude import (
    ClaudeBackend,
    claude_from_settings,
    example_count,
    write_style_card,
)
from bot.backends.fallback import FallbackChain
from bot.errors import BackendError, BackendUnavailable
from bot.exchanges import ContextTurn, Exchange, ExchangeIndex, reply_key
from style.scrub import Scrubber
from tests.bot.canned_backend import RetrievalStub
from tests.bot.prepared import settings_for
from tests.fakes.anthropic_server import API_KEY, FakeAnthropic

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 3, 12, 21, 0, tzinfo=UTC)
CARD = "You are Maya, texting friends on WhatsApp. You write in lowercase."
MODEL = "claude-test-model"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.base_url, max_retries=0)
    yield client
    await client.close()


def exchange(number: int, context: list[tuple[str, str]], *reply: str) -> Exchange:
    turns = tuple(
        ContextTurn("user" if who == "them" else "assistant", (text,)) for who, text in context
    )
    return Exchange(id=f"ex{number}", context=turns, reply=reply, reply_id=reply_key(reply))


INDEX = ExchangeIndex.build(
    [
        exchange(1, [("them", "pizza tonight?")], "yesss 🍕", "what time"),
        exchange(2, [("them", "how was the dentist")], "ugh dont ask 😭"),
        exchange(3, [("them", "wanna watch a movie")], "omg yes"),
        exchange(4, [("them", "whats your number again")], "its 07700 900999"),
    ]
)


def prompt(*turns: tuple[str, str], strength: float = 1.0) -> Prompt:
    history = tuple(
        ChatTurn("user" if who == "them" else "assistant", tuple(text.split(" | ")), NOW)
        for who, text in turns
    )
    return Prompt(persona="Maya", chat_id="c1", history=history, now=NOW, strength=strength)


def backend(
    client: anthropic.AsyncAnthropic,
    *,
    index: ExchangeIndex = INDEX,
    examples: int = 8,
    scrubber: Scrubber | None = None,
) -> ClaudeBackend:
    return ClaudeBackend(
        client,
        model=MODEL,
        card=CARD,
        index=index,
        examples=examples,
        scrubber=scrubber if scrubber is not None else Scrubber(region="GB"),
        rng=random.Random(0),
    )


async def test_request_has_a_cached_card_block_then_the_matching_examples(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    await backend(client).reply(prompt(("them", "pizza tonight??")))
    [request] = fake.requests
    static, dynamic = request.system_blocks
    assert static["text"].startswith(CARD)
    assert "separate them with a blank line" in static["text"]
    assert static["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in dynamic
    assert "<you>\nyesss 🍕\n\nwhat time\n</you>" in dynamic["text"]
    assert "<them>\npizza tonight?\n</them>" in dynamic["text"]
    assert "dont ask" not in dynamic["text"]
    assert "It is Tuesday evening." in dynamic["text"]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["anthropic-version"]
    assert request.body["model"] == MODEL


async def test_static_block_is_the_same_for_another_conversation(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude = backend(client)
    await claude.reply(prompt(("them", "pizza tonight??")))
    await claude.reply(prompt(("them", "wanna watch a movie later")))
    first, second = fake.requests
    assert first.system_blocks[0] == second.system_blocks[0]
    assert "omg yes" in second.system_blocks[1]["text"]
    assert "omg yes" not in first.system_blocks[1]["text"]


async def test_messages_alternate_start_with_user_and_merge_same_role_turns(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    await backend(client).reply(
        prompt(
            ("maya", "heyy"),
            ("them", "hi!"),
            ("them", "pizza tonight? | at 8"),
            ("maya", "maybe"),
            ("maya", "who's coming"),
            ("them", "sam and jo"),
        )
    )
    messages = fake.requests[0].body["messages"]
    assert messages == [
        {"role": "user", "content": "(new conversation)"},
        {"role": "assistant", "content": "heyy"},
        {"role": "user", "content": "hi!\n\npizza tonight?\n\nat 8"},
        {"role": "assistant", "content": "maybe\n\nwho's coming"},
        {"role": "user", "content": "sam and jo"},
    ]


async def test_a_trimmed_history_drops_a_leading_persona_turn(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude = backend(client)
    claude.history_turns = 2
    await claude.reply(prompt(("them", "old"), ("maya", "older reply"), ("them", "pizza?")))
    assert fake.requests[0].body["messages"] == [{"role": "user", "content": "pizza?"}]


async def test_live_conversation_and_examples_are_scrubbed_before_sending(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    await backend(client).reply(
        prompt(("them", "whats your number again? mine is 07700 900123 | or maya@example.com"))
    )
    sent = fake.requests[0].sent_text
    assert "900123" not in sent
    assert "maya@example.com" not in sent
    assert "900999" not in sent  # the example's reply had a phone number too
    assert "mine is [PHONE]" in sent
    assert "its [PHONE]" in sent


async def test_when_drop_mode_drops_the_message_to_answer_nothing_is_sent(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude = backend(client, scrubber=Scrubber("drop", region="GB"))
    with pytest.raises(BackendUnavailable, match="dropped"):
        await claude.reply(prompt(("them", "call 07700 900123")))
    assert fake.requests == []


async def test_a_user_opening_dropped_by_the_scrubber_is_not_taken_for_a_persona_opening(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude = backend(client, scrubber=Scrubber("drop", region="GB"))
    await claude.reply(prompt(("them", "call 07700 900123"), ("maya", "ok"), ("them", "pizza?")))
    assert fake.requests[0].body["messages"] == [{"role": "user", "content": "pizza?"}]


async def test_answer_is_split_into_bubbles_at_blank_lines(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.reply_with("omg yesss\n\nwhat time 🍕\n\n\nsam coming?")
    reply = await backend(client).reply(prompt(("them", "pizza tonight?")))
    assert reply.bubbles == ("omg yesss", "what time 🍕", "sam coming?")
    assert (reply.backend, reply.model) == ("claude", MODEL)
    assert reply.latency_s > 0


async def test_echoed_example_tags_are_removed_from_the_answer(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.reply_with("<you>\nyess\n</you>")
    reply = await backend(client).reply(prompt(("them", "pizza tonight?")))
    assert reply.bubbles == ("yess",)


async def test_an_empty_answer_means_unavailable(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.reply_with("", stop_reason="refusal")
    with pytest.raises(BackendUnavailable, match="refusal"):
        await backend(client).reply(prompt(("them", "pizza tonight?")))


def test_strength_maps_to_the_number_of_examples() -> None:
    assert [example_count(8, s) for s in (0.0, 0.5, 1.0, 3.0)] == [2, 5, 8, 8]
    assert example_count(1, 0.0) == 1
    assert example_count(0, 1.0) == 0


async def test_strength_changes_examples_and_wording_and_sends_no_sampling_parameters(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    index = ExchangeIndex.build(
        exchange(i, [("them", f"party tonight {i}?")], f"reply number {i}") for i in range(12)
    )
    claude = backend(client, index=index, examples=8)
    await claude.reply(prompt(("them", "party tonight?"), strength=1.0))
    await claude.reply(prompt(("them", "party tonight?"), strength=0.0))
    exact, inspired = fake.requests
    assert not {"temperature", "top_p", "top_k"} & (exact.body.keys() | inspired.body.keys())
    assert exact.system_blocks[0] == inspired.system_blocks[0]
    assert exact.system_blocks[1]["text"].count("<example>") == 8
    assert inspired.system_blocks[1]["text"].count("<example>") == 2
    assert "Copy Maya's style exactly" in exact.system_blocks[1]["text"]
    assert "inspire" in inspired.system_blocks[1]["text"]


async def test_token_usage_counts_cache_writes_then_reads(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude = backend(client)
    await claude.reply(prompt(("them", "pizza tonight?")))
    first = claude.usage
    assert first.cache_creation > 0
    assert first.cache_read == 0
    await claude.reply(prompt(("them", "movie later?")))
    assert claude.usage.cache_read == first.cache_creation  # the card block, read back
    assert claude.usage.cache_creation == first.cache_creation  # and not written again
    assert claude.usage.input > first.input
    assert claude.usage.output == 2 * first.output


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(529, "overloaded_error"), (500, "api_error"), (503, "api_error"), (429, "rate_limit_error")],
)
async def test_overload_rate_limit_and_server_errors_mean_unavailable(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic, status: int, error_type: str
) -> None:
    fake.fail_with(status, error_type, retry_after=1 if status == 429 else None)
    with pytest.raises(BackendUnavailable, match=str(status)):
        await backend(client).reply(prompt(("them", "pizza tonight?")))


async def test_a_rejected_request_is_a_backend_error_not_unavailable(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.fail_with(400, "invalid_request_error")
    with pytest.raises(BackendError) as caught:
        await backend(client).reply(prompt(("them", "pizza tonight?")))
    assert not isinstance(caught.value, BackendUnavailable)
    assert "400" in str(caught.value)


async def test_a_wrong_key_is_a_backend_error(fake: FakeAnthropic) -> None:
    async with anthropic.AsyncAnthropic(
        api_key="sk-wrong", base_url=fake.base_url, max_retries=0
    ) as wrong:
        with pytest.raises(BackendError, match="API key") as caught:
            await backend(wrong).reply(prompt(("them", "pizza tonight?")))
    assert not isinstance(caught.value, BackendUnavailable)


async def test_an_unreachable_server_means_unavailable() -> None:
    async with FakeAnthropic() as gone:
        url = gone.base_url
    async with anthropic.AsyncAnthropic(api_key=API_KEY, base_url=url, max_retries=0) as client:
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await backend(client).reply(prompt(("them", "pizza tonight?")))


@pytest.mark.parametrize("outage", ["overloaded", "hang"])
async def test_chain_falls_back_to_retrieval_when_claude_is_down(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic, outage: str
) -> None:
    if outage == "overloaded":
        fake.fail_with(529, "overloaded_error")
    else:
        fake.hang(10.0)
    chain = FallbackChain(
        [backend(client), RetrievalStub()], deadline_s=0.5, failures_to_open=3, reset_s=60
    )
    reply = await chain.reply(prompt(("them", "pizza tonight?")))
    assert reply.backend == "retrieval"
    assert len(fake.requests) == 1
    assert chain.health()[0].last_error == (
        "BackendUnavailable" if outage == "overloaded" else "TimeoutError"
    )


def test_factory_returns_none_unless_remote_backends_are_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot.backends.claude"):
        made = claude_from_settings(settings_for(tmp_path, anthropic_api_key="sk-x"), CARD, INDEX)
    assert made is None
    assert "ALLOW_REMOTE_BACKENDS" in caplog.text
    assert CARD not in caplog.text


def test_factory_returns_none_without_a_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot.backends.claude"):
        made = claude_from_settings(settings_for(tmp_path, allow_remote_backends=True), CARD, INDEX)
    assert made is None
    assert "ANTHROPIC_API_KEY" in caplog.text


async def test_factory_builds_a_backend_that_talks_to_the_configured_server(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    configured = settings_for(
        tmp_path,
        allow_remote_backends=True,
        anthropic_api_key=API_KEY,
        anthropic_base_url=fake.base_url,
        claude_model="claude-from-settings",
        claude_examples=3,
        scrub_region="GB",
    )
    made = claude_from_settings(configured, CARD, INDEX)
    assert made is not None
    assert made.examples == 3
    fake.reply_with("yess")
    try:
        reply = await made.reply(prompt(("them", "pizza tonight? call 07700 900123")))
    finally:
        await made.aclose()
    assert reply.bubbles == ("yess",)
    body = fake.requests[0].body
    assert body["model"] == "claude-from-settings"
    assert "900123" not in fake.requests[0].sent_text


async def test_write_style_card_sends_the_samples_and_returns_the_card(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.reply_with("You write in lowercase and laugh with 'hahah'.")
    card = (await write_style_card(client, MODEL, ["hahah yes", "omw!!"], CARD)).text
    assert card == "You write in lowercase and laugh with 'hahah'."
    [request] = fake.requests
    content = request.body["messages"][0]["content"]
    assert "<message>hahah yes</message>" in content
    assert CARD in content
    assert "never content" in request.system_text


async def test_write_style_card_maps_overload_to_unavailable(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.fail_with(529, "overloaded_error")
    with pytest.raises(BackendUnavailable):
        await write_style_card(client, MODEL, ["hi"], CARD)
