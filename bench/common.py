"""What the benchmark's modules share: progress on stderr, and a few numbers."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


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


def run_in_workspace(prefix: str, args: argparse.Namespace,
                     run: Callable[[argparse.Namespace, Path], dict[str, Any]],
                     render: Callable[[dict[str, Any]], str]) -> int:
    """Run a benchmark in a fresh temporary data directory (kept with ``args.keep``)
    and print its report: JSON with ``args.json``, else ``render``'s text."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = run(args, data_dir / "var")
    finally:
        if args.keep:
            say(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0
