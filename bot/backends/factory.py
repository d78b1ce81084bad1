"""Backends by name, built for one prepared persona; the fallback chain the settings list.

Each backend name maps to one small builder that returns the backend, or None (with an INFO
line saying why) when it is not set up: no key, remote backends not allowed, no model.
Names without an implementation are not registered, so asking for one is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.backends.base import Backend
from bot.backends.fallback import FallbackChain
from bot.errors import BackendError

if TYPE_CHECKING:
    from bot.personas import PersonaAssets
    from bot.settings import Settings
    from training.registry import Registry

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


BackendBuilder = Callable[["PersonaAssets", "Settings", "Registry"], Backend | None]


def _retrieval(persona: PersonaAssets, settings: Settings, registry: Registry) -> Backend:
    """The persona's own past replies that best fit the chat; always available."""
    from bot.backends.retrieval import RetrievalBackend

    return RetrievalBackend(persona.index)


def _claude(persona: PersonaAssets, settings: Settings, registry: Registry) -> Backend | None:
    """Claude shown the persona card and her matching real exchanges (remote, needs a key)."""
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

    return claude_from_settings(settings, persona.card, persona.index, profile=persona.profile)


BUILDERS: dict[str, BackendBuilder] = {
    "claude": _claude,
    "retrieval": _retrieval,
}
"""One builder per backend name (`WA_PERSONA_BACKENDS` lists names from here)."""


def backend_names() -> list[str]:
    """The backend names wa-persona knows, sorted."""
    return sorted(BUILDERS)


def build_backend(
    name: str, persona: PersonaAssets, settings: Settings, registry: Registry
) -> Backend | None:
    """The backend `name` for `persona`, or None when it is not set up (logged at INFO)."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise UnknownBackendError(
            f"unknown backend {name!r}; choose from {', '.join(backend_names())} "
            "(WA_PERSONA_BACKENDS or --backend)"
        )
    backend = builder(persona, settings, registry)
    if backend is None:
        logger.info("backend %s is not set up for persona %s; skipped", name, persona.info.slug)
    return backend


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
