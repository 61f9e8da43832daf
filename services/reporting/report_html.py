"""The monitoring report as a printable HTML page: the same figures as the JSON, a table
per section and, for each ``by_*`` breakdown (and a year's months), a horizontal bar
chart in inline SVG. No script and nothing fetched (no fonts, images or style sheets by
URL), so it reads the same in any browser, offline, and on paper (A4, a section never
split across pages). Pure: the report in, the page out.

Every bar carries ``data-section``, ``data-breakdown``, ``data-code`` and ``data-count``
(the raw code and the count as the JSON has it), so a test or a commissioner's tool can
check the chart against the JSON. A partner's suppressed count (``"<5"``) is drawn as a
dashed stub of one fixed width, whatever the count behind it; a withheld one (``null``)
has no bar at all. Everything taken from the report is HTML-escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import escape
from typing import Any, TypeGuard

SMALL = "<5"  # as report.SMALL: a partner's count from 1 to 4
WITHHELD = "withheld"  # a count withheld from a partner (null in the JSON)
NO_PERCENT = "\u2014"  # an em dash: no base, outside it, or withheld

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
SECTION_NAMES = {"follow_ups": "Follow-ups"}
FIGURE_NAMES = {"coverage_percent": "Coverage (%)", "caller_is": "Who called",
                "shift_slot": "Rota slot", "risk_level": "Risk level",
                "age_band": "Age band", "a_and_e": "A&E", "under_18": "Under 18"}
ACRONYMS = {"gp": "GP", "cmht": "CMHT", "nhs": "NHS", "sms": "SMS"}

# Chart geometry, in px (the SVG scales to the page width with its viewBox)
WIDTH, LABEL_W, BAR_W, ROW_H, BAR_H, PAD = 640, 190, 380, 22, 14, 6
STUB_W = 12  # the width of every suppressed bar: it tells nothing of the count

STYLE = """
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; color: #000;
       background: #fff; margin: 2em auto; max-width: 52em; padding: 0 1em;
       line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 2px solid #000; margin-top: 1.6em; }
