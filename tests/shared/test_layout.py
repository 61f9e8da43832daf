"""The shape every service shares, checked: small modules, a domain that does no I/O,
and a composition root that names no service (a new service is a package and a line
in the registry)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services.registry import MODULES, REGISTRY, SERVICES
from shared.service_module import ServiceModule, no_public_events

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
# What a domain module may not import: anything that does I/O or belongs to the web.
FORBIDDEN_IN_DOMAIN = ("sqlalchemy", "cryptography", "fastapi", "starlette", "httpx", "nats",
                       "psycopg", "shared.web", "shared.privacy", "shared.eventstore",
                       "shared.messaging", "shared.sms", "shared.config")


def _python_files(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in (ROOT / part).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _python_files("services", "shared"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_400_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it"


def _domain_modules() -> list[Path]:
    found = [p for p in _python_files("services") if "domain" in p.relative_to(ROOT).parts
             or p.name == "domain.py"]
    return [*found, ROOT / "shared" / "kernel.py"]


@pytest.mark.parametrize("path", _domain_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_domain_module_imports_nothing_that_does_io(path: Path) -> None:
    bad = sorted(name for name in _imports(path)
                 if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_DOMAIN))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_contact_domain_is_found_by_the_layout_check() -> None:
    names = {p.name for p in _domain_modules()}
    assert {"caller.py", "contact.py", "referral.py", "directory.py"} <= names


def test_the_composition_root_names_no_service() -> None:
    tree = ast.parse((ROOT / "services" / "system.py").read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    named = strings & set(SERVICES)
    assert not named, f"services/system.py names {sorted(named)}: use the ServiceModule"
    # The registry, and the runtime it builds (the composition root's other half).
    imported = {m for m in _imports(ROOT / "services" / "system.py")
                if m.startswith("services.") and m not in ("services.registry",
                                                           "services.runtime")}
    assert not imported, f"services/system.py imports service packages {sorted(imported)}"


def test_every_service_is_a_package_exporting_its_module() -> None:
    assert [m.name for m in REGISTRY] == list(SERVICES) == list(MODULES)
    for module in REGISTRY:
        assert isinstance(module, ServiceModule)
        package = ROOT / "services" / module.name
        assert (package / "__init__.py").is_file() and (package / "app.py").is_file()
        assert module.application.service == module.name
        for model in module.read_models:
            assert set(model.subscriptions) <= set(SERVICES) - {module.name}


def test_outbound_and_inbound_are_named_for_what_they_do() -> None:
    for module in REGISTRY:
        package = ROOT / "services" / module.name
        publishes = module.public_events is not no_public_events
        assert (package / "public_events.py").is_file() == publishes, module.name
        if module.subscriptions:  # it reacts to other services' events
            assert (package / "handlers.py").is_file(), module.name
