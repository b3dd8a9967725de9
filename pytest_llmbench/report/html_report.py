"""The standalone HTML report: one file that opens offline, reads on screen and prints.

Layout follows the design's "Reporting System": the executive summary with the
recommendations first, the models × quants heat map, the charts (inline SVG, see
:mod:`svg_charts`), the sortable and filterable results table with every cell's details, the
skipped cells with their reasons, and the appendices (configuration, server logs, raw metrics).
Every value from the report passes through :func:`html.escape`; the only script is a few lines
for sorting, filtering and opening the details before printing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench.metric_table import METRICS, Metric, for_key, metric
from pytest_llmbench.models import atomic_write_text
from pytest_llmbench.recommend import NO_BEST, label, model_label, settings_of, spans_hosts
from pytest_llmbench.report.svg_charts import Point, Series, bar_chart, xy_chart
from pytest_llmbench.report.terminal import external_note, external_urls

Result = Mapping[str, Any]
LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 64 * 1024
MAX_VALUE_CHARS = 160  # a GGUF value longer than this (a chat template) is shown cut short


def _asset(name: str) -> str:
    """A stylesheet or script shipped in report/assets, where it can be read and linted as
    itself; the page inlines it, so it stays one file that opens offline."""
    return (resources.files("pytest_llmbench.report") / "assets" / name).read_text(encoding="utf-8")


# each opens on a line of its own inside <style> and <script>
CSS = "\n" + _asset("report.css")
SCRIPT = "\n" + _asset("report.js")

MARK_CLASS = {"✓": "mark-ok", "⚠": "mark-warn", "✗": "mark-bad"}


# ------------------------------------------------------------------ small helpers


def fmt(value: Any) -> str:
    """A value as a person reads it: few digits, thousands separated, "not measured" for None."""
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.01:
            return f"{value:.2g}"
        if abs(value) >= 100000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def rating_class(rating: Any) -> str:
    return f"r-{rating}" if rating in m.RATING_POINTS else "r-none"


def anchor(result: Result) -> str:
    host = result.get("hostname")
    raw = f"{result.get('cell_id', '')}{'-' + host if host else ''}"
    return "cell-" + re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def quant_order(quant: str) -> tuple[int, str]:
    """Quantizations by bits per weight (Q2_K … Q8_0, F16, F32), then name."""
    if quant.upper() in ("F16", "BF16"):
        return (16, quant)
    if quant.upper() == "F32":
        return (32, quant)
    found = re.search(r"(\d+)", quant)
    return (int(found.group(1)) if found else 99, quant)


def _title(text: str | None) -> str:
    return f' title="{escape(text)}"' if text else ""


def _sort_key(value: Any) -> str:
    number = m.number(value)
    return f' data-sort="{number:.6g}"' if number is not None else ""


def _num_td(metric: Metric, result: Result) -> str:
    """A metric's cell; with an interval the value reads "77.8 ±2.1" and the tooltip gives the
    interval in full beside the real-world reading."""
    value = metric.value(result)
    if value is None:
        return '<td class="num" data-sort="">–</td>'
    reading = metric.reading(value)
    text = metric.show(value)
    interval = metric.estimate(result)
    if interval is not None:
        text += f" ±{metric.show((interval.high - interval.low) / 2)}"
        reading = "; ".join(x for x in (m.interval_text(interval, metric.fmt), reading) if x)
    return f'<td class="num" data-sort="{value:.6g}"{_title(reading)}>{escape(text)}</td>'


TPS = metric("interactive.tokens_per_second")
KLD = metric("divergence.mean_kld")
_tps = TPS.value


# ------------------------------------------------------------------ executive summary


def _recommendations(recs: Mapping[str, Any]) -> str:
    parts = ['<div id="recommendations">']
    best = recs.get("overall_best")
    if best:
        reasons = "".join(f"<li>{escape(r)}</li>" for r in best.get("reasons") or [])
        parts.append(
            f'<div class="best"><h3>Overall best: {escape(best["label"])}</h3><ul>{reasons}</ul></div>'
        )
    else:
        parts.append(
            f'<div class="best"><h3>Overall best: none</h3><p>{NO_BEST.capitalize()}.</p></div>'
        )
    parts.append('<div class="usecases">')
    for case in recs.get("use_cases") or []:
        items = []
        for line in case.get("lines") or []:
            mark = line["mark"]
            items.append(
                f'<li><span class="{MARK_CLASS.get(mark, "")}">{escape(mark)}</span> '
                f"<strong>{escape(line['label'])}</strong> – {escape(line['summary'])}</li>"
            )
        if case.get("hidden"):
            items.append(f'<li class="note">… and {case["hidden"]} more in the results table</li>')
        note = f'<p class="note">{escape(case["note"])}</p>' if case.get("note") else ""
        parts.append(
            f'<div class="usecase"><h3>{escape(case["title"])}</h3><ul class="recs">{"".join(items)}</ul>{note}</div>'
        )
    parts.append("</div></div>")
    return "".join(parts)


def _hardware_rows(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], str]]:
    """(host, hardware, llama-server version) per machine: per result in a merged report."""
    metadata = report.get("metadata") or {}
    rows: dict[str, tuple[str, Mapping[str, Any], str]] = {}
    for result in report.get("results") or []:
        host = result.get("hostname")
        if host and isinstance(result.get("hardware"), Mapping):
            version = m.dig(result, "run", "llama_server", "version") or ""
            rows.setdefault(host, (host, result["hardware"], str(version)))
    if not rows:
        host = str(metadata.get("hostname") or "this machine")
        version = str(m.dig(metadata, "llama_server", "version") or "")
        rows[host] = (host, metadata.get("hardware") or {}, version)
    return list(rows.values())


def _duration(seconds: Any) -> str:
    value = m.number(seconds)
    if value is None:
        return "unknown"
    hours, rest = divmod(round(value), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _summary(report: Mapping[str, Any]) -> str:
    metadata = report.get("metadata") or {}
    results = report.get("results") or []
    hardware = "".join(
        f"<tr><td>{escape(host)}</td><td>{escape(str(hw.get('cpu', '?')))}</td>"
        f'<td class="num">{escape(fmt(hw.get("cores")))}</td><td class="num">{escape(fmt(hw.get("ram_gb")))}</td>'
        f"<td>{escape(str(hw.get('os', '?')))}</td><td>{escape(version)}</td></tr>"
        for host, hw, version in _hardware_rows(report)
    )
    models: dict[str, list[str]] = {}
    for result in results:
        models.setdefault(model_label(result), []).append(str(result.get("quant")))
    model_items = "".join(
        f"<li>{escape(name)}: {escape(', '.join(sorted(set(quants), key=quant_order)))}</li>"
        for name, quants in models.items()
    )
    findings = "".join(f"<li>{escape(str(f))}</li>" for f in report.get("key_findings") or [])
    sources = metadata.get("merged_from")
    merged = (
        f'<p class="note">Merged from {len(sources)} reports: '
        + escape(", ".join(str(s.get("source")) for s in sources))
        + "</p>"
        if isinstance(sources, list)
        else ""
    )
    return (
        '<section id="summary"><h2>Executive summary</h2>'
        + _external_server(report)
        + _recommendations(report.get("recommendations") or {})
        + "<h3>Hardware tested</h3><table><thead><tr><th>Host</th><th>CPU</th><th>Cores</th>"
        "<th>RAM GB</th><th>OS</th><th>llama-server</th></tr></thead><tbody>"
        + hardware
        + "</tbody></table>"
        + f"<p>Started {escape(str(metadata.get('timestamp', '?')))}; test duration "
        f"{escape(_duration(metadata.get('duration_seconds')))}.</p>"
        + merged
        + f"<h3>Models evaluated</h3><ul>{model_items or '<li>none</li>'}</ul>"
        + f"<h3>Key findings</h3><ul>{findings or '<li>none</li>'}</ul></section>"
    )


def _external_server(report: Mapping[str, Any]) -> str:
    """A run against ``--llm-server-url`` says so first: its load and memory columns are blank
    because this run never started the server, not because loading failed."""
    urls = external_urls(
        report.get("results") or [], m.dig(report, "metadata", "config", "external_server")
    )
    if not urls:
        return ""
    note = external_note(urls)
    return f'<p class="external" id="external-server">{escape(note[:1].upper() + note[1:])}.</p>'


# ------------------------------------------------------------------ heat map


def _heatmap(results: Sequence[Result]) -> str:
    with_host = spans_hosts(results)
    quants = sorted({str(r.get("quant")) for r in results}, key=quant_order)
    rows: dict[str, dict[str, Result]] = {}
    for result in sorted(
        results, key=lambda r: (m.number(r.get("params_b")) or 0, str(r.get("model")))
    ):
        rows.setdefault(model_label(result, with_host), {})[str(result.get("quant"))] = result
    body = []
    for name, by_quant in rows.items():
        tds = []
        for quant in quants:
            result = by_quant.get(quant)
            if result is None:
                tds.append('<td class="r-none">–</td>')
                continue
            rating = m.dig(result, "derived", "rating")
            status = str(result.get("status"))
            tps = _tps(result)
            ratings = m.dig(result, "derived", "profile_ratings") or {}
            tip = [f"{result.get('cell_id')}: {status}"]
            tip += [f"{k} {v}" for k, v in ratings.items() if v]
            if tps is not None:
                tip.append(f"{tps:.1f} t/s: {TPS.reading(tps)}")
            diverged = m.profile_metrics(result, "divergence")
            kld = m.number(diverged.get("mean_kld"))
            if kld is not None:
                tip.append(
                    f"KLD {kld:.3g} vs {diverged.get('reference_quant')}, same top token "
                    f"{m.number(diverged.get('same_top_percent')) or 0:.1f} %: "
                    f"{KLD.reading(kld)}"
                )
            capacity = m.profile_metrics(result, "serving").get("capacity")
            if capacity:
                tip.append(str(capacity))
            if result.get("skip_reason"):
                tip.append(str(result["skip_reason"]))
            headline = (
                f"<small>{tps:.1f} t/s</small>"
                if tps is not None
                else f"<small>{escape(status)}</small>"
            )
            tds.append(
                f'<td class="{rating_class(rating)}" title="{escape("; ".join(tip))}">'
                f'<a href="#{anchor(result)}">{escape(str(rating or status))}{headline}</a></td>'
            )
        body.append(f"<tr><th>{escape(name)}</th>{''.join(tds)}</tr>")
    legend = " ".join(f'<span class="badge {rating_class(r)}">{r}</span>' for r in m.RATINGS)
    head = "".join(f"<th>{escape(q)}</th>" for q in quants)
    return (
        '<section id="matrix"><h2>Performance overview: models × quantizations</h2>'
        f'<p class="note">Each cell is coloured by its usability rating (the worst of its profiles): {legend} '
        '<span class="badge r-none">not rated</span>. Hover for details; click for the cell\'s results.</p>'
        f'<table class="heatmap"><thead><tr><th>Model</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></section>'
    )


# ------------------------------------------------------------------ charts


def _series_by(
    results: Sequence[Result],
    group: Callable[[Result], str],
    point: Callable[[Result], Point | None],
    order: Callable[[str], Any] = str,
) -> list[Series]:
    groups: dict[str, list[Point]] = {}
    for result in results:
        p = point(result)
        if p is not None:
            groups.setdefault(group(result), []).append(p)
    return [Series(name, tuple(groups[name])) for name in sorted(groups, key=order)]


def _charts(results: Sequence[Result]) -> str:
    with_host = spans_hosts(results)

    def name(r: Result) -> str:
        return label(r, with_host)

    def model_name(r: Result) -> str:
        return model_label(r, with_host)

    def quant_group(r: Result) -> str:
        quant = str(r.get("quant"))
        return f"{quant} @ {r['hostname']}" if with_host and r.get("hostname") else quant

    def tps_point(r: Result) -> Point | None:
        size, tps = m.file_size_gb(r), _tps(r)
        if size is None or tps is None:
            return None
        interval = m.estimate(r, "interactive", "tokens_per_second")
        ci = f" ({m.interval_text(interval, '.1f')})" if interval else ""
        return Point(
            size,
            tps,
            f"{name(r)}: {tps:.1f} t/s{ci}, {size:.2f} GB file",
            y_low=interval.low if interval else None,
            y_high=interval.high if interval else None,
        )

    def memory_point(r: Result) -> Point | None:
        size, memory = m.file_size_gb(r), m.number(m.dig(r, "derived", "memory_gb"))
        if size is None or memory is None:
            return None
        return Point(size, memory, f"{name(r)}: {memory:.2f} GB in memory, {size:.2f} GB file")

    charts = [
        xy_chart(
            "tps-vs-size",
            "Decode speed vs model size, by quantization",
            "model file size (GB)",
            "tokens / s",
            _series_by(results, quant_group, tps_point, lambda g: quant_order(g.split(" @ ")[0])),
            empty_message="not measured: run the interactive profile",
        ),
        xy_chart(
            "memory-vs-size",
            "Memory vs model size",
            "model file size (GB)",
            "server memory (GB)",
            _series_by(results, model_name, memory_point),
            empty_message="not measured: no memory samples in the results",
        ),
    ]
    quality_quants = sorted(
        {
            str(r.get("quant"))
            for r in results
            if m.dig(r, "derived", "quality_overall") is not None
        },
        key=quant_order,
    )
    quality_series = []
    for model in dict.fromkeys(model_name(r) for r in results):
        bars: list[tuple[float | None, str]] = []
        for quant in quality_quants:
            found = [r for r in results if model_name(r) == model and str(r.get("quant")) == quant]
            score = m.number(m.dig(found[0], "derived", "quality_overall")) if found else None
            bars.append(
                (score, f"{model} {quant}: {score:.0f} % overall" if score is not None else "")
            )
        if any(v is not None for v, _ in bars):
            quality_series.append((model, bars))
    charts.append(
        bar_chart(
            "quality-vs-quant",
            "Quality score vs quantization",
            "overall quality (%)",
            quality_quants,
            quality_series,
            x_label="quantization (fewer bits → left)",
            y_max=100.0,
            empty_message="not measured: run the quality profile",
        )
    )
    context_series = []
    for r in results:
        points = [
            Point(
                p.size,
                p.seconds,
                f"{name(r)}: {p.size:,} tokens in {p.seconds:.1f} s"
                + ("" if p.passed else " (failed)"),
                not p.passed,
            )
            for p in m.long_context_points(m.profile_metrics(r, "long_context"))
            if p.seconds is not None
        ]
        if points:
            context_series.append(Series(name(r), tuple(points)))
    charts.append(
        xy_chart(
            "context-vs-load",
            "Context size vs load time",
            "context (tokens)",
            "initial load (s)",
            context_series,
            empty_message="not measured: run the long_context profile",
        )
    )

    def kld_point(r: Result) -> Point | None:
        size = m.file_size_gb(r)
        diverged = m.profile_metrics(r, "divergence")
        kld = m.number(diverged.get("mean_kld"))
        if size is None or kld is None:
            return None
        pm = m.number(diverged.get("mean_kld_pm")) or 0.0
        tip = f"{name(r)}: KLD {kld:.3g} ± {pm:.2g} vs {diverged.get('reference_quant')}, {size:.2f} GB file"
        return Point(size, kld, tip, y_low=max(0.0, kld - pm), y_high=kld + pm)

    def serving_series(r: Result) -> Series | None:
        levels = m.serving_levels(m.profile_metrics(r, "serving"))
        points = [
            Point(
                per_user,
                total,
                f"{name(r)}: {fmt(lv.get('level'))} users, {total:.1f} t/s in total, "
                f"{per_user:.1f} t/s each",
            )
            for lv in levels
            if (per_user := m.number(lv.get("per_user_tokens_per_second"))) is not None
            and (total := m.number(lv.get("output_tokens_per_second"))) is not None
        ]
        return Series(name(r), tuple(points)) if points else None

    charts.append(
        xy_chart(
            "serving-curve",
            "Serving: total throughput vs speed per user",
            "tokens / s per user",
            "tokens / s in total",
            [found for r in results if (found := serving_series(r)) is not None],
            empty_message="not measured: run the serving profile (-m serving)",
        )
    )
    charts.append(
        xy_chart(
            "size-vs-kld",
            "Size vs quality loss (KL divergence from the reference)",
            "model file size (GB)",
            "mean KL divergence",
            _series_by(results, model_name, kld_point),
            empty_message="not measured: run the divergence profile",
        )
    )
    stressed = any(m.stress_samples(m.profile_metrics(r, "stress")) for r in results)
    for chart_id, title, axis, attr in (
        (
            "stress-temperature",
            "Temperature over time (stress)",
            "CPU temperature (°C)",
            "temperature_c",
        ),
        ("stress-tps", "Tokens/s over time (stress)", "tokens / s", "tokens_per_second"),
    ):
        series = []
        for r in results:
            points = []
            for s in m.stress_samples(m.profile_metrics(r, "stress")):
                value = getattr(s, attr)
                if value is not None:
                    points.append(
                        Point(
                            s.time_s / 60,
                            value,
                            f"{name(r)}: {value:.1f} at {s.time_s / 60:.1f} min",
                        )
                    )
            if points:
                series.append(Series(name(r), tuple(points)))
        charts.append(
            xy_chart(
                chart_id,
                title,
                "time (minutes)",
                axis,
                series,
                y_from_zero=attr != "temperature_c",
                empty_message=(
                    "not measured: no readings in the stress samples (no sensor?)"
                    if stressed
                    else "not measured: run the stress profile"
                ),
            )
        )
    charts.append(_finetune_chart(results, model_name))
    captions = (
        "Each line is one quantization across models; higher is faster.",
        "Resident memory of the llama-server process against the file size.",
        "Overall quality score per quantization; compare bars of one model.",
        "Load (prompt-processing) time per context size; hollow markers failed.",
        "Each point is one concurrency level: more users raise the total and slow each user.",
        "One line per model: smaller files lose more; lower is closer to the reference.",
        "CPU temperature sampled during the sustained stress run.",
        "Decode speed during the stress run; a falling line means throttling.",
        "Loss per epoch of each model's fine-tuning; '(validation)' lines are the held-out text.",
    )
    figures = "".join(
        f"<figure>{chart}<figcaption>{escape(caption)}</figcaption></figure>"
        for chart, caption in zip(charts, captions, strict=True)
    )
    return f'<section id="charts"><h2>Charts</h2><div class="charts">{figures}</div></section>'


def _finetune_chart(results: Sequence[Result], model_name: Callable[[Result], str]) -> str:
    """The loss curve of each model's fine-tuning run (training, and validation when reported)."""
    series = []
    for r in results:
        tuned = m.profile_metrics(r, "finetune")
        for key, suffix in (("loss", ""), ("val_loss", " (validation)")):
            losses = [m.number(v) for v in tuned.get(key) or []]
            points = tuple(
                Point(i, loss, f"{model_name(r)}{suffix}: loss {loss:.3f} after epoch {i}")
                for i, loss in enumerate(losses, start=1)
                if loss is not None
            )
            if points:
                series.append(Series(f"{model_name(r)}{suffix}", points))
    return xy_chart(
        "finetune-loss",
        "Fine-tuning loss per epoch",
        "epoch",
        "loss",
        series,
        y_from_zero=False,
        empty_message="not measured: run the finetune profile",
    )


