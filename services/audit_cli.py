"""``solidarity audit``: check that the services' stored history is as it was written,
replay a record as of a moment, and export a period for checking elsewhere.

    solidarity audit verify [--service S] [--json]
    solidarity audit verify --file F [--trust KEY ...] [--json]
    solidarity audit replay --service S --aggregate ID [--as-of T] [--format text|json]
    solidarity audit export --service S --from T1 --to T2 --out F

``verify`` opens each service's own store as the settings say (embedded: the SQLite
files in the data directory; deployed: the PostgreSQL schemas of
SOLIDARITY_DATABASE_URL), recomputes the hash chain from every stored event and
compares it with the stored chain and with every signed checkpoint the service kept
(``shared.audit``). It reads only: it works beside a running system. It prints the
first place each store was changed, a row deleted, inserted or reordered, or that it
is clean; the exit status is 0 when every store is clean, 1 otherwise. With ``--file``
it checks an export instead, offline: no database and no settings (the trusted keys
from ``--trust`` or SOLIDARITY_AUDIT_TRUSTED_KEYS, if given).

``replay`` reads one aggregate's events from the store and shows it as it was at a
moment, as the auditor sees it (no personal data): a timeline, one line per event, in
London time and UTC. ``export`` writes the events of a period with their chain links
and the covering checkpoints (``shared.audit.export``). Nothing any of them prints is
personal data: ids, codes, times, kinds and hashes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.registry import MODULES, SERVICES
from shared.audit import (
    Chainer,
    CheckpointStore,
    Signer,
    Verdict,
    make_checkpoint,
    trusted_keys,
    verify_chain,
)
from shared.audit.export import NothingToExport, build_export, verify_export
from shared.audit.replay import Hooks, replay_stored
from shared.config import Settings
from shared.eventstore.application import ServiceApplication
from shared.eventstore.store import create_engine, eventsourcing_env
from shared.kernel import InvalidCommand, NotKnown

LONDON = ZoneInfo("Europe/London")


def hooks_of(service: str) -> Hooks | None:
    """The service's replay hooks: ``HOOKS`` of ``services/<service>/audit.py``, if any."""
    if importlib.util.find_spec(f"services.{service}.audit") is None:
        return None
    hooks = getattr(importlib.import_module(f"services.{service}.audit"), "HOOKS", None)
    return hooks if isinstance(hooks, Hooks) else None


# The services with aggregates to replay (reporting has none).
REPLAYABLE = tuple(s for s in SERVICES if hooks_of(s) is not None)


def instant(text: str) -> datetime:
    """An argument's time: ISO 8601 with its offset (a time without one is ambiguous
    around the clock changes)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("an ISO 8601 time with its offset, e.g. "
                                         "2026-11-29T22:10:00+00:00") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give the offset too, e.g. 2026-11-29T22:10:00Z")
    return value


def add_parser(sub: Any) -> None:
    """``audit verify|replay|export`` under the ``solidarity`` command's subparsers."""
    audit = sub.add_parser("audit", help="the tamper-evident history: verify, replay, export")
    actions = audit.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify", help="recompute every service's hash chain from its stored events and "
        "check it against the stored chain and the signed checkpoints; or check an export")
    verify.add_argument("--service", choices=SERVICES, help="only this service")
    verify.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    verify.add_argument("--file", type=Path, help="check this export offline instead")
    verify.add_argument("--trust", action="append", metavar="KEY",
                        help="a public key (base64) the export's checkpoints must be "
                        "signed with (repeatable; default SOLIDARITY_AUDIT_TRUSTED_KEYS)")
    replay = actions.add_parser("replay", help="a record as it was at a moment, from its "
                                "events (as the auditor sees it)")
    replay.add_argument("--service", required=True, choices=REPLAYABLE)
    replay.add_argument("--aggregate", required=True, help="the record's id")
    replay.add_argument("--as-of", type=instant, default=None,
                        help="ISO 8601 with offset (default: now)")
    replay.add_argument("--format", choices=("text", "json"), default="text")
    export = actions.add_parser("export", help="the events of a period, with their chain "
                                "links and covering checkpoints, for verify --file")
    export.add_argument("--service", required=True, choices=SERVICES)
    export.add_argument("--from", dest="start", required=True, type=instant)
    export.add_argument("--to", dest="end", required=True, type=instant)
    export.add_argument("--out", required=True, type=Path)
    checkpoint = actions.add_parser("checkpoint", help="sign each service's chain head now "
                                    "(a running service publishes it at its next interval)")
    checkpoint.add_argument("--service", choices=SERVICES, help="only this service")


