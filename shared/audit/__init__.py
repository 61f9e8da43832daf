"""Tamper evidence for a service's event store: a hash chain over its notification log
(``chain``), signed checkpoints of the chain's head (``checkpoint``) and the verification
of both against the stored events (``verify``).

A clean library: it knows the library's recorder and a SQLAlchemy engine on the
service's own database, nothing of HTTP, NATS or any particular service. Wiring, in the
composition root::

    chainer = Chainer(app.recorder, app.engine)
    app.add_save_listener(chainer.saved)        # chained right after each save
    ...
    chainer.hashes(ids)                         # the relay: each event's link
    make_checkpoint(chainer, Signer.from_settings(settings, service), app.engine)
    verify_chain(app.recorder, app.engine, checkpoints, trusted_keys=...)
"""

from shared.audit.chain import GENESIS, Chainer, link
from shared.audit.checkpoint import (
    BadCheckpoint,
    Checkpoint,
    CheckpointStore,
    Signer,
    make_checkpoint,
    trusted_keys,
    verify_signature,
)
from shared.audit.verify import KINDS, Problem, Record, Verdict, verify_chain, verify_records

__all__ = [
    "GENESIS",
    "KINDS",
    "BadCheckpoint",
    "Chainer",
    "Checkpoint",
    "CheckpointStore",
    "Problem",
    "Record",
    "Signer",
    "Verdict",
    "link",
    "make_checkpoint",
    "trusted_keys",
    "verify_chain",
    "verify_records",
    "verify_signature",
]
