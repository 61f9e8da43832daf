"""The audit chain's cost: chaining a service's log and verifying it, against the raw
rate of hashing the same stored bytes, in one run.

    .venv/bin/python -m bench.audit [--events 1000000] [--page 1000] [--json] [--keep]

(from the repository root). SQLite in a fresh temporary directory; PostgreSQL when
SOLIDARITY_DATABASE_URL is set (fresh schemas are the operator's to give).

1. Fills the contact service's store (built by the composition root, no HTTP, no bus)
   with N stored events through its recorder, in big batches: aggregates of a few
   events each, states of 300 to 600 random bytes (as sealed events are: ciphertext).
2. Chains them (``Chainer.catch_up``, a page per transaction): the chaining rate.
3. The raw rate: the same events read back in the same pages through the recorder and
   each stored state hashed with SHA-256 (read + hashlib, nothing else).
4. The verification rate: ``verify_chain`` over the whole store (the events recomputed,
   the stored links read and compared).

Steps 3 and 4 alternate ``--rounds`` times (default 2) and the best time of each
counts, so a busy moment on the machine does not fall on one side only; the CPU time
of each (this thread's) is shown too, a steadier figure on a shared machine.

Target (issue 12): verification at least half the raw rate. The report says whether it
is met.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eventsourcing.persistence import StoredEvent

from bench.common import ratio, run_in_workspace, say
from services.system import System
from shared.audit import Chainer, verify_chain
from shared.audit.chain import PAGE
from shared.config import Settings

TARGET = 0.5  # verification over raw
BATCH = 10_000  # events inserted per transaction
TOPICS = ("services.contact.domain.contact:Contact.Logged",
          "services.contact.domain.contact:Contact.RiskAssessed",
          "services.contact.domain.contact:Contact.Closed",
          "services.contact.domain.caller:Caller.Registered")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000,
                   help="stored events (default 1,000,000)")
    p.add_argument("--page", type=int, default=PAGE, help="events per page read")
    p.add_argument("--rounds", type=int, default=2,
                   help="raw and verification runs, alternated; the best of each counts")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = p.parse_args(argv)
    if args.events < 100:
        p.error("--events must be at least 100")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def fill(recorder: Any, events: int, seed: int) -> int:
    """``events`` stored events through the recorder, in batches; returns the bytes."""
    rnd = random.Random(seed)
    written = size = 0
    while written < events:
        batch: list[StoredEvent] = []
        while len(batch) < min(BATCH, events - written):
            agg = uuid.UUID(int=rnd.getrandbits(128), version=4)
            for version in range(1, rnd.randrange(2, 5)):
                state = rnd.randbytes(rnd.randrange(300, 601))
                size += len(state)
                batch.append(StoredEvent(originator_id=agg, originator_version=version,
                                         topic=TOPICS[(version - 1) % len(TOPICS)],
                                         state=state))
        batch = batch[:events - written]
        recorder.insert_events(batch)
        written += len(batch)
        if written % 200_000 < BATCH:
            say(f"written {written:,} events")
    return size


def raw_hash(recorder: Any, page: int) -> tuple[int, float]:
    """Read every event in pages and SHA-256 its stored bytes: (events, seconds)."""
    started, after, n = time.perf_counter(), 0, 0
    sha256 = hashlib.sha256
    while True:
        batch = recorder.select_notifications(start=after, limit=page,
                                              inclusive_of_start=False)
        for note in batch:
            sha256(note.state).digest()
        n += len(batch)
        if len(batch) < page:
            return n, time.perf_counter() - started
        after = batch[-1].id


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, nats_url="nats://127.0.0.1:1")  # never connected
    system = System(settings, ["contact"])
    try:
        runtime = system.runtimes["contact"]
        recorder, engine = runtime.app.recorder, runtime.app.engine
        say(f"writing {args.events:,} stored events into the contact log")
        started = time.perf_counter()
        size = fill(recorder, args.events, args.seed)
        write_s = time.perf_counter() - started
        say("chaining them")
        started = time.perf_counter()
        head_id, _ = Chainer(recorder, engine, page_size=args.page).catch_up()
        chain_s = time.perf_counter() - started
        raw_s = verify_s = raw_cpu = verify_cpu = float("inf")
        for round_ in range(1, args.rounds + 1):  # alternated: the machine's noise shared
            say(f"round {round_}: raw (read back, SHA-256 of the stored bytes)")
            cpu = time.thread_time()
            raw_n, seconds = raw_hash(recorder, args.page)
            raw_cpu = min(raw_cpu, time.thread_time() - cpu)
            raw_s = min(raw_s, seconds)
            say(f"round {round_}: verifying the chain")
            started, cpu = time.perf_counter(), time.thread_time()
            verdict = verify_chain(recorder, engine, page_size=args.page)
            verify_s = min(verify_s, time.perf_counter() - started)
            verify_cpu = min(verify_cpu, time.thread_time() - cpu)
    finally:
        for rt in system.runtimes.values():
            rt.close()
    if not verdict.ok or verdict.checked != args.events or raw_n != args.events:
        raise SystemExit(f"verification failed: {verdict.to_dict()}")
    raw_rate, verify_rate = raw_n / raw_s, verdict.checked / verify_s
    over = ratio(verify_rate, raw_rate)
    return {
        "store": "postgresql" if settings.database_url else "sqlite",
        "events": args.events, "head": head_id, "page": args.page, "rounds": args.rounds,
        "mean_state_bytes": round(size / args.events),
        "write_s": round(write_s, 1),
        "chain_events_per_s": round(args.events / chain_s), "chain_s": round(chain_s, 1),
        "raw_hash_events_per_s": round(raw_rate), "raw_s": round(raw_s, 1),
        "verify_events_per_s": round(verify_rate), "verify_s": round(verify_s, 1),
        "verify_over_raw": over, "target_over_raw": TARGET,
        "cpu_us_per_event": {"raw": round(raw_cpu / raw_n * 1e6, 2),
                             "verify": round(verify_cpu / verdict.checked * 1e6, 2)},
        "verify_over_raw_cpu": ratio(raw_cpu, verify_cpu),
        "met": over is not None and over >= TARGET,
    }


def render(r: dict[str, Any]) -> str:
    yes = {True: "met", False: "NOT met"}
    return "\n".join([
        f"audit chain over {r['events']:,} events ({r['store']}; states of "
        f"{r['mean_state_bytes']} bytes on average; pages of {r['page']:,}; best of "
        f"{r['rounds']})",
        f"  chaining                 {r['chain_events_per_s']:>10,} events/s  "
        f"({r['chain_s']} s)",
        f"  raw read + SHA-256       {r['raw_hash_events_per_s']:>10,} events/s  "
        f"({r['raw_s']} s)",
        f"  verification             {r['verify_events_per_s']:>10,} events/s  "
        f"({r['verify_s']} s; {r['verify_over_raw']} of raw)  "
        f"target >= {r['target_over_raw']} of raw: {yes[r['met']]}",
        f"  CPU per event            raw {r['cpu_us_per_event']['raw']} us, verification "
        f"{r['cpu_us_per_event']['verify']} us ({r['verify_over_raw_cpu']} of raw)",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workspace("solidarity-bench-audit-", parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())
