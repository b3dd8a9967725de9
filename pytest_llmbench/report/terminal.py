"""The end-of-run table and the recommendations in pytest's terminal summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import noise, system
from pytest_llmbench.config import Settings
from pytest_llmbench.recommend import enrich_report, format_recommendations


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def summary_lines(
    cells: list[dict[str, Any]],
    settings: Settings | None = None,
    hardware: Mapping[str, Any] | None = None,
    machine_state: Mapping[str, Any] | None = None,
    judged: Mapping[str, Any] | None = None,
) -> list[str]:
    """The per-cell table, the noise warnings, then the recommendations.

    ``settings`` gives the thresholds the recommendations judge by (the defaults when None);
    ``hardware`` the machine whose RAM bounds the memory headroom (this machine when None);
    ``machine_state`` the load and clock at the run's start (``noise.machine_state``).
    The cells are judged once (``enrich_report``): the table and the recommendations share it;
    ``judged`` is the run's report when it was already enriched (then its cells are these).
    """
    metadata = {
        "hardware": dict(hardware) if hardware is not None else system.hardware(),
        "config": {"settings": asdict(settings or Settings())},
    }
    report = enrich_report(judged or {"metadata": metadata, "results": cells})
    rows = [("cell", "status", "load s", "TTFT s", "t/s", "rating", "note")]
    for cell in report["results"]:
        metrics = m.profile_metrics(cell, "interactive")
        note = cell.get("skip_reason") or ""
        if cell.get("resumed"):
            note = f"resumed (run of {cell.get('resumed_from')}) {note}".strip()
        rows.append(
            (
                cell["cell_id"],
                cell["status"],
                _num(cell["server"].get("load_seconds"), ".2f"),
                _num(metrics.get("ttft_seconds"), ".3f"),
                _speed(cell),
                m.dig(cell, "derived", "profile_ratings", "interactive") or "-",
                note[:70],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    table = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    notes = [line for cell in cells if (line := finetune_line(cell))]
    notes += [f"note: {external_note(urls)}"] if (urls := external_urls(cells)) else []
    notes += [
        f"serving: {cell['cell_id']} {served}"
        for cell in cells
        if (served := m.profile_metrics(cell, "serving").get("capacity"))
    ]
    target = (settings or Settings()).measurement.target_precision_percent
    floor = noise.noise_floor(machine_state or {}, cells, target)
    notes += [f"warning: {text}" for text in floor["warnings"]]
    return [*table, *notes, "", *format_recommendations(report["recommendations"])]


def finetune_line(cell: Mapping[str, Any]) -> str | None:
    """ "finetune smollm2-135m-Q4_1: loss 2.910 → 2.204 (-24 %) in 3 epochs, 60 tokens/s, 85 s" """
    tuned = m.profile_metrics(cell, "finetune")
    losses = [m.number(v) for v in tuned.get("loss") or []]
    if not losses:
        return None
    curve = " → ".join("nan" if v is None else f"{v:.3f}" for v in losses)
    gain, tps = (
        m.number(tuned.get("improvement_percent")),
        m.number(tuned.get("train_tokens_per_sec")),
    )
    rss = m.number(tuned.get("trainer_peak_rss_mb"))
    return (
        f"finetune {cell['cell_id']}: loss {curve}"
        + (f" ({-gain:+.0f} %)" if gain is not None else "")
        + f" in {len(losses)} epochs, {_num(tps, '.0f')} training tokens/s, "
        + f"{_num(m.number(tuned.get('seconds')), '.0f')} s"
        + (f", peak {rss / 1024:.1f} GB" if rss else "")
    )


def _speed(cell: Mapping[str, Any]) -> str:
    """Decode speed as "77.8 ±2.1" (half the 95 % interval) when the record has samples."""
    value = m.number(m.profile_metrics(cell, "interactive").get("tokens_per_second"))
    if value is None:
        return "-"
    interval = m.estimate(cell, "interactive", "tokens_per_second")
    return f"{value:.1f}" + (f" ±{(interval.high - interval.low) / 2:.1f}" if interval else "")


def external_urls(
    results: Iterable[Mapping[str, Any]], configured: Mapping[str, Any] | None = None
) -> list[str]:
    """The ``--llm-server-url`` servers behind these results, in order, each once.

    From each result's server record, and ``configured`` (the report's
    ``config.external_server``), which is there even when the server never answered.
    """
    found = [str(configured.get("url"))] if configured and configured.get("url") else []
    for result in results:
        server = result.get("server") or {}
        if server.get("external"):
            found.append(str(server.get("url") or "an unrecorded URL"))
    return list(dict.fromkeys(found))


def external_note(urls: list[str]) -> str:
    """Why load time and server memory are blank: this run neither started nor watched the server."""
    where = ", ".join(urls)
    return (
        f"external llama-server at {where} (--llm-server-url), started outside this run: "
        "load time and server memory were not measured"
    )
