"""The OpenAI-compatible chat backend: a persona model behind `/v1/chat/completions`.

One backend for every server that speaks OpenAI's chat API: an OpenAI fine-tuned model
(registry kind `openai`), and vLLM serving our LoRA adapters, llama.cpp's server or Ollama
(kind `openai-compatible`). The model learned from the dataset's samples, so the request
looks exactly like one (docs/dataset.md): the persona card as the system prompt (with the
time-of-day line when the dataset was built with it), then the conversation as user and
assistant messages that alternate from a user turn, each turn's bubbles joined by a blank
line, group-chat bubbles carrying their speaker ("Sam: see you") as the caller wrote them.
Like a sample, the context is one conversation: with the persona's profile, the turns
before the last silence longer than its conversation gap are left out, and a conversation
the persona opened starts with the dataset's `CONVERSATION_START` user turn.

Sampling is the local backend's (`bot.backends.local.SamplingSettings`), so one adapter
samples alike wherever it runs: temperature, top_p and `max_new_tokens` (as `max_tokens`)
go to every server; `top_k` and `repetition_penalty`, which OpenAI refuses, only with
`extended_sampling` (vLLM reads both, llama.cpp `top_k`, Ollama ignores them).
`frequency_penalty` and `stop` are this API's own.

Strength (0 "inspired by" .. 1 "exact replication") cannot scale a served adapter as the
local backend does, so it sets the temperature, the one knob that trades fidelity for
variety without changing the prompt the model was trained on:
`temperature * (1 + 0.5 * (1 - strength))`, at most 2: 0.8 at strength 1, 1.0 at 0.5 and
1.2 at 0 with the default 0.8; temperature 0 (greedy) stays greedy. The model's blank lines
are its bubbles: it learned them from the persona's own turns, so a one-piece answer is not
split again (that would send more multi-message turns than the persona does).

Privacy: text sent to a remote endpoint (anything but localhost or a loopback address, and
OpenAI always) passes through the `Scrubber` first, and the factory builds such a backend
only when `allow_remote_backends` is set. A server on this machine needs neither: the text
does not leave it.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import openai

from bot.backends.api_errors import UNAVAILABLE_STATUS, status_error
from bot.backends.base import ChatTurn, Prompt, Reply
from bot.backends.conversation import (
    merged_turns,
    opened_by_user,
    require_answerable,
    require_user_turn,
    scrubbed,
)
from bot.backends.local import SamplingSettings
from bot.bubbles import split_bubbles
from bot.errors import BackendError, BackendUnavailable
from bot.scrubbing import live_scrubber
from training.dataset.conversations import fold
from training.dataset.persona_card import time_of_day as time_of_day_line
from training.dataset.samples import BUBBLE_SEPARATOR
from training.registry import BackendKind

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from bot.settings import Settings
    from style.profile import Profile
    from style.scrub import Scrubber
    from training.registry import ModelVersion

__all__ = [
    "HISTORY_TURNS",
    "INSPIRED_HEAT",
    "MAX_STOP",
    "MAX_TEMPERATURE",
    "NO_KEY",
    "OPENAI_API_URL",
    "RETRIES",
    "UNAVAILABLE_STATUS",
    "OpenAIChatBackend",
    "is_local_endpoint",
    "openai_chat_from_version",
    "strength_temperature",
]

logger = logging.getLogger(__name__)

HISTORY_TURNS = 16
"""Recent turns of the conversation sent as messages (after merging same-role turns)."""
RETRIES = 1
"""SDK retries in production: one quick retry, as the fallback chain's deadline bounds it."""
OPENAI_API_URL = "https://api.openai.com/v1"
"""Where kind `openai` goes unless `openai_base_url` says otherwise (never read from env)."""
INSPIRED_HEAT = 0.5
"""How much hotter strength 0 samples than strength 1 (a share of the temperature)."""
MAX_TEMPERATURE = 2.0
"""The highest temperature OpenAI's API accepts."""
MAX_STOP = 4
"""The most stop sequences OpenAI's API accepts."""
NO_KEY = "EMPTY"
"""The key sent to servers that need none (vLLM, llama.cpp and Ollama accept any)."""


def strength_temperature(temperature: float, strength: float) -> float:
    """The temperature at `strength` (clamped to 0..1): up to half again as hot at 0."""
    strength = min(1.0, max(0.0, strength))
    return min(MAX_TEMPERATURE, temperature * (1 + INSPIRED_HEAT * (1 - strength)))


