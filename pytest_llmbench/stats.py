"""Intervals, stopping rules, ties and the significance of a change: pure functions.

Every decision the plugin takes from a measurement (pass or fail, a rating, the best
configuration, a regression) goes through here, so each is taken with the measurement's
uncertainty in view and never inside the noise.

* The **median's interval** is distribution-free, from order statistics: for ``n`` samples the
  interval ``[x(k), x(n+1-k)]`` covers the true median with probability
  ``1 − 2·P(Binomial(n, ½) < k)``; the narrowest such interval with coverage ≥ 95 % is taken.
  Below six samples no such interval reaches 95 % and the full range is given with the coverage
  it has (5 samples: 93.8 %, 3 samples: 75 %).
* The **mean's interval** is Student's t.
* A **change** between two runs is Welch's difference of means with its 95 % interval; it is a
  regression only when that whole interval lies beyond the allowed limit (so a change inside
  the noise of either run is never one).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


# ------------------------------------------------------------------ intervals


@dataclass(frozen=True)
class Estimate:
    """A central value with its interval, the sample count and the interval's real coverage."""

    value: float
    low: float
    high: float
    count: int
    coverage: float
    method: str

    @property
    def half_width_percent(self) -> float | None:
        """Half the interval's width as a percentage of the value (the run's precision)."""
        if not self.value:
            return None
        return 100.0 * (self.high - self.low) / 2.0 / abs(self.value)

    def straddles(self, threshold: float) -> bool:
        return self.low < threshold < self.high

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "count": self.count,
            "coverage": round(self.coverage, 4),
            "method": self.method,
            "half_width_percent": self.half_width_percent,
        }


def _binomial_cdf_half(n: int, k: int) -> float:
    """P(Binomial(n, ½) ≤ k)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2.0**n


def median_interval(samples: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """The median with its distribution-free interval from order statistics."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    n = len(ordered)
    rank, coverage = 1, 1.0 - 2.0 * _binomial_cdf_half(n, 0)
    for k in range(2, n // 2 + 1):
        cover = 1.0 - 2.0 * _binomial_cdf_half(n, k - 1)
        if cover < confidence:
            break
        rank, coverage = k, cover
    if n == 1:
        coverage = 0.0
    return Estimate(
        value=statistics.median(ordered),
        low=ordered[rank - 1],
        high=ordered[n - rank],
        count=n,
        coverage=coverage,
        method="order statistics",
    )


def mean_interval(samples: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """The mean with Student's t interval (a point, coverage 0, for a single sample)."""
    if not samples:
        raise ValueError("no samples")
    n = len(samples)
    mean = statistics.fmean(samples)
    if n == 1:
        return Estimate(mean, mean, mean, 1, 0.0, "t")
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * statistics.stdev(samples) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, confidence, "t")


# ------------------------------------------------------------------ Student's t


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the CDF; accurate to 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be between 0 and 1")
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-10:
            break
    return (low + high) / 2.0


# ------------------------------------------------------------------ adaptive repetitions


@dataclass(frozen=True)
class StopRule:
    """When a profile has repeated its measured request often enough.

    ``fixed`` set: exactly that many runs.  Otherwise runs continue until the headline metric's
    95 % median interval is within ``target_precision_percent`` of the median (order statistics
    reach 95 % from six samples on, so precision is never claimed from fewer), with at least
    ``minimum`` and at most ``maximum`` runs, or until ``time_budget_s`` is spent.
    """

    target_precision_percent: float = 3.0
    minimum: int = 3
    maximum: int = 10
    time_budget_s: float = 180.0
    fixed: int | None = None

    def decide(self, samples: Sequence[float], elapsed_s: float) -> str | None:
        """None to go on, else why the repetitions stop (recorded with the measurement)."""
        n = len(samples)
        if self.fixed is not None:
            return f"fixed count of {self.fixed}" if n >= self.fixed else None
        if n >= self.minimum:
            estimate = median_interval(samples)  # judged on a full 95 % interval: n ≥ 6
            precision = estimate.half_width_percent
            if (
                estimate.coverage >= CONFIDENCE
                and precision is not None
                and precision <= self.target_precision_percent
            ):
                return "precision reached"
        if n >= self.maximum:
            return "maximum repetitions"
        if n >= 1 and elapsed_s >= self.time_budget_s:
            return "time budget spent"
        return None


# ------------------------------------------------------------------ verdicts and ties

PASS, FAIL, BORDERLINE_PASS, BORDERLINE_FAIL = "pass", "fail", "borderline pass", "borderline fail"


def verdict(estimate: Estimate, threshold: float, higher_is_better: bool) -> str:
    """The one rule for every profile: the median decides pass or fail; when the interval
    reaches across the threshold the verdict is borderline (still decided by the median)."""
    meets = estimate.value >= threshold if higher_is_better else estimate.value <= threshold
    if estimate.straddles(threshold):
        return BORDERLINE_PASS if meets else BORDERLINE_FAIL
    return PASS if meets else FAIL


def tied(a: Estimate | None, b: Estimate | None) -> bool:
    """Two cells are tied on a metric when its intervals overlap (or either is unknown)."""
    return a is None or b is None or a.overlaps(b)


# ------------------------------------------------------------------ changes between runs


@dataclass(frozen=True)
class Change:
    """Welch's difference of means (current − baseline) with its interval, also in percent."""

    difference: float
    low: float
    high: float
    baseline_mean: float

    def percent(self, value: float) -> float | None:
        return 100.0 * value / abs(self.baseline_mean) if self.baseline_mean else None

    @property
    def contains_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def welch_change(
    baseline: Sequence[float], current: Sequence[float], confidence: float = CONFIDENCE
) -> Change | None:
    """None when either run has fewer than two samples (no spread to judge a change by)."""
    if len(baseline) < 2 or len(current) < 2:
        return None
    mean_b, mean_c = statistics.fmean(baseline), statistics.fmean(current)
    var_b = statistics.variance(baseline) / len(baseline)
    var_c = statistics.variance(current) / len(current)
    difference = mean_c - mean_b
    spread = math.sqrt(var_b + var_c)
    if spread == 0.0:
        return Change(difference, difference, difference, mean_b)
    df = (var_b + var_c) ** 2 / (
        var_b**2 / (len(baseline) - 1) + var_c**2 / (len(current) - 1) or 1e-300
    )
    half = t_quantile(0.5 + confidence / 2.0, df) * spread
    return Change(difference, difference - half, difference + half, mean_b)
