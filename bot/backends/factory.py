"""Backends by name, built for one prepared persona; the fallback chain the settings list.

Each backend name maps to one small builder that returns the backend, or None (with an INFO
line saying why) when it is not set up: no key, remote backends not allowed, no model.
Names without an implementation are not registered, so asking for one is an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.backends.base import Backend
from bot.backends.fallback import FallbackChain
from bot.errors import BackendError

if TYPE_CHECKING:
    from bot.backends.local import SamplingSettings
    from bot.personas import PersonaAssets
    from bot.settings import Settings
    from training.registry import ModelVersion, Registry

__all__ = [
    "BUILDERS",
    "BackendBuilder",
    "NoBackendError",
    "UnknownBackendError",
    "backend_names",
    "build_backend",
    "build_chain",
]

logger = logging.getLogger(__name__)


class UnknownBackendError(BackendError):
    """A backend name that wa-persona does not have."""


class NoBackendError(BackendError):
    """None of the listed backends is set up for this persona."""


_LOCAL_KINDS = ("local-adapter", "local-model")

BackendBuilder = Callable[["PersonaAssets", "Settings", "Registry"], Backend | None]


def _retrieval(persona: PersonaAssets, settings: Settings, registry: Registry) -> Backend:
    """The persona's own past replies that best fit the chat; always available."""
    from bot.backends.retrieval import RetrievalBackend

    return RetrievalBackend(persona.index)


def _claude(persona: PersonaAssets, settings: Settings, registry: Registry) -> Backend | None:
    """Claude shown the persona card and her matching real exchanges (remote, needs a key).

    The card is Claude's own (`wa-persona analyze --save`) when there is one: no model was
    trained on the dataset's card here, so the richer description serves better.
    """
    # Checked here too, so a chain without Claude never imports its SDK (about 2 s).
    if not settings.allow_remote_backends:
        logger.info(
            "claude: remote backends are not allowed (WA_PERSONA_ALLOW_REMOTE_BACKENDS=true "
            "sends scrubbed text to Claude)"
        )
        return None
    if settings.anthropic_api_key is None:
        logger.info("claude: no API key (set WA_PERSONA_ANTHROPIC_API_KEY)")
        return None
    from bot.backends.claude import claude_from_settings
    from bot.style_analysis import claude_card

    card = claude_card(persona) or persona.card
    return claude_from_settings(settings, card, persona.index, profile=persona.profile)


def _local(persona: PersonaAssets, settings: Settings, registry: Registry) -> Backend | None:
    """The persona's active local version: an adapter on its base, or a full model."""
    version = registry.active(persona.name)
    if version is None or version.kind not in _LOCAL_KINDS:
        logger.info("local: %s has no active local model version", persona.info.slug)
        return None
    return _version_backend(version, persona, settings)


def _openai(persona: PersonaAssets, settings: Settings, registry: Registry) -> Backend | None:
    """The persona's active OpenAI or OpenAI-compatible model (vLLM, llama.cpp, Ollama)."""
    version = registry.active(persona.name)
    if version is None or version.kind in _LOCAL_KINDS:
        logger.info("openai: %s has no active OpenAI-compatible version", persona.info.slug)
        return None
    return _version_backend(version, persona, settings)


def _base(persona: PersonaAssets, settings: Settings, registry: Registry) -> Backend | None:
    """The untuned base of the active local version, shown only the persona card."""
    version = registry.active(persona.name)
    if version is None or version.kind not in _LOCAL_KINDS or not version.base_model:
        logger.info("base: %s has no active local version with a base model", persona.info.slug)
        return None
    return _base_backend(version.base_model, persona, settings)


BUILDERS: dict[str, BackendBuilder] = {
    "base": _base,
    "claude": _claude,
    "local": _local,
    "openai": _openai,
    "retrieval": _retrieval,
}
"""One builder per backend name (`WA_PERSONA_BACKENDS` lists names from here)."""


