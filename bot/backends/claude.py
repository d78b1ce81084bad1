"""The Claude few-shot backend: the persona card plus real past exchanges, sent to Claude.

Each request carries two system blocks: the persona card (the dataset's own system prompt)
with the answering rules, marked for prompt caching because it never changes for a persona,
then the exchanges from the persona's history that best match the live conversation
(`bot.exchanges.ExchangeIndex`), which change with every turn. The recent turns follow as
alternating user/assistant messages. Everything sent passes through the `Scrubber` first:
the live conversation was never scrubbed, and scrubbing the examples again costs little.

`strength` (0 "inspired by" .. 1 "exact replication") sets how many examples are shown,
`examples * (0.25 + 0.75 * strength)`, and how they are introduced: "copy their style
exactly" from 0.75, "write the way they write" from 0.25, "let them inspire your voice"
below. More real evidence makes an exact copy; fewer examples leave room for a freer voice.
There is no temperature to turn: API version 2026-10-21 (the one anthropic 2.x sends)
rejects `temperature`, `top_p` and `top_k` on every model, and the SDK no longer has them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import anthropic

from bot.backends.api_errors import status_error
from bot.backends.base import Prompt, Reply
from bot.backends.conversation import (
    RoleBubbles,
    merged_turns,
    opened_by_user,
    require_answerable,
    require_user_turn,
    scrubbed,
)
from bot.bubbles import split_bubbles
from bot.errors import BackendError, BackendUnavailable
from bot.exchanges import ScoredExchange, TurnLike
from bot.scrubbing import live_scrubber
from training.dataset.persona_card import time_of_day
from training.dataset.samples import BUBBLE_SEPARATOR, CONVERSATION_START

if TYPE_CHECKING:
    from anthropic.types import MessageParam, TextBlockParam

    from bot.settings import Settings
    from style.profile import Profile
    from style.scrub import Scrubber

__all__ = [
    "HISTORY_TURNS",
    "MAX_TOKENS",
    "RETRIES",
    "ClaudeBackend",
    "ExchangeSearch",
    "StyleCard",
    "TokenUsage",
    "claude_from_settings",
    "example_count",
    "mapped_error",
    "write_style_card",
]

logger = logging.getLogger(__name__)

MAX_TOKENS = 1024
"""A cap, not a target: a turn is a few short messages, but models that think adaptively
spend part of `max_tokens` on thinking before they write."""
HISTORY_TURNS = 16
"""Recent turns of the live conversation sent as messages (after merging same-role turns)."""
RETRIES = 1
"""SDK retries in production: one quick retry, as the fallback chain's deadline bounds it."""
_REPLY_TAGS = frozenset({"<you>", "</you>"})


