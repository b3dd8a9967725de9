"""The CSV report: one row per cell, the JSON report flattened for a spreadsheet.

Columns are fixed (so two runs' files line up in a spreadsheet): the cell's facts, then every
metric the metric table gives a CSV column, profile by profile, plus one column per extra
quality category a run scored; an unmeasured value is an empty field, never a zero.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench.metric_table import PROFILES, Metric, of_profile
from pytest_llmbench.models import atomic_write_text

Result = Mapping[str, Any]
Column = tuple[str, Callable[[Result], Any]]


def _bound(metric: Metric, end: str) -> Callable[[Result], Any]:
    """One end (``low``/``high``) of a metric's 95 % interval; empty without samples."""

    def get(r: Result) -> float | None:
        found = metric.estimate(r)
        return getattr(found, end) if found else None

    return get


def _metric_columns(metric: Metric) -> list[Column]:
    """A metric's column, then its interval's ``_lo`` and ``_hi`` where it keeps samples."""
    assert metric.csv is not None
    columns: list[Column] = [(metric.csv, metric.value)]
    if metric.sampled:
        columns += [(f"{metric.csv}_lo", _bound(metric, "low"))]
        columns += [(f"{metric.csv}_hi", _bound(metric, "high"))]
    return columns


def _rating(profile: str) -> Callable[[Result], Any]:
    return lambda r: m.dig(r, "derived", "profile_ratings", profile)


def _status(profile: str) -> Callable[[Result], Any]:
    return lambda r: m.dig(r, "profiles", profile, "status")


def _profile_columns(profile: str) -> list[Column]:
    """The table's CSV metrics of one profile, followed by the profile's rating."""
    columns = [c for e in of_profile(profile) if e.csv for c in _metric_columns(e)]
    return [*columns, (f"{profile}_rating", _rating(profile))] if columns else []


def _quality(category: str) -> Callable[[Result], Any]:
    return lambda r: m.quality_scores(m.profile_metrics(r, "quality")).get(category)


COLUMNS: tuple[Column, ...] = (
    ("hostname", lambda r: r.get("hostname")),
    ("cell_id", lambda r: r.get("cell_id")),
    ("model", lambda r: r.get("model_name") or r.get("model")),
    ("quant", lambda r: r.get("quant")),
    ("variant", lambda r: r.get("variant")),
    ("status", lambda r: r.get("status")),
    ("rating", lambda r: m.dig(r, "derived", "rating")),
    *(column for profile in PROFILES for column in _profile_columns(profile)),
    *(column for e in of_profile("cell") if e.csv for column in _metric_columns(e)),
    *((f"{p}_status", _status(p)) for p in PROFILES),
    ("compat_status", lambda r: m.dig(r, "compat", "status")),
    ("compat_notes", lambda r: m.dig(r, "compat", "notes")),
    ("server_args", lambda r: " ".join(map(str, m.dig(r, "server", "args") or [])) or None),
    ("skip_reason", lambda r: r.get("skip_reason")),
)
_TABLED_CATEGORIES = {e.key.removesuffix("_score") for e in of_profile("quality")}


def _extra_quality_columns(results: Sequence[Result]) -> list[Column]:
    """Columns for quality categories a question set scored beyond those of the table."""
    extra = sorted(
        {c for r in results for c in m.quality_scores(m.profile_metrics(r, "quality"))}
        - _TABLED_CATEGORIES
    )
    return [(f"quality_{c}", _quality(c)) for c in extra]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def csv_text(results: Sequence[Result], hostname: str | None = None) -> str:
    """The CSV text; ``hostname`` fills the column for results that do not name their machine."""
    columns = list(COLUMNS)
    at = next(i for i, (name, _) in enumerate(columns) if name == "quality_overall")
    columns[at:at] = _extra_quality_columns(results)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    for result in results:
        row = {**result, "hostname": result.get("hostname") or hostname}
        writer.writerow([_cell(get(row)) for _, get in columns])
    return out.getvalue()


def write_csv(report: Mapping[str, Any], path: Path) -> Path:
    """Write the (enriched) report's results; derived columns are empty if it was not enriched."""
    host = m.dig(report, "metadata", "hostname")
    text = csv_text(list(report.get("results") or []), host if isinstance(host, str) else None)
    atomic_write_text(path, text)
    return path
