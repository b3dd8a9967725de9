"""pytest-html (4.x) integration: benchmark columns in the results table and per-test extras.

The plugin registers :class:`HtmlExtras` only when pytest-html is loaded, so pytest-html stays
optional.  What a row shows is computed where the test ran (an xdist worker holds the cell's
metrics) and travels on the report as plain data (``report.llmbench`` and ``report.extras``),
which xdist serialises with the report; the table hooks on the controller only format it.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

import pytest
from pytest_html import extras as html_extras

from pytest_llmbench import judge
from pytest_llmbench import metrics as m
from pytest_llmbench.items import cell_of, profile_of
from pytest_llmbench.keys import SESSION_KEY
from pytest_llmbench.metric_table import for_key

COLUMNS = (
    ("model", "Model"),
    ("quant", "Quant"),
    ("headline", "Headline metric"),
    ("rating", "Rating"),
)


def headline(profile: str, metrics: dict[str, Any]) -> str:
    """The one number a reader looks for first in each profile."""
    value = m.number
    if profile == "interactive" and value(metrics.get("tokens_per_second")) is not None:
        text = f"{metrics['tokens_per_second']:.1f} t/s"
        if value(metrics.get("ttft_seconds")) is not None:
            text += f", {metrics['ttft_seconds']:.2f} s TTFT"
        return text
    if profile == "load" and value(metrics.get("load_seconds")) is not None:
        return f"{metrics['load_seconds']:.2f} s load"
    if profile == "long_context" and value(metrics.get("max_context_passed")) is not None:
        return f"{int(metrics['max_context_passed']):,} tokens"
    if profile == "batch" and value(metrics.get("docs_per_hour")) is not None:
        return f"{metrics['docs_per_hour']:.0f} docs/hour"
    if profile == "quality" and (overall := m.quality_overall(metrics)) is not None:
        return f"{overall:.0f} % quality"
    if profile == "stress" and (temp := value(metrics.get("max_temperature_c"))) is not None:
        return f"max {temp:.0f} °C"
    if profile == "embedding" and (ms := value(metrics.get("latency_ms"))) is not None:
        return f"{ms:.1f} ms"
    return ""


def metrics_table(profile: str, metrics: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    """The profile's scalar metrics with threshold and real-world reading, as an HTML extra."""
    by_metric = {c["metric"]: c for c in checks if c.get("profile") == profile}
    rows = []
    for name, value in metrics.items():
        if isinstance(value, dict | list):
            continue
        check = by_metric.get(name)
        threshold = ""
        if check:
            sign = "≥" if check["higher_is_better"] else "≤"
            threshold = f"{sign} {check['threshold']:g} ({'met' if check['met'] else 'missed'})"
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        entry = for_key(profile, name)
        reading = entry.reading(m.number(value)) if entry else ""
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(shown)}</td><td>{escape(threshold)}</td>"
            f"<td>{escape(reading)}</td></tr>"
        )
    if not rows:
        return f"<p>llmbench: no {escape(profile)} metrics recorded for this test.</p>"
    return (
        f"<p><strong>llmbench {escape(profile)} metrics</strong></p>"
        '<table style="border-collapse:collapse" border="1" cellpadding="3">'
        "<tr><th>metric</th><th>value</th><th>threshold</th><th>reading</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _log_links(record: dict[str, Any], profile: str, html_path: str) -> list[dict[str, Any]]:
    log = (record.get("server") or {}).get("log")
    if not log:
        return []
    main = Path(log)
    candidates = [main.with_name(f"{main.stem}.{profile}.log"), main]
    base = Path(html_path).resolve().parent
    links = []
    for path in candidates:
        if path.is_file():
            href = Path(os.path.relpath(path.resolve(), base)).as_posix()
            links.append(html_extras.url(href, name=f"server log ({path.name})"))
            break  # the profile's own server when it had one, else the cell's
    return links


class HtmlExtras:
    """Hooks for pytest-html; registered by the plugin only when pytest-html is present."""

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[2:2] = [
            f'<th class="sortable" data-column-type="llm{key}">{escape(title)}</th>'
            for key, title in COLUMNS
        ]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        info = getattr(report, "llmbench", None) or {}
        cells[2:2] = [
            f'<td class="col-llm{key}">{escape(str(info.get(key, "")))}</td>' for key, _ in COLUMNS
        ]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
        report = yield
        cell = cell_of(item)
        html_path = item.config.getoption("htmlpath", None)
        bench = item.config.stash.get(SESSION_KEY, None)
        if cell is None or not html_path or bench is None:
            return report
        profile = profile_of(item)
        record = bench.store.snapshot(cell.id) or {}
        profile_metrics = m.profile_metrics(record, profile)
        checks = [c for c in judge.threshold_checks(record, bench.settings) if c.profile == profile]
        report.llmbench = {
            "model": cell.model.name,
            "quant": cell.quant,
            "headline": headline(profile, profile_metrics),
            "rating": judge.rating_of(checks) if checks else "",
        }
        if report.when == "call" or (report.when == "setup" and not report.passed):
            table = metrics_table(profile, profile_metrics, [c.as_dict() for c in checks])
            extra = [html_extras.html(table)]
            extra += _log_links(record, profile, html_path)
            report.extras = [*getattr(report, "extras", []), *extra]
        return report