class OpenAIChatBackend:
    """Writes the persona's reply with a model served behind an OpenAI-compatible chat API.

    Args:
        client: the SDK client (its base URL, key, retries and timeout are the caller's).
        model: the model name the server knows (`ft:...`, a vLLM `--lora-modules` name).
        card: the persona card the model was trained with (the dataset's system prompt).
        scrubber: treats the conversation before it is sent to a remote endpoint.
        remote: whether the endpoint is off this machine; only then is text scrubbed.
        profile: its conversation gap cuts the history to the live conversation.
        sampling: the persona's sampling settings (the local backend's).
        frequency_penalty: OpenAI's penalty on repeated tokens (-2..2); 0 keeps the
            persona's own repetitions ("hahaha", "😂😂😂").
        stop: up to four sequences that end the answer.
        extended_sampling: also send `top_k` and `repetition_penalty` (not to OpenAI).
        time_of_day: add the weekday and part-of-day line to the card, as the dataset did.
        history_turns: recent conversation turns sent as messages.
        name: the backend's name in the chain and in replies.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        card: str,
        scrubber: Scrubber | None,
        remote: bool,
        profile: Profile | None = None,
        sampling: SamplingSettings | None = None,
        frequency_penalty: float = 0.0,
        stop: Sequence[str] = (),
        extended_sampling: bool = False,
        time_of_day: bool = False,
        history_turns: int = HISTORY_TURNS,
        name: str = "openai-compatible",
    ) -> None:
        if remote and scrubber is None:
            raise ValueError("a remote endpoint needs a scrubber: conversation text leaves here")
        if history_turns < 1:
            raise ValueError(f"history_turns must be at least 1, not {history_turns}")
        if not -2.0 <= frequency_penalty <= 2.0:
            raise ValueError(f"frequency_penalty must be from -2 to 2, not {frequency_penalty}")
        if len(stop) > MAX_STOP or not all(stop):
            raise ValueError(f"stop takes at most {MAX_STOP} non-empty sequences")
        self._client = client
        self.model = model
        self.card = card
        self._scrubber = scrubber
        self.remote = remote
        self._profile = profile
        self.sampling = sampling or SamplingSettings()
        self.frequency_penalty = frequency_penalty
        self.stop = tuple(stop)
        self.extended_sampling = extended_sampling
        self.time_of_day = time_of_day
        self.history_turns = history_turns
        self.name = name
        self._rng = random.Random()  # `split_bubbles` draws only with a profile: never here

    @property
    def endpoint(self) -> str:
        """The base URL this backend calls (for logs and `doctor`)."""
        return str(self._client.base_url)

    async def reply(self, prompt: Prompt) -> Reply:
        """Ask the model for the persona's next turn; outages become `BackendUnavailable`."""
        messages = self.messages(prompt)
        sampling = self.sampling
        started = time.perf_counter()
        try:
            answer = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=strength_temperature(sampling.temperature, prompt.strength),
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                frequency_penalty=self.frequency_penalty,
                stop=list(self.stop) if self.stop else openai.omit,
                extra_body=self._extra_sampling() or None,
            )
        except openai.OpenAIError as exc:
            raise self._mapped(exc) from exc
        latency = time.perf_counter() - started
        choice = answer.choices[0] if answer.choices else None
        usage = answer.usage
        logger.debug(
            "%s %s: %.2fs, tokens in=%s out=%s, finish=%s",
            self.name,
            self.model,
            latency,
            usage.prompt_tokens if usage else "?",
            usage.completion_tokens if usage else "?",
            choice.finish_reason if choice else None,
        )
        text = (choice.message.content or "").strip() if choice else ""
        if not text:
            raise BackendUnavailable(
                f"{self.name} model {self.model} returned no text "
                f"(finish reason {choice.finish_reason if choice else 'none'}); "
                "the next backend answers"
            )
        bubbles = split_bubbles(text, None, rng=self._rng)
        if choice is not None and choice.finish_reason == "length" and len(bubbles) > 1:
            bubbles = bubbles[:-1]  # cut off mid-bubble by max_tokens: send the whole ones
        return Reply(bubbles=bubbles, backend=self.name, model=self.model, latency_s=latency)

    async def aclose(self) -> None:
        """Close the SDK client's connections (at shutdown; the factory's client is ours)."""
        await self._client.close()

    def messages(self, prompt: Prompt) -> list[ChatCompletionMessageParam]:
        """The request's messages, shaped like a training sample (scrubbed when remote)."""
        history = prompt.history
        require_user_turn(history)
        conversation = self._conversation(history)
        recent = conversation[-self.history_turns :]
        merged = merged_turns(recent, self._outgoing)
        require_answerable(merged, scrubbing=self.remote)
        opened_by_user(
            merged,
            persona_opened=len(recent) == len(conversation) and recent[0].role == "assistant",
        )
        system = self.card
        if self.time_of_day:  # as the dataset builder writes it
            system = f"{system}\n{time_of_day_line(prompt.now)}"
        messages: list[ChatCompletionMessageParam] = []
        if system:
            messages.append({"role": "system", "content": system})
        for role, bubbles in merged:
            content = BUBBLE_SEPARATOR.join(bubbles)
            if role == "user":
                messages.append({"role": "user", "content": content})
            else:
                messages.append({"role": "assistant", "content": content})
        return messages

    def _extra_sampling(self) -> dict[str, float]:
        """`top_k` and `repetition_penalty` when the server takes them and they are on."""
        if not self.extended_sampling:
            return {}
        extra: dict[str, float] = {}
        if self.sampling.top_k > 0:
            extra["top_k"] = self.sampling.top_k
        if self.sampling.repetition_penalty != 1.0:
            extra["repetition_penalty"] = self.sampling.repetition_penalty
        return extra

    def _conversation(self, history: Sequence[ChatTurn]) -> Sequence[ChatTurn]:
        """The turns since the last silence longer than the profile's conversation gap.

        Silences are measured between the turns' times (each turn's last message), as a
        sample never spans two conversations. Without a profile, the whole history.
        """
        if self._profile is None:
            return history
        gap_s = self._profile.conversations.gap_s
        start = 0
        for index in range(len(history) - 1, 0, -1):
            if _seconds(history[index - 1].at, history[index].at) > gap_s:
                start = index
                break
        return history[start:]

    def _outgoing(self, bubbles: Sequence[str]) -> list[str]:
        """`bubbles` as sent: scrubbed for a remote endpoint (drop mode leaves some out), then
        folded as the dataset folds them, so a blank line only ever separates bubbles."""
        if self.remote:
            bubbles = scrubbed(bubbles, self._scrubber)
        folded = (fold(bubble) for bubble in bubbles)
        return [bubble for bubble in folded if bubble]

    def _mapped(self, exc: openai.OpenAIError) -> BackendError:
        """The bot's error for an SDK error: `BackendUnavailable` when trying later may work.

        Connection errors, timeouts, 408/409/429 and every 5xx mean the server cannot answer
        now; other 4xx mean this request is wrong (bad key, a model the server does not
        serve, too long) and retrying elsewhere would hide it.
        """
        server = f"{self.name} server"
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return BackendUnavailable(f"{server} is unreachable ({type(exc).__name__})")
        if isinstance(exc, openai.APIStatusError):
            return status_error(
                server,
                exc.status_code,
                exc.code or type(exc).__name__,
                fix=f"check the API key and that it serves model {self.model!r} (`wa-persona "
                "models list`, the server's served model or --lora-modules names)",
            )
        return BackendError(f"{server} client error ({type(exc).__name__}): {exc}")