class ExchangeSearch(Protocol):
    """What the backend needs of `bot.exchanges.ExchangeIndex`: similarity search."""

    def search(
        self, history: Sequence[TurnLike], *, k: int, now: datetime | None = None
    ) -> list[ScoredExchange]: ...


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens billed by the API: fresh input, cache reads and writes, and output."""

    input: int = 0
    cache_read: int = 0
    cache_creation: int = 0
    output: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input + other.input,
            self.cache_read + other.cache_read,
            self.cache_creation + other.cache_creation,
            self.output + other.output,
        )


def example_count(examples: int, strength: float) -> int:
    """Examples shown at this strength: all at 1, a quarter at 0, at least one if any."""
    if examples <= 0:
        return 0
    return max(1, round(examples * (0.25 + 0.75 * _clamped(strength))))


class ClaudeBackend:
    """Writes the persona's reply with Claude, shown the card and k matching real exchanges.

    Args:
        client: the SDK client (its base URL, key, retries and timeout are the caller's).
        model: the Claude model id.
        card: the persona card (`training.dataset.persona_card`), as in the dataset.
        index: finds the persona's past exchanges that match the live conversation.
        examples: exchanges shown at strength 1.
        scrubber: treats all text before it is sent; None only when the caller scrubs.
        profile: lets `split_bubbles` split a one-piece answer the way the persona does.
        max_tokens: the answer's token cap.
        history_turns: recent conversation turns sent as messages.
        rng: draws bubble counts (seed it in tests).
    """

    name = "claude"

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        model: str,
        card: str,
        index: ExchangeSearch,
        examples: int,
        scrubber: Scrubber | None,
        profile: Profile | None = None,
        max_tokens: int = MAX_TOKENS,
        history_turns: int = HISTORY_TURNS,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self.card = card
        self._index = index
        self.examples = examples
        self._scrubber = scrubber
        self._profile = profile
        self.max_tokens = max_tokens
        self.history_turns = history_turns
        self._rng = rng or random.Random()
        self.usage = TokenUsage()
        """Tokens used by every request so far (for cost reports)."""

    async def reply(self, prompt: Prompt) -> Reply:
        """Ask Claude for the persona's next turn; API trouble becomes `BackendUnavailable`."""
        messages = self._messages(prompt)
        system = self._system(prompt)
        started = time.perf_counter()
        try:
            answer = await self._client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system,
                messages=messages,
            )
        except anthropic.AnthropicError as exc:
            raise mapped_error(exc) from exc
        latency = time.perf_counter() - started
        usage = _usage(answer.usage)
        self.usage += usage
        logger.debug(
            "claude %s: %.2fs, tokens in=%d cache_read=%d cache_write=%d out=%d, stop=%s",
            answer.model,
            latency,
            usage.input,
            usage.cache_read,
            usage.cache_creation,
            usage.output,
            answer.stop_reason,
        )
        text = _cleaned("".join(block.text for block in answer.content if block.type == "text"))
        if not text:
            raise BackendUnavailable(
                f"Claude returned no text (stop reason {answer.stop_reason}); "
                "the next backend answers"
            )
        bubbles = split_bubbles(text, self._profile, rng=self._rng)
        return Reply(bubbles=bubbles, backend=self.name, model=answer.model, latency_s=latency)

    async def aclose(self) -> None:
        """Close the SDK client's connections (at shutdown; the factory's client is ours)."""
        await self._client.close()

    def _system(self, prompt: Prompt) -> list[TextBlockParam]:
        """The cached card-and-rules block, then this turn's examples and time of day."""
        static = f"{self.card}\n\n{_rules(prompt.persona)}"
        count = example_count(self.examples, prompt.strength)
        found = self._index.search(prompt.history, k=count, now=prompt.now) if count else []
        dynamic = _examples_text(
            prompt.persona, [self._scrubbed_exchange(item) for item in found], prompt.strength
        )
        dynamic = f"{dynamic}\n\n{time_of_day(prompt.now)}" if dynamic else time_of_day(prompt.now)
        return [
            {"type": "text", "text": static, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": dynamic},
        ]

    def _messages(self, prompt: Prompt) -> list[MessageParam]:
        """The recent turns, scrubbed, merged by role and starting with a user turn."""
        history = prompt.history
        require_user_turn(history)
        recent = history[-self.history_turns :]
        merged = merged_turns(recent, self._scrubbed)
        # Claude's text is always scrubbed (here, or by the caller when there is no scrubber).
        require_answerable(merged, scrubbing=True)
        opened_by_user(
            merged, persona_opened=len(recent) == len(history) and recent[0].role == "assistant"
        )
        return [
            {"role": "user" if role == "user" else "assistant", "content": _joined(bubbles)}
            for role, bubbles in merged
        ]

    def _scrubbed(self, bubbles: Sequence[str]) -> list[str]:
        """`bubbles` as sent: scrubbed, less those drop mode leaves out."""
        return scrubbed(bubbles, self._scrubber)

    def _scrubbed_exchange(self, found: ScoredExchange) -> tuple[list[RoleBubbles], list[str]]:
        """An example's context turns and reply, scrubbed; emptied turns are left out."""
        exchange = found.exchange
        context = [(turn.role, self._scrubbed(turn.bubbles)) for turn in exchange.context]
        return [item for item in context if item[1]], self._scrubbed(exchange.reply)


def _rules(persona: str) -> str:
    """How to answer; the same for every turn of a persona, so it is cached with the card."""
    return (
        f"You are writing {persona}'s next messages in a real chat. Answer only as {persona}: "
        f"no quotes, no name labels, no tags, no notes about the reply. Write in the language "
        f"the chat is in, as {persona} does, with {persona}'s usual length, casing, "
        "punctuation and emoji habits; short chat messages, not an assistant's answer. If "
        f"{persona} would send several messages in a row, separate them with a blank line."
    )


def _examples_text(
    persona: str,
    exchanges: Sequence[tuple[list[RoleBubbles], list[str]]],
    strength: float,
) -> str:
    """The examples block: real exchanges, their bubbles one per paragraph."""
    exchanges = [item for item in exchanges if item[1]]
    if not exchanges:
        return ""
    parts = [
        f"Real exchanges from {persona}'s chats. <them> is what the other person wrote, "
        f"<you> is what {persona} really answered; a blank line separates separate "
        f"messages. {_style_instruction(persona, strength)}"
    ]
    for context, reply in exchanges:
        lines = ["<example>"]
        for role, bubbles in context:
            if bubbles == [CONVERSATION_START]:
                lines.append(f"({persona} starts the conversation)")
                continue
            tag = "them" if role == "user" else "you"
            lines.append(f"<{tag}>\n{_joined(bubbles)}\n</{tag}>")
        lines.append(f"<you>\n{_joined(reply)}\n</you>")
        lines.append("</example>")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _style_instruction(persona: str, strength: float) -> str:
    strength = _clamped(strength)
    if strength >= 0.75:
        return f"Copy {persona}'s style exactly: words, spelling, length and emoji."
    if strength >= 0.25:
        return f"Write the way {persona} writes in them."
    return f"Let them inspire your voice; you need not copy {persona} exactly."


def _joined(bubbles: Sequence[str]) -> str:
    return BUBBLE_SEPARATOR.join(bubbles)


def _cleaned(text: str) -> str:
    """The answer without stray example tags, should Claude echo the examples' format."""
    lines = [line for line in text.strip().splitlines() if line.strip() not in _REPLY_TAGS]
    return "\n".join(lines).strip()


def _usage(usage: anthropic.types.Usage) -> TokenUsage:
    return TokenUsage(
        input=usage.input_tokens,
        cache_read=usage.cache_read_input_tokens or 0,
        cache_creation=usage.cache_creation_input_tokens or 0,
        output=usage.output_tokens,
    )


def _clamped(strength: float) -> float:
    return min(1.0, max(0.0, strength))


def mapped_error(exc: anthropic.AnthropicError) -> BackendError:
    """The bot's error for an SDK error: `BackendUnavailable` when trying later may work.

    Connection errors, timeouts, 408/409/429 and every 5xx (529 overloaded included) mean
    the service cannot answer now; other 4xx mean this request is wrong (bad key, bad model,
    too long) and retrying elsewhere would hide it.
    """
    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return BackendUnavailable(f"Claude is unreachable ({type(exc).__name__})")
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(
            "Claude",
            exc.status_code,
            exc.type or type(exc).__name__,
            fix="check the API key (WA_PERSONA_ANTHROPIC_API_KEY) and model "
            "(WA_PERSONA_CLAUDE_MODEL)",
        )
    return BackendError(f"Claude client error ({type(exc).__name__}): {exc}")


def claude_from_settings(
    settings: Settings,
    card: str,
    index: ExchangeSearch,
    *,
    scrubber: Scrubber | None = None,
    profile: Profile | None = None,
) -> ClaudeBackend | None:
    """The Claude backend these settings set up, or None (and an INFO line saying why).

    Without `scrubber`, one is built from the scrub settings: it finds phones, e-mails,
    links, IBANs, cards, IPs and the configured names and blocklist, but not the export's
    own names, which only a scrubber made from the export (`Scrubber.for_messages`) knows.
    """
    if not settings.allow_remote_backends:
        logger.info(
            "Claude backend off: remote backends are not allowed "
            "(set WA_PERSONA_ALLOW_REMOTE_BACKENDS=true to send scrubbed text to Claude)"
        )
        return None
    if settings.anthropic_api_key is None:
        logger.info("Claude backend off: no API key (set WA_PERSONA_ANTHROPIC_API_KEY)")
        return None
    if scrubber is None:
        scrubber = live_scrubber(settings)
    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        max_retries=RETRIES,
        timeout=settings.backend_deadline_s,
    )
    return ClaudeBackend(
        client,
        model=settings.claude_model,
        card=card,
        index=index,
        examples=settings.claude_examples,
        scrubber=scrubber,
        profile=profile,
    )