@contextlib.contextmanager
def opened(settings: Settings, service: str) -> Iterator[tuple[ServiceApplication, Any]]:
    """The service's application on its store (unbound: it only reads) and its engine."""
    module = MODULES[service]
    engine = create_engine(settings, service)
    app = module.application(env=eventsourcing_env(settings, service),
                             public_events=module.public_events)
    try:
        yield app, engine
    finally:
        app.close()
        engine.dispose()


def verify_service(settings: Settings, service: str) -> Verdict:
    """One service's verdict, read from its store."""
    with opened(settings, service) as (app, engine):
        checkpoints = CheckpointStore(engine).list(service)
        return verify_chain(app.recorder, engine, checkpoints, service=service,
                            trusted_keys=trusted_keys(settings, SERVICES))


def describe(service: str, v: Verdict) -> str:
    if v.problem is None:
        unchained = f", {v.unchained:,} not chained yet" if v.unchained else ""
        return (f"{service}: clean: {v.checked:,} events, head {v.head[0]} "
                f"({v.head[1][:16]}), {v.checkpoints} checkpoint(s) hold{unchained}")
    p = v.problem
    other = f" (and {p.other_id})" if p.other_id is not None else ""
    return (f"{service}: {p.kind.upper()} at notification {p.notification_id}{other}: "
            f"{p.message}")


def _verify_stores(args: argparse.Namespace, settings: Settings) -> int:
    services = [args.service] if args.service else list(SERVICES)
    verdicts = {s: verify_service(settings, s) for s in services}
    if args.json:
        print(json.dumps({s: v.to_dict() for s, v in verdicts.items()}, indent=2))
    else:
        for service, verdict in verdicts.items():
            print(describe(service, verdict))
    return 0 if all(v.ok for v in verdicts.values()) else 1


def _trusted(args: argparse.Namespace) -> list[str] | None:
    """``--trust`` keys, else SOLIDARITY_AUDIT_TRUSTED_KEYS (comma separated), else None:
    any key whose signature holds (said so in the verdict)."""
    if getattr(args, "trust", None):
        return list(args.trust)
    env = [k.strip() for k in os.environ.get("SOLIDARITY_AUDIT_TRUSTED_KEYS", "").split(",")]
    return [k for k in env if k] or None


def verify_file(args: argparse.Namespace) -> int:
    """``verify --file F``: an export checked offline (``shared.audit.export``)."""
    try:
        doc: Any = json.loads(Path(args.file).read_bytes())
    except OSError as e:
        print(f"verify: cannot read {args.file} ({type(e).__name__})", file=sys.stderr)
        return 1
    except ValueError:
        doc = None  # not JSON: reported as malformed
    verdict = verify_export(doc, _trusted(args))
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
        return 0 if verdict.ok else 1
    service = verdict.service or str(args.file)
    p = verdict.problem
    if p is not None:
        print(f"{service}: {p.kind.upper()} at notification {p.notification_id}: {p.message}")
        return 1
    keys = ", ".join(verdict.key_ids)
    trust = ("" if verdict.trusted else "; keys not checked against trusted ones (give "
             "--trust or SOLIDARITY_AUDIT_TRUSTED_KEYS)")
    print(f"{service}: clean: {verdict.events:,} events (notifications {verdict.first} to "
          f"{verdict.last}), covered by the checkpoint at {verdict.covered_at}; "
          f"{verdict.checkpoints} checkpoint(s) hold (key {keys}){trust}")
    return 0


