"""The shift service's API tier runs over real HTTP and NATS on SQLite only: what it
checks is the translation between HTTP and the application (status codes, problems,
headers, roles). The application tier (``test_app.py``) runs the same use cases on
SQLite and PostgreSQL, and ``tests/system/test_shift_flow.py`` the debrief reaction
end to end on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from tests.support import Stack, stack_settings


@pytest.fixture
def stack(tmp_path: Path, nats_url: str) -> Iterator[Stack]:
    """The four services over real HTTP, on SQLite and this test's NATS."""
    with Stack(stack_settings(Settings(data_dir=tmp_path / "var"), nats_url=nats_url)) as st:
        yield st
