"""``GET /reporting/audit/verify``: is every service's history still what it signed?

For each service, every checkpoint reporting keeps for it (``audit.ChainKeeper``) is
checked: its signature with a trusted key, and that the service's chain still contains
it (the service's event at that notification id, read through the event source
reporting backfills from, carries that chain hash). A service that runs in this process
(embedded mode) is verified in full besides: its whole chain recomputed from its stored
events (``shared.audit.verify_chain``) against its stored links, its own checkpoints and
those reporting keeps. The answer per service is the CLI's verdict
(``solidarity audit verify --json``) with ``scope`` (``store`` or ``checkpoints``) and
``checkpoints_held``; ids, kinds and hashes only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from shared.audit import GENESIS, Checkpoint, CheckpointStore, verify_chain, verify_signature
from shared.audit.chain import NotificationLog
from shared.messaging.sources import EventSource


class LocalService(Protocol):
    """A service whose store this process holds (``ServiceRuntime``)."""

    @property
    def app(self) -> Any: ...
    @property
    def engine(self) -> Engine: ...


def _problem(kind: str, nid: int, message: str) -> dict[str, Any]:
    return {"kind": kind, "notification_id": nid, "other_id": None, "message": message}


def _unique(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    seen: dict[tuple[int, str, str, str], Checkpoint] = {}
    for cp in checkpoints:
        seen.setdefault((cp.notification_id, cp.made_at.isoformat(), cp.key_id, cp.head), cp)
    return sorted(seen.values(), key=lambda c: (c.notification_id, c.made_at))


def verify_local(service: str, local: LocalService, held: list[Checkpoint],
                 trusted: frozenset[str]) -> dict[str, Any]:
    """The service's whole chain, recomputed from its store (blocking: on a thread)."""
    recorder: NotificationLog = local.app.recorder
    own = CheckpointStore(local.engine).list(service)
    verdict = verify_chain(recorder, local.engine, _unique([*own, *held]),
                           trusted_keys=trusted, service=service)
    return {**verdict.to_dict(), "scope": "store", "checkpoints_held": len(held)}


async def verify_remote(service: str, source: EventSource, held: list[Checkpoint],
                        trusted: frozenset[str]) -> dict[str, Any]:
    """Each checkpoint held for a service in another process, against its log."""
    checked, head, problem = 0, (0, GENESIS.hex()), None
    fetched: dict[int, str | None] = {0: GENESIS.hex()}  # several checkpoints at one id
    for cp in held:
        nid = cp.notification_id
        if not verify_signature(cp, trusted):
            problem = _problem("checkpoint_signature", nid, f"the checkpoint at {nid} (key "
                               f"{cp.key_id}) does not carry a valid signature of a "
                               "trusted key")
            break
        if nid not in fetched:
            try:
                page = await source.fetch(service, nid - 1, 1)
            except Exception as e:  # the source does not answer: say so, not a 500
                problem = _problem("source_unreachable", nid, f"the {service} service's "
                                   f"log could not be read ({type(e).__name__})")
                break
            fetched[nid] = (page[0].chain_hash if page and page[0].notification_id == nid
                            else None)
        found = fetched[nid]
        if found != cp.head:
            now = "no event" if found is None else f"{found[:16]}..."
            problem = _problem("checkpoint_mismatch", nid, f"the {service} service's chain "
                               f"at {nid} is not what the checkpoint signed there (signed "
                               f"{cp.head[:16]}..., now {now}): its store was rewritten "
                               "or rewound")
            break
        checked, head = checked + 1, (nid, cp.head)
    return {"ok": problem is None, "checked": checked,
            "head": {"notification_id": head[0], "hash": head[1]}, "unchained": 0,
            "checkpoints": checked, "problem": problem, "scope": "checkpoints",
            "checkpoints_held": len(held)}


async def verify_all(store: CheckpointStore, trusted: frozenset[str], source: EventSource,
                     local: Mapping[str, LocalService],
                     services: Sequence[str]) -> dict[str, Any]:
    """Every service's verdict (see the module), one after the other."""
    held_all = await asyncio.to_thread(store.list)
    names = list(dict.fromkeys([*services, *local, *(c.service for c in held_all)]))
    out: dict[str, Any] = {}
    for service in names:
        held = _unique(c for c in held_all if c.service == service)
        if service in local:
            out[service] = await asyncio.to_thread(verify_local, service, local[service],
                                                   held, trusted)
        else:
            out[service] = await verify_remote(service, source, held, trusted)
    return {"ok": all(v["ok"] for v in out.values()), "services": out}
