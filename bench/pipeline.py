"""The command-to-report pipeline, measured against its raw baselines in one run.

    .venv/bin/python -m bench.pipeline [--contacts 2000] [--concurrency 16] [--rate 200]
                                       [--duration 5] [--json]

(from the repository root: it imports the launcher from ``tests.support``).

What it does, in order (see docs/performance.md for how to read the figures):

1. Starts the embedded stack, ``solidarity up --port <free port>``, with
   SOLIDARITY_DATA_DIR on a fresh temporary directory (``tests.support.Up``, the
   launcher the e2e tests use), waits until every service's /health says ok, and gets
   a coordinator token from ``solidarity token``.
2. Warm-up: a few contacts one at a time, each followed by polling the monthly report
   until it counts it (the idle command-to-report time, seen from a client).
3. Paced run: POST /contact/contacts at a fixed rate for a few seconds (open loop, at
   most C on the wire, latency counted from each request's scheduled time); then reads the
   reporting consumer's own lag percentiles from GET /reporting/health at once (they
   cover its last 2000 events), and the client-side time from the last POST's answer
   until GET /reporting/monthly counts every contact.
4. Burst: N contacts from C concurrent connections: command throughput and latency,
   the CPU each process spent per contact, and how long reporting took to catch up.
5. Stops the stack (SIGINT, then waits), then the two raw baselines on the same machine:
   the eventsourcing library saving the same aggregate into a fresh SQLite file (single
   thread), and JetStream ``publish_async`` of N messages the size of a real
   integration event into a separate nats-server, awaiting every ack.
6. Prints a table, the ratios and whether the targets are met (or JSON with --json).

The modules: ``load`` (the client and the three runs), ``baselines``, ``report`` (the
targets, the verdicts and the table), ``common`` (progress and numbers).

Nothing is left running: the stack runs in its own process group, which is stopped in a
``finally`` (SIGINT, then SIGTERM and SIGKILL if it will not go), and so is the baseline
nats-server. Progress goes to stderr; the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from bench.baselines import publish_baseline, raw_save_baseline
from bench.common import say
from bench.load import run_stack_phases
from bench.report import TARGET_RATE, environment, render, verdicts
from shared.messaging.envelope import IntegrationEvent
from shared.messaging.nats_server import free_port
from tests.support import Up


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=2000, help="N, the burst (default 2000)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="C: connections of the burst, most in flight when paced (default 16)")
    p.add_argument("--rate", type=float, default=TARGET_RATE,
                   help="paced run, contacts/s (default 200)")
    p.add_argument("--duration", type=float, default=5.0, help="paced run, seconds (default 5)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up contacts (default 20)")
    p.add_argument("--port", type=int, default=0, help="HTTP port of the stack (default: free)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    p.add_argument("--fail-on-miss", action="store_true",
                   help="exit 1 when a target is not met")
    args = p.parse_args(argv)
    for name in ("contacts", "concurrency", "rate", "duration"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive")
    if args.warmup < 0:
        p.error("--warmup must not be negative")
    return args


def describe_exit(code: int | None) -> str:
    # uvicorn re-raises the SIGINT it handled once it has shut down: -2 is a clean stop.
    if code is None:
        return "not started"
    if code < 0:
        name = signal.Signals(-code).name
        return f"ended by {name}" + (" after a graceful shutdown" if name == "SIGINT" else "")
    return f"exit code {code}"


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="solidarity-bench-"))
    failed = False
    try:
        yield tmp
    except BaseException:
        failed = True
        raise
    finally:
        if keep or failed:
            say(f"data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_async(factory: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        return await factory()

    return asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)  # so that the finally blocks run
    env = environment()
    with workspace(args.keep) as tmp:
        stack = Up(tmp / "stack", args.port or free_port(), log=tmp / "stack.log", say=say)
        say(f"starting solidarity up --port {stack.port} (data in {stack.data_dir})")
        try:
            stack.start(wait=False)
            say(f"waiting for the stack on {stack.url}")
            stack.wait_ready()
            phases = run_async(lambda: run_stack_phases(args, stack))
        except Exception:
            tail = stack.log_tail() if stack.proc is not None else ""
            if tail:
                say("stack output (tail):\n" + tail)
            raise
        finally:
            say("stopping the stack (SIGINT)")
            stack.stop()
        say(f"stack stopped ({describe_exit(stack.returncode)})")

        say(f"baseline: eventsourcing save x {args.contacts}, fresh SQLite file")
        raw = raw_save_baseline(tmp / "raw-store", args.contacts, args.warmup)
        event: IntegrationEvent = phases.pop("event")
        say(f"baseline: publish_async x {args.contacts}, {len(event.to_bytes())} B")
        pub = run_async(lambda: publish_baseline(tmp / "raw-nats", args.contacts, event,
                                                 args.warmup))

    report: dict[str, Any] = {
        "environment": env,
        "parameters": {
            "contacts": args.contacts,
            "concurrency": args.concurrency,
            "rate": args.rate,
            "duration_s": args.duration,
            "warmup": args.warmup,
        },
        **phases,
        "baselines": {"raw_save": raw, "publish_async": pub},
        "stack_exit": describe_exit(stack.returncode),
        "stack_leftovers_killed": stack.leftovers,
    }
    report["environment"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    report["verdicts"] = verdicts(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    met = all(t["met"] is not False for t in report["verdicts"]["targets"].values())
    return 1 if args.fail_on_miss and not met else 0


if __name__ == "__main__":
    sys.exit(main())
