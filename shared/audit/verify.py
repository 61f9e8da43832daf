"""Verifying a service's history: recompute its chain from the stored events and compare
it with the stored links and with every signed checkpoint.

The verdict names the FIRST place where something is wrong, by notification id, and
what it looks like:

- ``changed``: the event stored at that id is not the one chained there;
- ``deleted``: the chain has a link for an id the log no longer has;
- ``inserted``: the log has an event the chain skipped (between chained ids, or past
  the chain's head where a checkpoint says the chain reached);
- ``reordered``: the event chained at that id is now stored at another (``other_id``);
- ``chain_altered``: the events are intact but a stored link was changed or removed;
- ``checkpoint_mismatch``: the recomputed chain at a checkpoint's id is not what was
  signed there (a history rewritten consistently, chain and all);
- ``checkpoint_signature``: a checkpoint whose signature does not hold (or whose key is
  not trusted).

Events after the chain's head that no checkpoint claims are not a problem: they are
reported as ``unchained`` (the next catch-up links them). Messages carry ids, kinds and
hashes only, never an event's contents.

``verify_records`` is pure (no I/O): it takes the merged stream of (id, event or None,
stored link or None) in id order, so an exported file can be checked the same way.
``verify_chain`` feeds it from a service's store, a page at a time: memory stays flat
whatever the length of the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.engine import Engine

from shared.audit.chain import (
    GENESIS,
    PAGE,
    EventLike,
    NotificationLog,
    ensure_tables,
    link,
    link_fields,
    originator_text,
    read_head,
    read_links,
)
from shared.audit.checkpoint import Checkpoint, verify_signature

NEVER = 2**63  # past any notification id
KINDS = ("changed", "deleted", "inserted", "reordered", "chain_altered",
         "checkpoint_mismatch", "checkpoint_signature")


Entry = tuple[int, "EventLike | None", "bytes | None"]


class Record(NamedTuple):
    """One notification id: its event in the log (or None) and its stored link (or
    None)."""

    notification_id: int
    event: EventLike | None
    stored: bytes | None


@dataclass(frozen=True)
class Problem:
    kind: str
    notification_id: int
    message: str
    other_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "notification_id": self.notification_id,
                "other_id": self.other_id, "message": self.message}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int  # events whose link was recomputed and found as stored
    head: tuple[int, str]  # the last link verified: (notification id, hex)
    unchained: int = 0  # events past the chain's head (not a problem)
    checkpoints: int = 0  # checkpoints found to hold
    problem: Problem | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked,
                "head": {"notification_id": self.head[0], "hash": self.head[1]},
                "unchained": self.unchained, "checkpoints": self.checkpoints,
                "problem": None if self.problem is None else self.problem.to_dict()}


class _Stream:
    """An iterator of records that can look one ahead."""

    def __init__(self, records: Iterable[Entry]) -> None:
        self._it = iter(records)
        self._ahead: list[Record] = []

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        if self._ahead:
            return self._ahead.pop()
        return Record(*next(self._it))

    def peek(self) -> Record | None:
        if not self._ahead:
            try:
                self._ahead.append(Record(*next(self._it)))
            except StopIteration:
                return None
        return self._ahead[0]


class _Pending:
    """Events met past the stored links (or between them): not yet a problem."""

    def __init__(self, first: EventLike, before: bytes) -> None:
        self.first_id = first.id
        self.last_id = first.id
        self.count = 1
        self.without_first = before  # the chain over them all but the first
        self.all = link(before, first)  # the chain over them all

    def add(self, n: EventLike) -> None:
        self.without_first = link(self.without_first, n)
        self.all = link(self.all, n)
        self.last_id = n.id
        self.count += 1


class _Verifier:
    def __init__(self, checkpoints: Iterable[Checkpoint], trusted: Iterable[str] | None,
                 service: str | None) -> None:
        self.cps = sorted((c for c in checkpoints if service is None or c.service == service),
                          key=lambda c: (c.notification_id, c.made_at))
        self.trusted = None if trusted is None else frozenset(trusted)
        self.ci = 0
        self.prev, self.prev_id = GENESIS, 0
        self.checked = 0
        self.cps_ok = 0
        self.pending: _Pending | None = None

    def verdict(self, problem: Problem | None = None) -> Verdict:
        unchained = self.pending.count if self.pending is not None and problem is None else 0
        return Verdict(ok=problem is None, checked=self.checked,
                       head=(self.prev_id, self.prev.hex()), unchained=unchained,
                       checkpoints=self.cps_ok, problem=problem)

    def run(self, records: Iterable[Entry]) -> Verdict:
        it = iter(records)
        cps = self.cps
        due = cps[0].notification_id if cps else NEVER
        prev, prev_id, checked = self.prev, self.prev_id, self.checked
        for nid, ev, st in it:
            # The usual case, kept tight: a chained event, as chained, no checkpoint due.
            if nid <= due and ev is not None and st is not None and self.pending is None:
                h = link(prev, ev)
                if h == st:
                    prev, prev_id, checked = h, nid, checked + 1
                    continue
            self.prev, self.prev_id, self.checked = prev, prev_id, checked
            problem = self._step(nid, ev, st, it)
            if problem is not None:
                return self.verdict(problem)
            prev, prev_id, checked = self.prev, self.prev_id, self.checked
            due = cps[self.ci].notification_id if self.ci < len(cps) else NEVER
        self.prev, self.prev_id, self.checked = prev, prev_id, checked
        while self.ci < len(cps):
            problem = self._checkpoint(cps[self.ci])
            if problem is not None:
                return self.verdict(problem)
            self.ci += 1
        return self.verdict()

    def _step(self, nid: int, ev: EventLike | None, st: bytes | None,
              it: Iterator[Entry]) -> Problem | None:
        """One record, any case: checkpoints due first, then the record."""
        cps = self.cps
        while self.ci < len(cps) and nid > cps[self.ci].notification_id:
            problem = self._checkpoint(cps[self.ci])
            if problem is not None:
                return problem
            self.ci += 1
        if ev is None:
            if st is None:
                return None
            if self.pending is not None:
                return self._inserted(self.pending.first_id)
            return Problem("deleted", nid, f"the chain has a link at {nid} but the log "
                           "has no event there: it was deleted")
        if st is None:
            if self.pending is None:
                self.pending = _Pending(ev, self.prev)
            else:
                self.pending.add(ev)
            return None
        if self.pending is not None:
            return self._pending_at_link(self.pending, ev, st)
        h = link(self.prev, ev)
        if h != st:
            return self._mismatch(_Stream(it), ev, st)
        self.prev, self.prev_id = h, nid
        self.checked += 1
        return None

    # -- checkpoints -----------------------------------------------------------------
    def _checkpoint(self, cp: Checkpoint) -> Problem | None:
        if not verify_signature(cp, self.trusted):
            return Problem("checkpoint_signature", cp.notification_id,
                           f"the checkpoint at {cp.notification_id} (key {cp.key_id}) "
                           "does not carry a valid signature of a trusted key")
        pending = self.pending
        if pending is not None:  # it claims events the chain does not have
            if pending.all.hex() == cp.head:
                return Problem("chain_altered", pending.first_id,
                               f"the chain stops before {pending.first_id}, but the "
                               f"checkpoint at {cp.notification_id} signed those events: "
                               "links were removed")
            if pending.without_first.hex() == cp.head:
                return self._inserted(pending.first_id)
        elif self.prev_id == cp.notification_id and self.prev.hex() == cp.head:
            self.cps_ok += 1
            return None
        return Problem("checkpoint_mismatch", cp.notification_id,
                       f"the chain recomputed up to {cp.notification_id} is not what the "
                       f"checkpoint signed there (signed {cp.head[:16]}..., key "
                       f"{cp.key_id}): the history was rewritten")

    # -- classifying the first problem -----------------------------------------------
    @staticmethod
    def _inserted(nid: int) -> Problem:
        return Problem("inserted", nid, f"the log has an event at {nid} that the chain "
                       "skipped: it was inserted")

    def _pending_at_link(self, pending: _Pending, ev: EventLike, stored: bytes) -> Problem:
        """Events the chain does not have, then one it has: were they inserted, or were
        their links removed?"""
        if link(pending.all, ev) == stored:
            return Problem("chain_altered", pending.first_id,
                           f"the chain has no link at {pending.first_id} though the event "
                           "is intact: a link was removed")
        return self._inserted(pending.first_id)

    def _mismatch(self, stream: _Stream, ev: EventLike, stored: bytes) -> Problem:
        """The event at ``m`` does not hash to the link stored at ``m``: the event was
        changed, or moved (reordered), or the link itself was altered."""
        m, p = ev.id, self.prev
        recomputed = link(p, ev)
        nxt = stream.peek()
        if (nxt is not None and nxt.event is not None and nxt.stored is not None
                and link(recomputed, nxt.event) == nxt.stored):
            return self._altered(m)  # the events go on as chained: only the link differs
        for cp in self.cps[self.ci:]:
            if cp.notification_id != m:
                break
            if cp.head == recomputed.hex() and verify_signature(cp, self.trusted):
                return self._altered(m)
        own = (originator_text(ev.originator_id), ev.originator_version, ev.topic.encode())
        for rec in stream:  # is what was chained at m now elsewhere?
            other = rec.event
            if other is None:
                continue
            o, v, t, s = (originator_text(other.originator_id), other.originator_version,
                          other.topic.encode(), bytes(other.state))
            if (link_fields(p, m, o, v, t, s) == stored
                    or link_fields(p, m, own[0], own[1], own[2], s) == stored
                    or link_fields(p, m, own[0], own[1], t, s) == stored):
                return Problem("reordered", m, f"the event chained at {m} is now stored at "
                               f"{other.id}: events were reordered", other_id=other.id)
        return Problem("changed", m, f"the event stored at {m} is not the one chained "
                       f"there (chained {stored.hex()[:16]}..., now "
                       f"{recomputed.hex()[:16]}...): it was changed")

    @staticmethod
    def _altered(m: int) -> Problem:
        return Problem("chain_altered", m, f"the link stored at {m} is not the chain's, "
                       "though the events are intact: the chain table was altered")


def verify_records(records: Iterable[Entry], checkpoints: Iterable[Checkpoint] = (), *,
                   trusted_keys: Iterable[str] | None = None,
                   service: str | None = None) -> Verdict:
    """Verify a stream of records in notification-id order against the checkpoints
    (those of ``service`` only, when given). ``trusted_keys``: the public keys (base64)
    a checkpoint must be signed with; None: any key that the signature proves."""
    return _Verifier(checkpoints, trusted_keys, service).run(records)


def _merged(events: list[Any], links: list[tuple[int, bytes]]) -> Iterator[Entry]:
    """One page of events and the links of the same ids, merged by id."""
    ids = [n.id for n in events]
    if len(links) == len(ids) and [i for i, _ in links] == ids:  # the usual case
        return zip(ids, events, [h for _, h in links], strict=True)
    out: list[Entry] = []
    i = j = 0
    while i < len(events) or j < len(links):
        if j == len(links) or (i < len(events) and ids[i] < links[j][0]):
            out.append((ids[i], events[i], None))
            i += 1
        elif i == len(events) or links[j][0] < ids[i]:
            out.append((links[j][0], None, links[j][1]))
            j += 1
        else:
            out.append((ids[i], events[i], links[j][1]))
            i, j = i + 1, j + 1
    return iter(out)


def store_records(recorder: NotificationLog, engine: Engine,
                  page_size: int = PAGE) -> Iterator[Entry]:
    """The service's log and its stored links, merged by notification id, a page of each
    at a time. Only links that existed when it started are read (their events were
    stored before them); events saved meanwhile come out as not yet chained."""
    ensure_tables(engine)
    with engine.connect() as conn:
        stop = read_head(conn)[0]
    after = 0
    while True:
        events = list(recorder.select_notifications(start=after, limit=page_size,
                                                    inclusive_of_start=False))
        if not events:  # links past the last event: their events were deleted
            while after < stop:
                links = read_links(engine, after, page_size, stop)
                if not links:
                    break
                yield from ((i, None, h) for i, h in links)
                after = links[-1][0]
            return
        end = events[-1].id
        links = read_links(engine, after, page_size, min(end, stop)) if after < stop else []
        if len(links) == page_size and links[-1][0] < min(end, stop):
            end = links[-1][0]  # more links than events here: take the page up to them
            events = [n for n in events if n.id <= end]
        yield from _merged(events, links)
        after = end


def verify_chain(recorder: NotificationLog, engine: Engine,
                 checkpoints: Iterable[Checkpoint] = (), *,
                 trusted_keys: Iterable[str] | None = None, service: str | None = None,
                 page_size: int = PAGE) -> Verdict:
    """Recompute one service's chain from its stored events and check it against the
    stored links and every checkpoint (see the module)."""
    return verify_records(store_records(recorder, engine, page_size), checkpoints,
                          trusted_keys=trusted_keys, service=service)
