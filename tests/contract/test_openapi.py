"""The HTTP contract changes only where an issue changes it: every service's OpenAPI
document equals its snapshot, descriptions aside (see ``openapi.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.registry import SERVICES
from tests.contract.openapi import documents, snapshot_path


def _differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    if type(expected) is not type(actual):
        return [f"{path or '/'}: {type(expected).__name__} became {type(actual).__name__}"]
    if isinstance(expected, dict):
        out = [f"{path}/{k}: removed" for k in expected if k not in actual]
        out += [f"{path}/{k}: added" for k in actual if k not in expected]
        for k in expected.keys() & actual.keys():
            out += _differences(expected[k], actual[k], f"{path}/{k}")
        return out
    if isinstance(expected, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in _differences(e, a, f"{path}[{i}]")]
    return [] if expected == actual else [f"{path or '/'}: {expected!r:.60} became {actual!r:.60}"]


@pytest.fixture(scope="module")
def current(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return documents(Path(tmp_path_factory.mktemp("contract")))


@pytest.mark.parametrize("name", [*SERVICES, "all"])
def test_the_openapi_document_is_the_snapshot(current: dict[str, Any], name: str) -> None:
    expected = json.loads(snapshot_path(name).read_text())
    diff = _differences(expected, current[name])
    assert not diff, (
        f"{name}'s HTTP contract changed ({len(diff)} differences, first: {diff[:5]}). If an "
        "issue changes it, rewrite the snapshots: .venv/bin/python -m tests.contract.openapi"
    )