ANALYZE_SYSTEM = (
    "You study how one person writes text messages and describe it so that another writer "
    "can imitate them. Describe only style, never content: no names, places, numbers or "
    "quotes longer than three words."
)


@dataclass(frozen=True, slots=True)
class StyleCard:
    """A style card Claude wrote, the model that wrote it and the tokens it cost."""

    text: str
    model: str
    usage: TokenUsage


async def write_style_card(
    client: anthropic.AsyncAnthropic,
    model: str,
    samples: Sequence[str],
    card: str,
    *,
    max_tokens: int = 2 * MAX_TOKENS,
) -> StyleCard:
    """A richer style card, written by Claude from a sample of the persona's messages.

    `samples` must already be scrubbed and remote backends allowed: this sends them.
    The answer is a second-person card ("You write...") that can replace or extend `card`.
    """
    if not samples:
        raise BackendError("no messages to analyse; pass a sample of the persona's messages")
    listed = "\n".join(f"<message>{' '.join(text.split())}</message>" for text in samples)
    request = (
        f"Here is a short card about the writer:\n<card>\n{card}\n</card>\n\n"
        f"And {len(samples)} of their messages:\n{listed}\n\n"
        'Write a style card in the second person ("You write..."), at most 200 words: '
        "length and rhythm, splitting into several messages, casing, punctuation, spelling "
        "and abbreviations, emoji and laughter, typical openers and sign-offs, language "
        "mixing, tone. Keep what the card says when the messages agree with it. Answer with "
        "the card only."
    )
    try:
        answer = await client.messages.create(
            model=model,
            max_tokens=max_tokens,
            system=ANALYZE_SYSTEM,
            messages=[{"role": "user", "content": request}],
        )
    except anthropic.AnthropicError as exc:
        raise mapped_error(exc) from exc
    text = "".join(block.text for block in answer.content if block.type == "text").strip()
    if not text:
        raise BackendUnavailable(f"Claude returned no style card (stop {answer.stop_reason})")
    return StyleCard(text=text, model=answer.model, usage=_usage(answer.usage))
