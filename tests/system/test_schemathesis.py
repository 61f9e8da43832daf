"""The contract says what the server answers: schemathesis generates requests for every
operation of every service from the combined OpenAPI document, sends them to the whole
system (real uvicorn, real NATS, each store) as a coordinator, and runs all its checks
on every answer: no server error, no answer that breaks its schema, no status code,
content type or header the document does not list, invalid data refused and valid
data taken, a missing token refused, an undocumented method refused.

A coordinator may call every operation but the SMS webhook (public, signed; its
requests here carry no valid signature, so only its refusals are exercised: what it
does with a signed text is tested in ``tests/contact/test_api_texts.py``), so one
token reaches all of them; what the other roles may do is the authorisation matrix's
business (``test_authorisation.py``). Schema-valid data that breaks a rule of the
service is answered 409 or 422 (412 for a stale If-Match), all documented, so those
count as accepted.

It drives schemathesis's engine (the one behind the ``schemathesis`` command) through
all its phases: coverage (each parameter's and field's edges, missing and wrong types,
undeclared methods, no token), fuzzing and stateful sequences (the links it infers
between operations: create, then read, change or delete what was created). Each
distinct failure is reported once, with a curl line that reproduces it. Bounded and
deterministic: a fixed seed, derandomized generation, no example database and no cache
between runs, MAX_EXAMPLES generated examples per operation besides the coverage
cases; about 20 s a store on this machine.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from schemathesis.config import OutputConfig
from schemathesis.engine import events
from schemathesis.engine.statistic import Statistic

from shared.web.auth import Role
from tests.support import Stack

SEED = 20261129
MAX_EXAMPLES = 50  # generated per operation, besides the coverage cases

# Schema-valid data may still be refused by a rule of the service (409, 412, 422) or
# name a resource that does not exist (404). A 5xx is never right (not_a_server_error).
ACCEPTED = ["2xx", "401", "403", "404", "409", "412", "422"]
# Invalid data is refused: schemathesis's list, and 412 (an If-Match that names no
# version is checked before the body, and refused as a failed precondition).
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "412", "415", "422", "428",
           "429"]


def schemathesis_config(token: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "auth": {"openapi": {"bearer": {"bearer": token}}},
        "checks": {
            "enabled": True,
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            "negative_data_rejection": {"expected-statuses": REFUSED},
        },
        "cache": {"enabled": False},  # no state kept between runs (nor files in the tree)
        "continue-on-failure": True,  # every distinct failure of an operation, not the first
        "request-timeout": 30,
        "suppress-health-check": ["all"],
    })


def run(url: str, token: str) -> tuple[Statistic, list[str]]:
    """Every phase over every operation; the failures grouped, and any run error."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json",
                                           config=schemathesis_config(token))
    statistic = Statistic()
    errors: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            statistic.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
    return statistic, errors


def report(statistic: Statistic) -> str:
    config = OutputConfig()
    lines: list[str] = []
    for label in sorted(statistic.failures):
        lines.append(f"__ {label} __")
        for index, group in enumerate(statistic.failures[label].values(), 1):
            lines.append(group.format(index=index, curl=group.code_sample, config=config))
    return "\n".join(lines)


def test_every_operation_answers_as_its_contract_says(stack: Stack) -> None:
    document = httpx.get(f"{stack.url}/openapi.json").json()
    operations = {f"{method.upper()} {path}"
                  for path, item in document["paths"].items() for method in item}
    statistic, errors = run(stack.url, stack.token(Role.COORDINATOR))
    assert not errors, "\n".join(errors)
    assert operations <= statistic.tested_operations, "every operation is exercised"
    if statistic.failures:
        pytest.fail(
            f"{len(statistic.unique_failures_map)} distinct failures in "
            f"{len(statistic.failures)} operations of {statistic.total_cases} cases (to "
            "replay one, put a token in place of [Filtered]: solidarity token --role "
            "coordinator):\n" + report(statistic), pytrace=False)
