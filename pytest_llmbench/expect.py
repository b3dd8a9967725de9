"""Threshold assertions whose message says metric, value, threshold and what the value means."""

from __future__ import annotations


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def at_least(metric: str, value: float | None, minimum: float, unit: str, reading: str) -> None:
    """Fail unless ``value >= minimum``; a missing value is a failure too, never a pass."""
    if value is None:
        raise AssertionError(f"{metric}: not measured (threshold ≥ {_fmt(minimum)} {unit})")
    if value < minimum:
        raise AssertionError(
            f"{metric} {_fmt(value)} {unit} < {_fmt(minimum)} {unit} minimum: {reading}"
        )


def at_most(metric: str, value: float | None, maximum: float, unit: str, reading: str) -> None:
    """Fail unless ``value <= maximum``; a missing value is a failure too, never a pass."""
    if value is None:
        raise AssertionError(f"{metric}: not measured (threshold ≤ {_fmt(maximum)} {unit})")
    if value > maximum:
        raise AssertionError(
            f"{metric} {_fmt(value)} {unit} > {_fmt(maximum)} {unit} maximum: {reading}"
        )