def _when(value: str) -> str:
    """A UTC ISO time as London wall-clock time and UTC."""
    t = datetime.fromisoformat(value)
    return (f"{t.astimezone(LONDON).strftime('%Y-%m-%d %H:%M:%S %Z'):<23} "
            f"({t.strftime('%H:%M:%S')} UTC)")


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def timeline(service: str, doc: dict[str, Any]) -> list[str]:
    """A replay as lines for a terminal: the record, one line per event, its state."""
    lines = [f"{service} {doc['type']} {doc['id']} as of {_when(doc['as_of'])}: "
             f"version {doc['version']}", ""]
    for e in doc["events"]:
        reasons = ""
        if e["decision"] is not None:
            reasons = "  " + ", ".join(f"{k}={_value(v)}" for k, v in e["decision"].items())
        lines.append(f"  {_when(e['at'])}  v{e['version']:<3} {e['type']:<28} "
                     f"by {e['actor']}{reasons}")
    lines += ["", "state (personal data is not shown):"]
    lines += [f"  {k}: {_value(v)}" for k, v in doc["state"].items()]
    return lines


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings, args.service) as (app, _engine):
        try:
            hooks = hooks_of(args.service)
            assert hooks is not None  # the parser offers only those with hooks
            doc = replay_stored(app, hooks, args.aggregate, args.as_of)
        except InvalidCommand as e:
            print(f"replay: --aggregate: {e.message}", file=sys.stderr)
            return 2
        except NotKnown as e:
            print(f"replay: {e.message}", file=sys.stderr)
            return 1
    if args.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(timeline(args.service, doc)))
    return 0


def _timestamp(app: ServiceApplication, notification: Any) -> datetime:
    """When the service recorded a stored event (the domain event's ``timestamp``)."""
    stamp = getattr(app.mapper.to_domain_event(notification), "timestamp", None)
    if not isinstance(stamp, datetime):
        raise NothingToExport(f"notification {notification.id} has no time")
    return stamp


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.start >= args.end:
        print("export: --from must be before --to", file=sys.stderr)
        return 2
    with opened(settings, args.service) as (app, engine):
        try:
            doc = build_export(args.service, app.recorder, engine,
                               CheckpointStore(engine).list(args.service), args.start,
                               args.end, lambda n: _timestamp(app, n))
        except NothingToExport as e:
            print(f"export: {e}", file=sys.stderr)
            return 1
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    events = doc["events"]
    print(f"{args.service}: {len(events):,} events (notifications "
          f"{events[0]['notification_id']} to {events[-1]['notification_id']}), "
          f"{len(doc['after'])} more up to the checkpoint, {len(doc['checkpoints'])} "
          f"checkpoint(s): written to {args.out}")
    return 0


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    """Chain what is saved and sign the head, as the services do at their interval:
    an export of the last minutes then has a checkpoint that covers it."""
    for service in [args.service] if args.service else list(SERVICES):
        with opened(settings, service) as (app, engine):
            cp = make_checkpoint(Chainer(app.recorder, engine),
                                 Signer.from_settings(settings, service), engine)
        print(f"{service}: checkpoint at notification {cp.notification_id} "
              f"({cp.head[:16]}), key {cp.key_id}")
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """``solidarity audit <action>``."""
    action = getattr(args, "action", "verify")
    if action == "checkpoint":
        return cmd_checkpoint(args, settings)
    if action == "replay":
        return cmd_replay(args, settings)
    if action == "export":
        return cmd_export(args, settings)
    if getattr(args, "file", None) is not None:
        return verify_file(args)
    return _verify_stores(args, settings)


# What ``services/cli.py`` calls for every ``audit`` action (it predates replay and export).
cmd_verify = cmd_audit
