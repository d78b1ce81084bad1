"""Claude's style card for a persona: a scrubbed sample of her training messages sent once.

`analyze_persona` draws distinct messages (bubbles) from the persona's training split only
(`dataset/train.jsonl`, never `eval.jsonl`, so the card the Claude backend is evaluated with
has not seen the held-out replies), scrubs them with the live scrubber and asks Claude
(`bot.backends.claude.write_style_card`) for a richer card. `save_card` keeps it as
`claude_card.txt` in the persona's folder, where the Claude backend finds it
(`claude_card`); the local and OpenAI backends keep the dataset's card, the one their
models were trained with. Rebuilding the persona keeps the file; deleting the persona
deletes its folder, this file with it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import BotError
from bot.personas import CLAUDE_CARD_FILE, load_persona
from bot.scrubbing import live_scrubber
from training.dataset.conversations import DELETED_PLACEHOLDER, PLACEHOLDERS
from training.dataset.samples import BUBBLE_SEPARATOR

if TYPE_CHECKING:
    import anthropic
    from pydantic import SecretStr

    from bot.backends.claude import TokenUsage
    from bot.personas import PersonaAssets
    from bot.settings import Settings

__all__ = [
    "CLAUDE_CARD_FILE",
    "DEFAULT_SAMPLES",
    "RemoteNotAllowedError",
    "StyleAnalysis",
    "StyleAnalysisError",
    "analyze_persona",
    "claude_card",
    "save_card",
    "training_bubbles",
]

logger = logging.getLogger(__name__)

DEFAULT_SAMPLES = 150
"""Messages sent by default: enough to show her habits, a few thousand tokens."""
_TRAIN_FILE = "train.jsonl"
_TIMEOUT_S = 120.0
"""One request that may write 2,048 tokens: longer than a chat reply's deadline."""
_MEDIA_ONLY = frozenset({*PLACEHOLDERS.values(), DELETED_PLACEHOLDER})
"""Bubbles with no words of the persona ("[photo]"): nothing to learn her writing from."""


class StyleAnalysisError(BotError):
    """The persona's style card cannot be written or saved."""


class RemoteNotAllowedError(StyleAnalysisError):
    """The settings do not allow sending the persona's messages to Anthropic."""


@dataclass(frozen=True, slots=True)
class StyleAnalysis:
    """The card Claude wrote for a persona and what it took: messages sent, model, tokens."""

    persona: str
    card: str
    messages: int
    """How many of the persona's (scrubbed) messages were sent."""
    model: str
    usage: TokenUsage


async def analyze_persona(
    settings: Settings,
    persona: str,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    client: anthropic.AsyncAnthropic | None = None,
) -> StyleAnalysis:
    """Ask Claude for a richer style card from `samples` of the persona's training messages.

    The same `seed` draws the same messages. Nothing is sent unless remote backends are
    allowed and an Anthropic key is set (`RemoteNotAllowedError` says what would be sent).
    `client` replaces the one built from the settings (and is then the caller's to close).
    """
    if samples < 1:
        raise StyleAnalysisError(f"send at least 1 message (samples), not {samples}")
    assets = load_persona(settings, persona)
    drawn = _draw(training_bubbles(assets), samples, seed, settings)
    if not drawn:
        raise StyleAnalysisError(
            f"{assets.name}'s training split has no messages with words left after scrubbing; "
            f"prepare the persona from more chats (wa-persona persona add {assets.name!r} ...)"
        )
    key = _remote_key(settings, assets.name, len(drawn))

    from bot.backends.claude import write_style_card

    own = client is None
    if client is None:
        client = _client(settings, key)
    logger.info(
        "analysing %s: %d scrubbed messages to Anthropic (%s)",
        assets.info.slug,
        len(drawn),
        settings.claude_model,
    )
    try:
        written = await write_style_card(client, settings.claude_model, drawn, assets.card)
    finally:
        if own:
            await client.close()
    return StyleAnalysis(
        persona=assets.name,
        card=written.text,
        messages=len(drawn),
        model=written.model,
        usage=written.usage,
    )


