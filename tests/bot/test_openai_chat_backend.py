"""The OpenAI-compatible chat backend, with the real `openai` client against a local fake API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest

from bot.backends.base import ChatTurn, Prompt
from bot.backends.fallback import FallbackChain
from bot.backends.local import SamplingSettings
from bot.backends.openai_chat import (
    OPENAI_API_URL,
    OpenAIChatBackend,
    is_local_endpoint,
    openai_chat_from_version,
    strength_temperature,
)
from bot.errors import BackendError, BackendUnavailable
from style.parse import load_chats
from style.profile import Profile, build_profile
from style.sample import sample_paths
from style.scrub import Scrubber
from tests.bot.canned_backend import RetrievalStub
from tests.bot.prepared import settings_for
from tests.fakes.openai_server import API_KEY, VLLM_SAMPLING_PARAMETERS, FakeOpenAI
from training.dataset.build import DatasetBuild, build_dataset
from training.dataset.config import DatasetConfig
from training.dataset.samples import CONVERSATION_START, Sample
from training.registry import BackendKind, ModelVersion, Registry, import_model

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 3, 12, 21, 0, tzinfo=UTC)
CARD = "You are Maya, texting friends on WhatsApp. You write in lowercase."
MODEL = "maya-v3"
PHONE_TEXT = "call me on 07700 900123 | or maya@example.com"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().serve() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def maya() -> tuple[DatasetBuild, Profile]:
    """Maya's real dataset and profile, built from the bundled sample export."""
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    profile = build_profile(chats, "Maya")
    return build_dataset(chats, "Maya", DatasetConfig(), profile=profile), profile


def turns(*spec: tuple[str, str], start: datetime = NOW, step_s: float = 60) -> list[ChatTurn]:
    """Chat turns from ("them"|"maya", "bubble | bubble") pairs, a minute apart."""
    return [
        ChatTurn(
            "user" if who == "them" else "assistant",
            tuple(text.split(" | ")),
            start + timedelta(seconds=step_s * number),
        )
        for number, (who, text) in enumerate(spec)
    ]


def prompt(*spec: tuple[str, str], strength: float = 1.0) -> Prompt:
    return prompt_of(turns(*spec), strength=strength)


def prompt_of(history: list[ChatTurn], *, strength: float = 1.0) -> Prompt:
    return Prompt(persona="Maya", chat_id="c1", history=tuple(history), now=NOW, strength=strength)


def backend(
    client: openai.AsyncOpenAI,
    *,
    remote: bool = False,
    scrubber: Scrubber | None = None,
    card: str = CARD,
    **options: object,
) -> OpenAIChatBackend:
    return OpenAIChatBackend(
        client,
        model=MODEL,
        card=card,
        scrubber=scrubber,
        remote=remote,
        **options,  # type: ignore[arg-type]
    )


def live_history(sample: Sample) -> list[ChatTurn]:
    """The chat a sample came from, up to its last user turn, as the bot would store it."""
    kept = [turn for turn in sample.turns if turn.bubbles != (CONVERSATION_START,)]
    last_user = max(i for i, turn in enumerate(kept) if turn.role == "user")
    return [
        ChatTurn(turn.role, turn.bubbles, (turn.ts or NOW).replace(tzinfo=UTC))
        for turn in kept[: last_user + 1]
    ]


# --- the request is a training sample ---------------------------------------------------


@pytest.mark.parametrize("with_profile", [False, True])
async def test_request_is_exactly_a_real_group_chat_sample_the_persona_opened(
    fake: FakeOpenAI,
    client: openai.AsyncOpenAI,
    maya: tuple[DatasetBuild, Profile],
    with_profile: bool,
) -> None:
    build, profile = maya
    opened = [
        sample
        for sample in build.train
        if sample.turns[0].bubbles == (CONVERSATION_START,)
        and any(": " in bubble for turn in sample.turns[1:3] for bubble in turn.bubbles)
        and any(len(turn.bubbles) > 1 for turn in sample.turns if turn.role == "user")
        and len(sample.turns) >= 5
    ]
    assert len(opened) >= 5
    for sample in opened[:5]:
        history = live_history(sample)
        chat = backend(
            client,
            card=build.card,
            profile=profile if with_profile else None,
            history_turns=len(history),
        )
        await chat.reply(prompt_of(history))
        expected = sample.messages()[: len(history) + 2]  # system, the start marker, turns
        assert fake.chat_bodies()[-1]["messages"] == expected
    first = fake.chat_bodies()[0]["messages"]
    assert first[0]["role"] == "system"
    assert first[1] == {"role": "user", "content": CONVERSATION_START}
    assert any("\n\n" in m["content"] and ": " in m["content"] for m in first[2:])


