"""bench/audit.py runs end to end at a small size and prints its figures (no timing is
asserted: the figures at size are in the report and docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# On a fresh SQLite directory of its own, whatever store this test run was given.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDARITY_")}


def test_the_audit_benchmark_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.audit", "--events", "2000",
                           "--rounds", "1", "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["events"] == report["head"] == 2000
    assert 300 <= report["mean_state_bytes"] <= 600
    for figure in ("chain_events_per_s", "raw_hash_events_per_s", "verify_events_per_s"):
        assert report[figure] > 0, figure
    assert report["verify_over_raw"] > 0 and isinstance(report["met"], bool)
    text = subprocess.run([sys.executable, "-m", "bench.audit", "--events", "2000",
                           "--rounds", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=True, env=ENV).stdout
    assert "verification" in text and "of raw" in text and "target >= 0.5" in text
