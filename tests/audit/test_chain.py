"""The chain and its verification as pure functions: no database, no files. The same
tamper cases as on the stores (test_chain_store.py), on records made in memory, so
``verify_records`` is known to work on an exported file too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.audit import GENESIS, Record, Signer, link, verify_records
from shared.audit.chain import chain_of


@dataclass(frozen=True)
class Ev:
    id: int
    originator_id: uuid.UUID
    originator_version: int
    topic: str
    state: bytes


def events(n: int, start: int = 1) -> list[Ev]:
    agg = [uuid.UUID(int=i + 1) for i in range(3)]
    return [Ev(i, agg[i % 3], i // 3 + 1, f"services.x:Thing.Happened{i % 2}",
               f"state-{i}-".encode() * 20) for i in range(start, start + n)]


def records(evs: list[Ev], links: list[tuple[int, bytes]]) -> list[Record]:
    by_id = {e.id: e for e in evs}
    stored = dict(links)
    return [Record(i, by_id.get(i), stored.get(i)) for i in sorted(by_id.keys() | stored)]


SIGNER = Signer(Ed25519PrivateKey.generate(), "demo")


def test_a_link_covers_every_field_and_the_previous_link() -> None:
    e = events(1)[0]
    base = link(GENESIS, e)
    assert len(base) == 32 and link(GENESIS, e) == base
    variants = [replace(e, id=2), replace(e, originator_id=uuid.UUID(int=9)),
                replace(e, originator_version=2), replace(e, topic=e.topic + "x"),
                replace(e, state=e.state[:-1] + b"?")]
    hashes = {link(GENESIS, v) for v in variants} | {link(b"\x01" * 32, e)}
    assert base not in hashes and len(hashes) == len(variants) + 1


def test_the_encoding_is_unambiguous_where_fields_meet() -> None:
    e = events(1)[0]
    a = replace(e, topic="ab", state=b"c")
    b = replace(e, topic="a", state=b"bc")
    assert link(GENESIS, a) != link(GENESIS, b)


def test_a_clean_history_verifies_with_every_event_counted() -> None:
    evs = events(10)
    links = chain_of(evs)
    cp = SIGNER.sign("demo", 10, links[-1][1])
    verdict = verify_records(records(evs, links), [cp])
    assert verdict.ok and verdict.problem is None
    assert (verdict.checked, verdict.unchained, verdict.checkpoints) == (10, 0, 1)
    assert verdict.head == (10, links[-1][1].hex())


def test_events_past_the_head_are_unchained_not_a_problem() -> None:
    evs = events(10)
    verdict = verify_records(records(evs, chain_of(evs[:7])))
    assert verdict.ok and (verdict.checked, verdict.unchained) == (7, 3)


def test_each_tampering_is_found_at_its_id() -> None:
    evs = events(10)
    links = chain_of(evs)

    def problem(evs2: list[Ev], links2: list[tuple[int, bytes]] = links,
                cps: tuple[object, ...] = ()) -> tuple[str, int, int | None]:
        verdict = verify_records(records(evs2, links2), cps)  # type: ignore[arg-type]
        assert not verdict.ok and verdict.problem is not None
        return verdict.problem.kind, verdict.problem.notification_id, verdict.problem.other_id

    changed = [replace(e, state=b"X" + e.state[1:]) if e.id == 4 else e for e in evs]
    assert problem(changed) == ("changed", 4, None)
    assert problem([e for e in evs if e.id != 6]) == ("deleted", 6, None)
    swapped = [replace(evs[7], id=3) if e.id == 3 else replace(evs[2], id=8) if e.id == 8
               else e for e in evs]
    assert problem(swapped) == ("reordered", 3, 8)
    gap = [e for e in evs if e.id != 5]
    gap_links = chain_of(gap)
    assert problem(evs, gap_links) == ("inserted", 5, None)
    altered = [(i, b"\x00" * 32) if i == 7 else (i, h) for i, h in links]
    assert problem(evs, altered) == ("chain_altered", 7, None)
    assert problem(evs, [(i, h) for i, h in links if i != 2]) == ("chain_altered", 2, None)


def test_a_consistently_rewritten_history_is_caught_by_its_checkpoint() -> None:
    evs = events(10)
    cp = SIGNER.sign("demo", 10, chain_of(evs)[-1][1])
    forged = [replace(e, state=b"forged") if e.id == 4 else e for e in evs]
    assert verify_records(records(forged, chain_of(forged))).ok  # the chain alone agrees
    verdict = verify_records(records(forged, chain_of(forged)), [cp])
    assert verdict.problem is not None
    assert (verdict.problem.kind, verdict.problem.notification_id) == ("checkpoint_mismatch", 10)
    assert "forged" not in verdict.problem.message


def test_a_checkpoint_with_a_bad_signature_or_an_untrusted_key_is_refused() -> None:
    evs = events(5)
    links = chain_of(evs)
    cp = SIGNER.sign("demo", 5, links[-1][1])
    bad = replace(cp, made_at=datetime(2020, 1, 1, tzinfo=UTC))
    verdict = verify_records(records(evs, links), [bad])
    assert verdict.problem is not None and verdict.problem.kind == "checkpoint_signature"
    assert verdict.problem.notification_id == 5
    other = Signer(Ed25519PrivateKey.generate(), "demo").public_key
    assert not verify_records(records(evs, links), [cp], trusted_keys=[other]).ok
    assert verify_records(records(evs, links), [cp], trusted_keys=[cp.public_key]).ok
    # another service's checkpoint is not this one's, when the service is named
    stranger = SIGNER.sign("elsewhere", 5, GENESIS)
    assert verify_records(records(evs, links), [stranger], service="demo").ok


def test_an_insertion_past_the_head_is_caught_when_a_checkpoint_claims_it() -> None:
    evs = [e for e in events(10) if e.id != 5]  # a gap at 5 (a rolled-back insert)
    links = chain_of(evs)
    cp = SIGNER.sign("demo", 10, links[-1][1])
    inserted = sorted([*evs, events(1, start=5)[0]], key=lambda e: e.id)
    truncated = [(i, h) for i, h in links if i < 5]  # the chain cut back to hide it
    verdict = verify_records(records(inserted, truncated))
    assert verdict.ok and verdict.unchained == 6  # without a checkpoint: just unchained
    verdict = verify_records(records(inserted, truncated), [cp])
    assert verdict.problem is not None
    assert (verdict.problem.kind, verdict.problem.notification_id) == ("inserted", 5)
    verdict = verify_records(records(evs, truncated), [cp])
    assert verdict.problem is not None
    assert (verdict.problem.kind, verdict.problem.notification_id) == ("chain_altered", 6)
