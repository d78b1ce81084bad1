"""In-memory counters and reply latencies of the running service, for `/metrics` and `/status`.

Kept per process and lost on restart: enough to see whether the bot is answering, which
backend answers and how fast, without a metrics stack. Nothing here holds message text or
chat ids; counts are by channel, backend or outcome only.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LatencySummary", "Metrics", "MetricsSnapshot", "percentile"]

LATENCY_WINDOW_S = 900.0
"""Latencies older than this leave the percentiles (15 minutes)."""
LATENCY_SAMPLES = 4096
"""Most latencies kept in the window, newest first kept."""


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of ascending `ordered` values."""
    if not ordered:
        raise ValueError("no values")
    rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Reply latencies (backend time, seconds) in the sliding window."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    window_s: float


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Every counter at one moment, and the latency percentiles."""

    uptime_s: float
    requests: dict[str, int]
    """Messages received, by channel."""
    replies: dict[str, int]
    """Replies delivered, by the backend that wrote them."""
    failed_replies: int
    rate_limited: int
    too_long: int
    uploads: dict[str, int]
    """Exports by outcome: received, stored."""
    latency: LatencySummary

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (what `GET /metrics` returns)."""
        return {
            "uptime_s": round(self.uptime_s, 3),
            "requests": self.requests,
            "replies": self.replies,
            "failed_replies": self.failed_replies,
            "rate_limited": self.rate_limited,
            "too_long": self.too_long,
            "uploads": self.uploads,
            "reply_latency_s": {
                "count": self.latency.count,
                "window_s": self.latency.window_s,
                "p50": _rounded(self.latency.p50),
                "p95": _rounded(self.latency.p95),
                "p99": _rounded(self.latency.p99),
            },
        }

    def summary(self) -> str:
        """One line for `/status`."""
        requests = sum(self.requests.values())
        replies = ", ".join(f"{name} {count}" for name, count in sorted(self.replies.items()))
        latency = self.latency
        timing = (
            f"; reply time p50 {latency.p50:.2f}s, p95 {latency.p95:.2f}s, p99 {latency.p99:.2f}s"
            if latency.p50 is not None and latency.p95 is not None and latency.p99 is not None
            else ""
        )
        return (
            f"Traffic since start: {requests} messages, replies by {replies or 'nobody yet'}, "
            f"{self.failed_replies} failed, {self.rate_limited} rate-limited, "
            f"{self.too_long} too long, {self.uploads.get('received', 0)} uploads{timing}"
        )


@dataclass(slots=True)
class Metrics:
    """The service's counters; the service and its transports record, readers take snapshots.

    Args:
        clock: monotonic seconds; inject a fake one in tests.
        window_s: how far back latency percentiles look.
        max_samples: most latencies kept in that window.
    """

    clock: Callable[[], float] = time.monotonic
    window_s: float = LATENCY_WINDOW_S
    max_samples: int = LATENCY_SAMPLES
    requests: Counter[str] = field(default_factory=Counter)
    replies: Counter[str] = field(default_factory=Counter)
    uploads: Counter[str] = field(default_factory=Counter)
    failed_replies: int = 0
    rate_limited: int = 0
    too_long: int = 0
    _started: float = field(init=False)
    _latencies: deque[tuple[float, float]] = field(init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()
        self._latencies = deque(maxlen=self.max_samples)

    def record_request(self, channel: str) -> None:
        """A message arrived on `channel`."""
        self.requests[channel] += 1

    def record_reply(self, backend: str, latency_s: float) -> None:
        """`backend` wrote a reply that is being delivered, taking `latency_s`."""
        self.replies[backend] += 1
        self._latencies.append((self.clock(), latency_s))

    def record_failed_reply(self) -> None:
        """No backend could answer (or the persona could not be loaded)."""
        self.failed_replies += 1

    def record_rate_limited(self) -> None:
        """A message was dropped because its chat was over its rate limit."""
        self.rate_limited += 1

    def record_too_long(self) -> None:
        """A text over the length limit was refused."""
        self.too_long += 1

    def record_upload(self, outcome: str) -> None:
        """An export was `received` or `stored`."""
        self.uploads[outcome] += 1

    def latency(self) -> LatencySummary:
        """Percentiles of the latencies recorded in the last `window_s`."""
        since = self.clock() - self.window_s
        while self._latencies and self._latencies[0][0] < since:
            self._latencies.popleft()
        ordered = sorted(seconds for _, seconds in self._latencies)
        if not ordered:
            return LatencySummary(0, None, None, None, self.window_s)
        return LatencySummary(
            len(ordered),
            percentile(ordered, 50),
            percentile(ordered, 95),
            percentile(ordered, 99),
            self.window_s,
        )

    def snapshot(self) -> MetricsSnapshot:
        """Every counter now."""
        return MetricsSnapshot(
            uptime_s=self.clock() - self._started,
            requests=dict(sorted(self.requests.items())),
            replies=dict(sorted(self.replies.items())),
            failed_replies=self.failed_replies,
            rate_limited=self.rate_limited,
            too_long=self.too_long,
            uploads=dict(sorted(self.uploads.items())),
            latency=self.latency(),
        )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
