"""The printable monitoring report (``?format=html``) without I/O: a report built from
raw counts, rendered, and parsed back with the standard library's HTML parser. The
page has no script and fetches nothing; each breakdown's chart carries the JSON's
counts code by code; a partner's suppressed counts are "<5" with bars that tell nothing
of them; everything from the report is escaped."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

from services.reporting.report import build, for_partner
from services.reporting.report_html import BAR_W, STUB_W, label, month_name, to_html
from tests.reporting.test_report import PERIOD, raw

YEAR = (date(2026, 4, 1), date(2027, 3, 31))


class Page(HTMLParser):
    """What a test needs of the page: every tag with its attributes, each chart with
    its bars, and the text outside and inside the charts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.svgs: list[dict[str, Any]] = []
        self.text: list[str] = []
        self._in_svg = False
        self._in_title = False
        self._in_style = False
        self.style = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "svg":
            self._in_svg = True
            self.svgs.append({"attrs": a, "title": "", "bars": [], "texts": []})
        elif tag == "rect" and self._in_svg:
            self.svgs[-1]["bars"].append(a)
        elif tag == "title" and self._in_svg:
            self._in_title = True
        elif tag == "style":
            self._in_style = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg = False
        elif tag == "title":
            self._in_title = False
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        elif self._in_svg and self._in_title:
            self.svgs[-1]["title"] += data
        elif self._in_svg:
            self.svgs[-1]["texts"].append(data)
        else:
            self.text.append(data)

    def charts(self) -> dict[tuple[str, str], dict[str, str]]:
        """(section, breakdown) -> {code: data-count}, from the bars."""
        out: dict[tuple[str, str], dict[str, str]] = {}
        for svg in self.svgs:
            for bar in svg["bars"]:
                key = (bar["data-section"], bar["data-breakdown"])
                assert bar["data-code"] not in out.setdefault(key, {}), "a code drawn twice"
                out[key][bar["data-code"]] = bar["data-count"]
        return out

    def bars(self) -> list[dict[str, str]]:
        return [bar for svg in self.svgs for bar in svg["bars"]]

    def all_text(self) -> str:
        return " ".join(self.text)


def _shown(count: Any) -> str:
    return "withheld" if count is None else str(count)


