"""The HTTP contract of each service: its OpenAPI document, with descriptions left out
(prose may change; paths, parameters, schemas, status codes and operation ids may not,
unless an issue changes the contract).

    .venv/bin/python -m tests.contract.openapi          # rewrite the snapshots

The snapshots in this folder are what ``test_openapi.py`` compares against.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from services.registry import SERVICES
from services.system import System
from shared.config import Settings

HERE = Path(__file__).parent
IGNORED = frozenset({"description"})


def without_prose(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: without_prose(v) for k, v in doc.items() if k not in IGNORED}
    if isinstance(doc, list):
        return [without_prose(v) for v in doc]
    return doc


def documents(data_dir: Path) -> dict[str, Any]:
    """Each service's document as it serves it alone, and the combined one (``all``).
    Building the system opens its stores but connects to nothing."""
    settings = Settings(data_dir=data_dir, nats_url="nats://127.0.0.1:1")
    out: dict[str, Any] = {}
    for name in (*SERVICES, "all"):
        system = System(settings, SERVICES if name == "all" else [name])
        try:
            out[name] = without_prose(system.http_app().openapi())
        finally:
            for runtime in system.runtimes.values():
                runtime.close()
    return out


def snapshot_path(name: str) -> Path:
    return HERE / f"{name}.openapi.json"


def write_snapshots() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, doc in documents(Path(tmp)).items():
            snapshot_path(name).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_snapshots()
