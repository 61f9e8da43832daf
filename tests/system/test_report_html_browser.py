"""The printable monitoring report (``?format=html``) in a real browser: a month built
through the contact API over real NATS, its page fetched over HTTP as a coordinator and
as a partner, and opened in headless Chromium (Debian's ``chromium``), which must lay it
out (a screenshot that is not blank), print it (a PDF) and give back a DOM whose bars
carry the same counts, code by code, as the JSON of the same month and role.

Chromium is a system package: ``make test`` installs it. Without it this test fails and
says so, unless SOLIDARITY_SKIP_BROWSER=1 (then it is skipped with that reason).
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.reporting.report_html import STUB_W
from shared.web.auth import Role
from tests.reporting.test_report_html import Page, expected_charts
from tests.support import Stack, contact_body, wait_for

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
MONTH = "2026-10"  # a past month: the scenario's contacts are at fixed times in it


@pytest.fixture
def chromium(tmp_path: Path) -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = (f"{CHROMIUM} is missing: the printable report is checked in headless "
              "Chromium; `make test` installs it (Debian package `chromium`)")
    if os.environ.get("SOLIDARITY_SKIP_BROWSER") == "1":
        print(f"skipped (SOLIDARITY_SKIP_BROWSER=1): {reason}")
        pytest.skip(f"SOLIDARITY_SKIP_BROWSER=1: {reason}")
    pytest.fail(reason + "; set SOLIDARITY_SKIP_BROWSER=1 to skip this test on purpose")


def _browse(chromium: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """One headless Chromium run with its own profile, killed after 60 s."""
    result = subprocess.run([str(chromium), *FLAGS, f"--user-data-dir={profile}", *args],
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def _scenario(c: httpx.Client) -> None:
    """October 2026: eight answered contacts (seven calls, one text), three callers who
    disclosed different things, an anonymous one; a high and a low risk."""
    ann = _ok(c.post("/contact/callers", json={"gender": "female", "age_band": "25_31"}),
              201)["caller_ref"]
    bo = _ok(c.post("/contact/callers", json={}), 201)["caller_ref"]
    cy = _ok(c.post("/contact/callers", json={"gender": "male", "age_band": "41_50"}),
             201)["caller_ref"]
    logged = []
    for day, caller, issues in ((3, ann, ["housing", "bereavement"]), (4, ann, ["housing"]),
                                (10, ann, ["housing"]), (11, bo, ["housing", "self_harm"]),
                                (17, bo, ["housing"]), (18, cy, ["self_harm", "housing"]),
                                (24, None, ["social_isolation"])):
        fields: dict[str, Any] = {"started_at": f"2026-10-{day:02d}T20:15:00+00:00",
                                  "ended_at": None, "issues": issues}
        if caller is not None:
            fields["caller_ref"] = caller
        logged.append(_ok(c.post("/contact/contacts", json=contact_body(**fields)), 201))
    _ok(c.post("/contact/contacts", json=contact_body(
        channel="text", direction="outbound", caller_is="professional", issues=["other"],
        started_at="2026-10-25T21:00:00+00:00", ended_at=None)), 201)
    for contact, level in ((logged[0], "high"), (logged[3], "low")):
        _ok(c.post(f"/contact/contacts/{contact['id']}/risk-assessments",
                   json={"level": level, "decision": "talked it through"}), 201)


def _settled(c: httpx.Client) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = _ok(c.get("/reporting/monthly", params={"month": MONTH}))
        risk = r["contacts"]["by_risk_level"]
        complete = (r["contacts"]["total"] == 8 and "high" in risk and "low" in risk
                    and r["callers"]["unique"] == 3)
        return r if complete else None
    return dict(wait_for(done, 30, 0.2, "reporting to count October"))


def _png_is_a_page(png: bytes, width: int, height: int) -> None:
    """A real PNG of the window's size that is not one colour: its pixel rows (after
    inflating, each with its filter byte) hold many distinct values; a blank white page
    of this size holds four."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        kind, body = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert header is not None and header[:2] == (width, height), header
    depth, colour = header[2], header[3]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    pixels = zlib.decompress(idat)
    assert depth == 8 and len(pixels) == height * (1 + width * channels)
    assert len(set(pixels)) > 32, "the screenshot is blank"


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # the page, not the store
def test_the_printable_report_renders_in_chromium_with_the_jsons_figures(
        chromium: Path, stack: Stack, tmp_path: Path) -> None:
    with stack.client() as c:
        _scenario(c)
        json_report = _settled(c)
    pages: dict[str, tuple[dict[str, Any], str]] = {}
    for role in (Role.COORDINATOR, Role.PARTNER):
        with stack.client(role) as c:
            r = c.get("/reporting/monthly", params={"month": MONTH, "format": "html"})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert "content-disposition" not in r.headers  # shown, not downloaded
            pages[role] = (_ok(c.get("/reporting/monthly", params={"month": MONTH})), r.text)
    assert pages[Role.COORDINATOR][0] == json_report
    partner_json = pages[Role.PARTNER][0]
    assert partner_json["contacts"]["by_channel"]["text"]["count"] == "<5"
    assert partner_json["contacts"]["total"] == 8

    for who, (report, html) in pages.items():
        page = tmp_path / f"{who}.html"
        page.write_text(html, encoding="utf-8")
        dom = _browse(chromium, tmp_path / f"profile-{who}", "--dump-dom",
                      page.as_uri()).stdout.decode()
        rendered = Page(dom)
        assert "Solidarity monitoring report, October 2026" in rendered.all_text()
        assert not any(tag == "script" for tag, _ in rendered.tags)
        expected = expected_charts(report)
        assert ("contacts", "by_issue") in expected and ("callers", "by_gender") in expected
        assert rendered.charts() == expected, who
        assert len(rendered.svgs) == len(expected)
        for bar in rendered.bars():  # a suppressed count's bar tells nothing of it
            if bar["data-count"] == "<5":
                assert float(bar["width"]) == STUB_W
    partner_bars = Page(pages[Role.PARTNER][1]).bars()
    assert "<5" in {b["data-count"] for b in partner_bars}  # the partner's page hides them

    coordinator = tmp_path / f"{Role.COORDINATOR}.html"
    shot = tmp_path / "page.png"
    _browse(chromium, tmp_path / "profile-shot", f"--screenshot={shot}",
            "--window-size=1200,3000", coordinator.as_uri())
    assert shot.stat().st_size > 20_000
    _png_is_a_page(shot.read_bytes(), 1200, 3000)

    pdf = tmp_path / "r.pdf"
    _browse(chromium, tmp_path / "profile-pdf", f"--print-to-pdf={pdf}",
            "--no-pdf-header-footer", coordinator.as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 5_000
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 2  # A4: pages