def _version_backend(
    version: ModelVersion, persona: PersonaAssets, settings: Settings
) -> Backend | None:
    """The backend that serves one registry version, whatever its kind."""
    if version.kind in _LOCAL_KINDS:
        from bot.backends.local import SamplingSettings, local_from_version

        return local_from_version(
            version,
            persona.card,
            profile=persona.profile,
            sampling=_sampling(settings, SamplingSettings),
            load_in_4bit=settings.local_load_in_4bit,
            allow_download=settings.allow_model_downloads,
            time_of_day=_time_of_day(persona),
        )
    from bot.backends.openai_chat import openai_chat_from_version

    key = settings.openai_compatible_api_key
    return openai_chat_from_version(
        version,
        settings,
        persona.card,
        profile=persona.profile,
        time_of_day=_time_of_day(persona),
        api_key=key.get_secret_value() if key and version.kind != "openai" else None,
    )


def _base_backend(base_model: str, persona: PersonaAssets, settings: Settings) -> Backend:
    from bot.backends.local import SamplingSettings, local_base

    return local_base(
        base_model,
        persona.card,
        profile=persona.profile,
        sampling=_sampling(settings, SamplingSettings),
        load_in_4bit=settings.local_load_in_4bit,
        allow_download=settings.allow_model_downloads,
        time_of_day=_time_of_day(persona),
    )


def _sampling(settings: Settings, cls: type[SamplingSettings]) -> SamplingSettings:
    return cls(
        temperature=settings.local_temperature,
        top_p=settings.local_top_p,
        max_new_tokens=settings.local_max_new_tokens,
    )


def _time_of_day(persona: PersonaAssets) -> bool:
    """Whether the persona's dataset put a time-of-day line in the card (serving must too)."""
    try:
        card = json.loads((persona.dataset_dir / "dataset_card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(card.get("settings", {}).get("time_of_day", False))


def backend_names() -> list[str]:
    """The backend names wa-persona knows, sorted."""
    return sorted(BUILDERS)


def build_backend(
    name: str, persona: PersonaAssets, settings: Settings, registry: Registry
) -> Backend | None:
    """The backend `name` for `persona`, or None when it is not set up (logged at INFO)."""
    builder = BUILDERS.get(name)
    if builder is not None:
        backend = builder(persona, settings, registry)
    else:
        backend = _named_version(name, persona, settings, registry)
    if backend is None:
        logger.info("backend %s is not set up for persona %s; skipped", name, persona.info.slug)
    return backend


def _named_version(
    name: str, persona: PersonaAssets, settings: Settings, registry: Registry
) -> Backend | None:
    """A registry version id (`maya-v3`), or its untuned base (`base:maya-v3`)."""
    from training.registry import UnknownVersionError

    base, _, version_id = name.rpartition(":")
    try:
        version = registry.get(version_id)
    except UnknownVersionError:
        version = None
    if version is None or base not in ("", "base") or version.persona != persona.name:
        raise UnknownBackendError(
            f"unknown backend {name!r}; choose from {', '.join(backend_names())}, a model "
            f"version of {persona.name} (`wa-persona models`) or base:VERSION"
        )
    if version.status in ("training", "failed"):
        raise UnknownBackendError(f"{version_id} is {version.status}; it has no model to serve")
    if base:
        if version.kind not in _LOCAL_KINDS or not version.base_model:
            raise UnknownBackendError(f"{version_id} is not a local adapter with a base model")
        return _base_backend(version.base_model, persona, settings)
    return _version_backend(version, persona, settings)


def build_chain(
    persona: PersonaAssets,
    settings: Settings,
    registry: Registry,
    names: Sequence[str] | None = None,
) -> FallbackChain:
    """The fallback chain of `names` (default `settings.backends`), skipping those not set up."""
    names = list(settings.backends if names is None else names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BackendError(f"backend {', '.join(repeated)} is listed twice; list each once")
    backends = [
        backend
        for name in names
        if (backend := build_backend(name, persona, settings, registry)) is not None
    ]
    if not backends:
        raise NoBackendError(
            f"none of the backends {', '.join(names) or '(none listed)'} is set up for "
            f"{persona.name}; add retrieval to WA_PERSONA_BACKENDS, which needs nothing"
        )
    return FallbackChain(
        backends,
        deadline_s=settings.backend_deadline_s,
        failures_to_open=settings.breaker_failures,
        reset_s=settings.breaker_reset_s,
    )