def expected_charts(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    """Every non-empty ``by_*`` of the JSON (and a year's contacts per month), as the
    charts must carry it."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for section, figures in report.items():
        if not isinstance(figures, dict):
            continue
        for key, value in figures.items():
            if key.startswith("by_") and value:
                out[(section, key)] = {code: _shown(cell["count"])
                                       for code, cell in value.items()}
    if "months" in report:
        out[("months", "contacts.total")] = {
            m["month"]: _shown(m["contacts"]["total"]) for m in report["months"]}
    return out


def _year() -> dict[str, Any]:
    months = [(month, raw(contacts={"total": n}, referrals={"total": 1 + n // 3}))
              for month, n in zip(
                  [f"2026-{m:02d}" for m in range(4, 13)] + ["2027-01", "2027-02",
                                                             "2027-03"],
                  [3, 0, 12, 7, 1, 40, 9, 4, 0, 0, 22, 5], strict=True)]
    return build(raw(contacts={"total": 103}, referrals={"total": 40}), YEAR, months=months)


# --------------------------------------------------------------------------- the page

def test_the_page_is_self_contained_and_has_no_script() -> None:
    html = to_html(build(raw(), PERIOD), "Solidarity monitoring report, April 2026")
    page = Page(html)
    assert html.startswith("<!DOCTYPE html>")
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "<script" not in html.lower()
    assert ("meta", {"charset": "utf-8"}) in page.tags
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)  # no event handler either
            if name in ("src", "href", "xlink:href", "action", "srcset"):
                assert not re.match(r"\s*(https?:|//|javascript:)", value), (tag, value)
    assert not {"link", "img", "iframe", "object", "embed", "image"} & set(tags)
    assert "url(" not in page.style and "@import" not in page.style
    assert "@media print" in page.style and "size: A4" in page.style
    assert "break-inside: avoid" in page.style
    assert "Solidarity monitoring report, April 2026" in page.all_text()
    assert "From 1 April 2026 to 30 April 2026" in page.all_text()


def test_sections_follow_the_report_order() -> None:
    page = Page(to_html(_year(), "Year"))
    sections = [a["id"] for tag, a in page.tags if tag == "section"]
    assert sections == ["contacts", "callers", "referrals", "escalations", "meetings",
                        "shifts", "debriefs", "follow_ups", "months"]


def test_each_breakdown_has_a_chart_with_the_json_counts() -> None:
    report = _year()
    page = Page(to_html(report, "Year"))
    assert page.charts() == expected_charts(report)
    assert len(page.charts()[("months", "contacts.total")]) == 12
    for svg in page.svgs:
        assert svg["attrs"]["role"] == "img"
        assert svg["attrs"]["aria-label"].startswith(svg["title"])
        assert svg["title"]
        codes = [bar["data-code"] for bar in svg["bars"]]
        # each bar is labelled with its code (as a reader reads it) and its count
        for bar in svg["bars"]:
            name = (month_name(bar["data-code"]) if bar["data-section"] == "months"
                    else label(bar["data-code"]))
            assert name in svg["texts"] and bar["data-count"] in svg["texts"]
        assert len(codes) == len(set(codes))


def test_bars_are_in_proportion_to_their_counts() -> None:
    page = Page(to_html(_year(), "Year"))
    for svg in page.svgs:
        bars = [(int(b["data-count"]), float(b["width"])) for b in svg["bars"]]
        top = max(n for n, _ in bars)
        for n, width in bars:
            assert abs(width - BAR_W * n / top) <= 0.05, (svg["title"], n, width)
    by_risk = next(s for s in page.svgs if s["bars"][0]["data-breakdown"] == "by_risk_level")
    widths = {b["data-code"]: float(b["width"]) for b in by_risk["bars"]}
    assert widths == {"high": 152.0, "low": 380.0, "not_assessed": 228.0}  # 8, 20, 12


def test_labels_read_as_words_and_figures_as_tables() -> None:
    page = Page(to_html(build(raw(), PERIOD), "April"))
    text = page.all_text()
    for shown in ("Person in crisis", "Not recorded", "Self harm", "18\u201324", "61+",
                  "Sat 20:00-02:00", "Follow-ups", "By who called", "GP", "Cruse"):
        assert shown in text, shown
    assert "75.0%" in text and "66.7%" in text  # percentages, coverage too
    codes = {b["data-code"] for b in page.bars()}
    assert {"person_in_crisis", "18_24", "61_plus", "sat 20:00-02:00"} <= codes


def test_an_empty_breakdown_says_so_and_draws_nothing() -> None:
    report = build(raw(), PERIOD)
    assert report["escalations"]["by_kind"] == {}
    page = Page(to_html(report, "April"))
    assert "None recorded." in page.all_text()
    assert not any(b["data-section"] == "escalations" for b in page.bars())
    empty = Page(to_html(build({}, PERIOD), "Nothing"))
    # only gender and age band's not_disclosed, 0, have a bar: of no width
    assert {(b["data-breakdown"], b["data-count"], b["width"]) for b in empty.bars()} == {
        ("by_gender", "0", "0"), ("by_age_band", "0", "0")}
    # contacts' six by_* and signposting, referrals by source, the two by_kind
    assert empty.all_text().count("None recorded.") == 10


# ------------------------------------------------------------------------- partners

def test_a_partners_page_shows_suppressed_counts_as_fewer_than_five() -> None:
    report = for_partner(_year())
    page = Page(to_html(report, "Partner"))
    assert page.charts() == expected_charts(report)
    suppressed = [b for b in page.bars() if b["data-count"] == "<5"]
    withheld = [b for b in page.bars() if b["data-count"] == "withheld"]
    assert len(suppressed) >= 5 and withheld  # the scenario has both
    for bar in suppressed:
        assert "suppressed" in bar["class"].split()
        assert float(bar["width"]) == STUB_W  # the same for any count from 1 to 4
    for bar in withheld:
        assert float(bar["width"]) == 0
    text = page.all_text()
    assert "<5" in text and "withheld" in text and "\u2014" in text
    # the table says it too: missed calls 3 is "<5", referrals by source gp 1 is "<5"
    assert report["contacts"]["missed_calls"] == "<5"
    assert ("referrals", "by_source", "gp", "<5") in {
        (b["data-section"], b["data-breakdown"], b["data-code"], b["data-count"])
        for b in page.bars()}


def test_nothing_on_a_partners_page_depends_on_a_suppressed_value() -> None:
    """Two months that differ only in counts a partner sees as "<5" give the same page."""
    def page(small: int) -> str:
        return to_html(for_partner(build(raw(
            contacts={"missed_calls": small,
                      "by_issue": {"bereavement": 12, "housing": 30, "self_harm": small}},
            referrals={"total": 16, "by_source": {"gp": small, "self": 16 - small}},
            debriefs={"opened": 5, "completed": small, "overdue": 5 - small}),
            PERIOD)), "Partner")
    one, four = page(1), page(4)
    assert "self_harm" in one and '"<5"' not in one  # escaped in attributes: &lt;5
    assert 'data-count="&lt;5"' in one
    assert one == four
    # and a count that is shown does change it (missed calls 5, not "<5")
    assert one != to_html(for_partner(build(raw(contacts={"missed_calls": 5}), PERIOD)),
                          "Partner")


# ------------------------------------------------------------------------- escaping

HOSTILE = '<script>alert("x")</script>&"\'><img src=http://evil.example/x>'


def test_everything_from_the_report_is_escaped() -> None:
    report = build(raw(contacts={"by_issue": {HOSTILE: 7, "housing": 30},
                                 "signposting": {HOSTILE: 6}}), PERIOD)
    html = to_html(report, f"Title {HOSTILE}")
    page = Page(html)
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "img" not in tags
    assert "<script" not in html and "evil.example/x>" not in html
    # the parser gives the code back exactly: escaped, not altered
    assert page.charts()[("contacts", "by_issue")][HOSTILE] == "7"
    assert any(HOSTILE in t for t in page.text)  # in the signposting table
    assert f"Title {HOSTILE}" in page.all_text()


def test_month_names_are_english_and_anything_else_is_left_alone() -> None:
    assert month_name("2026-04") == "April 2026"
    assert month_name("2027-12") == "December 2027"
    assert month_name("2026-13") == "2026-13"
