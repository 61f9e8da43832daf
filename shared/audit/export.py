"""Exports of a period of a service's history that anyone can check on another machine,
without the databases: ``build_export`` writes one, ``verify_export`` checks one.

An export is one JSON document (``FORMAT``):

- ``events``: every stored event from the first whose time (its ``timestamp``) is at or
  after ``from`` to the last whose time is before ``to``, as stored: notification id,
  aggregate id and version, topic, the stored bytes (base64; ciphertext where the
  service seals personal data, so the file holds nothing readable the store does not)
  and its chain link. The run is contiguous in notification ids: an event in between
  whose clock says otherwise is carried too (the chain cannot skip it).
- ``before``: the chain link just before the first event (the start: the first event's
  link is recomputed from it, and a deletion at the start is located);
- ``after``: the notifications from the last exported event up to the first signed
  checkpoint at or after it, with what their links cover (aggregate id and version,
  topic, stored bytes) and their links. A link alone proves nothing: it is a SHA-256
  over the link before it AND the event, so a file that carried only the links after
  the period could pair an altered period with any links ending at the signed head.
  With the events, the verifier recomputes every link from ``before`` to the
  checkpoint: the head it reaches must be the one signed there, which no one without
  the signing key can produce for altered events (short of a SHA-256 second preimage).
  The next checkpoint is at most one checkpoint interval later, so ``after`` is short.
- ``checkpoints``: every checkpoint of that service from ``before`` up to that first
  covering one, each with its public key and signature; each one's head must be the
  recomputed link at its id.

``verify_export`` is pure: it names the first problem by kind and notification id
(``changed``, ``deleted``, ``reordered``, ``chain_altered``, ``checkpoint_mismatch``,
``checkpoint_signature``, ``not_covered``, ``malformed``) and never an event's content.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.audit.chain import GENESIS, PAGE, NotificationLog, audit_chain, link, read_links
from shared.audit.checkpoint import BadCheckpoint, Checkpoint, verify_signature
from shared.audit.verify import Problem

FORMAT = "solidarity.audit.export.v1"
KINDS = ("malformed", "changed", "deleted", "reordered", "chain_altered",
         "checkpoint_mismatch", "checkpoint_signature", "not_covered")


class NothingToExport(Exception):
    """No event in the period, or no signed checkpoint covers it yet (says which)."""


@dataclass(frozen=True)
class Entry:
    """One notification of an export: what its link covers, and its stored link."""

    id: int
    originator_id: UUID | str
    originator_version: int
    topic: str
    state: bytes
    link: bytes
    timestamp: str | None = None  # exported events only

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "notification_id": self.id, "originator_id": str(self.originator_id),
            "originator_type": "uuid" if isinstance(self.originator_id, UUID) else "text",
            "originator_version": self.originator_version, "topic": self.topic,
            "state": base64.b64encode(self.state).decode(), "link": self.link.hex()}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _period(recorder: NotificationLog, start: datetime, end: datetime,
            timestamp_of: Callable[[Any], datetime],
            page_size: int) -> list[tuple[Any, datetime]]:
    """The contiguous run of notifications from the first in [start, end) to the last."""
    run: list[tuple[Any, datetime]] = []
    last_in = -1  # index in run of the last one inside the period
    after = 0
    while True:
        page = recorder.select_notifications(start=after, limit=page_size,
                                             inclusive_of_start=False)
        if not page:
            break
        late = 0
        for n in page:
            at = _utc(timestamp_of(n))
            inside = start <= at < end
            if run or inside:
                run.append((n, at))
                if inside:
                    last_in = len(run) - 1
            late += at >= end
        after = page[-1].id
        if late == len(page):  # a whole page past the period: the clock is past it
            break
    return run[:last_in + 1]


def _link_before(engine: Engine, first: int) -> tuple[int, bytes]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(audit_chain.c.notification_id, audit_chain.c.hash)
                           .where(audit_chain.c.notification_id < first)
                           .order_by(audit_chain.c.notification_id.desc()).limit(1)).first()
    return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


def _links(engine: Engine, after: int, stop: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while True:
        page = read_links(engine, after, PAGE, stop)
        out.update(page)
        if len(page) < PAGE:
            return out
        after = page[-1][0]


def _entry(n: Any, links: dict[int, bytes], timestamp: datetime | None = None) -> Entry:
    stored = links.get(n.id)
    if stored is None:
        raise NothingToExport(f"notification {n.id} is not chained yet: run `solidarity "
                              "audit verify` and export once the chain has caught up")
    return Entry(n.id, n.originator_id, n.originator_version, n.topic, bytes(n.state),
                 stored, None if timestamp is None else timestamp.isoformat())


def build_export(service: str, recorder: NotificationLog, engine: Engine,
                 checkpoints: Iterable[Checkpoint], start: datetime, end: datetime,
                 timestamp_of: Callable[[Any], datetime], *,
                 page_size: int = PAGE) -> dict[str, Any]:
    """The export of ``service``'s events in [start, end) (see the module)."""
    start, end = _utc(start), _utc(end)
    run = _period(recorder, start, end, timestamp_of, page_size)
    if not run:
        raise NothingToExport(f"{service} recorded no event from {start.isoformat()} to "
                              f"{end.isoformat()}")
    first, last = run[0][0].id, run[-1][0].id
    mine = sorted((c for c in checkpoints if c.service == service),
                  key=lambda c: (c.notification_id, c.made_at))
    covering = [c for c in mine if c.notification_id >= last]
    if not covering:
        raise NothingToExport(f"no signed checkpoint of {service} covers notification "
                              f"{last} yet: the service signs its head every "
                              "SOLIDARITY_AUDIT_CHECKPOINT_INTERVAL_S; export after the next")
    upto = covering[0].notification_id
    before = _link_before(engine, first)
    links = _links(engine, before[0], upto)
    after = list(recorder.select_notifications(start=last, limit=upto - last + 1, stop=upto,
                                               inclusive_of_start=False)) if upto > last else []
    return {
        "format": FORMAT, "service": service,
        "from": start.isoformat(), "to": end.isoformat(),
        "exported_at": datetime.now(UTC).isoformat(),
        "before": {"notification_id": before[0], "link": before[1].hex()},
        "events": [_entry(n, links, at).to_dict() for n, at in run],
        "after": [_entry(n, links).to_dict() for n in after],
        "checkpoints": [c.to_dict() for c in mine if before[0] <= c.notification_id <= upto],
    }


