"""The ``solidarity`` command.

    solidarity up [--port 8000]             the whole system, embedded (NATS child, SQLite)
    solidarity serve <service> --port N     one service per process (production)
    solidarity token --role R [--sub ID] [--name NAME] [--ttl SECONDS]
    solidarity sms-in [--url URL] --from NUMBER --body TEXT   a text in, as the provider
    solidarity reporting rebuild [--url URL] [--token T]  replay reporting's read models
    solidarity audit verify [--service S] [--json] | --file F [--trust KEY]
    solidarity audit replay --service S --aggregate ID [--as-of T] [--format text|json]
    solidarity audit export --service S --from T1 --to T2 --out F
    solidarity audit checkpoint [--service S]   sign the chain heads now

Every command reads its data directory from SOLIDARITY_DATA_DIR (default ./var).

``up`` generates what it needs (signing secret, master key) into the data directory,
and shows a coordinator token only on a terminal (redirected output ends up in log
files). ``serve`` is production: it generates nothing and refuses to start without
SOLIDARITY_JWT_SECRET and SOLIDARITY_MASTER_KEY.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from services import audit_cli
from services.registry import SERVICES
from services.reporting import rebuild as reporting_rebuild
from shared.config import Settings
from shared.logging import configure_logging, get_logger
from shared.web.auth import Role, issue_token

if TYPE_CHECKING:
    import uvicorn


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="solidarity", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole system on its embedded defaults")
    up.add_argument("--port", type=int, default=None, help="HTTP port (default 8000)")
    up.add_argument("--host", default=None, help="HTTP bind address (default 127.0.0.1)")

    serve = sub.add_parser("serve", help="run one service (production: PostgreSQL, NATS)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--host", default=None)

    token = sub.add_parser("token", help="print a signed bearer token")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--sub", default=None, help="subject id (default: a new UUID)")
    token.add_argument("--name", default="", help="display name")
    token.add_argument("--ttl", type=int, default=None,
                       help="lifetime in seconds (default and most: "
                       "SOLIDARITY_TOKEN_MAX_LIFETIME_S, 12 h)")

    sms = sub.add_parser("sms-in", help="post a text to the running system's SMS webhook, "
                         "signed as the SMS provider signs it")
    sms.add_argument("--url", default=None,
                     help="the webhook to post to (default: the contact service's "
                     f"{INBOUND_PATH} on this system's host and port)")
    sms.add_argument("--from", dest="from_number", required=True,
                     help="the caller's UK number")
    sms.add_argument("--body", required=True, help="the text")
    reporting_rebuild.add_parser(sub)
    audit_cli.add_parser(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "host", None) is not None:
        overrides["host"] = args.host
    return Settings(**overrides)  # type: ignore[arg-type]


def cmd_token(args: argparse.Namespace) -> int:
    settings = Settings()
    if not settings.jwt_secret and not (settings.data_dir / "secrets" / "jwt-secret").exists():
        # A new secret here would sign tokens that no running stack accepts.
        print(
            f"no signing secret in {settings.data_dir}/secrets: start the system with this "
            "SOLIDARITY_DATA_DIR first (solidarity up), or set SOLIDARITY_JWT_SECRET",
            file=sys.stderr,
        )
        return 2
    most = settings.token_max_lifetime_s
    ttl = most if args.ttl is None else args.ttl
    if not 1 <= ttl <= most:
        # A longer one would be refused by every service (SOLIDARITY_TOKEN_MAX_LIFETIME_S).
        print(f"--ttl must be from 1 to {most} seconds (SOLIDARITY_TOKEN_MAX_LIFETIME_S)",
              file=sys.stderr)
        return 2
    print(
        issue_token(
            settings.effective_jwt_secret,
            sub=args.sub or str(uuid.uuid4()),
            role=args.role,
            name=args.name,
            issuer=settings.jwt_issuer,
            ttl_s=ttl,
        )
    )
    return 0


INBOUND_PATH = "/contact/texts/inbound"
LINE_PLACEHOLDER = "+447700900000"  # the line's number when SOLIDARITY_SMS_FROM_NUMBER is unset


def cmd_sms_in(args: argparse.Namespace) -> int:
    """Post a text as the provider does: a Twilio-style form (From, To, Body, a fresh
    MessageSid), signed with the provider's auth token over the URL the webhook checks
    (SOLIDARITY_SMS_WEBHOOK_URL if set, else the URL posted to). Prints the HTTP status
    and the text conversation it went to: never the number or the body."""
    import httpx

    from shared.sms import SIGNATURE_HEADER, twilio_signature

    settings = Settings()
    token = settings.sms_auth_token
    if not token:
        if not (settings.data_dir / "secrets" / "sms-auth-token").exists():
            print(f"no SMS auth token in {settings.data_dir}/secrets: start the system with "
                  "this SOLIDARITY_DATA_DIR first (solidarity up), or set "
                  "SOLIDARITY_SMS_AUTH_TOKEN", file=sys.stderr)
            return 2
        token = settings.secret("sms-auth-token")
    url = args.url or settings.base_url_for("contact") + INBOUND_PATH
    params = {"From": args.from_number, "To": settings.sms_from_number or LINE_PLACEHOLDER,
              "Body": args.body, "MessageSid": "SM" + uuid.uuid4().hex}
    signature = twilio_signature(token, settings.sms_webhook_url or url, params)
    try:
        r = httpx.post(url, data=params, headers={SIGNATURE_HEADER: signature}, timeout=30)
    except httpx.HTTPError as e:
        print(f"sms-in: could not reach {url} ({type(e).__name__})", file=sys.stderr)
        return 1
    if r.status_code != 200:
        title = r.json().get("title", "") if "json" in r.headers.get("content-type", "") else ""
        print(f"{r.status_code} {title}".rstrip(), file=sys.stderr)
        return 1
    location = r.headers.get("location", "")
    print(f"{r.status_code} {location.rsplit('/', 1)[-1] or '(no contact named)'}")
    return 0


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    """How every command serves HTTP: no access log of uvicorn's (the middleware writes
    one without personal data) and no ``server`` header (it names the software)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