h3 { font-size: 1em; margin: 1em 0 0.3em; }
p.period { margin-top: 0; }
table { border-collapse: collapse; margin: 0.3em 0 0.6em; min-width: 22em; }
th, td { border: 1px solid #555; padding: 0.15em 0.6em; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
svg.chart { display: block; width: 100%; max-width: 640px; height: auto; }
svg.chart text { font-family: inherit; font-size: 12px; fill: #000; }
svg.chart rect.bar { fill: #444; }
svg.chart rect.suppressed { fill: #fff; stroke: #000; stroke-width: 1;
                            stroke-dasharray: 3 2; }
section.report, div.breakdown { break-inside: avoid; page-break-inside: avoid; }
p.empty, p.note { font-style: italic; }
@media print {
  @page { size: A4; margin: 15mm; }
  body { margin: 0; max-width: none; padding: 0; font-size: 10pt; background: #fff;
         color: #000; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; page-break-after: avoid; }
  section.report, div.breakdown, table, svg { break-inside: avoid;
                                              page-break-inside: avoid; }
}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def month_name(month: str) -> str:
    """``2026-04`` as ``April 2026`` (English whatever the locale); anything else as is."""
    match = re.fullmatch(r"([0-9]{4})-(0[1-9]|1[0-2])", month)
    return f"{MONTHS[int(match.group(2)) - 1]} {match.group(1)}" if match else month


def label(code: object) -> str:
    """A code as a reader reads it: ``person_in_crisis`` is "Person in crisis",
    ``25_31`` is "25-31" (with an en dash), ``61_plus`` is "61+", ``gp`` is "GP";
    ``sat 20:00-02:00`` is "Sat 20:00-02:00"."""
    text = str(code)
    if text in FIGURE_NAMES:
        return FIGURE_NAMES[text]
    if re.fullmatch(r"[0-9]+_[0-9]+", text):
        return text.replace("_", "\u2013")
    if re.fullmatch(r"[0-9]+_plus", text):
        return text[: -len("_plus")] + "+"
    text = " ".join(ACRONYMS.get(word, word) for word in text.replace("_", " ").split(" "))
    return text[:1].upper() + text[1:]


def _section_name(key: str) -> str:
    return SECTION_NAMES.get(key, label(key))


def _breakdown_name(key: str) -> str:
    return "By " + label(key[3:]).lower() if key.startswith("by_") else label(key)


def _date(iso: object) -> str:
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", str(iso))
    if not match or not 1 <= int(match.group(2)) <= 12:
        return str(iso)
    return f"{int(match.group(3))} {MONTHS[int(match.group(2)) - 1]} {match.group(1)}"


def _count(value: object) -> str:
    """A count as shown: the number, "<5" for a suppressed one, "withheld" for null."""
    if value is None:
        return WITHHELD
    return str(value)


def _percent(value: Any) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return NO_PERCENT
    return f"{float(value):.1f}%"


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_breakdown(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(cell, Mapping) and "count" in cell for cell in value.values())


# ------------------------------------------------------------------------------ chart

def chart(section: str, breakdown: str, title: str,
          bars: list[tuple[str, str, object]]) -> str:
    """A horizontal bar chart: ``bars`` are (raw code, label, count). Bars are in
    proportion to the largest count shown; a suppressed one is a fixed stub, a
    withheld one no bar."""
    shown = [n for _, _, n in bars if _is_count(n)]
    top = max(shown, default=0)
    height = PAD * 2 + ROW_H * len(bars)
    spoken = "; ".join(f"{name}: {_count(n)}" for _, name, n in bars)
    out = [f'<svg class="chart" role="img" '
           f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
           f'aria-label="{_e(title)}. {_e(spoken)}">',
           f"<title>{_e(title)}</title>"]
    for i, (code, name, n) in enumerate(bars):
        y = PAD + i * ROW_H
        mid = y + ROW_H / 2 + 4
        data = (f'data-section="{_e(section)}" data-breakdown="{_e(breakdown)}" '
                f'data-code="{_e(code)}" data-count="{_e(_count(n))}"')
        out.append(f'<text x="{LABEL_W - 8}" y="{mid:g}" text-anchor="end">{_e(name)}</text>')
        bar_y = y + (ROW_H - BAR_H) / 2
        if _is_count(n):
            width = round(BAR_W * n / top, 1) if top else 0
            out.append(f'<rect class="bar" {data} x="{LABEL_W}" y="{bar_y:g}" '
                       f'width="{width:g}" height="{BAR_H}"/>')
            end = LABEL_W + width
        elif n == SMALL:
            out.append(f'<rect class="bar suppressed" {data} x="{LABEL_W}" y="{bar_y:g}" '
                       f'width="{STUB_W}" height="{BAR_H}"/>')
            end = LABEL_W + STUB_W
        else:  # withheld: no bar, only its word
            out.append(f'<rect class="bar withheld" {data} x="{LABEL_W}" y="{bar_y:g}" '
                       f'width="0" height="{BAR_H}"/>')
            end = LABEL_W
        out.append(f'<text x="{end + 6:g}" y="{mid:g}">{_e(_count(n))}</text>')
    out.append("</svg>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- tables

def _scalars(figures: Mapping[str, Any]) -> str:
    rows = []
    for key, value in figures.items():
        if isinstance(value, Mapping):
            continue
        shown = _percent(value) if key.endswith("percent") else _count(value)
        rows.append(f'<tr><th scope="row">{_e(label(key))}</th>'
                    f'<td class="n">{_e(shown)}</td></tr>')
    if not rows:
        return ""
    return ('<table class="figures"><thead><tr><th scope="col">Figure</th>'
            '<th scope="col" class="n">Value</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _breakdown(section: str, key: str, cells: Mapping[str, Any]) -> str:
    title = f"{_section_name(section)}: {_breakdown_name(key).lower()}"
    head = f"<h3>{_e(_breakdown_name(key))}</h3>"
    if not cells:
        return f'<div class="breakdown">{head}<p class="empty">None recorded.</p></div>'
    rows = "".join(
        f'<tr><td>{_e(label(code))}</td><td class="n">{_e(_count(cell.get("count")))}</td>'
        f'<td class="n">{_e(_percent(cell.get("percent")))}</td></tr>'
        for code, cell in cells.items())
    table = ('<table class="breakdown"><thead><tr><th scope="col">Code</th>'
             '<th scope="col" class="n">Count</th><th scope="col" class="n">Percent</th>'
             f"</tr></thead><tbody>{rows}</tbody></table>")
    bars = [(str(code), label(code), cell.get("count")) for code, cell in cells.items()]
    return f'<div class="breakdown">{head}{table}{chart(section, key, title, bars)}</div>'


def _named_counts(key: str, counts: Mapping[str, Any]) -> str:
    """A mapping of names to plain counts (signposting): a table, no percentages."""
    head = f"<h3>{_e(label(key))}</h3>"
    if not counts:
        return f'<div class="breakdown">{head}<p class="empty">None recorded.</p></div>'
    rows = "".join(f'<tr><td>{_e(name)}</td><td class="n">{_e(_count(n))}</td></tr>'
                   for name, n in counts.items())
    return (f'<div class="breakdown">{head}<table><thead><tr><th scope="col">Name</th>'
            f'<th scope="col" class="n">Count</th></tr></thead><tbody>{rows}</tbody>'
            "</table></div>")


def _section(key: str, figures: Mapping[str, Any]) -> str:
    parts = [f'<section class="report" id="{_e(key)}"><h2>{_e(_section_name(key))}</h2>',
             _scalars(figures)]
    for name, value in figures.items():
        if isinstance(value, Mapping) and _is_breakdown(value) and (
                name.startswith("by_") or value):
            parts.append(_breakdown(key, name, value))
        elif isinstance(value, Mapping):
            parts.append(_named_counts(name, value))
    parts.append("</section>")
    return "\n".join(parts)


def _months(months: list[Mapping[str, Any]]) -> str:
    def figure(m: Mapping[str, Any], section: str, key: str) -> object:
        return (m.get(section) or {}).get(key)

    rows = "".join(
        f'<tr><td>{_e(month_name(str(m.get("month"))))}</td>'
        + "".join(f'<td class="n">{_e(_count(figure(m, s, k)))}</td>'
                  for s, k in (("contacts", "total"), ("callers", "unique"),
                               ("referrals", "total")))
        + "</tr>" for m in months)
    table = ('<table class="months"><thead><tr><th scope="col">Month</th>'
             '<th scope="col" class="n">Contacts</th><th scope="col" class="n">Callers</th>'
             f'<th scope="col" class="n">Referrals</th></tr></thead><tbody>{rows}</tbody>'
             "</table>")
    bars = [(str(m.get("month")), month_name(str(m.get("month"))),
             figure(m, "contacts", "total")) for m in months]
    svg = chart("months", "contacts.total", "Contacts per month", bars) if bars else (
        '<p class="empty">None recorded.</p>')
    return (f'<section class="report" id="months"><h2>Months</h2>{table}'
            f'<div class="breakdown"><h3>Contacts per month</h3>{svg}</div></section>')


# ------------------------------------------------------------------------------- page

def to_html(report: Mapping[str, Any], title: str) -> str:
    """The report as one self-contained HTML5 page (UTF-8), its sections in the
    report's order."""
    period = report.get("period") or {}
    body = []
    for key, figures in report.items():
        if key == "period":
            continue
        if key == "months" and isinstance(figures, list):
            body.append(_months(figures))
        elif isinstance(figures, Mapping):
            body.append(_section(key, figures))
    return f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="period">From {_e(_date(period.get("from", "")))} to {_e(_date(period.get("to", "")))}
(London dates, inclusive).</p>
<p class="note">Percentages are of each breakdown's base; gender and age band of the
callers who disclosed them. {_e(SMALL)} is a count from 1 to 4, drawn as a dashed stub
of the same width whatever it is; "{_e(WITHHELD)}" is a count withheld so that no small
one can be worked out; {NO_PERCENT} is no percentage.</p>
</header>
<main>
{chr(10).join(body)}
</main>
</body>
</html>
"""
