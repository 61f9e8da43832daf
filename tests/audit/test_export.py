"""Exports and their offline verification (``shared.audit.export``), without any
service: a notification log made here, its chain and checkpoints kept in a real SQLite
database by the real ``Chainer`` and ``Signer``, the export passed through JSON as a
file would be, then tampered with in the file. Each tampering is rejected and located
at the notification id it touched."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.audit import Chainer, Signer, make_checkpoint
from shared.audit.export import NothingToExport, build_export, verify_export

T0 = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
SIGNER = Signer(Ed25519PrivateKey.generate(), "demo")


@dataclass(frozen=True)
class Note:
    id: int
    originator_id: uuid.UUID
    originator_version: int
    topic: str
    state: bytes


class Log:
    """A notification log in memory, as the library's recorder answers it."""

    def __init__(self, n: int) -> None:
        aggregates = [uuid.UUID(int=i + 1) for i in range(3)]
        self.notes = [Note(i, aggregates[i % 3], (i - 1) // 3 + 1, "services.x:Thing.Done",
                           f'{{"n":{i},"text":"pd1:s:{"x" * 30}"}}'.encode())
                      for i in range(1, n + 1)]
        self.times = {i: T0 + timedelta(minutes=i) for i in range(1, n + 1)}

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *,
                             inclusive_of_start: bool = True) -> list[Note]:
        low = start or 0
        out = [n for n in self.notes if (n.id >= low if inclusive_of_start else n.id > low)
               and (stop is None or n.id <= stop)]
        return out[:limit]

    def max_notification_id(self) -> int | None:
        return self.notes[-1].id if self.notes else None


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    made = sa.create_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    yield made
    made.dispose()


def chained(engine: Any, n: int = 10, checkpoint_at: int | None = None) -> tuple[Log, list[Any]]:
    """A log of ``n`` events, chained, with one checkpoint signed when the chain was at
    ``checkpoint_at`` (default: the head)."""
    log = Log(n)
    upto = checkpoint_at or n
    log.notes, later = log.notes[:upto], log.notes[upto:]
    chainer = Chainer(log, engine)
    cp = make_checkpoint(chainer, SIGNER, engine)
    log.notes += later
    chainer.catch_up()
    return log, [cp]


def export(engine: Any, log: Log, cps: list[Any], first: int, last: int,
           page_size: int = 1000) -> dict[str, Any]:
    doc = build_export("demo", log, engine, cps, log.times[first],
                       log.times[last] + timedelta(seconds=1), lambda n: log.times[n.id],
                       page_size=page_size)
    return dict(json.loads(json.dumps(doc)))  # as a file holds it


def problem(doc: dict[str, Any], trusted: list[str] | None = None) -> tuple[str, int]:
    v = verify_export(doc, trusted)
    assert not v.ok and v.problem is not None
    assert "pd1:" not in v.problem.message
    return v.problem.kind, v.problem.notification_id


def test_a_period_exported_is_verified_offline(engine: Any) -> None:
    log, cps = chained(engine)
    doc = export(engine, log, cps, 3, 6, page_size=2)
    assert [e["notification_id"] for e in doc["events"]] == [3, 4, 5, 6]
    assert [e["notification_id"] for e in doc["after"]] == [7, 8, 9, 10]
    assert doc["before"]["notification_id"] == 2 and len(doc["checkpoints"]) == 1
    assert doc["events"][0]["timestamp"] == log.times[3].isoformat()
    v = verify_export(doc, [SIGNER.public_key])
    assert v.ok, v.problem
    assert (v.events, v.first, v.last, v.covered_at, v.checkpoints) == (4, 3, 6, 10, 1)
    assert v.trusted and v.key_ids == (SIGNER.key_id,)
    assert verify_export(doc).ok and not verify_export(doc).trusted
    # From the first event of the log: the chain starts at GENESIS.
    assert verify_export(export(engine, log, cps, 1, 10)).ok


