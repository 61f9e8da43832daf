"""``solidarity reporting rebuild``: drop reporting's read models and replay every
source stream from the start, on the running service, with a progress bar.

It reaches the running reporting service over HTTP, as any client does: it posts
``POST /reporting/rebuild`` (which answers when the replay is done) and meanwhile reads
the progress from ``GET /reporting/health`` (each consumer's ``replay.position``, the
last notification id replayed) against each source's head (``store.head`` in
``GET /<source>/health``). One command for both modes: in embedded mode (``solidarity
up``) everything is behind one address; deployed, each service's address comes from
SOLIDARITY_SERVICE_URLS (or ``--url`` for all of them). The service keeps running:
live events go on between the replay's pages.

The token is a coordinator's: ``--token``, or one signed here with the system's secret
(SOLIDARITY_JWT_SECRET, or the embedded data directory's).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import httpx

from shared.config import Settings
from shared.web.auth import Role, issue_token

UPSTREAMS = ("contact", "shift", "outreach")
POLL_S = 0.5
WIDTH = 30


def add_parser(sub: Any) -> None:
    """``reporting rebuild`` under the ``solidarity`` command's subparsers."""
    reporting = sub.add_parser("reporting", help="the reporting service's maintenance")
    actions = reporting.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser(
        "rebuild", help="drop reporting's read models and replay every source stream "
        "(on the running service, over HTTP), with progress")
    rebuild.add_argument("--url", default=None,
                         help="base URL of the services (default: SOLIDARITY_SERVICE_URLS, "
                         "else this system's host and port)")
    rebuild.add_argument("--token", default=None,
                         help="a coordinator's token (default: one signed with the "
                         "system's secret)")


def _token(settings: Settings, given: str | None) -> str | None:
    if given:
        return given
    if not settings.jwt_secret and not (settings.data_dir / "secrets" / "jwt-secret").exists():
        return None  # a secret made now would sign a token no running service accepts
    return issue_token(settings.effective_jwt_secret, sub="cli:reporting-rebuild",
                       role=Role.COORDINATOR, name="reporting rebuild",
                       issuer=settings.jwt_issuer, ttl_s=min(settings.token_max_lifetime_s,
                                                             6 * 3600))


def _heads(client: httpx.Client, base: Any) -> dict[str, int]:
    """Each source's head (highest notification id); a source that does not say is
    left out (the progress is then shown as counts only)."""
    heads = {}
    for upstream in UPSTREAMS:
        try:
            r = client.get(f"{base(upstream)}/{upstream}/health", timeout=10)
            head = r.json().get("store", {}).get("head")
        except (httpx.HTTPError, ValueError, AttributeError):
            continue
        if isinstance(head, int):
            heads[upstream] = head
    return heads


def _progress(client: httpx.Client, url: str) -> dict[str, int]:
    """Each source's replay position, from reporting's health."""
    try:
        consumers = client.get(f"{url}/reporting/health", timeout=5).json()["consumers"]
    except (httpx.HTTPError, ValueError, KeyError):
        return {}
    return {c["durable"].rsplit("-from-", 1)[-1]: c["replay"]["position"]
            for c in consumers if c.get("replay")}


def _line(done: int, total: int | None, elapsed: float, bar: bool) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        share = min(1.0, done / total)
        filled = int(share * WIDTH)
        gauge = f"[{'#' * filled}{'.' * (WIDTH - filled)}] " if bar else ""
        return f"{gauge}{share * 100:5.1f}%  {done:,}/{total:,} events  {rate:,.0f}/s"
    return f"{done:,} events replayed  {rate:,.0f}/s"


def cmd_rebuild(args: argparse.Namespace) -> int:
    settings = Settings()
    token = _token(settings, args.token)
    if token is None:
        print(f"no signing secret in {settings.data_dir}/secrets: run this with the system's "
              "SOLIDARITY_DATA_DIR, set SOLIDARITY_JWT_SECRET, or pass --token",
              file=sys.stderr)
        return 2

    def base(service: str) -> str:
        return str(args.url).rstrip("/") if args.url else settings.base_url_for(service)

    url = base("reporting")
    bar = sys.stdout.isatty()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers) as client:
        heads = _heads(client, base)
        total = sum(heads.values()) if len(heads) == len(UPSTREAMS) else None
        answer: dict[str, Any] = {}

        def post() -> None:
            try:
                answer["response"] = client.post(f"{url}/reporting/rebuild", timeout=None)
            except httpx.HTTPError as e:
                answer["error"] = type(e).__name__

        started = time.monotonic()
        worker = threading.Thread(target=post, name="reporting-rebuild", daemon=True)
        worker.start()
        last_printed = 0.0
        while worker.is_alive():
            worker.join(POLL_S)
            done = sum(_progress(client, url).values())
            elapsed = time.monotonic() - started
            if bar:
                print("\r" + _line(done, total, elapsed, bar), end="", flush=True)
            elif elapsed - last_printed >= 2.0:
                print(_line(done, total, elapsed, bar), flush=True)
                last_printed = elapsed
    elapsed = time.monotonic() - started
    if bar:
        print()
    if "error" in answer:
        print(f"reporting rebuild: could not reach {url} ({answer['error']})", file=sys.stderr)
        return 1
    r: httpx.Response = answer["response"]
    if r.status_code != 200:
        title = r.json().get("title", "") if "json" in r.headers.get("content-type", "") else ""
        print(f"reporting rebuild: {r.status_code} {title}".rstrip(), file=sys.stderr)
        return 1
    applied: dict[str, int] = r.json()["applied"]
    done = sum(applied.values())
    print(_line(done, done, elapsed, bar))
    print("rebuilt in {:.1f} s: {}".format(
        elapsed, ", ".join(f"{n:,} from {source}" for source, n in sorted(applied.items()))))
    return 0