def training_bubbles(persona: PersonaAssets) -> list[str]:
    """The persona's distinct messages in her training split, in file order.

    Read from the assistant turns of `train.jsonl`, split into bubbles as the dataset
    joins them; media-only placeholders and empty bubbles are left out.
    """
    path = persona.dataset_dir / _TRAIN_FILE
    seen: dict[str, None] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                for content in _assistant_contents(line, path, number):
                    for bubble in content.split(BUBBLE_SEPARATOR):
                        text = bubble.strip()
                        if text and text not in _MEDIA_ONLY:
                            seen.setdefault(text)
    except OSError as exc:
        raise StyleAnalysisError(
            f"cannot read {path} ({exc.strerror or exc}); prepare the persona again with "
            f"`wa-persona persona add {persona.name!r} EXPORT...`"
        ) from exc
    return list(seen)


def save_card(settings: Settings, persona: str, card_text: str) -> Path:
    """Write the card as the persona's `claude_card.txt` (atomically, readable by us only).

    It describes a private person, so the file is 0600. A running bot notices the new file
    and loads the persona again at her next message.
    """
    text = card_text.strip()
    if not text:
        raise StyleAnalysisError("the style card is empty; nothing to save")
    folder = load_persona(settings, persona).folder
    target = folder / CLAUDE_CARD_FILE
    partial = folder / f".{CLAUDE_CARD_FILE}.{secrets.token_hex(4)}.partial"
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StyleAnalysisError(f"cannot write {target} ({exc.strerror or exc})") from exc
    logger.info("saved the Claude style card of %s", folder.name)
    return target


def claude_card(persona: PersonaAssets) -> str | None:
    """The card `wa-persona analyze --save` wrote for the persona, or None when there is none."""
    path = persona.folder / CLAUDE_CARD_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("%s is unreadable (%s); Claude gets the dataset's card", path, exc)
        return None
    return text or None


def _assistant_contents(line: str, path: Path, number: int) -> Iterator[str]:
    """The assistant turns' texts of one `train.jsonl` line."""
    try:
        sample = json.loads(line)
        messages = sample["messages"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StyleAnalysisError(
            f"{path}:{number} is not a dataset line ({type(exc).__name__}); prepare the "
            f"persona again"
        ) from exc
    for message in messages:
        if message.get("role") == "assistant" and isinstance(message.get("content"), str):
            yield message["content"]


def _draw(bubbles: list[str], samples: int, seed: int, settings: Settings) -> list[str]:
    """`samples` distinct bubbles in a seeded order, scrubbed; those scrubbing empties skipped."""
    order = list(bubbles)
    random.Random(seed).shuffle(order)
    scrubber = live_scrubber(settings)
    drawn: dict[str, None] = {}
    for bubble in order:
        if len(drawn) == samples:
            break
        text = scrubber.scrub_text(bubble)
        if text and text.strip():
            drawn.setdefault(text.strip())
    return list(drawn)


def _remote_key(settings: Settings, name: str, count: int) -> SecretStr:
    """The Anthropic key, when the settings allow sending `count` of `name`'s messages."""
    missing = []
    if not settings.allow_remote_backends:
        missing.append("remote backends are not allowed")
    if settings.anthropic_api_key is None:
        missing.append("no Anthropic API key is set")
    if missing or settings.anthropic_api_key is None:
        raise RemoteNotAllowedError(
            f"this would send {count} of {name}'s messages, scrubbed, to Anthropic "
            f"({settings.claude_model}), but {' and '.join(missing)}; to allow it set "
            "WA_PERSONA_ALLOW_REMOTE_BACKENDS=true and WA_PERSONA_ANTHROPIC_API_KEY"
        )
    return settings.anthropic_api_key


def _client(settings: Settings, key: SecretStr) -> anthropic.AsyncAnthropic:
    """The SDK client as `claude_from_settings` builds it, with room for a long answer."""
    import anthropic

    from bot.backends.claude import RETRIES

    return anthropic.AsyncAnthropic(
        api_key=key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        max_retries=RETRIES,
        timeout=max(settings.backend_deadline_s, _TIMEOUT_S),
    )