def _seconds(before: datetime, after: datetime) -> float:
    return (after - before).total_seconds()


def is_local_endpoint(url: str) -> bool:
    """Whether `url` stays on this machine: `localhost` or a loopback address (nothing resolved).

    Any other host counts as remote, including names that might resolve to this machine:
    a hostname is not proof that the text stays here.
    """
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def openai_chat_from_version(
    version: ModelVersion,
    settings: Settings,
    card: str,
    *,
    scrubber: Scrubber | None = None,
    profile: Profile | None = None,
    sampling: SamplingSettings | None = None,
    time_of_day: bool = False,
    api_key: str | None = None,
) -> OpenAIChatBackend | None:
    """The backend that calls registry `version`, or None (and an INFO line saying why).

    Kind `openai` goes to OpenAI (`openai_base_url`, else api.openai.com) with
    `openai_api_key`, and is always remote. Kind `openai-compatible` goes to
    `version.endpoint` with `api_key` (vLLM's `--api-key`), else the placeholder "EMPTY":
    the OpenAI key is never sent to another server. A remote endpoint needs
    `allow_remote_backends`; without `scrubber`, one is built from the scrub settings.
    """
    if version.kind not in (BackendKind.OPENAI, BackendKind.OPENAI_COMPATIBLE):
        logger.info("%s is a %s model; the local backend serves it", version.version, version.kind)
        return None
    if not version.remote_id:
        logger.info("%s has no model id; re-import it with --model", version.version)
        return None
    if version.kind is BackendKind.OPENAI:
        if settings.openai_api_key is None:
            logger.info(
                "%s off: no OpenAI API key (set WA_PERSONA_OPENAI_API_KEY)", version.version
            )
            return None
        base_url = settings.openai_base_url or OPENAI_API_URL
        key = settings.openai_api_key.get_secret_value()
        remote = True
    else:
        if not version.endpoint:
            logger.info("%s has no endpoint; re-import it with --endpoint", version.version)
            return None
        base_url = version.endpoint
        key = api_key or NO_KEY
        remote = not is_local_endpoint(base_url)
    if remote and not settings.allow_remote_backends:
        logger.info(
            "%s off: %s is not on this machine and remote backends are not allowed "
            "(set WA_PERSONA_ALLOW_REMOTE_BACKENDS=true to send scrubbed text there)",
            version.version,
            urlsplit(base_url).hostname,
        )
        return None
    if remote and scrubber is None:
        scrubber = live_scrubber(settings)
    client = openai.AsyncOpenAI(
        api_key=key, base_url=base_url, max_retries=RETRIES, timeout=settings.backend_deadline_s
    )
    return OpenAIChatBackend(
        client,
        model=version.remote_id,
        card=card,
        scrubber=scrubber,
        remote=remote,
        profile=profile,
        sampling=sampling,
        extended_sampling=version.kind is BackendKind.OPENAI_COMPATIBLE,
        time_of_day=time_of_day,
        name=version.kind.value,
    )
