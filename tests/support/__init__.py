"""The one launcher of the whole system, for the tests, the e2e tests and the bench.

- ``Stack``: some or all services in this process (real uvicorn in a thread, real NATS,
  real stores), with its settings from ``stack_settings``.
- ``Up``: ``solidarity up`` as a child process in its own process group, as a newcomer
  runs it (e2e, bench).
- ``procs``: the process walker both use (descendants, liveness, groups, CPU, RSS).
"""

from tests.support import procs
from tests.support.helpers import PROBLEM, contact_body, monthly_count, stream_messages, wait_for
from tests.support.stack import Stack, stack_settings, stored_events
from tests.support.up import Up, venv_bin

__all__ = [
    "PROBLEM",
    "Stack",
    "Up",
    "contact_body",
    "monthly_count",
    "procs",
    "stack_settings",
    "stored_events",
    "stream_messages",
    "venv_bin",
    "wait_for",
]
