"""Reporting's rebuild rate and the monthly report's response time, over a year of
events at national scale, against the raw rate of reading the same events.

    .venv/bin/python -m bench.reporting [--events 1000000] [--replay-page N] [--json]
        [--keep]

(from the repository root). SQLite in a fresh temporary directory; PostgreSQL when
SOLIDARITY_DATABASE_URL is set (fresh schemas are the operator's to give).

1. Writes a financial year of the contact service's events (2025-04 to 2026-03) into
   its log directly through its store (the domain makes the events; the store's
   recorder inserts them in pages, no HTTP, no bus): callers registering, contacts
   logged (four in five by a known caller, with issues, channels, directions and who
   called spread over the codes, a missed call now and then) and a risk assessment on
   one in three.
2. The raw rate: the same events read from the log as integration events, in the
   replay's pages (``ServiceApplication.integration_events``), nothing applied.
3. The rebuild rate: ``ServiceRuntime.rebuild`` of reporting, in process (the path of
   ``POST /reporting/rebuild`` and ``solidarity reporting rebuild``): the read models
   dropped and the log replayed in pages, one transaction per page, each applied as a
   unit of work when the read model has a page path (``ReadModel.apply_page``; the
   report says whether it has). ``--replay-page`` sets the replay's page size (the
   consumers' ``replay_page_size``) for the raw read and the rebuild alike.
4. The monthly report's response time (``ReportingApplication.monthly``, the query
   behind ``GET /reporting/monthly``, without HTTP), over each month of that year, and
   the year report's.

Targets (issue 11): rebuild >= 25,000 events/s; a monthly report < 100 ms. The report
says whether each is met.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import run_in_workspace, say
from bench.rebuild_floor import read_floor, write_floor
from services.contact.domain.caller import Caller
from services.contact.domain.contact import Contact
from services.reporting.app import ReportingApplication
from services.system import System
from shared.config import Settings
from shared.kernel import acting

REBUILD_TARGET = 25_000.0  # events/s
MONTHLY_TARGET_MS = 100.0
YEAR_START = datetime(2025, 4, 1, tzinfo=UTC)
PAGE = 5_000  # events inserted per transaction
ISSUES = ("social_isolation", "bereavement", "self_harm", "suicidal_thoughts", "housing",
          "benefits_finance", "overdose", "panic_attack", "other")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000,
                   help="events in the year (default 1,000,000)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--replay-page", type=int, default=None,
                   help="events per page of the replay (default: the consumers')")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = p.parse_args(argv)
    if args.events < 100:
        p.error("--events must be at least 100")
    return args


def _contact(rnd: random.Random, caller: Caller | None, now: datetime) -> Contact:
    started = YEAR_START + timedelta(seconds=rnd.randrange(365 * 86400))
    answered = rnd.random() > 0.05
    return Contact.log(
        channel="phone" if not answered or rnd.random() < 0.8 else "text",
        direction="inbound" if rnd.random() < 0.9 else "outbound",
        started_at=started, ended_at=started + timedelta(minutes=rnd.randrange(2, 60)),
        issues=rnd.sample(ISSUES, rnd.randrange(1, 4)) if answered else [],
        caller=caller, caller_is=rnd.choice((None, "person_in_crisis", "professional")),
        answered=answered, now=now)


def write_year(app: Any, events: int, seed: int) -> int:
    """About ``events`` events of a year into the app's log; returns how many."""
    rnd = random.Random(seed)
    now = YEAR_START + timedelta(days=400)
    callers: list[Caller] = []
    written, pending = 0, list[Any]()
    decision = app._seal(uuid.uuid4(), "a safety plan")  # one sealed text for them all

    def flush() -> None:
        nonlocal written, pending
        app.recorder.insert_events([app.mapper.to_stored_event(e) for e in pending])
        written += len(pending)
        pending = []

    with acting("service:bench"):
        while written + len(pending) < events:
            if not callers or rnd.random() < 0.04:  # about 1 caller in 25 contacts new
                caller = Caller.register(
                    caller_ref=f"BENCH{len(callers):07d}", alias=None, phone=None,
                    gender=rnd.choice((None, "female", "male", "non_binary")),
                    age_band=rnd.choice((None, "18_24", "25_31", "32_40", "41_50", "61_plus")),
                    consent_to_keep_history=True, consent_to_text=False)
                callers.append(caller)
                pending += caller.collect_events()
            known = rnd.choice(callers) if rnd.random() < 0.8 else None
            contact = _contact(rnd, known, now)
            if contact.answered and rnd.random() < 0.33:
                contact.assess_risk(level=rnd.choice(("low", "medium", "high")), factors=None,
                                    protective_factors=None, decision=decision,
                                    reasoning=None, now=now)
            pending += contact.collect_events()
            if len(pending) >= PAGE:
                flush()
                if written % 100_000 < PAGE:
                    say(f"written {written:,} events")
        flush()
    return written


def raw_read(app: Any, page: int) -> tuple[int, float]:
    started, after, n = time.perf_counter(), 0, 0
    while True:
        items = app.integration_events(after, page)
        n += len(items)
        if len(items) < page:
            return n, time.perf_counter() - started
        after = items[-1].notification_id


def timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000.0


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, nats_url="nats://127.0.0.1:1")  # never connected
    system = System(settings)  # every service: the sources are read in process
    try:
        contact, reporting = system.runtimes["contact"], system.runtimes["reporting"]
        say(f"writing a year of about {args.events:,} events into the contact log")
        started = time.perf_counter()
        written = write_year(contact.app, args.events, args.seed)
        write_s = time.perf_counter() - started
        if contact.chainer is not None:  # as the service does at start: not in the reads
            say("chaining them (the audit chain, as at a service's start)")
            contact.chainer.catch_up()
        if args.replay_page:
            for consumer in reporting.consumers:
                consumer.replay_page_size = args.replay_page
        page = reporting.consumers[0].replay_page_size
        paged = reporting.projection.model.apply_page is not None
        say("reading them back (raw)")
        read_n, read_s = raw_read(contact.app, page)
        say("rebuilding reporting from them")
        started = time.perf_counter()
        applied = asyncio.run(reporting.rebuild())
        rebuild_s = time.perf_counter() - started
        assert applied["contact"] == written, applied
        months = [f"{(YEAR_START + timedelta(days=31 * i)):%Y-%m}" for i in range(12)]
        app = reporting.app
        assert isinstance(app, ReportingApplication)
        app.monthly(months[0])  # warm
        monthly = [timed(app.monthly, m) for m in months for _ in range(3)]
        year_ms = [timed(app.year, "2025-04") for _ in range(3)]
        totals = sum(app.monthly(m)["contacts"]["total"] for m in months)
    finally:
        for rt in system.runtimes.values():
            rt.close()
    floor: dict[str, int] | None = None
    if not settings.database_url:
        say("measuring this machine's floor (rebuild_floor): the log read, the rows written")
        floor = {"read_events_per_s": round(read_floor(settings.sqlite_path("contact"))),
                 "write_events_per_s": round(write_floor(settings.sqlite_path("reporting"),
                                                         written))}
    rebuild_rate = written / rebuild_s
    p95 = sorted(monthly)[int(0.95 * (len(monthly) - 1))]
    return {
        "store": "postgresql" if settings.database_url else "sqlite",
        "events": written, "contacts_in_year": totals, "write_s": round(write_s, 1),
        "raw_read_events_per_s": round(read_n / read_s),
        "rebuild_events_per_s": round(rebuild_rate), "rebuild_s": round(rebuild_s, 1),
        "rebuild_over_raw": round(rebuild_rate / (read_n / read_s), 3),
        "replay_page": page, "page_path": paged,
        "monthly_ms": {"median": round(statistics.median(monthly), 1),
                       "p95": round(p95, 1), "max": round(max(monthly), 1)},
        "year_ms_median": round(statistics.median(year_ms), 1),
        "floor": floor,
        "targets": {"rebuild_events_per_s": REBUILD_TARGET, "monthly_ms": MONTHLY_TARGET_MS},
        "met": {"rebuild": rebuild_rate >= REBUILD_TARGET,
                "monthly": max(monthly) < MONTHLY_TARGET_MS},
    }


def render(r: dict[str, Any]) -> str:
    yes = {True: "met", False: "NOT met"}
    return "\n".join([
        f"reporting rebuild over a year of {r['events']:,} events ({r['store']}; "
        f"{r['contacts_in_year']:,} contacts in the year's reports)",
        f"  raw read of the log      {r['raw_read_events_per_s']:>10,} events/s",
        f"  rebuild (pages of {r['replay_page']:,}, page path "
        f"{'on' if r['page_path'] else 'off'})\n"
        f"                           {r['rebuild_events_per_s']:>10,} events/s"
        f"  ({r['rebuild_s']} s; {r['rebuild_over_raw']} of raw)"
        f"  target >= {REBUILD_TARGET:,.0f}: {yes[r['met']['rebuild']]}",
        f"  monthly report           median {r['monthly_ms']['median']} ms, p95 "
        f"{r['monthly_ms']['p95']} ms, max {r['monthly_ms']['max']} ms"
        f"  target < {MONTHLY_TARGET_MS:.0f} ms: {yes[r['met']['monthly']]}",
        f"  year report              median {r['year_ms_median']} ms",
        *_floor_lines(r),
    ])


def _floor_lines(r: dict[str, Any]) -> list[str]:
    floor = r.get("floor")
    if not floor:
        return ["  this machine's floor     not measured (SQLite only)"]
    read, write = floor["read_events_per_s"], floor["write_events_per_s"]
    one = 1 / (1 / read + 1 / write)
    return [
        "  this machine's floor (bench/rebuild_floor.py: no application code)",
        f"    log selected + JSON decoded      {read:>10,} events/s",
        f"    the rebuild's rows written       {write:>10,} events/s",
        f"    both in one process, at best     {one:>10,.0f} events/s"
        f"  (rebuild at {r['rebuild_events_per_s'] / one:.2f} of it)",
        f"    in two processes, at best        {min(read, write):>10,} events/s"
        f"  (target {REBUILD_TARGET:,.0f}: "
        f"{'within' if min(read, write) >= REBUILD_TARGET else 'beyond'} this machine)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workspace("solidarity-bench-reporting-", parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())