# ------------------------------------------------------------------------ verifying


@dataclass(frozen=True)
class ExportVerdict:
    ok: bool
    service: str | None
    events: int  # exported events whose link was recomputed as stored
    first: int | None
    last: int | None
    checkpoints: int  # checkpoints whose signature and head hold
    covered_at: int | None  # the covering checkpoint's notification id
    key_ids: tuple[str, ...]  # the keys of the checkpoints that hold
    trusted: bool  # checked against a set of trusted keys
    problem: Problem | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "service": self.service, "events": self.events,
                "first": self.first, "last": self.last, "checkpoints": self.checkpoints,
                "covered_at": self.covered_at, "key_ids": list(self.key_ids),
                "trusted_keys_checked": self.trusted,
                "problem": None if self.problem is None else self.problem.to_dict()}


class Malformed(ValueError):
    """The file is not an export (names the field, never a value)."""


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise Malformed(f"{name} is missing or not a notification id")
    return value


def _bytes(value: Any, name: str, hex_: bool = False) -> bytes:
    if not isinstance(value, str):
        raise Malformed(f"{name} is missing")
    try:
        return bytes.fromhex(value) if hex_ else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise Malformed(f"{name} is not {'hex' if hex_ else 'base64'}") from None


def _parse_entry(data: Any, where: str) -> Entry:
    if not isinstance(data, dict):
        raise Malformed(f"{where} is not an object")
    nid = _int(data.get("notification_id"), f"{where}.notification_id")
    text = data.get("originator_id")
    if not isinstance(text, str) or not isinstance(data.get("topic"), str):
        raise Malformed(f"{where} {nid}: originator_id or topic is missing")
    originator: UUID | str = text
    if data.get("originator_type", "uuid") == "uuid":
        try:
            originator = UUID(text)
        except ValueError:
            raise Malformed(f"{where} {nid}: originator_id is not a UUID") from None
    link_ = _bytes(data.get("link"), f"{where} {nid}: link", hex_=True)
    if len(link_) != 32:
        raise Malformed(f"{where} {nid}: link is not 32 bytes")
    return Entry(nid, originator, _int(data.get("originator_version"), f"{where} {nid}: "
                 "originator_version"), data["topic"],
                 _bytes(data.get("state"), f"{where} {nid}: state"), link_)


