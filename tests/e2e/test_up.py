"""`solidarity up` as a newcomer runs it: a subprocess on free ports, over HTTP."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from shared.messaging.nats_server import free_port
from tests.support import Up, contact_body, procs, wait_for

pytestmark = pytest.mark.e2e

RELAY_POLL = {"SOLIDARITY_RELAY_POLL_INTERVAL_S": "0.2"}


def test_up_serves_the_slice_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    up = Up(data_dir, free_port(), env=RELAY_POLL).start()
    try:
        banner = up.output()
        assert f"{up.url}/docs" in banner and "coordinator token" in banner
        auth = {"Authorization": f"Bearer {up.token()}"}
        r = httpx.post(f"{up.url}/contact/contacts", json=contact_body(), headers=auth)
        assert r.status_code == 201, r.text

        def counted() -> int:
            r = httpx.get(f"{up.url}/reporting/monthly", params={"month": "2026-11"},
                          headers=auth)
            return int(r.json()["contacts"]["total"])

        wait_for(lambda: counted() == 1, what="reporting to count the contact")
        # The banner's "try" commands work as a newcomer pastes them into a shell.
        pasted = [line.strip() for line in banner.splitlines()
                  if line.strip().startswith(("export TOKEN=", "curl "))]
        assert len(pasted) == 2, banner
        ran = subprocess.run(["bash", "-c", "\n".join(pasted)], capture_output=True,
                             text=True, timeout=60, check=False)
        assert ran.returncode == 0, ran.stderr
        report = json.loads(ran.stdout)
        assert isinstance(report["contacts"]["total"], int), report
        assert report["period"]["from"][:7] in pasted[1], report
        children = up.children()
        assert children, "the NATS child should be running"
        assert up.stop() == 0, up.output()
        # solidarity up stopped its own children: nothing had to be killed for it.
        assert up.leftovers == [], up.output()
        assert not any(procs.alive(p.pid) for p in children)
    finally:
        up.stop()
    assert (data_dir / "contact.sqlite").exists() and (data_dir / "nats").is_dir()

    # Start again: every event is still there, and nothing is counted twice.
    with Up(data_dir, free_port(), env=RELAY_POLL) as again:
        auth = {"Authorization": f"Bearer {again.token()}"}
        events = httpx.get(f"{again.url}/contact/events", headers=auth).json()["items"]
        assert [e["type"] for e in events] == ["ContactLogged"]
        time.sleep(1.0)
        r = httpx.get(f"{again.url}/reporting/monthly", params={"month": "2026-11"},
                      headers=auth)
        assert r.json()["contacts"]["total"] == 1
        assert again.stop() == 0