# ------------------------------------------------------------------ results table and details

# the results table's number columns: every metric the metric table gives an HTML header
TABLE_COLUMNS: tuple[Metric, ...] = tuple(e for e in METRICS if e.html)


def _results_table(results: Sequence[Result]) -> str:
    with_host = spans_hosts(results)
    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in ("Cell", "Status", "Rating", *(c.html or "" for c in TABLE_COLUMNS))
    )
    rows = []
    for r in results:
        rating = m.dig(r, "derived", "rating")
        profiles = " ".join(k for k, v in (r.get("profiles") or {}).items() if v.get("metrics"))
        tds = [
            f'<td><a href="#{anchor(r)}">{escape(label(r, with_host))}</a></td>',
            f"<td>{escape(str(r.get('status')))}</td>",
            f'<td class="{rating_class(rating)}" data-sort="{m.RATING_POINTS.get(str(rating), -1)}">{escape(str(rating or "not rated"))}</td>',
        ]
        tds += [_num_td(column, r) for column in TABLE_COLUMNS]
        rows.append(
            f'<tr data-rating="{escape(str(rating or ""))}" data-status="{escape(str(r.get("status")))}" '
            f'data-profiles="{escape(profiles)}">{"".join(tds)}</tr>'
        )
    ratings = "".join(f'<option value="{r}">{r}</option>' for r in m.RATINGS)
    statuses = "".join(
        f'<option value="{s}">{s}</option>'
        for s in ("passed", "partial", "failed", "skipped", "error", "not run")
    )
    usecases = "".join(
        f'<option value="{p}">{escape(p.replace("_", " "))}</option>'
        for p in ("interactive", "long_context", "batch", "quality", "stress", "embedding")
    )
    return (
        '<h3>All cells</h3><div class="controls">'
        '<label>Search <input id="filter-text" data-filter type="search" placeholder="model, quant, status…"></label>'
        f'<label>Rating <select id="filter-rating" data-filter><option value="">any</option>{ratings}</select></label>'
        f'<label>Status <select id="filter-status" data-filter><option value="">any</option>{statuses}</select></label>'
        f'<label>Use case <select id="filter-usecase" data-filter><option value="">any</option>{usecases}</select></label>'
        f'<span id="filter-count" class="note">{len(results)} shown</span></div>'
        '<p class="note">Click a column to sort; hover a number for its real-world reading.</p>'
        '<div class="scroll"><table id="results-table" class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _threshold_for(
    checks: Sequence[Mapping[str, Any]], profile: str, metric: str
) -> Mapping[str, Any] | None:
    for check in checks:
        if check.get("profile") == profile and check.get("metric") == metric:
            return check
    return None


