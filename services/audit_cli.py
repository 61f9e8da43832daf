"""``solidarity audit``: check that the services' stored history is as it was written.

    solidarity audit verify [--service S] [--json]

For each service (or the one named) it opens the service's own store as the settings
say (embedded: the SQLite files in the data directory; deployed: the PostgreSQL
schemas of SOLIDARITY_DATABASE_URL), recomputes the hash chain from every stored event
and compares it with the stored chain and with every signed checkpoint the service
kept (``shared.audit``). It reads only: it works beside a running system. It prints
the first place each store was changed, a row deleted, inserted or reordered, or that
it is clean; the exit status is 0 when every store is clean, 1 otherwise. Nothing it
prints is personal data: ids, kinds and hashes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.registry import MODULES, SERVICES
from shared.audit import CheckpointStore, Verdict, trusted_keys, verify_chain
from shared.config import Settings
from shared.eventstore.store import create_engine, eventsourcing_env


def add_parser(sub: Any) -> None:
    """``audit verify`` under the ``solidarity`` command's subparsers."""
    audit = sub.add_parser("audit", help="the tamper-evident history: verify it")
    actions = audit.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify", help="recompute every service's hash chain from its stored events and "
        "check it against the stored chain and the signed checkpoints")
    verify.add_argument("--service", choices=SERVICES, help="only this service")
    verify.add_argument("--json", action="store_true", help="print the verdicts as JSON")


def verify_service(settings: Settings, service: str) -> Verdict:
    """One service's verdict, read from its store."""
    module = MODULES[service]
    engine = create_engine(settings, service)
    app = module.application(env=eventsourcing_env(settings, service),
                             public_events=module.public_events)
    try:
        checkpoints = CheckpointStore(engine).list(service)
        return verify_chain(app.recorder, engine, checkpoints, service=service,
                            trusted_keys=trusted_keys(settings, SERVICES))
    finally:
        app.close()
        engine.dispose()


def describe(service: str, v: Verdict) -> str:
    if v.problem is None:
        unchained = f", {v.unchained:,} not chained yet" if v.unchained else ""
        return (f"{service}: clean: {v.checked:,} events, head {v.head[0]} "
                f"({v.head[1][:16]}), {v.checkpoints} checkpoint(s) hold{unchained}")
    p = v.problem
    other = f" (and {p.other_id})" if p.other_id is not None else ""
    return (f"{service}: {p.kind.upper()} at notification {p.notification_id}{other}: "
            f"{p.message}")


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    services = [args.service] if args.service else list(SERVICES)
    verdicts = {s: verify_service(settings, s) for s in services}
    if args.json:
        print(json.dumps({s: v.to_dict() for s, v in verdicts.items()}, indent=2))
    else:
        for service, verdict in verdicts.items():
            print(describe(service, verdict))
    return 0 if all(v.ok for v in verdicts.values()) else 1
