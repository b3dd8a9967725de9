"""Threshold assertions whose message says metric, value, interval, threshold and meaning.

The bench modules call :func:`meets` with an entry of the metric table, which knows the
threshold field, the direction, the unit and the words; they never name a threshold themselves.
The rule is the same in every profile (see ``stats.verdict``): the median decides pass or fail.
When the value's 95 % interval reaches across the threshold the verdict is *borderline*: the
message says so, and the reports mark the check, but the median still decides.
"""

from __future__ import annotations

from typing import Any

from pytest_llmbench import metrics, stats
from pytest_llmbench.metric_table import Metric


def meets(
    metric: Metric,
    value: float | None,
    settings: Any,
    interval: stats.Estimate | None = None,
    *,
    what: str | None = None,
    detail: str = "",
) -> None:
    """Fail unless ``value`` meets ``metric``'s limit in ``settings``; a limit that is off (or
    does not apply, e.g. swap when ``allow_swap``) passes.  ``what`` names the value more
    precisely than the table's words; ``detail`` follows the value's reading."""
    limit = metric.threshold(settings)
    if limit is None:
        return
    reading = "; ".join(part for part in (metric.reading(value), detail) if part)
    check = at_least if metric.higher_is_better else at_most
    check(what or metric.words, value, limit, metric.unit, reading, interval)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _shown(value: float, unit: str, interval: stats.Estimate | None) -> str:
    text = f"{_fmt(value)} {unit}".rstrip()
    ci = metrics.interval_text(interval)
    return f"{text} ({ci})" if ci else text


def _borderline(interval: stats.Estimate | None, threshold: float) -> str:
    if interval is None or not interval.straddles(threshold):
        return ""
    return " [borderline: the interval reaches across the threshold; the median decides]"


def at_least(
    metric: str,
    value: float | None,
    minimum: float,
    unit: str,
    reading: str,
    interval: stats.Estimate | None = None,
) -> None:
    """Fail unless ``value >= minimum``; a missing value is a failure too, never a pass."""
    if value is None:
        raise AssertionError(f"{metric}: not measured (threshold ≥ {_fmt(minimum)} {unit})")
    if value < minimum:
        raise AssertionError(
            f"{metric} {_shown(value, unit, interval)} < {_fmt(minimum)} {unit} minimum: "
            f"{reading}{_borderline(interval, minimum)}"
        )


def at_most(
    metric: str,
    value: float | None,
    maximum: float,
    unit: str,
    reading: str,
    interval: stats.Estimate | None = None,
) -> None:
    """Fail unless ``value <= maximum``; a missing value is a failure too, never a pass."""
    if value is None:
        raise AssertionError(f"{metric}: not measured (threshold ≤ {_fmt(maximum)} {unit})")
    if value > maximum:
        raise AssertionError(
            f"{metric} {_shown(value, unit, interval)} > {_fmt(maximum)} {unit} maximum: "
            f"{reading}{_borderline(interval, maximum)}"
        )
