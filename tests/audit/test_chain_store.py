"""The hash chain on a real service store, SQLite and PostgreSQL: the contact
application built by the composition root (no HTTP, no NATS), its events tampered with
by raw SQL on the library's own events table and on ``audit_chain``, and each tampering
found and located at the exact notification id."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.contact.app import ContactApplication
from services.contact.domain import NewCaller
from services.system import ServiceRuntime
from shared.audit import Chainer, Signer, make_checkpoint, verify_chain
from shared.audit.chain import audit_chain
from shared.audit.verify import Verdict
from shared.config import Settings
from shared.eventstore.store import create_engine
from shared.kernel import acting

Build = Callable[..., ServiceRuntime]


@pytest.fixture
def app(app_runtime: Build) -> Iterator[ContactApplication]:
    runtime = app_runtime("contact")
    built = runtime.app
    assert isinstance(built, ContactApplication)
    # These tests drive the chain themselves: the runtime's own chaining after each save
    # (tested in tests/system/test_audit_trail.py) is taken off.
    assert runtime.chainer is not None
    built.remove_save_listener(runtime.chainer.saved)
    with acting("sup-1", "corr-1"):
        yield built


def log(app: ContactApplication, n: int) -> None:
    for i in range(n):
        app.log_contact(channel="phone", started_at=datetime.now(UTC) - timedelta(minutes=i),
                        issues=["social_isolation"], summary=f"talked about item {i}")


class Store:
    """Raw SQL on the library's events table and on the chain (an attacker's view)."""

    def __init__(self, app: ContactApplication) -> None:
        self.app = app
        self.engine = app.engine
        self.pg = self.engine.dialect.name == "postgresql"
        self.table = str(getattr(app.recorder, "events_table_name", "stored_events"))
        self.id = "notification_id" if self.pg else "rowid"

    def sql(self, statement: str, **params: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(sa.text(statement), params)

    def row(self, nid: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = conn.execute(sa.text(
                f"SELECT originator_id, originator_version, topic, state FROM {self.table} "
                f"WHERE {self.id} = :i"), {"i": nid}).mappings().one()
        return dict(found)

    def set_row(self, nid: int, values: dict[str, Any]) -> None:
        self.sql(f"UPDATE {self.table} SET originator_id = :originator_id, "
                 "originator_version = :originator_version, topic = :topic, state = :state "
                 f"WHERE {self.id} = :i", i=nid, **values)

    def flip_byte(self, nid: int) -> None:
        values = self.row(nid)
        state = bytearray(values["state"])
        state[len(state) // 2] ^= 0x01
        self.set_row(nid, values | {"state": bytes(state)})

    def swap(self, a: int, b: int) -> None:
        ra, rb = self.row(a), self.row(b)
        self.set_row(a, ra | {"originator_version": -1})  # out of the way of the key
        self.set_row(b, ra)
        self.set_row(a, rb)

    def delete(self, nid: int) -> None:
        self.sql(f"DELETE FROM {self.table} WHERE {self.id} = :i", i=nid)

    def insert(self, nid: int) -> None:
        """A forged event at ``nid`` (copied from event 1, as another aggregate)."""
        values = self.row(1)
        other = uuid.uuid4()
        values["originator_id"] = str(other) if self.pg else other.hex
        self.sql(f"INSERT INTO {self.table} ({self.id}, originator_id, originator_version, "
                 "topic, state) VALUES (:i, :originator_id, :originator_version, :topic, "
                 ":state)", i=nid, **values)

    def gap(self, size: int, then: Callable[[], None]) -> int:
        """Leave ``size`` ids unused (as a rolled-back insert does) before the events
        ``then`` saves; returns the first unused id."""
        first = self.app.max_notification_id() + 1
        if self.pg:
            self.sql(f"SELECT setval(pg_get_serial_sequence('{self.table}', "
                     "'notification_id'), :n)", n=first + size - 1)
            then()
        else:  # SQLite takes the next rowid after the largest: hold the gap with a row
            self.insert(first + size - 1)
            then()
            self.delete(first + size - 1)
        return first

    def chain_rows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_chain))
                       .scalar() or 0)


@pytest.fixture
def store(app: ContactApplication) -> Store:
    return Store(app)


def chained(app: ContactApplication, n: int = 12) -> Chainer:
    log(app, n)
    chainer = Chainer(app.recorder, app.engine, page_size=5)
    chainer.catch_up()
    return chainer


def verify(app: ContactApplication, *cps: Any, **kw: Any) -> Verdict:
    return verify_chain(app.recorder, app.engine, list(cps), page_size=4, **kw)


def found(verdict: Verdict) -> tuple[str, int]:
    assert not verdict.ok and verdict.problem is not None, verdict
    return verdict.problem.kind, verdict.problem.notification_id


def test_a_clean_store_verifies_with_every_event_checked(app: ContactApplication,
                                                        settings: Settings) -> None:
    chainer = chained(app)
    total = app.max_notification_id()
    cp = make_checkpoint(chainer, Signer.from_settings(settings, "contact"), app.engine)
    verdict = verify(app, cp, trusted_keys=[cp.public_key])
    assert verdict.ok and verdict.problem is None
    assert (verdict.checked, verdict.unchained, verdict.checkpoints) == (total, 0, 1)
    assert verdict.head == (total, chainer.head()[1].hex())
    log(app, 3)  # saved, not yet chained: not a problem
    verdict = verify(app, cp)
    assert verdict.ok and (verdict.checked, verdict.unchained) == (total, 3)


def test_the_chain_follows_saves_and_catching_up_again_changes_nothing(
        app: ContactApplication, store: Store) -> None:
    chainer = Chainer(app.recorder, app.engine)
    app.add_save_listener(chainer.saved)
    log(app, 4)
    assert chainer.head()[0] == app.max_notification_id() == store.chain_rows() == 4
    before = chainer.head()
    assert chainer.catch_up() == before and Chainer(app.recorder, app.engine).catch_up() == before
    assert store.chain_rows() == 4
    app.remove_save_listener(chainer.saved)
    log(app, 2)
    hashes = chainer.hashes([1, 5, 6, 99])  # the relay's read chains what it lacks
    assert sorted(hashes) == [1, 5, 6] and store.chain_rows() == 6
    assert verify(app).ok
    store.sql("DELETE FROM audit_chain WHERE notification_id > 2")  # cut back under it
    assert chainer.catch_up() == (6, hashes[6]) and store.chain_rows() == 6


def test_one_changed_byte_is_found_at_its_event(app: ContactApplication, store: Store) -> None:
    chained(app)
    store.flip_byte(7)
    verdict = verify(app)
    assert found(verdict) == ("changed", 7) and verdict.checked == 6


def test_a_deleted_event_is_found(app: ContactApplication, store: Store) -> None:
    chained(app)
    store.delete(5)
    assert found(verify(app)) == ("deleted", 5)


def test_the_last_event_deleted_is_found(app: ContactApplication, store: Store) -> None:
    chained(app)
    store.delete(12)  # the chain still has it
    assert found(verify(app)) == ("deleted", 12)


def test_two_swapped_events_are_found_as_reordered(app: ContactApplication,
                                                   store: Store) -> None:
    chained(app)
    store.swap(4, 9)
    verdict = verify(app)
    assert found(verdict) == ("reordered", 4)
    assert verdict.problem is not None and verdict.problem.other_id == 9


def test_an_inserted_event_between_chained_ones_is_found(app: ContactApplication,
                                                        store: Store) -> None:
    log(app, 3)
    first = store.gap(3, lambda: log(app, 3))
    Chainer(app.recorder, app.engine).catch_up()
    assert verify(app).ok  # the gap itself is no problem
    store.insert(first + 1)
    assert found(verify(app)) == ("inserted", first + 1)


def test_an_insertion_past_a_cut_back_chain_is_found_by_the_checkpoint(
        app: ContactApplication, store: Store, settings: Settings) -> None:
    log(app, 3)
    first = store.gap(3, lambda: log(app, 3))
    chainer = Chainer(app.recorder, app.engine)
    cp = make_checkpoint(chainer, Signer.from_settings(settings, "contact"), app.engine)
    store.sql("DELETE FROM audit_chain WHERE notification_id >= :i", i=first)
    store.insert(first)
    assert verify(app).ok  # without the checkpoint, only events not yet chained
    assert found(verify(app, cp)) == ("inserted", first)


def test_an_altered_or_removed_link_is_found(app: ContactApplication, store: Store) -> None:
    chained(app)
    store.sql("UPDATE audit_chain SET hash = :h WHERE notification_id = 8", h=b"\x07" * 32)
    assert found(verify(app)) == ("chain_altered", 8)
    store.sql("DELETE FROM audit_chain WHERE notification_id = 8")
    assert found(verify(app)) == ("chain_altered", 8)


def test_a_consistent_rewrite_is_caught_by_a_signed_checkpoint_only(
        app: ContactApplication, store: Store, settings: Settings) -> None:
    chainer = chained(app)
    signer = Signer.from_settings(settings, "contact")
    cp = make_checkpoint(chainer, signer, app.engine)
    store.flip_byte(3)
    store.sql("DELETE FROM audit_chain WHERE notification_id >= 3")
    Chainer(app.recorder, app.engine).catch_up()  # the attacker recomputes the chain
    assert verify(app).ok
    assert found(verify(app, cp)) == ("checkpoint_mismatch", cp.notification_id)
    forged = signer.sign("contact", cp.notification_id, b"\x01" * 32)
    tampered = type(cp)(**(forged.__dict__ | {"signature": cp.signature}))
    assert found(verify(app, tampered)) == ("checkpoint_signature", cp.notification_id)


def test_crypto_shredding_leaves_the_chain_intact(app: ContactApplication,
                                                  store: Store) -> None:
    chainer = Chainer(app.recorder, app.engine)
    app.add_save_listener(chainer.saved)
    ref = app.register_caller(NewCaller(alias="Sunny", phone="07700 900123",
                                        consent_to_keep_history=True)).caller_ref
    app.log_contact(channel="phone", started_at=datetime.now(UTC) - timedelta(minutes=5),
                    issues=["housing"], caller_ref=ref, summary="lost the flat")
    keys_of = "SELECT count(*) FROM subject_keys WHERE subject_id = :s"
    subject = str(app.get_caller(ref).id)
    assert store.sql(keys_of, s=subject).scalar() == 1
    app.erase_caller(ref)
    assert store.sql(keys_of, s=subject).scalar() == 0  # the key is gone
    verdict = verify(app)
    assert verdict.ok and verdict.checked == app.max_notification_id() >= 3


def test_two_chainers_racing_on_one_store_make_one_chain(app: ContactApplication,
                                                         store: Store,
                                                         settings: Settings) -> None:
    log(app, 40)
    engines = [create_engine(settings, "contact") for _ in range(2)]
    chainers = [Chainer(app.recorder, e, page_size=3) for e in engines]
    errors: list[BaseException] = []
    done = threading.Event()

    def chain(c: Chainer) -> None:
        try:
            while not done.is_set():
                c.catch_up()
            c.catch_up()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=chain, args=(c,)) for c in chainers]
    for t in threads:
        t.start()
    log(app, 20)  # and more saved meanwhile
    done.set()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    assert not errors, errors
    total = app.max_notification_id()
    assert store.chain_rows() == total == 60
    verdict = verify(app)
    assert verdict.ok and verdict.checked == total
