"""Turn samples into `Distribution`s and `Histogram`s (numpy does the arithmetic)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from style.profile.model import Distribution, Histogram

Values = npt.ArrayLike

LATENCY_EDGES = [round(10 ** (i / 10), 4) for i in range(0, 51)]
"""1 second to 1 day, ten bins a decade: reply latencies and pauses."""
GAP_EDGES = [round(10 ** (i / 10), 4) for i in range(0, 71)]
"""1 second to about 116 days: silences between messages, for the conversation gap."""
CHAR_EDGES = [float(x) for x in range(0, 205, 5)]
WORD_EDGES = [float(x) for x in range(0, 41)]
COUNT_EDGES = [x + 0.5 for x in range(0, 21)]
"""Bins for small whole numbers 1..20 (bursts, turns)."""
RATE_EDGES = [float(x) for x in range(0, 31)]


def summarise(
    values: Values, edges: Sequence[float] | None = None, *, log: bool = False
) -> Distribution:
    """Count, mean and quantiles of `values`; a histogram too when `edges` are given."""
    array = np.asarray(values, dtype=np.float64)
    histogram = histogram_of(array, edges, log=log) if edges is not None else None
    if array.size == 0:
        return Distribution(count=0, histogram=histogram)
    p10, p25, p50, p75, p90 = np.percentile(array, [10, 25, 50, 75, 90])
    return Distribution(
        count=int(array.size),
        mean=r4(array.mean()),
        min=r4(array.min()),
        p10=r4(p10),
        p25=r4(p25),
        median=r4(p50),
        p75=r4(p75),
        p90=r4(p90),
        max=r4(array.max()),
        histogram=histogram,
    )


def histogram_of(values: Values, edges: Sequence[float], *, log: bool = False) -> Histogram:
    """Counts per bin; values beyond either end land in the end bins."""
    array = np.asarray(values, dtype=np.float64)
    bounds = np.asarray(edges, dtype=np.float64)
    clipped = np.clip(array, bounds[0], bounds[-1])
    counts, _ = np.histogram(clipped, bins=bounds)
    return Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts], log=log)


def r4(value: float | np.floating) -> float:
    """Round for storage: four decimals keep the JSON short and stable."""
    return round(float(value), 4)


def share(part: float, whole: float) -> float | None:
    """part / whole rounded, or None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None
