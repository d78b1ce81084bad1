"""A chat API's HTTP status as the bot's error: worth another backend, or a request to fix.

The fallback chain moves on only for `BackendUnavailable`; a request that is wrong (bad key,
unknown model, too long) stays a `BackendError`, because answering it elsewhere would hide it.
"""

from __future__ import annotations

from bot.errors import BackendError, BackendUnavailable

__all__ = ["UNAVAILABLE_STATUS", "status_error"]

UNAVAILABLE_STATUS = frozenset({408, 409, 429})
"""4xx statuses that mean "try later" (timeout, conflict, rate limit); 5xx always do."""


def status_error(service: str, status: int, reason: str, *, fix: str) -> BackendError:
    """`BackendUnavailable` for a status that may pass (408/409/429, every 5xx), else a
    `BackendError` that says what to `fix`."""
    if status >= 500 or status in UNAVAILABLE_STATUS:
        return BackendUnavailable(f"{service} answered {status} ({reason}); try again later")
    return BackendError(f"{service} refused the request: {status} ({reason}); {fix}")
