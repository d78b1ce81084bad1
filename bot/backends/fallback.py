"""The fallback chain: backends tried in order, each under a deadline and a circuit breaker.

A backend that raises `BackendUnavailable` or misses the deadline is logged (its name and
the error class, never text) and the next one is tried. Any other error propagates: a
request the backend rejects is a bug to see, not an outage to route around.

Each backend has a circuit breaker. After `failures_to_open` failures in a row it opens and
the chain skips that backend for `reset_s` seconds; the first call after that is a single
trial (half-open): success closes the breaker, failure opens it for another `reset_s`.
While the trial runs, other calls skip the backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from bot.backends.base import Backend, Prompt, Reply
from bot.errors import BackendUnavailable

__all__ = ["AllBackendsFailed", "BackendHealth", "BreakerOpen", "BreakerState", "FallbackChain"]

logger = logging.getLogger(__name__)


class AllBackendsFailed(BackendUnavailable):
    """No backend of the chain answered; `causes` pairs each backend's name with its error.

    A `BackendUnavailable`, so a chain can itself sit inside another chain.
    """

    def __init__(self, causes: Sequence[tuple[str, BaseException]]) -> None:
        self.causes = tuple(causes)
        listed = ", ".join(f"{name}: {_describe(error)}" for name, error in self.causes)
        super().__init__(
            f"no persona backend answered ({listed or 'none configured'}); check the log "
            "and WA_PERSONA_BACKENDS"
        )


class BreakerOpen(BackendUnavailable):
    """The backend was skipped: its circuit breaker is open after failures in a row."""


class BreakerState(StrEnum):
    """Closed: in use. Open: skipped after failures. Half-open: one trial call allowed."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """One backend's breaker, for `/status` and `doctor`; error classes only, never text."""

    name: str
    state: BreakerState
    consecutive_failures: int
    last_error: str | None
    last_success: datetime | None
    retry_in_s: float | None
    """Seconds until an open breaker lets a trial call through; None unless open."""


class _Breaker:
    """The circuit breaker of one backend; times come from the chain's clock."""

    def __init__(self, failures_to_open: int, reset_s: float) -> None:
        self.failures_to_open = failures_to_open
        self.reset_s = reset_s
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trial_running = False
        self.last_error: str | None = None
        self.last_success: datetime | None = None

    def admit(self, now: float) -> bool:
        """Whether a call may go through now; an expired open breaker turns half-open."""
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.reset_s:
            self.state = BreakerState.HALF_OPEN
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def succeeded(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.trial_running = False
        self.last_success = datetime.now(UTC)

    def failed(self, error: BaseException, now: float) -> bool:
        """Count a failure; True when this one opened the breaker."""
        self.last_error = type(error).__name__
        self.failures += 1
        trial, self.trial_running = self.trial_running, False
        if trial or self.failures >= self.failures_to_open:
            was_open = self.state is BreakerState.OPEN
            self.state = BreakerState.OPEN
            self.opened_at = now
            return not was_open
        return False

    def released(self, error: BaseException) -> None:
        """The call ended without a verdict on availability (another error, a cancel)."""
        if isinstance(error, Exception):
            self.last_error = type(error).__name__
        self.trial_running = False

    def retry_in(self, now: float) -> float | None:
        if self.state is not BreakerState.OPEN:
            return None
        return max(0.0, self.opened_at + self.reset_s - now)


class FallbackChain:
    """A `Backend` that asks its backends in order and returns the first reply.

    Args:
        backends: tried in this order.
        deadline_s: how long one backend may take; a miss counts as unavailable.
        failures_to_open: failures in a row that open a backend's breaker.
        reset_s: how long an open breaker skips its backend before one trial call.
        clock: monotonic seconds (inject a fake one in tests).
    """

    name = "fallback"

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        deadline_s: float,
        failures_to_open: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backends = tuple(backends)
        self.deadline_s = deadline_s
        self._clock = clock
        self._breakers = [_Breaker(failures_to_open, reset_s) for _ in self.backends]

    async def reply(self, prompt: Prompt) -> Reply:
        """The first backend's reply that comes in time; `AllBackendsFailed` when none does."""
        causes: list[tuple[str, BaseException]] = []
        for backend, breaker in zip(self.backends, self._breakers, strict=True):
            if not breaker.admit(self._clock()):
                retry = breaker.retry_in(self._clock())
                wait = f"; retry in {retry:.0f}s" if retry is not None else "; trial running"
                causes.append((backend.name, BreakerOpen(f"{backend.name} breaker open{wait}")))
                continue
            try:
                async with asyncio.timeout(self.deadline_s):
                    reply = await backend.reply(prompt)
            except (BackendUnavailable, TimeoutError) as exc:
                self._failed(backend.name, breaker, exc)
                causes.append((backend.name, exc))
                continue
            except BaseException as exc:  # a rejected request, a bug, a cancel: not an outage
                breaker.released(exc)
                raise
            breaker.succeeded()
            return reply
        raise AllBackendsFailed(causes) from (causes[-1][1] if causes else None)

    def health(self) -> list[BackendHealth]:
        """Each backend's breaker state, in chain order."""
        now = self._clock()
        return [
            BackendHealth(
                name=backend.name,
                state=breaker.state,
                consecutive_failures=breaker.failures,
                last_error=breaker.last_error,
                last_success=breaker.last_success,
                retry_in_s=breaker.retry_in(now),
            )
            for backend, breaker in zip(self.backends, self._breakers, strict=True)
        ]

    def _failed(self, name: str, breaker: _Breaker, error: BaseException) -> None:
        logger.warning("backend %s failed (%s); trying the next", name, _describe(error))
        if breaker.failed(error, self._clock()):
            logger.warning(
                "backend %s: circuit breaker open after %d failures in a row; skipped for %.0fs",
                name,
                breaker.failures,
                breaker.reset_s,
            )


def _describe(error: BaseException) -> str:
    """An error's class, and for a missed deadline that it was one: never message text."""
    if isinstance(error, TimeoutError):
        return "TimeoutError: deadline passed"
    if isinstance(error, BreakerOpen):
        return "breaker open"
    return type(error).__name__