def parse_export(doc: Any) -> tuple[str, tuple[int, bytes], list[Entry], list[Entry],
                                    list[Checkpoint]]:
    """(service, before, events, after, checkpoints) of an export; ``Malformed``."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise Malformed(f"not an export of this format ({FORMAT})")
    service = doc.get("service")
    before = doc.get("before")
    if not isinstance(service, str) or not isinstance(before, dict):
        raise Malformed("service or before is missing")
    start = (_int(before.get("notification_id"), "before.notification_id"),
             _bytes(before.get("link"), "before.link", hex_=True))
    if len(start[1]) != 32:
        raise Malformed("before.link is not 32 bytes")
    lists = []
    for name in ("events", "after"):
        items = doc.get(name)
        if not isinstance(items, list):
            raise Malformed(f"{name} is missing")
        lists.append([_parse_entry(e, name) for e in items])
    raw = doc.get("checkpoints")
    if not isinstance(raw, list):
        raise Malformed("checkpoints is missing")
    try:
        cps = [Checkpoint.from_dict(c) for c in raw]
    except BadCheckpoint as e:
        raise Malformed(str(e)) from None
    return service, start, lists[0], lists[1], cps


def _chain_problem(prev_id: int, prev: bytes, e: Entry, nxt: Entry | None) -> Problem:
    """The link recomputed at ``e`` is not the stored one: say what it looks like."""
    if e.id > prev_id + 1 and (nxt is None or link(e.link, nxt) == nxt.link):
        # The stored links run on from e: what is missing is between prev_id and e.
        return Problem("deleted", prev_id + 1, f"the export skips from {prev_id} to {e.id} "
                       f"and the chain does not run across: an event at {prev_id + 1} or "
                       "after was removed")
    if nxt is not None and link(link(prev, e), nxt) == nxt.link:
        return Problem("chain_altered", e.id, f"the link given at {e.id} is not the "
                       "chain's, though the events are intact: the link was altered")
    return Problem("changed", e.id, f"the event at {e.id} is not the one chained there "
                   f"(chained {e.link.hex()[:16]}..., now {link(prev, e).hex()[:16]}...): "
                   "it was changed")


def verify_export(doc: Any, trusted_keys: Iterable[str] | None = None) -> ExportVerdict:
    """Check an export offline (see the module). ``trusted_keys``: the public keys
    (base64) a checkpoint must be signed with; None: any key its signature proves."""
    trusted = None if trusted_keys is None else frozenset(trusted_keys)

    def verdict(problem: Problem | None, **kw: Any) -> ExportVerdict:
        base: dict[str, Any] = {"service": None, "events": 0, "first": None, "last": None,
                                "checkpoints": 0, "covered_at": None, "key_ids": (),
                                "trusted": trusted is not None}
        return ExportVerdict(ok=problem is None, problem=problem, **(base | kw))

    try:
        service, (prev_id, prev), events, after, cps = parse_export(doc)
    except Malformed as bad:
        return verdict(Problem("malformed", 0, f"the file is not a valid export: {bad}"))
    if not events:
        return verdict(Problem("malformed", 0, "the export holds no event"),
                       service=service)
    seen = {"service": service, "first": events[0].id, "last": events[-1].id}
    chain = events + after
    recomputed: dict[int, bytes] = {prev_id: prev}
    checked = 0
    ids = [e.id for e in chain]
    in_order = sorted(ids)
    if ids != in_order or len(set(ids)) != len(ids) or ids[0] <= prev_id:
        at = next((i for i, (a, b) in enumerate(zip(ids, in_order, strict=True)) if a != b),
                  0)
        return verdict(Problem("reordered", in_order[at], f"the event at {in_order[at]} is "
                               f"not in its place (found {ids[at]} there): events were "
                               "reordered", other_id=ids[at]), **seen)
    for i, e in enumerate(chain):
        h = link(prev, e)
        if h != e.link:
            return verdict(_chain_problem(prev_id, prev, e, chain[i + 1] if i + 1 < len(chain)
                                          else None), events=checked, **seen)
        prev, prev_id = h, e.id
        recomputed[e.id] = h
        checked += i < len(events)
    holding, keys = 0, []
    covered: int | None = None
    for cp in sorted(cps, key=lambda c: (c.notification_id, c.made_at)):
        if cp.service != service or not verify_signature(cp, trusted):
            return verdict(Problem("checkpoint_signature", cp.notification_id,
                                   f"the checkpoint at {cp.notification_id} (key "
                                   f"{cp.key_id}) does not carry a valid signature"
                                   f"{' of a trusted key' if trusted is not None else ''} "
                                   f"of {service}"), events=checked, **seen)
        reached = recomputed.get(cp.notification_id)
        if reached is None or reached.hex() != cp.head:
            return verdict(Problem("checkpoint_mismatch", cp.notification_id,
                                   f"the chain recomputed from the export up to "
                                   f"{cp.notification_id} is not what the checkpoint signed "
                                   f"there (key {cp.key_id}): the history was rewritten"),
                           events=checked, **seen)
        holding += 1
        keys.append(cp.key_id)
        if cp.notification_id >= events[-1].id and covered is None:
            covered = cp.notification_id
    if covered is None:
        return verdict(Problem("not_covered", events[-1].id, "no signed checkpoint at or "
                               f"after {events[-1].id} is in the export: nothing proves the "
                               "events were not rewritten"), events=checked,
                       checkpoints=holding, key_ids=tuple(keys), **seen)
    return verdict(None, events=checked, checkpoints=holding, covered_at=covered,
                   key_ids=tuple(dict.fromkeys(keys)), **seen)