def _metric_rows(
    profile: str, metrics: Mapping[str, Any], checks: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Any, str, str]]:
    """(name, value, threshold text, reading) for the scalar metrics of one profile."""
    rows = []
    # (shown name, value, the key the metric table knows it by)
    items: list[tuple[str, Any, str]] = [
        (k, v, k) for k, v in metrics.items() if not isinstance(v, dict | list)
    ]
    if profile == "quality":
        for category, score in m.quality_scores(metrics).items():
            items.append((f"score: {category}", score, f"{category}_score"))
    if profile == "long_context":
        for point in m.long_context_points(metrics):
            state = "passed" if point.passed else "failed"
            items.append(
                (f"context {point.size:,} tokens ({state})", point.seconds, "load_seconds")
            )
    intervals = metrics.get("measurements")
    for name, value, key in items:
        entry = for_key(profile, key)
        check = _threshold_for(checks, profile, key)
        threshold = ""
        if check:
            sign = "≥" if check.get("higher_is_better") else "≤"
            verdict = "met" if check.get("met") else "missed"
            if check.get("borderline"):
                verdict = f"borderline, {verdict}: the interval reaches across the threshold"
            threshold = f"{sign} {fmt(check.get('threshold'))} ({verdict})"
        shown = value
        found = m.estimate_from(intervals.get(name)) if isinstance(intervals, Mapping) else None
        if found is not None:
            shown = f"{fmt(value)} ({m.interval_text(found)})"
        reading = entry.reading(m.number(value)) if entry else ""
        rows.append((name, shown, threshold, reading))
    return rows