def _serve(settings: Settings, services: Sequence[str], banner: bool) -> None:
    import uvicorn

    from services.system import System

    system = System(settings, services)
    app = system.http_app()
    if banner:
        _print_banner(settings, services)
    try:
        uvicorn.Server(uvicorn_config(app, settings)).run()
    except KeyboardInterrupt:
        # uvicorn shut down gracefully first, then re-raises the Ctrl-C it caught.
        pass


def _solidarity_command(settings: Settings) -> str:
    """How to run this same `solidarity` from a shell, on this data directory."""
    here = Path(sys.executable).parent / "solidarity"
    command = shlex.quote(str(here)) if here.exists() else "solidarity"
    data_dir = shlex.quote(str(settings.data_dir.resolve()))
    return f"SOLIDARITY_DATA_DIR={data_dir} {command}"


def _banner_token(settings: Settings) -> list[str]:
    """Commands that work as pasted: on a terminal, the coordinator token itself;
    elsewhere (a log file) how to get one, so that no token lands in a log."""
    hours = settings.token_max_lifetime_s / 3600
    if not sys.stdout.isatty():
        return [
            "  coordinator token: not printed (output is not a terminal); get one with",
            f"    export TOKEN=$({_solidarity_command(settings)} token --role coordinator)",
        ]
    token = issue_token(
        settings.effective_jwt_secret,
        sub="coordinator-" + uuid.uuid4().hex[:8],
        role=Role.COORDINATOR,
        name="Coordinator (try-out)",
        issuer=settings.jwt_issuer,
        ttl_s=settings.token_max_lifetime_s,
    )
    return [f"  coordinator token ({hours:g} h):", f"    export TOKEN={token}"]


def _print_banner(settings: Settings, services: Sequence[str]) -> None:
    base = f"http://{settings.host}:{settings.port}"
    store = "PostgreSQL" if settings.database_url else f"SQLite files in {settings.data_dir}/"
    month = datetime.now(ZoneInfo("Europe/London")).strftime("%Y-%m")
    lines = [
        "",
        "Solidarity is starting.",
        f"  services:      {', '.join(f'{base}/{s}' for s in services)}",
        f"  API docs:      {base}/docs   (OpenAPI: {base}/openapi.json)",
        f"  health:        {base}/contact/health",
        f"  event store:   {store}",
        f"  NATS:          {settings.nats_url}",
        *_banner_token(settings),
        "  try (paste the export line above first):",
        f'    curl -s -H "Authorization: Bearer $TOKEN" "{base}/reporting/monthly?month={month}"',
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from shared.messaging.nats_server import NatsServer

    settings = _settings(args)
    if settings.quiet_requests is None:  # a person watching a terminal: quiet by default
        settings.quiet_requests = sys.stdout.isatty()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Made now, not at the first request: `solidarity token` signs with it from the start.
    _ = settings.effective_jwt_secret
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("cli")
    nats: NatsServer | None = None
    if not settings.nats_url:
        nats = NatsServer(settings.data_dir / "nats", port=settings.nats_port).start()
        settings.nats_url = nats.url
        log.info("nats_started", port=nats.port, store_dir=str(nats.store_dir))
    try:
        _serve(settings, SERVICES, banner=True)
    finally:
        if nats is not None:
            nats.stop()
            log.info("nats_stopped")
    return 0


def _missing_secrets(settings: Settings) -> list[str]:
    """What production must be given: a secret generated here would differ in each
    container (tokens signed by one refused by the others; data sealed under one key
    unreadable by the rest) and vanish with it."""
    problems = []
    if not settings.jwt_secret:
        problems.append("SOLIDARITY_JWT_SECRET is not set (the secret that signs tokens; "
                        "e.g. openssl rand -hex 32)")
    if not settings.master_key:
        problems.append("SOLIDARITY_MASTER_KEY is not set (32 bytes as 64 hex characters; "
                        "e.g. openssl rand -hex 32)")
    else:
        try:
            valid = len(bytes.fromhex(settings.master_key)) == 32
        except ValueError:
            valid = False
        if not valid:
            problems.append("SOLIDARITY_MASTER_KEY must be 32 bytes as 64 hex characters")
    return problems


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)
    missing = _missing_secrets(settings)
    if missing:
        for problem in missing:
            print(f"solidarity serve: {problem}", file=sys.stderr)
        print("solidarity serve generates no secrets; `solidarity up` (embedded) does.",
              file=sys.stderr)
        return 2
    if not settings.nats_url:
        print("solidarity serve needs SOLIDARITY_NATS_URL", file=sys.stderr)
        return 2
    _serve(settings, [args.service], banner=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"up": cmd_up, "serve": cmd_serve, "token": cmd_token, "sms-in": cmd_sms_in,
                "reporting": reporting_rebuild.cmd_rebuild,
                "audit": lambda a: audit_cli.cmd_audit(a, _settings(a))}
    return handlers[args.command](args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
