"""What the benchmark's modules share: progress on stderr, and a few numbers."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence


def say(message: str) -> None:
    """Progress, on stderr (stdout is the report)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..1) of ``values``; None when there are none."""
    if not values:
        return None
    data = sorted(values)
    rank = max(1, math.ceil(p * len(data)))
    return data[min(rank, len(data)) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)