def test_one_altered_byte_of_one_event_is_rejected_at_its_id(engine: Any) -> None:
    log, cps = chained(engine)
    doc = export(engine, log, cps, 3, 6)
    state = bytearray(base64.b64decode(doc["events"][2]["state"]))
    state[5] ^= 0x01
    doc["events"][2]["state"] = base64.b64encode(bytes(state)).decode()
    assert problem(doc) == ("changed", 5)
    last = export(engine, log, cps, 3, 6)
    last["events"][-1]["originator_version"] += 1  # the last one: no next event to lean on
    assert problem(last) == ("changed", 6)


@pytest.mark.parametrize(("removed", "where"), [(4, 4), (3, 3), (6, 6)])
def test_one_event_removed_from_the_file_is_located(engine: Any, removed: int,
                                                     where: int) -> None:
    log, cps = chained(engine)
    doc = export(engine, log, cps, 3, 6)
    doc["events"] = [e for e in doc["events"] if e["notification_id"] != removed]
    assert problem(doc) == ("deleted", where)


def test_links_reorders_and_rewrites_in_the_file_are_found(engine: Any) -> None:
    log, cps = chained(engine)
    doc = export(engine, log, cps, 3, 6)
    altered = copy.deepcopy(doc)
    altered["events"][1]["link"] = "00" * 32
    assert problem(altered) == ("chain_altered", 4)
    swapped = copy.deepcopy(doc)
    swapped["events"][1], swapped["events"][2] = swapped["events"][2], swapped["events"][1]
    assert problem(swapped) == ("reordered", 4)
    # A consistent rewrite: event 5 changed and every later link recomputed to match.
    from shared.audit.chain import link
    from shared.audit.export import parse_export

    rewritten = copy.deepcopy(doc)
    rewritten["events"][2]["state"] = base64.b64encode(b"a different story").decode()
    _, (_, prev), events, after, _ = parse_export(rewritten)
    for item, entry in zip(rewritten["events"] + rewritten["after"], events + after,
                           strict=True):
        prev = link(prev, entry)
        item["link"] = prev.hex()
    assert problem(rewritten) == ("checkpoint_mismatch", 10)


def test_the_checkpoint_must_hold_cover_and_be_reached(engine: Any) -> None:
    log, cps = chained(engine)
    doc = export(engine, log, cps, 3, 6)
    assert problem(doc, [Signer(Ed25519PrivateKey.generate(), "demo").public_key]) == (
        "checkpoint_signature", 10)
    forged = copy.deepcopy(doc)
    forged["checkpoints"][0]["head"] = "11" * 32
    assert problem(forged) == ("checkpoint_signature", 10)
    bare = copy.deepcopy(doc)
    bare["checkpoints"] = []
    assert problem(bare) == ("not_covered", 6)
    cut = copy.deepcopy(doc)
    cut["after"] = cut["after"][:-1]  # the links up to the checkpoint, one short
    assert problem(cut) == ("checkpoint_mismatch", 10)
    assert problem({"format": "something else"}) == ("malformed", 0)
    broken = copy.deepcopy(doc)
    broken["events"][0]["state"] = "not base64!"
    assert problem(broken) == ("malformed", 0)


def test_a_checkpoint_inside_the_period_is_checked_and_the_next_one_covers(
        engine: Any) -> None:
    log, cps = chained(engine, n=10, checkpoint_at=5)
    with pytest.raises(NothingToExport, match="no signed checkpoint of demo covers "
                       "notification 8"):
        export(engine, log, cps, 3, 8)
    doc = export(engine, log, cps, 2, 5)
    assert doc["after"] == [] and verify_export(doc).covered_at == 5
    with pytest.raises(NothingToExport, match="recorded no event"):
        build_export("demo", log, engine, cps, T0 - timedelta(days=2),
                     T0 - timedelta(days=1), lambda n: log.times[n.id])


def test_an_event_whose_clock_is_out_of_order_is_carried_inside_the_run(
        engine: Any) -> None:
    log, cps = chained(engine)
    log.times[5] = T0 - timedelta(hours=1)  # recorded between 4 and 6, stamped earlier
    doc = export(engine, log, cps, 3, 7)
    assert [e["notification_id"] for e in doc["events"]] == [3, 4, 5, 6, 7]
    assert verify_export(doc).ok
