"""Judging a cell against the metric table: threshold checks, ratings, and the derived figures.

A cell is judged once per report (:func:`derive_results`); the reports, the baseline comparison
and the recommendations read its ``derived`` section instead of judging again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import stats
from pytest_llmbench.metric_table import METRICS, metric

TOKENS_PER_SECOND = metric("interactive.tokens_per_second")
SAME_TOP = metric("divergence.same_top_percent")


@dataclass(frozen=True)
class Check:
    """One measured metric against its threshold; with its interval when the metric has samples
    (then a verdict across the threshold is borderline).  ``rated``: its margin moves the rating
    (else a miss only makes the profile 'poor')."""

    profile: str
    metric: str
    value: float
    threshold: float
    higher_is_better: bool
    critical: bool
    interval: stats.Estimate | None = None
    rated: bool = True

    @property
    def margin(self) -> float:
        return m.margin(self.value, self.threshold, self.higher_is_better)

    @property
    def met(self) -> bool:
        return self.margin >= 0

    @property
    def borderline(self) -> bool:
        return self.interval is not None and self.interval.straddles(self.threshold)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("interval")
        out["low"] = self.interval.low if self.interval else None
        out["high"] = self.interval.high if self.interval else None
        out["margin_percent"] = round(100 * self.margin, 1) if math.isfinite(self.margin) else None
        out["met"] = self.met
        out["borderline"] = self.borderline
        out["verdict"] = (
            stats.verdict(self.interval, self.threshold, self.higher_is_better)
            if self.interval
            else (stats.PASS if self.met else stats.FAIL)
        )
        return out


def threshold_checks(cell: Mapping[str, Any], settings: Any) -> list[Check]:
    """Every metric of the table that the cell measured and the settings bound."""
    checks = []
    for entry in METRICS:
        limit = entry.threshold(settings)
        value = entry.value(cell) if limit is not None else None
        if value is None or limit is None:
            continue
        checks.append(
            Check(
                entry.profile,
                entry.key,
                value,
                limit,
                entry.higher_is_better,
                entry.critical,
                entry.estimate(cell),
                entry.rated,
            )
        )
    return checks


def rating_of(checks: Sequence[Check]) -> str:
    """excellent/good/acceptable from the rated margins; a pass/fail-only miss makes it 'poor';
    a critical miss makes it 'failed'."""
    margins = [c.margin for c in checks if c.rated]
    margins += [-1.0 for c in checks if not c.rated and not c.met]
    return m.rate(margins, critical_missed=any(c.critical and not c.met for c in checks))


def profile_rating(profile: Mapping[str, Any], checks: Sequence[Check]) -> str | None:
    """Usability rating of one profile from its checks (a rating stored by an older report is
    kept); a failed test caps it at 'poor', and an error or a failure with nothing measured is
    'failed'.  None for a profile that did not run."""
    status = profile.get("status")
    measured = bool(profile.get("metrics"))
    if status in ("skipped", "not run") and not measured:
        return None
    if status == "error" or (status == "failed" and not measured):
        return "failed"
    stored = profile.get("rating")
    if stored in m.RATING_POINTS:
        rating: str | None = stored
    elif checks:
        rating = rating_of(checks)
    else:
        rating = "acceptable" if measured or status == "passed" else None
    if status in ("failed", "partial"):
        rating = m.worst_rating([rating, "poor"])
    return rating


def derive_cell(cell: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The per-cell derived figures: memory, efficiency, accuracy, checks, ratings."""
    default_ctx = m.number(m.dig(settings, "llama_cpp", "default_ctx_size"))
    checks = threshold_checks(cell, settings)
    profiles = cell.get("profiles") or {}
    ratings = {
        name: profile_rating(entry, [c for c in checks if c.profile == name])
        for name, entry in profiles.items()
        if isinstance(entry, Mapping)
    }
    tps = TOKENS_PER_SECOND.value(cell)
    same_top = SAME_TOP.value(cell)
    memory = m.memory_gb(cell)
    context = m.context_tokens(cell, int(default_ctx) if default_ctx else None)
    quality = m.quality_overall(m.profile_metrics(cell, "quality"))
    rating = m.worst_rating(ratings.values())
    if rating is None and cell.get("status") in ("failed", "error"):
        rating = "failed"
    # what accuracy decisions use: agreement with the reference when it was measured (precise,
    # per quant), else the quiz's overall score
    accuracy = same_top if same_top is not None else quality
    source = "divergence" if same_top is not None else "quality" if quality is not None else None
    return {
        "memory_gb": memory,
        "context_tokens": context,
        "efficiency_score": m.efficiency_score(tps, context, memory),
        "quality_overall": quality,
        "accuracy": accuracy,
        "accuracy_source": source,
        "cost_benefit_raw": m.cost_benefit_raw(accuracy, tps, memory),
        "profile_ratings": ratings,
        "rating": rating,
        "checks": [c.as_dict() for c in checks],
    }


def derive_results(
    results: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Copies of ``results`` with a ``derived`` section each; the cost-benefit score is
    normalised 0–100 over the results given (the best trade-off in the report scores 100).
    A result merged from another machine is judged by that machine's own settings."""
    out = []
    for result in results:
        own = m.dig(result, "run", "settings")
        derived = derive_cell(result, own if isinstance(own, Mapping) else settings)
        out.append({**result, "derived": derived})
    scores = m.normalise_0_100([r["derived"]["cost_benefit_raw"] for r in out])
    for result, score in zip(out, scores, strict=True):
        result["derived"]["cost_benefit_score"] = score
    return out
