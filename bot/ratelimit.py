"""Per-chat rate limiting: a token bucket for each (channel, chat).

One chat sending messages faster than a person types would keep a backend (a GPU, a paid
API) busy for everyone; the bucket lets a burst through, then `per_minute` messages a
minute. A refused chat is told once per `notice_every_s`, not once per dropped message, so
a flood never becomes a flood of notices.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "ChatRateLimiter"]

NOTICE_EVERY_S = 60.0
"""A chat over its limit hears about it at most this often."""
_PRUNE_ABOVE = 1024
"""Buckets kept before idle (full, un-notified) ones are forgotten."""


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a message may be handled, and whether to tell the chat it was not."""

    allowed: bool
    notify: bool = False
    retry_after_s: float = 0.0
    """When the next message would be let through (0 when allowed)."""


_ALLOWED = Admission(allowed=True)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    notified_at: float | None = None


class ChatRateLimiter:
    """Token buckets by chat: `burst` messages at once, then `per_minute` a minute.

    Args:
        per_minute: refill rate; 0 turns the limit off.
        burst: the bucket's size (messages accepted in a quick row).
        clock: monotonic seconds; inject a fake one in tests.
        notice_every_s: the shortest time between two "slow down" notices to one chat.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        notice_every_s: float = NOTICE_EVERY_S,
    ) -> None:
        if per_minute < 0 or burst < 1:
            raise ValueError("per_minute must be >= 0 and burst >= 1")
        self.per_minute = per_minute
        self.burst = burst
        self.notice_every_s = notice_every_s
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    @property
    def enabled(self) -> bool:
        """False when `per_minute` is 0 (every message is allowed)."""
        return self.per_minute > 0

    def admit(self, channel: str, chat_id: str) -> Admission:
        """Take a token for one message of the chat, or refuse it."""
        if not self.enabled:
            return _ALLOWED
        now = self._clock()
        key = (channel, chat_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        self._refill(bucket, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return _ALLOWED
        retry_after = (1.0 - bucket.tokens) * 60.0 / self.per_minute
        notify = bucket.notified_at is None or now - bucket.notified_at >= self.notice_every_s
        if notify:
            bucket.notified_at = now
        return Admission(allowed=False, notify=notify, retry_after_s=retry_after)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(now - bucket.updated, 0.0)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_minute / 60.0)
        bucket.updated = now

    def _prune(self, now: float) -> None:
        """Forget chats whose bucket has refilled and whose notice window has passed."""
        if len(self._buckets) < _PRUNE_ABOVE:
            return
        for key, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            quiet = bucket.notified_at is None or now - bucket.notified_at >= self.notice_every_s
            if bucket.tokens >= self.burst and quiet:
                del self._buckets[key]