def _cell_details(result: Result, with_host: bool, include_logs: bool) -> str:
    rating = m.dig(result, "derived", "rating")
    checks = m.dig(result, "derived", "checks") or []
    file_ = result.get("file") or {}
    server = result.get("server") or {}
    external = bool(server.get("external"))
    facts = [
        ("file", file_.get("path")),
        ("size GB", file_.get("size_gb")),
        ("sha256", file_.get("sha256")),
        ("threads", server.get("threads")),
        (
            "server load s",
            "not measured (external server)" if external else server.get("load_seconds"),
        ),
        ("memory GB (peak seen)", m.dig(result, "derived", "memory_gb")),
        ("context tokens", m.dig(result, "derived", "context_tokens")),
        ("efficiency score", m.dig(result, "derived", "efficiency_score")),
        ("cost-benefit score", m.dig(result, "derived", "cost_benefit_score")),
    ]
    if with_host or result.get("hostname"):
        facts.insert(0, ("host", result.get("hostname")))
    if external:
        facts.insert(0, ("server", f"external, {server.get('url')} (--llm-server-url)"))
    parts = [
        f'<details class="cell" id="{anchor(result)}"><summary>{escape(label(result, with_host))} – '
        f"{escape(str(result.get('status')))} – "
        f'<span class="badge {rating_class(rating)}">{escape(str(rating or "not rated"))}</span></summary>',
        "<table>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(fmt(v))}</td></tr>" for k, v in facts)
        + "</table>",
    ]
    if server.get("command"):
        parts.append(
            f'<p class="note">Server command:</p><pre>{escape(" ".join(map(str, server["command"])))}</pre>'
        )
    if include_logs and server.get("log"):
        parts.append(
            f'<p class="note">Server log: <a href="#log-{anchor(result)}">appendix</a> ({escape(str(server["log"]))})</p>'
        )
    parts.append(_compat_details(result.get("compat") or {}))
    parts.append(_model_info_details(result.get("model_info")))
    ratings = m.dig(result, "derived", "profile_ratings") or {}
    for profile, entry in (result.get("profiles") or {}).items():
        rows = _metric_rows(profile, entry.get("metrics") or {}, checks)
        prating = ratings.get(profile)
        parts.append(
            f"<h3>{escape(profile)} – {escape(str(entry.get('status')))} "
            f'<span class="badge {rating_class(prating)}">{escape(str(prating or "not rated"))}</span></h3>'
        )
        if rows:
            body = "".join(
                f'<tr><td>{escape(n)}</td><td class="num"{_sort_key(v)}{_title(rd)}>{escape(fmt(v))}</td>'
                f"<td>{escape(t)}</td><td>{escape(rd)}</td></tr>"
                for n, v, t, rd in rows
            )
            parts.append(
                '<table class="sortable"><thead><tr><th>Metric</th><th>Value</th><th>Threshold</th>'
                f"<th>Reading</th></tr></thead><tbody>{body}</tbody></table>"
            )
        if profile == "serving":
            parts.append(_serving_levels(entry.get("metrics") or {}))
    tests = result.get("tests") or {}
    if tests:
        rows = [
            (n, t.get("profile"), t.get("outcome"), t.get("message") or "")
            for n, t in tests.items()
        ]
        parts.append(
            "<h3>Tests</h3>" + _table(("Test", "Profile", "Outcome", "Message"), rows, True)
        )
    parts.append("</details>")
    return "".join(parts)


