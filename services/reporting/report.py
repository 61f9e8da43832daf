"""The monitoring report: its periods in London time, the report built from the raw
counts of the figures modules, the partners' copy with small numbers suppressed, and
its CSV. Pure: no I/O here (the API reads the counts and hands them in).

Raw counts come from ``contact_figures.figures`` and ``service_figures.figures``
merged: plain integers, each breakdown a mapping from code to count. ``build`` turns
them into the published shape, where each ``by_*`` maps a code to ``{count, percent}``.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.kernel import InvalidCommand

LONDON = ZoneInfo("Europe/London")
SMALL = "<5"  # what a partner sees instead of a count from 1 to 4
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
FIRST_YEAR, LAST_YEAR = 2000, 9998  # nothing the line records is older; room for a year on

Period = tuple[date, date, datetime, datetime]


# ---------------------------------------------------------------------------- periods

def _month(field: str, value: object) -> tuple[int, int]:
    match = _MONTH.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidCommand(field, "expected a month as YYYY-MM, e.g. 2026-04", "query")
    year, month = int(match.group(1)), int(match.group(2))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidCommand(field, f"the year must be from {FIRST_YEAR} to {LAST_YEAR}",
                             "query")
    return year, month


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + n
    return index // 12, index % 12 + 1


def london_midnight(day: date) -> datetime:
    """The UTC instant at which ``day`` begins in London (midnight is never skipped nor
    repeated there: the clocks change at 01:00 UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=LONDON).astimezone(UTC)


def _span(year: int, month: int, months: int) -> Period:
    first = date(year, month, 1)
    after = date(*_add_months(year, month, months), 1)
    return first, after - timedelta(days=1), london_midnight(first), london_midnight(after)


def month_period(month: str, field: str = "month") -> Period:
    """A month of London time: its first and last dates (inclusive) and the UTC
    instants [start, end) of its first day's midnight and the next month's."""
    return _span(*_month(field, month), 1)


def year_period(start: str, field: str = "start") -> Period:
    """Twelve months of London time from ``start`` (``YYYY-04``: a financial year)."""
    return _span(*_month(field, start), 12)


def months_of(start: str, field: str = "start") -> list[str]:
    """The twelve ``YYYY-MM`` of the year from ``start``."""
    year, month = _month(field, start)
    return ["{:04d}-{:02d}".format(*_add_months(year, month, n)) for n in range(12)]


def london_month(at: datetime) -> str:
    """The month of London wall-clock time: 23:30 UTC on 31 May is June's (BST)."""
    if at.tzinfo is UTC and 1 < at.day < 28:  # London is UTC or an hour ahead of it:
        return f"{at.year:04d}-{at.month:02d}"  # far from a month's ends, the same month
    return at.astimezone(LONDON).strftime("%Y-%m")


# ------------------------------------------------------------------------------ build

