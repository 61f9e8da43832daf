"""The quick start of docs/api.md ("a night on the line") runs as it is written.

``solidarity up`` starts on a free port and a new data directory (``tests.support.Up``,
as in test_up.py); the quick start's ```bash blocks run in order in ONE bash session (so
that variables carry), with ``BASE`` and ``SOLIDARITY_DATA_DIR`` naming that system,
and every request's status is checked against its ``# expect: NNN``.

How a status is checked, without changing what the reader pastes: the session defines
a ``curl`` function that runs the real curl with ``-D`` (the response's headers to a
side file) and keeps the body; after each line carrying ``# expect: NNN`` (after its
here-document, if it opens one) the test inserts a check of the LAST request made, so a
loop that asks until the system has caught up carries the comment on its ``done`` line.
Every line that made a request must have had one of its requests checked. The session
runs with ``set -e``: a command that fails (``solidarity sms-in``, ``j`` on a missing
field) stops it, and the failure names the step and the line.

For development only: ``QUICKSTART_UNTIL=<n>`` runs steps 1 to n and skips the test
(saying so) if they passed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.messaging.nats_server import free_port
from tests.support import Up, wait_for
from tests.support.up import ROOT

pytestmark = pytest.mark.e2e

DOC = ROOT / "docs" / "api.md"
HEADING = "## Quick start: a night on the line"
EXPECT = re.compile(r"#\s*expect:\s*(\d{3})\s*$")
HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)(\w+)\2")
FENCE = re.compile(r"^\s*```")
UNTIL = "QUICKSTART_UNTIL"

# The session's own functions: a curl that records each request, the check, the trap.
PRELUDE = r"""
set -eE -o pipefail
shopt -s inherit_errexit
__qs_log() { printf '%s\n' "$*" >> "$QUICKSTART_STATE/log"; }
curl() {
  local prev="" arg out=""
  for arg in "$@"; do
    case $prev in -o|--output) out=$arg ;; esac
    prev=$arg
  done
  rm -f "$QUICKSTART_STATE/headers" "$QUICKSTART_STATE/body"
  printf '%s\n' "${BASH_LINENO[0]}" > "$QUICKSTART_STATE/request"
  __qs_log "request ${BASH_LINENO[0]}"
  if [ -n "$out" ]; then
    command curl -D "$QUICKSTART_STATE/headers" "$@" || return
    cp "$out" "$QUICKSTART_STATE/body" 2>/dev/null || true
  else
    command curl -D "$QUICKSTART_STATE/headers" "$@" | tee "$QUICKSTART_STATE/body"
  fi
}
__qs_expect() {
  local got="" req=""
  [ -f "$QUICKSTART_STATE/request" ] && req=$(cat "$QUICKSTART_STATE/request")
  [ -f "$QUICKSTART_STATE/headers" ] && got=$(sed -n \
    's/^HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$QUICKSTART_STATE/headers" | tail -n 1)
  rm -f "$QUICKSTART_STATE/headers" "$QUICKSTART_STATE/request"
  if [ -n "$got" ] && [ "$got" = "$1" ]; then __qs_log "ok $2 ${req:-0} $got"; return 0; fi
  __qs_log "fail $2 ${req:-0} ${got:-none} $1"
  exit 90
}
trap '__qs_log "error $? $LINENO ${BASH_LINENO[*]}"' ERR
"""


@dataclass
class Step:
    n: int
    title: str
    blocks: list[list[tuple[int, str]]] = field(default_factory=list)  # (doc line, text)


def quickstart_steps(text: str) -> list[Step]:
    """The quick start's steps (its ### headings) and their bash blocks, in order."""
    lines = text.splitlines()
    start = lines.index(HEADING)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    steps: list[Step] = []
    block: list[tuple[int, str]] | None = None
    for i in range(start + 1, end):
        line = lines[i]
        if block is not None:
            if FENCE.match(line):
                block = None
            else:
                block.append((i + 1, line))
        elif line.startswith("### "):
            steps.append(Step(len(steps) + 1, line[4:].strip()))
        elif FENCE.match(line):
            # Every block of the quick start runs: none may hide in another language.
            assert line.strip() == "```bash", f"docs/api.md line {i + 1}: {line.strip()}"
            assert steps, f"docs/api.md line {i + 1}: a block before the first step"
            block = []
            steps[-1].blocks.append(block)
    return steps


@dataclass
class Script:
    text: str
    origin: dict[int, tuple[Step, int]]  # script line -> (step, doc line)


def build_script(steps: list[Step]) -> Script:
    out = PRELUDE.strip("\n").splitlines()
    origin: dict[int, tuple[Step, int]] = {}

    def emit(line: str, where: tuple[Step, int] | None = None) -> None:
        out.append(line)
        if where is not None:
            origin[len(out)] = where

    for step in steps:
        emit(f'__qs_log "step {step.n}"; echo {shlex.quote(f"=== {step.title}")}')
        for block in step.blocks:
            pending: tuple[str, int, str, bool] | None = None  # code, doc line, EOF, <<-
            for doc_line, line in block:
                emit(line, (step, doc_line))
                if pending is not None:
                    code, marked, word, dash = pending
                    if (line.lstrip("\t") if dash else line) == word:
                        emit(f"__qs_expect {code} {marked}")
                        pending = None
                    continue
                expect = EXPECT.search(line)
                if not expect:
                    continue
                doc = HEREDOC.search(line[:expect.start()])
                if doc is None:
                    emit(f"__qs_expect {expect.group(1)} {doc_line}")
                else:
                    pending = (expect.group(1), doc_line, doc.group(3), doc.group(1) == "-")
            assert pending is None, f"docs/api.md line {pending[1]}: here-document not ended"
    emit('__qs_log "done"')
    return Script("\n".join(out) + "\n", origin)


def _doc_lines(text: str, first: int, last: int) -> str:
    lines = text.splitlines()
    first = max(1, min(first, last))
    return "\n".join(f"  {n}: {lines[n - 1]}" for n in range(first, last + 1))


def _problem(body: Path) -> str:
    try:
        problem = json.loads(body.read_text())
    except (OSError, ValueError):
        return body.read_text(errors="replace")[:500] if body.exists() else "(no body)"
    if not isinstance(problem, dict):
        return json.dumps(problem)[:500]
    return " | ".join(str(problem[k]) for k in ("title", "detail", "errors") if problem.get(k))


def _where(script: Script, numbers: list[int]) -> tuple[Step, int] | None:
    return next((script.origin[n] for n in numbers if n in script.origin), None)


def explain(script: Script, doc: str, state: Path, ran: subprocess.CompletedProcess[str]
            ) -> list[str]:
    """What went wrong, naming the step, the doc's lines and the problem's title."""
    log = (state / "log").read_text().splitlines() if (state / "log").exists() else []
    tail = "\n".join((ran.stdout + "\n" + ran.stderr).strip().splitlines()[-25:])
    problems: list[str] = []
    for entry in log:
        kind, *rest = entry.split()
        if kind == "fail":
            doc_line, req, got, want = int(rest[0]), int(rest[1]), rest[2], rest[3]
            step, _ = next(w for w in script.origin.values() if w[1] == doc_line)
            first = script.origin.get(req, (step, doc_line))[1]
            problems.append(
                f"step '{step.title}': expected {want}, got {got}: "
                f"{_problem(state / 'body') if got != 'none' else 'no request was made'}\n"
                f"{_doc_lines(doc, first, doc_line)}\n--- output:\n{tail}")
        elif kind == "error" and not problems:
            where = _where(script, [int(n) for n in rest[1:]])
            at = (f"step '{where[0].title}', docs/api.md line {where[1]}:\n"
                  f"{_doc_lines(doc, where[1], where[1])}") if where else "the prelude"
            problems.append(f"a command failed (exit {rest[0]}) in {at}\n--- output:\n{tail}")
    if problems:
        return problems[:1]
    if "done" not in log:
        return [f"the session stopped (exit {ran.returncode}) before the end\n{tail}"]
    requested = {int(e.split()[1]) for e in log if e.startswith("request ")}
    checked = {int(e.split()[2]) for e in log if e.startswith("ok ")}
    for line in sorted(requested - checked):
        step, doc_line = script.origin[line]
        problems.append(f"step '{step.title}': a request without its "
                        f"'# expect:'\n{_doc_lines(doc, doc_line, doc_line)}")
    return problems


def _steps_to_run(steps: list[Step]) -> int:
    until = os.environ.get(UNTIL)
    return len(steps) if not until else max(1, min(int(until), len(steps)))


def test_the_quick_start_marks_every_request() -> None:
    """Each curl of the quick start is followed by its expectation before the next."""
    steps = quickstart_steps(DOC.read_text())
    assert len(steps) >= 9, [s.title for s in steps]
    for step in steps:
        assert step.blocks, f"step '{step.title}' has no bash block"
        for block in step.blocks:
            open_curl: int | None = None
            for doc_line, line in block:
                code = line.split(" #", 1)[0]
                if re.search(r"(^|[\s($])curl\s", code):
                    assert open_curl is None, f"docs/api.md line {open_curl}: no '# expect:'"
                    open_curl = doc_line
                if EXPECT.search(line):
                    open_curl = None
            assert open_curl is None, f"docs/api.md line {open_curl}: no '# expect:'"


def test_a_night_on_the_line_runs_as_written(tmp_path: Path) -> None:
    doc = DOC.read_text()
    steps = quickstart_steps(doc)
    run = _steps_to_run(steps)
    script = build_script(steps[:run])
    (tmp_path / "quickstart.sh").write_text(script.text)
    state = tmp_path / "state"
    answers = tmp_path / "answers"  # mktemp -d makes the quick start's $Q in here
    state.mkdir()
    answers.mkdir()
    with Up(tmp_path / "var", free_port(),
            env={"SOLIDARITY_RELAY_POLL_INTERVAL_S": "0.2"}) as up:
        env = dict(up.env, BASE=up.url, QUICKSTART_STATE=str(state), TMPDIR=str(answers))
        ran = subprocess.run(
            ["bash", "--noprofile", "--norc", str(tmp_path / "quickstart.sh")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
        problems = explain(script, doc, state, ran)
        assert not problems, "\n\n".join(problems)
        assert ran.returncode == 0, ran.stderr
        if run < len(steps):
            pytest.skip(f"{UNTIL}={run}: steps 1 to {run} of {len(steps)} passed; "
                        f"not run: {', '.join(s.title for s in steps[run:])}")
        _the_night_was_recorded(up, next(answers.iterdir()))


def _the_night_was_recorded(up: Up, q: Path) -> None:
    """What the night's requests left behind, as the other services see it over the bus:
    the two debriefs of the distressing call, and the report's counts."""
    auth = {"Authorization": f"Bearer {up.token()}"}

    def answer(name: str) -> Any:
        return json.loads((q / f"{name}.json").read_text())

    def month(started_at: str) -> str:
        at = datetime.fromisoformat(started_at.replace("Z", "+00:00")).astimezone(UTC)
        return at.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m")

    call, missed = answer("call"), answer("missed")
    assert call["shift_id"] == answer("week")["shifts"][0]["id"]
    assert answer("text-closed")["closed"] is True
    assert answer("gp-view")["status"] == "accepted"
    assert answer("missed-now")["follow_ups"][0]["answered_by"] == answer("called-back")["id"]
    with httpx.Client(base_url=up.url, headers=auth, timeout=10) as http:
        def debriefs() -> set[str]:
            r = http.get("/shift/debriefs", params={"status": "open"})
            return {d["supporter_id"] for d in r.json()["items"]
                    if d["contact_id"] == call["id"]}

        wait_for(lambda: debriefs() == set(call["supporter_ids"]), 30, 0.2,
                 "a debrief for Ann and Bo")

        def report(started_at: str) -> Any:
            r = http.get("/reporting/monthly", params={"month": month(started_at)})
            return r.json()

        wait_for(lambda: report(call["started_at"])["contacts"]["signposting"].get(
                     "Samaritans", 0) >= 1,
                 30, 0.2, "the report to count the signposting")
        wait_for(lambda: report(missed["started_at"])["contacts"]["missed_calls"] >= 1,
                 30, 0.2, "the report to count the missed call")
