"""The CSV report: one row per cell, the JSON report flattened for a spreadsheet.

Columns are fixed (so two runs' files line up in a spreadsheet) plus one column per extra
quality category a run scored; an unmeasured value is an empty field, never a zero.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench.models import atomic_write_text

Result = Mapping[str, Any]
QUALITY_CATEGORIES = ("math", "comprehension", "reasoning", "format")
PROFILES = (
    "load",
    "interactive",
    "long_context",
    "batch",
    "quality",
    "divergence",
    "serving",
    "stress",
    "embedding",
    "finetune",
)


def _metric(profile: str, *keys: str) -> Callable[[Result], Any]:
    return lambda r: m.first_number(m.profile_metrics(r, profile), *keys)


def _bound(profile: str, key: str, end: str) -> Callable[[Result], Any]:
    """One end (``low``/``high``) of a metric's 95 % interval; empty without samples."""

    def get(r: Result) -> float | None:
        found = m.estimate(r, profile, key)
        return getattr(found, end) if found else None

    return get


def _with_interval(
    column: str, profile: str, key: str
) -> tuple[tuple[str, Callable[[Result], Any]], ...]:
    """The median's column followed by its interval's ``_lo`` and ``_hi`` columns."""
    return (
        (column, _metric(profile, key)),
        (f"{column}_lo", _bound(profile, key, "low")),
        (f"{column}_hi", _bound(profile, key, "high")),
    )


def _status(profile: str) -> Callable[[Result], Any]:
    return lambda r: m.dig(r, "profiles", profile, "status")


def _rating(profile: str) -> Callable[[Result], Any]:
    return lambda r: m.dig(r, "derived", "profile_ratings", profile)


def _quality(category: str) -> Callable[[Result], Any]:
    return lambda r: m.quality_category(m.profile_metrics(r, "quality"), category)


COLUMNS: tuple[tuple[str, Callable[[Result], Any]], ...] = (
    ("hostname", lambda r: r.get("hostname")),
    ("cell_id", lambda r: r.get("cell_id")),
    ("model", lambda r: r.get("model_name") or r.get("model")),
    ("quant", lambda r: r.get("quant")),
    ("variant", lambda r: r.get("variant")),
    ("size_gb", m.file_size_gb),
    ("memory_gb", lambda r: m.dig(r, "derived", "memory_gb")),
    ("status", lambda r: r.get("status")),
    ("rating", lambda r: m.dig(r, "derived", "rating")),
    ("load_seconds", m.load_seconds),
    *_with_interval("interactive_ttft", "interactive", "ttft_seconds"),
    *_with_interval("interactive_tps", "interactive", "tokens_per_second"),
    *_with_interval("interactive_e2e", "interactive", "e2e_seconds"),
    ("interactive_runs", _metric("interactive", "repetitions")),
    ("interactive_steadiness_cv", _metric("interactive", "steadiness_cv_percent")),
    ("interactive_stalls_per_run", _metric("interactive", "stalls_per_run")),
    ("interactive_itl_cv", _metric("interactive", "itl_cv_percent")),
    ("interactive_rating", _rating("interactive")),
    ("long_context_load", _metric("long_context", "load_seconds")),
    ("long_context_max", _metric("long_context", "max_context_passed")),
    ("long_context_rating", _rating("long_context")),
    *_with_interval("batch_throughput", "batch", "docs_per_hour"),
    ("batch_cv", _metric("batch", "cv_percent")),
    ("batch_rating", _rating("batch")),
    *((f"quality_{c}", _quality(c)) for c in QUALITY_CATEGORIES),
    ("quality_overall", lambda r: m.quality_overall(m.profile_metrics(r, "quality"))),
    ("quality_rating", _rating("quality")),
    ("serving_capacity_users", _metric("serving", "capacity_users")),
    ("serving_max_tps", _metric("serving", "max_output_tokens_per_second")),
    ("serving_capacity", lambda r: m.profile_metrics(r, "serving").get("capacity")),
    ("divergence_reference", lambda r: m.profile_metrics(r, "divergence").get("reference_quant")),
    ("divergence_kld", _metric("divergence", "mean_kld")),
    ("divergence_kld_pm", _metric("divergence", "mean_kld_pm")),
    ("divergence_kld_p99", _metric("divergence", "kld_p99")),
    ("divergence_same_top", _metric("divergence", "same_top_percent")),
    ("divergence_same_top_pm", _metric("divergence", "same_top_pm")),
    ("divergence_ppl", _metric("divergence", "ppl")),
    ("divergence_ppl_ratio", _metric("divergence", "ppl_ratio")),
    ("finetune_first_loss", _metric("finetune", "first_loss")),
    ("finetune_last_loss", _metric("finetune", "last_loss")),
    ("finetune_improvement_percent", _metric("finetune", "improvement_percent")),
    ("finetune_train_tps", _metric("finetune", "train_tokens_per_sec")),
    ("finetune_seconds", _metric("finetune", "seconds")),
    ("finetune_peak_rss_mb", _metric("finetune", "trainer_peak_rss_mb")),
    ("stress_max_temperature", lambda r: m.stress_max_temperature(m.profile_metrics(r, "stress"))),
    ("stress_tps_drop", lambda r: m.stress_tps_drop_percent(m.profile_metrics(r, "stress"))),
    *_with_interval("embedding_latency_ms", "embedding", "latency_ms"),
    ("efficiency_score", lambda r: m.dig(r, "derived", "efficiency_score")),
    ("cost_benefit_score", lambda r: m.dig(r, "derived", "cost_benefit_score")),
    *((f"{p}_status", _status(p)) for p in PROFILES),
    ("compat_status", lambda r: m.dig(r, "compat", "status")),
    ("compat_notes", lambda r: m.dig(r, "compat", "notes")),
    ("server_args", lambda r: " ".join(map(str, m.dig(r, "server", "args") or [])) or None),
    ("skip_reason", lambda r: r.get("skip_reason")),
)


def _extra_quality_columns(results: Sequence[Result]) -> list[tuple[str, Callable[[Result], Any]]]:
    """Columns for quality categories beyond the four the thresholds name."""
    known = set(QUALITY_CATEGORIES)
    for aliases in m.QUALITY_CATEGORY_ALIASES.values():
        known.update(aliases)
    extra = sorted(
        {c for r in results for c in m.quality_scores(m.profile_metrics(r, "quality"))} - known
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
