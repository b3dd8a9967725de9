"""Statistics over repeated measurements, and the readers of a cell's record.

What each metric means (direction, threshold, words) is in :mod:`pytest_llmbench.metric_table`;
judging a cell against it is :mod:`pytest_llmbench.judge`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pytest_llmbench import stats


@dataclass(frozen=True)
class Summary:
    """Median-first summary of repeated measurements; percentiles only where the count allows."""

    count: int
    median: float
    mean: float
    stdev: float
    cv_percent: float | None
    minimum: float
    maximum: float
    p90: float | None
    p99: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


NOISY_CV_PERCENT = 10.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (the 'inclusive' method numpy calls 'linear')."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("cannot summarise zero measurements")
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else 0.0
    return Summary(
        count=len(values),
        median=statistics.median(values),
        mean=mean,
        stdev=stdev,
        cv_percent=(100.0 * stdev / mean) if mean else None,
        minimum=min(values),
        maximum=max(values),
        p90=percentile(values, 90) if len(values) >= 10 else None,
        p99=percentile(values, 99) if len(values) >= 100 else None,
    )


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Standard deviation as a percentage of the mean (None for fewer than two values)."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return 100.0 * statistics.stdev(values) / mean if mean else None


# ------------------------------------------------------------------ measurements with intervals


def measurement(samples: Sequence[float], unit: str) -> dict[str, Any]:
    """A timed metric as the record keeps it: median, its 95 % interval and every sample."""
    estimate = stats.median_interval(samples)
    return {**estimate.as_dict(), "unit": unit, "samples": list(samples)}


def estimate(cell: Mapping[str, Any], profile: str, key: str) -> stats.Estimate | None:
    """The median and interval of ``key`` in a cell's profile, or None when the record has no
    samples for it (older reports, single-shot metrics)."""
    return estimate_from(dig(cell, "profiles", profile, "metrics", "measurements", key))


def estimate_from(found: Any) -> stats.Estimate | None:
    """An ``Estimate`` from a measurement as the record keeps it (None if incomplete)."""
    if not isinstance(found, Mapping):
        return None
    parts = [number(found.get(k)) for k in ("value", "low", "high")]
    if any(p is None for p in parts):
        return None
    value, low, high = parts
    return stats.Estimate(
        value,  # type: ignore[arg-type]
        low,  # type: ignore[arg-type]
        high,  # type: ignore[arg-type]
        int(number(found.get("count")) or 0),
        number(found.get("coverage")) or 0.0,
        str(found.get("method") or ""),
    )


def samples(cell: Mapping[str, Any], profile: str, key: str) -> list[float]:
    """The per-repetition samples of ``key`` (empty when the record has none)."""
    found = dig(cell, "profiles", profile, "metrics", "measurements", key, "samples")
    return (
        [v for v in (number(x) for x in found) if v is not None] if isinstance(found, list) else []
    )


def interval_text(estimate_: stats.Estimate | None, spec: str = ".3g") -> str:
    """ "95 % CI 75.5–82.1, 10 runs" (the interval's real coverage when it is below 95 %)."""
    if estimate_ is None:
        return ""
    coverage = estimate_.coverage
    level = "95 %" if coverage >= stats.CONFIDENCE else f"{100 * coverage:.0f} %"
    runs = f"{estimate_.count} run{'s' if estimate_.count != 1 else ''}"
    return f"{level} CI {format(estimate_.low, spec)}–{format(estimate_.high, spec)}, {runs}"


# ------------------------------------------------------------------ stream steadiness


def window_rates(token_times_s: Sequence[float], window_s: float = 1.0) -> list[float]:
    """Tokens per second in each full ``window_s`` window from the first token on: the pace a
    reader sees, blind to millisecond jitter between single tokens."""
    if len(token_times_s) < 2:
        return []
    start = token_times_s[0]
    full = int((token_times_s[-1] - start) // window_s)
    counts = [0] * full
    for t in token_times_s[1:]:
        index = int((t - start) // window_s)
        if index < full:
            counts[index] += 1
    return [c / window_s for c in counts]


def steadiness_cv(token_times_s: Sequence[float], window_s: float = 1.0) -> float | None:
    """CV (%) of the per-window rates; None with fewer than two full windows."""
    return coefficient_of_variation(window_rates(token_times_s, window_s))


def stalls(gaps_s: Sequence[float], stall_ms: float) -> list[float]:
    """The gaps (in ms) longer than a perceptible pause."""
    return [1000.0 * g for g in gaps_s if 1000.0 * g > stall_ms]


# ------------------------------------------------------------------ ratings

RATINGS = ("excellent", "good", "acceptable", "poor", "failed")


def margin(value: float, threshold: float, higher_is_better: bool) -> float:
    """How far a value beats its threshold, as a fraction (0.5 = 50 % better; negative = misses)."""
    if higher_is_better:
        return (value - threshold) / threshold if threshold else math.inf
    if value <= 0:
        return math.inf
    return threshold / value - 1.0


def rate(margins: Sequence[float], critical_missed: bool = False) -> str:
    """Usability rating from the margins of every metric against its threshold.

    excellent: all beat their threshold by ≥ 50 %; good: by ≥ 20 %; acceptable: all meet;
    poor: some miss but the configuration works; failed: a critical metric misses.
    """
    if not margins:
        return "failed" if critical_missed else "acceptable"
    if critical_missed:
        return "failed"
    worst = min(margins)
    if worst >= 0.5:
        return "excellent"
    if worst >= 0.2:
        return "good"
    if worst >= 0.0:
        return "acceptable"
    return "poor"


def worst_rating(ratings: Iterable[str | None]) -> str | None:
    """The lowest of the known ratings (None when none is known)."""
    known = [r for r in ratings if r in RATING_POINTS]
    return min(known, key=RATING_POINTS.__getitem__) if known else None


RATING_POINTS = {"excellent": 4, "good": 3, "acceptable": 2, "poor": 1, "failed": 0}


# ------------------------------------------------------------------ reading result records
# The readers below take one cell's record (the JSON report's ``results[]`` entry) and return
# None or an empty list for whatever a profile did not measure, so a report built from a
# partial run, an old report or another machine's report never raises.  They read the keys the
# workloads write, nothing else.


def number(value: Any) -> float | None:
    """A finite real number, or None: bools, strings, NaN and inf are not measurements."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def dig(record: Any, *path: str) -> Any:
    """``record[path[0]][path[1]]…`` or None as soon as a level is missing or not a mapping."""
    for key in path:
        if not isinstance(record, Mapping):
            return None
        record = record.get(key)
    return record


def profile_metrics(cell: Mapping[str, Any], profile: str) -> dict[str, Any]:
    found = dig(cell, "profiles", profile, "metrics")
    return found if isinstance(found, dict) else {}


# where the record keeps the server's resident memory: after load (server section, load
# profile), and the peak each profile's resource monitor saw
_RSS_MB_KEYS = ("rss_after_load_mb", "peak_rss_mb")


def memory_gb(cell: Mapping[str, Any]) -> float | None:
    """The most memory the cell's server was seen to hold, in GiB: after load, and over every
    profile."""
    sources = [cell.get("server")]
    sources += [p.get("metrics") for p in (cell.get("profiles") or {}).values()]
    seen = [
        value / 1024
        for source in sources
        if isinstance(source, Mapping)
        for key in _RSS_MB_KEYS
        if (value := number(source.get(key))) is not None
    ]
    return max(seen) if seen else None


def file_size_gb(cell: Mapping[str, Any]) -> float | None:
    return number(dig(cell, "file", "size_gb")) or number(
        profile_metrics(cell, "load").get("file_size_gb")
    )


def server_ctx_size(cell: Mapping[str, Any]) -> int | None:
    """The ``--ctx-size`` the cell's default server was started with, when its command is known;
    for a remote server, the context per slot it reported (``/props``)."""
    if dig(cell, "server", "external"):
        n_ctx = number(dig(cell, "server", "n_ctx"))
        return int(n_ctx) if n_ctx else None
    command = dig(cell, "server", "command")
    if not isinstance(command, list):
        return None
    for flag in ("--ctx-size", "-c"):
        if flag in command[:-1]:
            value = str(command[command.index(flag) + 1])
            if value.isdigit():
                return int(value)
    return None


def load_seconds(cell: Mapping[str, Any]) -> float | None:
    """The load profile's load time, else the cell's server's own (``-m interactive`` deselects
    the load profile, but its server was still loaded and timed)."""
    load = number(profile_metrics(cell, "load").get("load_seconds"))
    return load if load is not None else number(dig(cell, "server", "load_seconds"))


def context_tokens(cell: Mapping[str, Any], default: int | None = None) -> int | None:
    """The largest context the cell proved (long_context), else the context its server ran with."""
    proved = number(profile_metrics(cell, "long_context").get("max_context_passed"))
    if proved:
        return int(proved)
    if dig(cell, "server", "external"):  # the local default says nothing of another server
        return server_ctx_size(cell)
    return server_ctx_size(cell) or default


@dataclass(frozen=True)
class ContextPoint:
    size: int
    seconds: float | None
    passed: bool


def long_context_points(metrics: Mapping[str, Any]) -> list[ContextPoint]:
    """Per-size load times from the long_context profile's ``sizes``, smallest first."""
    sizes = metrics.get("sizes")
    if not isinstance(sizes, Mapping):
        return []
    points = [
        ContextPoint(int(size), number(entry.get("load_seconds")), entry.get("passed") is True)
        for size, entry in sizes.items()
        if str(size).isdigit() and isinstance(entry, Mapping)
    ]
    return sorted(points, key=lambda p: p.size)


def quality_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Per-category quality scores in percent."""
    scores = metrics.get("scores")
    if not isinstance(scores, Mapping):
        return {}
    found = {str(k): number(v) for k, v in scores.items()}
    return {k: v for k, v in found.items() if v is not None}


def quality_overall(metrics: Mapping[str, Any]) -> float | None:
    """The overall quality score in percent; the mean of the categories when none is given."""
    overall = number(metrics.get("overall"))
    if overall is not None:
        return overall
    scores = quality_scores(metrics)
    return statistics.fmean(scores.values()) if scores else None


def serving_levels(metrics: Mapping[str, Any], key: str = "levels") -> list[dict[str, Any]]:
    """The per-level records of a serving sweep (``levels``, or ``rate_levels``)."""
    levels = metrics.get(key)
    return [lv for lv in levels if isinstance(lv, dict)] if isinstance(levels, list) else []


@dataclass(frozen=True)
class StressSample:
    time_s: float
    temperature_c: float | None
    tokens_per_second: float | None


def stress_samples(metrics: Mapping[str, Any]) -> list[StressSample]:
    """The stress run's resource samples with the decode speed in each interval."""
    samples = metrics.get("samples")
    if not isinstance(samples, list):
        return []
    return [
        StressSample(
            time_s=number(sample.get("time_s")) or 0.0,
            temperature_c=number(sample.get("cpu_temperature_c")),
            tokens_per_second=number(sample.get("tokens_per_second")),
        )
        for sample in samples
        if isinstance(sample, Mapping)
    ]


# ------------------------------------------------------------------ derived metrics


def efficiency_score(
    tokens_per_second: float | None, context_tokens: int | None, memory_gb: float | None
) -> float | None:
    """tokens/s × context size / memory GB: speed and reach bought per gigabyte (higher wins)."""
    if tokens_per_second is None or context_tokens is None or not memory_gb:
        return None
    return tokens_per_second * context_tokens / memory_gb


def cost_benefit_raw(
    quality_percent: float | None, tokens_per_second: float | None, memory_gb: float | None
) -> float | None:
    """quality × performance / memory before normalisation; None when any part is unmeasured."""
    if quality_percent is None or tokens_per_second is None or not memory_gb:
        return None
    return (quality_percent / 100.0) * tokens_per_second / memory_gb


def normalise_0_100(values: Sequence[float | None]) -> list[float | None]:
    """Scale so the best value is 100 (relative scores: comparable only within one report)."""
    known = [v for v in values if v is not None]
    top = max(known, default=0.0)
    return [None if v is None else (100.0 * v / top if top > 0 else 0.0) for v in values]