async def test_turns_merge_by_role_and_bubbles_are_folded_then_joined_by_a_blank_line(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    await backend(client).reply(
        prompt(
            ("them", "hi!"),
            ("them", "pizza tonight? | at 8"),
            ("them", "  the place with\n\n\nthe good crust  "),
            ("maya", "maybe"),
            ("maya", "who's coming"),
            ("them", "sam and jo"),
        )
    )
    [body] = fake.chat_bodies()
    assert body["messages"] == [
        {"role": "system", "content": CARD},
        {
            "role": "user",
            "content": "hi!\n\npizza tonight?\n\nat 8\n\nthe place with\nthe good crust",
        },
        {"role": "assistant", "content": "maybe\n\nwho's coming"},
        {"role": "user", "content": "sam and jo"},
    ]
    assert body["model"] == MODEL


async def test_a_history_cut_by_the_turn_limit_drops_its_leading_persona_turn(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    chat = backend(client, history_turns=2)
    await chat.reply(prompt(("them", "old"), ("maya", "older reply"), ("them", "pizza?")))
    assert fake.chat_bodies()[0]["messages"][1:] == [{"role": "user", "content": "pizza?"}]


async def test_the_profile_gap_starts_a_new_conversation_the_persona_opened(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, maya: tuple[DatasetBuild, Profile]
) -> None:
    _, profile = maya
    yesterday = turns(("them", "night!"), ("maya", "nightt"), start=NOW - timedelta(days=1))
    today = turns(("maya", "omg guess what"), ("them", "what??"), start=NOW)
    await backend(client, profile=profile).reply(prompt_of([*yesterday, *today]))
    await backend(client).reply(prompt_of([*yesterday, *today]))
    with_gap, without = fake.chat_bodies()
    assert with_gap["messages"][1:] == [
        {"role": "user", "content": CONVERSATION_START},
        {"role": "assistant", "content": "omg guess what"},
        {"role": "user", "content": "what??"},
    ]
    assert without["messages"][1]["content"] == "night!"


async def test_time_of_day_line_follows_the_card_as_in_the_dataset(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    await backend(client, time_of_day=True).reply(prompt(("them", "hey")))
    assert fake.chat_bodies()[0]["messages"][0]["content"] == f"{CARD}\nIt is Tuesday evening."


async def test_a_history_not_ending_with_a_user_text_is_refused(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(BackendError, match="end with the user's turn"):
        await backend(client).reply(prompt(("them", "hey"), ("maya", "heyy")))
    with pytest.raises(BackendError, match="no text") as caught:
        await backend(client).reply(prompt(("maya", "heyy"), ("them", " \n\n ")))
    assert not isinstance(caught.value, BackendUnavailable)
    assert fake.chat_bodies() == []


# --- sampling and strength ---------------------------------------------------------------


def test_temperature_grows_as_strength_falls() -> None:
    temperatures = [strength_temperature(0.8, s) for s in (1.0, 0.5, 0.0, 2.0, -1.0)]
    assert temperatures == pytest.approx([0.8, 1.0, 1.2, 0.8, 1.2])
    assert strength_temperature(0.0, 0.0) == 0.0  # greedy stays greedy
    assert strength_temperature(1.8, 0.0) == 2.0  # the API's ceiling


async def test_values_the_api_refuses_are_refused_up_front(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(ValueError, match="frequency_penalty"):
        backend(client, frequency_penalty=2.5)
    with pytest.raises(ValueError, match="stop"):
        backend(client, stop=("a", "b", "c", "d", "e"))


SAMPLING = SamplingSettings(
    temperature=0.6, top_p=0.9, top_k=40, repetition_penalty=1.1, max_new_tokens=64
)


async def test_sampling_and_strength_reach_the_server_as_openai_parameters(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    chat = backend(client, sampling=SAMPLING, frequency_penalty=0.3, stop=("<|im_end|>",))
    await chat.reply(prompt(("them", "hey"), strength=1.0))
    await chat.reply(prompt(("them", "hey"), strength=0.25))
    await backend(client).reply(prompt(("them", "hey")))
    exact, inspired, defaults = fake.chat_bodies()
    assert exact["temperature"] == pytest.approx(0.6)
    assert inspired["temperature"] == pytest.approx(0.6 * (1 + 0.5 * 0.75))
    assert {k: exact[k] for k in ("top_p", "max_tokens", "frequency_penalty", "stop")} == {
        "top_p": 0.9,
        "max_tokens": 64,
        "frequency_penalty": 0.3,
        "stop": ["<|im_end|>"],
    }
    assert not {"top_k", "repetition_penalty"} & exact.keys()  # OpenAI would answer 400
    assert "stop" not in defaults
    assert defaults["temperature"] == pytest.approx(0.8)


async def test_extended_sampling_sends_top_k_and_repetition_penalty_to_vllm(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.extra_chat_parameters = VLLM_SAMPLING_PARAMETERS
    await backend(client, sampling=SAMPLING, extended_sampling=True).reply(prompt(("them", "hi")))
    await backend(client, extended_sampling=True).reply(prompt(("them", "hi")))
    tuned, defaults = fake.chat_bodies()
    assert (tuned["top_k"], tuned["repetition_penalty"]) == (40, 1.1)
    assert defaults["top_k"] == 50
    assert "repetition_penalty" not in defaults  # 1.0 is off: nothing to send


# --- the answer ---------------------------------------------------------------------------


async def test_answer_is_split_into_bubbles_at_blank_lines(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.reply_with("omg yesss\n\nwhat time 🍕\n\n\nsam coming?")
    reply = await backend(client).reply(prompt(("them", "pizza tonight?")))
    assert reply.bubbles == ("omg yesss", "what time 🍕", "sam coming?")
    assert (reply.backend, reply.model) == ("openai-compatible", MODEL)
    assert reply.latency_s > 0


async def test_a_one_piece_answer_is_not_split_again(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, maya: tuple[DatasetBuild, Profile]
) -> None:
    _, profile = maya
    text = "ok so i went to the shop. they had none left. literally none, can u believe it"
    fake.reply_with(text)
    reply = await backend(client, profile=profile).reply(prompt(("them", "any luck?")))
    assert reply.bubbles == (text,)


async def test_a_bubble_cut_off_by_max_tokens_is_not_sent(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.reply_with("yesss\n\nomg wait i have to tell u about the thing that happened today")
    chat = backend(client, sampling=SamplingSettings(max_new_tokens=8))
    reply = await chat.reply(prompt(("them", "pizza?")))
    assert reply.bubbles == ("yesss",)


async def test_an_empty_answer_means_unavailable(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.reply_with("  ", finish_reason="content_filter")
    with pytest.raises(BackendUnavailable, match="content_filter"):
        await backend(client).reply(prompt(("them", "pizza tonight?")))


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_mean_unavailable(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, status: int
) -> None:
    fake.fail_with(status)
    with pytest.raises(BackendUnavailable, match=str(status)):
        await backend(client).reply(prompt(("them", "pizza tonight?")))


@pytest.mark.parametrize("status", [400, 401])
async def test_a_rejected_request_is_a_backend_error_not_unavailable(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, status: int
) -> None:
    fake.fail_with(status)
    with pytest.raises(BackendError, match=str(status)) as caught:
        await backend(client).reply(prompt(("them", "pizza tonight?")))
    assert not isinstance(caught.value, BackendUnavailable)


async def test_a_model_the_server_does_not_serve_is_a_backend_error_naming_it(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.chat_models = {"sam-v1"}
    with pytest.raises(BackendError, match=r"404.*'maya-v3'") as caught:
        await backend(client).reply(prompt(("them", "pizza tonight?")))
    assert not isinstance(caught.value, BackendUnavailable)


async def test_a_wrong_key_is_a_backend_error(fake: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(
        api_key="sk-wrong", base_url=fake.base_url, max_retries=0
    ) as wrong:
        with pytest.raises(BackendError, match="401") as caught:
            await backend(wrong).reply(prompt(("them", "pizza tonight?")))
    assert not isinstance(caught.value, BackendUnavailable)


async def test_an_unreachable_server_means_unavailable() -> None:
    with FakeOpenAI().serve() as gone:
        url = gone.base_url
    async with openai.AsyncOpenAI(api_key=API_KEY, base_url=url, max_retries=0) as client:
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await backend(client).reply(prompt(("them", "pizza tonight?")))


@pytest.mark.parametrize("outage", ["503", "hang"])
async def test_chain_falls_back_when_the_server_is_down_or_too_slow(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, outage: str
) -> None:
    if outage == "503":
        fake.fail_with(503)
    else:
        fake.hang(10.0)
    chain = FallbackChain(
        [backend(client), RetrievalStub()], deadline_s=0.5, failures_to_open=3, reset_s=60
    )
    reply = await chain.reply(prompt(("them", "pizza tonight?")))
    assert reply.backend == "retrieval"
    assert chain.health()[0].last_error == (
        "BackendUnavailable" if outage == "503" else "TimeoutError"
    )


# --- privacy ------------------------------------------------------------------------------


async def test_a_remote_endpoint_gets_scrubbed_text(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    chat = backend(client, remote=True, scrubber=Scrubber(region="GB"))
    await chat.reply(prompt(("them", PHONE_TEXT)))
    sent = fake.chat_bodies()[0]["messages"][1]["content"]
    assert "900123" not in sent
    assert "maya@example.com" not in sent
    assert sent.startswith("call me on [PHONE]")


async def test_a_local_endpoint_gets_the_text_as_written(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    await backend(client, scrubber=Scrubber(region="GB")).reply(prompt(("them", PHONE_TEXT)))
    sent = fake.chat_bodies()[0]["messages"][1]["content"]
    assert sent == "call me on 07700 900123\n\nor maya@example.com"


async def test_when_drop_mode_drops_the_message_to_answer_nothing_is_sent(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    chat = backend(client, remote=True, scrubber=Scrubber("drop", region="GB"))
    with pytest.raises(BackendUnavailable, match="dropped"):
        await chat.reply(prompt(("them", "call 07700 900123")))
    assert fake.chat_bodies() == []


async def test_a_remote_backend_without_a_scrubber_is_refused(
    client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(ValueError, match="scrubber"):
        OpenAIChatBackend(client, model=MODEL, card=CARD, scrubber=None, remote=True)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.8.9.10:8000/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://[::ffff:127.0.0.1]:8080/v1", True),
        ("http://gpu-box:8000/v1", False),
        ("http://192.168.1.20:8000/v1", False),
        ("http://0.0.0.0:8000/v1", False),
        ("https://localhost.example.com/v1", False),
        (OPENAI_API_URL, False),
    ],
)
def test_only_loopback_endpoints_count_as_local(url: str, local: bool) -> None:
    assert is_local_endpoint(url) is local


# --- the factory --------------------------------------------------------------------------


def registered(tmp_path: Path, kind: BackendKind, **fields: str) -> ModelVersion:
    registry = Registry.open(tmp_path / "registry.db")
    return import_model(registry, "Maya", kind, **fields)


def test_factory_skips_a_remote_endpoint_unless_remote_backends_are_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version = registered(
        tmp_path,
        BackendKind.OPENAI_COMPATIBLE,
        endpoint="http://gpu-box:8000/v1",
        remote_id=MODEL,
    )
    with caplog.at_level(logging.INFO, logger="bot.backends.openai_chat"):
        made = openai_chat_from_version(version, settings_for(tmp_path), CARD)
    assert made is None
    assert "ALLOW_REMOTE_BACKENDS" in caplog.text
    assert "gpu-box" in caplog.text
    assert CARD not in caplog.text


def test_factory_skips_an_openai_model_without_a_key_or_permission(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version = registered(tmp_path, BackendKind.OPENAI, remote_id="ft:gpt-4.1-mini:org:maya:x")
    with caplog.at_level(logging.INFO, logger="bot.backends.openai_chat"):
        no_key = openai_chat_from_version(
            version, settings_for(tmp_path, allow_remote_backends=True), CARD
        )
        not_allowed = openai_chat_from_version(
            version, settings_for(tmp_path, openai_api_key=API_KEY), CARD
        )
    assert no_key is None
    assert not_allowed is None
    assert "OPENAI_API_KEY" in caplog.text
    assert "ALLOW_REMOTE_BACKENDS" in caplog.text


def test_factory_leaves_local_model_kinds_to_the_local_backend(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "tiny"}')
    version = registered(tmp_path, BackendKind.LOCAL_ADAPTER, path=str(adapter))
    assert openai_chat_from_version(version, settings_for(tmp_path), CARD) is None


@pytest.mark.parametrize("api_key", [None, "vllm-key"])
async def test_factory_for_a_local_server_needs_no_permission_and_sends_text_unscrubbed(
    tmp_path: Path, api_key: str | None
) -> None:
    with FakeOpenAI(api_key=api_key or "EMPTY").serve() as vllm:
        assert vllm.base_url is not None
        vllm.extra_chat_parameters = VLLM_SAMPLING_PARAMETERS
        version = registered(
            tmp_path, BackendKind.OPENAI_COMPATIBLE, endpoint=vllm.base_url, remote_id=MODEL
        )
        made = openai_chat_from_version(
            version, settings_for(tmp_path, openai_api_key="sk-not-for-vllm"), CARD, api_key=api_key
        )
        assert made is not None
        vllm.reply_with("yess\n\nwhen")
        try:
            reply = await made.reply(prompt(("them", PHONE_TEXT)))
        finally:
            await made.aclose()
    assert reply.bubbles == ("yess", "when")
    assert (reply.backend, reply.model) == ("openai-compatible", MODEL)
    [request] = vllm.requests_to("POST", "/v1/chat/completions")
    assert request.authorization == f"Bearer {api_key or 'EMPTY'}"  # never the OpenAI key
    assert request.body["top_k"] == SamplingSettings().top_k
    assert (
        request.body["messages"][1]["content"] == "call me on 07700 900123\n\nor maya@example.com"
    )
    assert made.remote is False


async def test_factory_for_an_allowed_remote_server_scrubs_what_it_sends(tmp_path: Path) -> None:
    version = registered(
        tmp_path,
        BackendKind.OPENAI_COMPATIBLE,
        endpoint="http://gpu-box:8000/v1",
        remote_id=MODEL,
    )
    made = openai_chat_from_version(
        version, settings_for(tmp_path, allow_remote_backends=True, scrub_region="GB"), CARD
    )
    assert made is not None
    try:
        sent = made.messages(prompt(("them", PHONE_TEXT)))
    finally:
        await made.aclose()
    assert made.remote is True
    assert made.endpoint.startswith("http://gpu-box:8000/v1")
    assert sent[1] == {"role": "user", "content": "call me on [PHONE]\n\nor [EMAIL]"}


async def test_factory_for_an_openai_model_calls_the_configured_api_with_the_key(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    model_id = "ft:gpt-4.1-mini-2025-04-14:org-fake:maya:AbC123"
    version = registered(tmp_path, BackendKind.OPENAI, remote_id=model_id)
    made = openai_chat_from_version(
        version,
        settings_for(
            tmp_path,
            allow_remote_backends=True,
            openai_api_key=API_KEY,
            openai_base_url=fake.base_url,
            scrub_region="GB",
        ),
        CARD,
    )
    assert made is not None
    fake.reply_with("yess")
    try:
        reply = await made.reply(prompt(("them", PHONE_TEXT)))
    finally:
        await made.aclose()
    assert (reply.bubbles, reply.backend, reply.model) == (("yess",), "openai", model_id)
    [request] = fake.requests_to("POST", "/v1/chat/completions")
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.body["model"] == model_id
    assert "900123" not in request.body["messages"][1]["content"]  # OpenAI is always remote


async def test_factory_for_openai_defaults_to_the_public_api(tmp_path: Path) -> None:
    version = registered(tmp_path, BackendKind.OPENAI, remote_id="ft:gpt-4.1-mini:org:maya:x")
    made = openai_chat_from_version(
        version, settings_for(tmp_path, allow_remote_backends=True, openai_api_key="sk-x"), CARD
    )
    assert made is not None
    await made.aclose()
    assert made.endpoint.rstrip("/") == OPENAI_API_URL
    assert made.remote is True