def percent(count: int, base: int) -> float | None:
    """``count`` as a percentage of ``base``, to one decimal, halves rounded up (1 of 16
    is 6.3); ``None`` when the base is 0."""
    if base <= 0:
        return None
    value = (Decimal(count) * 100 / Decimal(base)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return float(value)


def breakdown(counts: Mapping[str, int], base: int) -> dict[str, dict[str, Any]]:
    """Each code's count and its percentage of ``base``, codes in order."""
    return {code: {"count": int(n), "percent": percent(int(n), base)}
            for code, n in sorted(counts.items())}


def _n(section: Mapping[str, Any], key: str) -> int:
    return int(section.get(key) or 0)


def _counts(section: Mapping[str, Any], key: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in (section.get(key) or {}).items()}


def _if_disclosed(counts: dict[str, int], not_disclosed: int) -> dict[str, dict[str, Any]]:
    """A breakdown "if disclosed": percentages of those who disclosed it; those who did
    not are ``not_disclosed``, a count outside that base (its percent always null)."""
    not_disclosed += counts.pop("not_disclosed", 0)
    out = breakdown(counts, sum(counts.values()))
    out["not_disclosed"] = {"count": not_disclosed, "percent": None}
    return out


def build(raw: Mapping[str, Any], period: tuple[date, date], *,
          months: Sequence[tuple[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """The report of ``period`` (first and last London dates) from its raw counts; a
    year's report also lists ``months``, each with its own raw counts."""
    c, cl = raw.get("contacts", {}), raw.get("callers", {})
    ref, esc = raw.get("referrals", {}), raw.get("escalations", {})
    mt, sh = raw.get("meetings", {}), raw.get("shifts", {})
    deb, fu = raw.get("debriefs", {}), raw.get("follow_ups", {})
    total = _n(c, "total")
    report: dict[str, Any] = {
        "period": {"from": period[0].isoformat(), "to": period[1].isoformat()},
        "contacts": {
            "total": total,
            **{key: breakdown(_counts(c, key), total)
               for key in ("by_channel", "by_direction", "by_caller_is", "by_issue",
                           "by_risk_level", "by_shift_slot")},
            "outside_shifts": _n(c, "outside_shifts"),
            "missed_calls": _n(c, "missed_calls"),
            "signposting": dict(sorted(_counts(c, "signposting").items())),
        },
        "callers": {
            "unique": _n(cl, "unique"), "new": _n(cl, "new"), "repeat": _n(cl, "repeat"),
            "by_gender": _if_disclosed(_counts(cl, "by_gender"),
                                       _n(cl, "gender_not_disclosed")),
            "by_age_band": _if_disclosed(_counts(cl, "by_age_band"),
                                         _n(cl, "age_band_not_disclosed")),
        },
        "referrals": {
            "total": _n(ref, "total"),
            "by_source": breakdown(_counts(ref, "by_source"), _n(ref, "total")),
            "accepted": _n(ref, "accepted"), "declined": _n(ref, "declined"),
        },
        "escalations": {"total": _n(esc, "total"),
                        "by_kind": breakdown(_counts(esc, "by_kind"), _n(esc, "total"))},
        "meetings": {
            **{key: _n(mt, key) for key in ("requested", "approved", "declined",
                                            "completed", "cancelled")},
            "by_kind": breakdown(_counts(mt, "by_kind"), _n(mt, "requested")),
            "safety_alerts": _n(mt, "safety_alerts"),
        },
        "shifts": {
            **{key: _n(sh, key) for key in ("published", "fully_covered", "short", "empty")},
            "coverage_percent": percent(_n(sh, "fully_covered"), _n(sh, "published")),
        },
        "debriefs": {key: _n(deb, key) for key in ("opened", "completed", "overdue")},
        "follow_ups": {key: _n(fu, key) for key in ("due", "completed", "overdue")},
    }
    if months is not None:
        report["months"] = [
            {"month": month,
             "contacts": {"total": _n(m.get("contacts", {}), "total")},
             "callers": {"unique": _n(m.get("callers", {}), "unique")},
             "referrals": {"total": _n(m.get("referrals", {}), "total")}}
            for month, m in months
        ]
    return report


# ------------------------------------------------------------------ partners' copy

Ref = tuple[dict[str, Any], str]  # a count: container[key], a number or a {count, percent}


def _get(ref: Ref) -> Any:
    value = ref[0][ref[1]]
    return value["count"] if isinstance(value, dict) else value


def _set(ref: Ref, count: Any) -> None:
    container, key = ref
    if isinstance(container[key], dict):
        container[key]["count"] = count
    else:
        container[key] = count


def _small(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4


def _cells(section: dict[str, Any], key: str) -> list[Ref]:
    return [(section[key], code) for code in section[key]]


def _partitions(r: dict[str, Any]) -> list[tuple[Any, list[Ref]]]:
    """The counts that add up to a total shown beside them: subtracting the others from
    the total would give a suppressed one away."""
    c, cl = r["contacts"], r["callers"]
    parts: list[tuple[Any, list[Ref]]] = [
        (c["total"], _cells(c, key))
        for key in ("by_channel", "by_direction", "by_caller_is", "by_risk_level")]
    parts.append((c["total"], [*_cells(c, "by_shift_slot"), (c, "outside_shifts")]))
    parts += [(cl["unique"], _cells(cl, key)) for key in ("by_gender", "by_age_band")]
    parts.append((r["referrals"]["total"], _cells(r["referrals"], "by_source")))
    parts.append((r["escalations"]["total"], _cells(r["escalations"], "by_kind")))
    parts.append((r["meetings"]["requested"], _cells(r["meetings"], "by_kind")))
    sh = r["shifts"]
    parts.append((sh["published"], [(sh, "fully_covered"), (sh, "short"), (sh, "empty")]))
    if "months" in r:
        parts.append((c["total"], [(m["contacts"], "total") for m in r["months"]]))
        parts.append((r["referrals"]["total"], [(m["referrals"], "total") for m in r["months"]]))
    return parts


def _given_away(hidden: list[Ref]) -> bool:
    """Whether the sum of the hidden counts (the total less the shown ones) tells any of
    them: one alone, or small ones that are all 1 or all 4."""
    values = [_get(ref) for ref in hidden]
    if len(values) < 2:
        return True
    return all(_small(v) for v in values) and sum(values) in (len(values), 4 * len(values))


def _withhold_complements(total: Any, cells: list[Ref]) -> None:
    if not isinstance(total, int) or _small(total):
        return  # a suppressed total leaves nothing to subtract from
    hidden = [ref for ref in cells if _small(_get(ref))]
    if not hidden:
        return
    others = sorted((ref for ref in cells if isinstance(_get(ref), int) and _get(ref) > 4),
                    key=_get)
    complements = []
    while _given_away(hidden) and others:
        ref = others.pop(0)
        hidden.append(ref)
        complements.append(ref)
    for ref in complements:
        _set(ref, None)


def _suppress(node: Any) -> Any:
    if _small(node):
        return SMALL
    if isinstance(node, dict):
        return {key: _suppress(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_suppress(value) for value in node]
    return node


def _breakdowns(node: Any) -> list[dict[str, Any]]:
    """Every ``{code: {count, percent}}`` in the report."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        values = list(node.values())
        if values and all(isinstance(v, dict) and "percent" in v for v in values):
            return [node]
        for value in values:
            found += _breakdowns(value)
    return found


def for_partner(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report as a partner sees it, as NHS statistics publish small numbers:

    1. every count from 1 to 4 is shown as ``"<5"`` (0 is shown: it gives no one away);
    2. where counts add up to a total that is shown (a breakdown of contacts by channel,
       the shifts' coverage, the months of a year...), more counts are withheld
       (``null``), smallest first, until the hidden ones' sum (the total less what is
       shown) tells none of them: never one hidden alone, nor hidden small counts that
       could only all be 1 or all be 4;
    3. a breakdown with any count hidden shows no percentages (``null``): a percentage
       with its count gives its base away, and the base the hidden ones; so does
       ``shifts.coverage_percent`` when a shift count is hidden.
    """
    out = copy.deepcopy(dict(report))
    for total, cells in _partitions(out):
        _withhold_complements(total, cells)
    out = _suppress(out)
    for part in _breakdowns(out):
        if any(not isinstance(cell["count"], int) for cell in part.values()):
            for cell in part.values():
                cell["percent"] = None
    sh = out["shifts"]
    if not all(isinstance(sh[key], int) for key in ("published", "fully_covered")):
        sh["coverage_percent"] = None
    return out


# -------------------------------------------------------------------------------- CSV

CSV_HEADER = ("section", "breakdown", "code", "count", "percent")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text  # no spreadsheet formulas


def rows(report: Mapping[str, Any]) -> list[tuple[str, str, str, Any, Any]]:
    """One row per figure: (section, breakdown, code, count, percent). A plain count has
    no breakdown (its name is the code); a breakdown's codes each have a row."""
    out: list[tuple[str, str, str, Any, Any]] = []
    for section, figures in report.items():
        if section in ("period", "months"):
            continue
        for key, value in figures.items():
            if key == "coverage_percent":
                out.append((section, "", key, None, value))
            elif isinstance(value, dict):
                for code, cell in value.items():
                    if isinstance(cell, dict):
                        out.append((section, key, code, cell["count"], cell["percent"]))
                    else:
                        out.append((section, key, code, cell, None))
            else:
                out.append((section, "", key, value, None))
    for month in report.get("months", []):
        for section in ("contacts", "callers", "referrals"):
            for key, value in month[section].items():
                out.append(("months", month["month"], f"{section}.{key}", value, None))
    return out


def to_csv(report: Mapping[str, Any]) -> str:
    """The report as CSV (RFC 4180, CRLF), a header then one row per figure; an empty
    cell where a percent has no base or is withheld, or a count is withheld."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for row in rows(report):
        writer.writerow([_text(cell) for cell in row])
    return buffer.getvalue()