def _serving_levels(metrics: Mapping[str, Any]) -> str:
    """The serving sweep's percentile table: one row per level."""
    rows = []
    for level in m.serving_levels(metrics) + m.serving_levels(metrics, "rate_levels"):
        kind = "users" if level.get("kind") == "concurrency" else "req/s"
        pct = {k: level.get(k) or {} for k in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")}
        rows.append(
            (
                f"{fmt(level.get('level'))} {kind}",
                level.get("requests"),
                level.get("errors"),
                *(pct[k].get(q) for k in ("ttft_ms", "e2e_ms") for q in ("p50", "p90", "p99")),
                pct["tpot_ms"].get("p50"),
                pct["itl_ms"].get("p99"),
                level.get("output_tokens_per_second"),
                level.get("per_user_tokens_per_second"),
                level.get("requests_per_second"),
                level.get("goodput_rps"),
                level.get("share_meeting_slo_percent"),
            )
        )
    if not rows:
        return ""
    headers = (
        "Level", "Requests", "Errors", "TTFT p50 ms", "TTFT p90 ms", "TTFT p99 ms",
        "E2E p50 ms", "E2E p90 ms", "E2E p99 ms", "TPOT p50 ms", "ITL p99 ms",
        "Total t/s", "t/s per user", "Req/s", "Goodput req/s", "Within objectives %",
    )  # fmt: skip
    note = f'<p class="note">{escape(str(metrics.get("capacity") or ""))}; {escape(str(metrics.get("stopped") or ""))}</p>'
    return note + _table(headers, rows)


def _compat_details(compat: Mapping[str, Any]) -> str:
    """The registry's status and notes, and each effective server option with its origin."""
    parts = []
    if compat.get("status"):
        parts.append(
            f'<p class="note">Compatibility: <strong>{escape(str(compat["status"]))}</strong> '
            f"(set by {escape(str(compat.get('status_source')))}, registry {escape(str(compat.get('registry')))})</p>"
        )
    if compat.get("notes"):
        parts.append(f"<pre>{escape(str(compat['notes']))}</pre>")
    settings = compat.get("settings") or []
    if settings:
        rows = [
            (
                s.get("key"),
                "(dropped)" if s.get("value") is None else s.get("value"),
                s.get("state"),
                s.get("source"),
            )
            for s in settings
        ]
        parts.append(
            '<p class="note">Server settings:</p>'
            + _table(("Option", "Value", "State", "Source"), rows)
        )
    return "".join(parts)


def _model_info_details(info: Mapping[str, Any] | None) -> str:
    """What the model file says about itself (GGUF header, model card) and the hints drawn from
    it, collapsed: opened to check a licence, context length or tokenizer before trusting a number."""
    if not info:
        return ""
    snapshot = info.get("gguf_snapshot") or []
    card = info.get("card") or {}
    hints = info.get("hints") or []
    parts = [
        f'<details class="model-info"><summary>Model metadata: {len(hints)} hints, '
        f"{len(snapshot)} GGUF keys{', model card' if card else ''}</summary>"
    ]
    if hints:
        parts.append("<ul>" + "".join(f"<li>{escape(str(h))}</li>" for h in hints) + "</ul>")
    if card:
        rows = [(k, _shown(v)) for k, v in card.items()]
        parts.append('<p class="note">Model card:</p>' + _table((), rows))
    if snapshot:
        rows = [(e.get("key"), e.get("type"), _snapshot_value(e)) for e in snapshot]
        parts.append(_table(("GGUF key", "Type", "Value"), rows, sortable=True))
    parts.append("</details>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], sortable: bool = False) -> str:
    """A plain HTML table of escaped values (no header row when ``headers`` is empty)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    css = ' class="sortable"' if sortable else ""
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    return f"<table{css}>{thead}<tbody>{body}</tbody></table>"


def _snapshot_value(entry: Mapping[str, Any]) -> str:
    """A summarised array (its value is its type, ``array[49152] of string``) is not repeated."""
    return "(not shown)" if entry.get("value") == entry.get("type") else _shown(entry.get("value"))


def _shown(value: Any) -> str:
    """A value on one table row: lists joined, a long text (a chat template) cut short."""
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[: MAX_VALUE_CHARS - 1]}… ({len(text)} chars)"


def _skipped(results: Sequence[Result]) -> str:
    with_host = spans_hosts(results)
    rows = [
        f"<tr><td>{escape(label(r, with_host))}</td><td>{escape(str(r.get('status')))}</td>"
        f"<td>{escape(str(r.get('skip_reason') or _first_message(r)))}</td></tr>"
        for r in results
        if r.get("status") in ("skipped", "error", "not run")
    ]
    body = (
        f"<table><thead><tr><th>Cell</th><th>Status</th><th>Reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No cell was skipped.</p>"
    )
    return f'<section id="skipped"><h2>Skipped cells</h2>{body}</section>'


def _first_message(result: Result) -> str:
    for test in (result.get("tests") or {}).values():
        if test.get("message"):
            return str(test["message"])
    return ""


# ------------------------------------------------------------------ appendices


def _log_tail(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def _inside(path: Path, root: Path | None) -> bool:
    """Whether ``path`` is a ``.log`` file under ``root/logs`` (where a run writes its servers'
    logs), symlinks resolved: only a run's own logs are read into its report, so rendering a
    report someone sent cannot publish ``/etc/passwd`` or a key it names as a log."""
    if root is None or path.suffix != ".log":
        return False
    try:
        path.resolve().relative_to((root / "logs").resolve())
    except ValueError:
        return False
    return True


def _logs(results: Sequence[Result], with_host: bool, log_root: Path | None) -> str:
    parts = []
    for r in results:
        log = m.dig(r, "server", "log")
        if not log:
            continue
        main = Path(str(log))
        if log_root is not None and not main.is_absolute():
            main = log_root / main
        inside = _inside(main, log_root)
        paths = (
            [main, *sorted(main.parent.glob(f"{main.stem}.*.log"))]
            if inside and main.parent.is_dir()
            else [main]
        )
        for i, path in enumerate(paths):
            tail = _log_tail(path) if inside else None
            ident = f' id="log-{anchor(r)}"' if i == 0 else ""
            title = f"{label(r, with_host)}: {path.name}"
            why = (
                "not available on this machine"
                if inside
                else "outside the report's directory, not read"
            )
            body = (
                f"<pre>{escape(tail)}</pre>"
                if tail is not None
                else f'<p class="note">{why}: {escape(str(path))}</p>'
            )
            parts.append(
                f"<details{ident}><summary>{escape(title)} (last {LOG_TAIL_LINES} lines)</summary>{body}</details>"
            )
    return "".join(parts) or "<p>No server logs recorded.</p>"


def _appendices(report: Mapping[str, Any], include_logs: bool, log_root: Path | None) -> str:
    results = report.get("results") or []
    metadata = report.get("metadata") or {}
    config = {"config": metadata.get("config"), "merged_from": metadata.get("merged_from")}
    raw = [{k: v for k, v in r.items() if k != "derived"} for r in results]
    logs = (
        _logs(results, spans_hosts(results), log_root)
        if include_logs
        else '<p class="note">Not included (output.include_logs is false).</p>'
    )
    return (
        '<section id="appendices"><h2>Appendices</h2>'
        "<h3>A. Configuration used</h3><details><summary>thresholds, limits, settings and cells</summary>"
        f"<pre>{escape(json.dumps(config, indent=2, default=str))}</pre></details>"
        f'<h3 id="logs">B. Server logs</h3>{logs}'
        "<h3>C. Raw metrics</h3><details><summary>every result as recorded</summary>"
        f"<pre>{escape(json.dumps(raw, indent=2, default=str))}</pre></details></section>"
    )


# ------------------------------------------------------------------ the page


def render_html(report: Mapping[str, Any], log_root: Path | None = None) -> str:
    """The whole page for an enriched report (see :func:`pytest_llmbench.recommend.enrich_report`);
    server logs are read only from inside ``log_root`` (the directory holding the report's JSON),
    any other is listed by name."""
    metadata = report.get("metadata") or {}
    results = list(report.get("results") or [])
    include_logs = m.dig(settings_of(report), "output", "include_logs") is not False
    with_host = spans_hosts(results)
    host = "several machines" if with_host else str(metadata.get("hostname") or "?")
    title = f"LLM benchmark report – {host}"
    details = "".join(_cell_details(r, with_host, include_logs) for r in results)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="subtitle">pytest-llmbench · {len(results)} cells · {escape(str(metadata.get("timestamp", "")))}</p></header>'
        + _summary(report)
        + _heatmap(results)
        + _charts(results)
        + '<section id="details"><h2>Detailed results</h2>'
        + _results_table(results)
        + f"<h3>Per cell</h3>{details}</section>"
        + _skipped(results)
        + _appendices(report, include_logs, log_root)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_html(report: Mapping[str, Any], path: Path, log_root: Path | None = None) -> Path:
    """Write the page; logs are read from ``log_root``, by default the page's own directory."""
    atomic_write_text(path, render_html(report, path.parent if log_root is None else log_root))
    return path
