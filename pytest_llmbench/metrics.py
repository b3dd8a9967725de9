"""Statistics over repeated measurements, and the real-world reading of a number.

The translation tables are data in one place: assertion messages, the terminal summary and the
reports all read them, so "12.4 t/s" means the same thing everywhere.
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


# ------------------------------------------------------------------ real-world readings
# Each table: ascending upper bounds (exclusive) with the reading below that bound; the last
# entry (bound None) covers everything above.

TOKENS_PER_SECOND = (
    (2.0, "too slow to read along: under 2 t/s"),
    (5.0, "slow but readable, like careful dictation"),
    (10.0, "moderate pace, fine for a patient reader"),
    (15.0, "comfortable reading speed"),
    (20.0, "fast reading, feels responsive"),
    (40.0, "very fast, excellent for interactive use"),
    (None, "nearly instant for most prompts"),
)

TIME_TO_FIRST_TOKEN = (
    (2.0, "feels instant"),
    (5.0, "a barely noticeable pause"),
    (10.0, "noticeable but acceptable"),
    (30.0, "a significant wait that breaks the flow"),
    (None, "frustrating, unusable for interactive work"),
)

CONTEXT_LOAD = (
    (5.0, "smooth workflow"),
    (15.0, "a brief, manageable pause"),
    (30.0, "a noticeable delay"),
    (60.0, "coffee-break territory"),
    (None, "too slow for practical use"),
)

MEMORY_GB = (
    (6.0, "plenty of headroom"),
    (8.0, "room for other applications"),
    (12.0, "dedicated inference with some headroom"),
    (14.0, "most of a 16 GB machine"),
    (None, "swapping likely on a 16 GB machine"),
)

BATCH_DOCS_PER_HOUR = (
    (10.0, "only for small batches"),
    (30.0, "overnight batch jobs"),
    (60.0, "reasonable for moderate batches"),
    (120.0, "efficient bulk processing"),
    (None, "excellent throughput"),
)

TEMPERATURE_C = (
    (70.0, "cool, no concerns"),
    (80.0, "warm but safe"),
    (85.0, "hot, ensure good airflow"),
    (90.0, "thermal limit approaching"),
    (None, "too hot, reduce the load"),
)

STREAM_CONSISTENCY_CV = (
    (10.0, "steady stream, no visible stutter"),
    (20.0, "slightly uneven stream"),
    (50.0, "uneven stream, noticeable stutter"),
    (None, "erratic stream"),
)

PROMPT_TOKENS_PER_SECOND = (
    (50.0, "very slow reading: an 8k-token document takes minutes"),
    (200.0, "slow reading: an 8k-token document takes 40 s or more"),
    (1000.0, "brisk reading: an 8k-token document in 8–40 s"),
    (None, "fast reading: an 8k-token document in under 8 s"),
)

BATCH_CONSISTENCY_CV = (
    (10.0, "predictable: batch finish times are easy to plan"),
    (20.0, "some spread: plan batches with a margin"),
    (50.0, "erratic: batch finish times are hard to predict"),
    (None, "unstable: something else is competing for the machine"),
)

SLOWDOWN_PERCENT = (
    (5.0, "no slowdown over the run"),
    (20.0, "a slight slowdown over the run"),
    (50.0, "a clear slowdown: long jobs take longer than planned"),
    (None, "a severe slowdown: long jobs degrade badly"),
)

SWAP_GROWTH_MB = (
    (1.0, "no swapping"),
    (256.0, "light swapping: expect occasional stalls"),
    (None, "heavy swapping: the model does not fit in RAM"),
)

MEMORY_GROWTH_MB = (
    (16.0, "flat memory: no sign of a leak"),
    (256.0, "memory creeps up: watch long jobs"),
    (None, "memory keeps growing: a leak would exhaust RAM on long jobs"),
)

QUALITY_PERCENT = (
    (50.0, "unreliable: wrong more often than right"),
    (75.0, "unreliable for this kind of task: check every answer"),
    (90.0, "usable with spot checks"),
    (None, "reliable for this kind of task"),
)

KL_DIVERGENCE = (
    (0.01, "indistinguishable from the reference in practice"),
    (0.05, "a slight loss: rare differences in wording"),
    (0.15, "a noticeable loss: wording often differs, facts usually hold"),
    (0.5, "a clear loss: answers drift from the reference's"),
    (None, "a heavy loss: the model behaves like a different, weaker one"),
)

EMBEDDING_LATENCY_MS = (
    (10.0, "instant: fine for search-as-you-type"),
    (50.0, "fast enough for interactive search"),
    (200.0, "fine for indexing, a noticeable lag in interactive search"),
    (None, "slow: indexing a large codebase takes hours"),
)

TABLES = {
    "tokens_per_second": TOKENS_PER_SECOND,
    "ttft_seconds": TIME_TO_FIRST_TOKEN,
    "context_load_seconds": CONTEXT_LOAD,
    "memory_gb": MEMORY_GB,
    "batch_docs_per_hour": BATCH_DOCS_PER_HOUR,
    "temperature_c": TEMPERATURE_C,
    "steadiness_cv_percent": STREAM_CONSISTENCY_CV,
    "prompt_tokens_per_second": PROMPT_TOKENS_PER_SECOND,
    "batch_cv_percent": BATCH_CONSISTENCY_CV,
    "slowdown_percent": SLOWDOWN_PERCENT,
    "swap_growth_mb": SWAP_GROWTH_MB,
    "memory_growth_mb": MEMORY_GROWTH_MB,
    "quality_percent": QUALITY_PERCENT,
    "embedding_latency_ms": EMBEDDING_LATENCY_MS,
    "mean_kld": KL_DIVERGENCE,
}


def interpret(table: Sequence[tuple[float | None, str]], value: float) -> str:
    for bound, reading in table:
        if bound is None or value < bound:
            return reading
    return table[-1][1]


def reading_for(table: Sequence[tuple[float | None, str]], value: float | None) -> str:
    """``interpret`` for a value that may be missing (an assertion then says "not measured")."""
    return "" if value is None else interpret(table, value)


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
# partial run, an old report or another machine's report never raises.

METRIC_TABLES = {
    **TABLES,
    "load_seconds": CONTEXT_LOAD,
    "docs_per_hour": BATCH_DOCS_PER_HOUR,
    "max_temperature_c": TEMPERATURE_C,
    "temperature": TEMPERATURE_C,
    "server_tokens_per_second": TOKENS_PER_SECOND,
    "degradation_percent": SLOWDOWN_PERCENT,
    "tps_drop_percent": SLOWDOWN_PERCENT,
    "latency_ms": EMBEDDING_LATENCY_MS,
    "batch_latency_ms": EMBEDDING_LATENCY_MS,
}


def reading(metric: str, value: Any) -> str | None:
    """The real-world reading of a named metric, when a translation table covers it."""
    table = METRIC_TABLES.get(metric)
    number_ = number(value)
    return interpret(table, number_) if table is not None and number_ is not None else None


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


def first_number(mapping: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = number(mapping.get(key))
        if value is not None:
            return value
    return None


_MB_KEYS = ("rss_after_load_mb", "peak_rss_mb", "rss_peak_mb", "max_rss_mb", "memory_peak_mb")
_GB_KEYS = ("memory_gb", "peak_memory_gb", "peak_rss_gb", "rss_gb")


def memory_gb(cell: Mapping[str, Any]) -> float | None:
    """The most memory the cell's server was seen to hold, in GiB, over every profile."""
    sources = [cell.get("server") or {}]
    sources += [p.get("metrics") or {} for p in (cell.get("profiles") or {}).values()]
    seen: list[float] = []
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        seen += [v / 1024 for k in _MB_KEYS if (v := number(source.get(k))) is not None]
        seen += [v for k in _GB_KEYS if (v := number(source.get(k))) is not None]
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


_SIZE_KEYS = ("size", "context_size", "ctx_size", "tokens", "context_tokens", "prompt_tokens")
_SECONDS_KEYS = ("load_seconds", "seconds", "prompt_seconds", "ttft_seconds", "time_seconds")
_SIZE_CONTAINERS = ("sizes", "per_size", "contexts", "context_sizes", "results")


def _size_key(key: Any) -> int | None:
    """4096 from a key spelled 4096, "4096" or "ctx_4096"."""
    text = str(key).removeprefix("ctx_")
    return int(text) if key is not None and text.isdigit() else None


def long_context_points(metrics: Mapping[str, Any]) -> list[ContextPoint]:
    """Per-size load times from the long_context metrics, however the profile nested them."""
    entries: list[tuple[Any, Any]] = []
    for name in _SIZE_CONTAINERS:
        container = metrics.get(name)
        if isinstance(container, Mapping):
            entries += list(container.items())
        elif isinstance(container, list):
            entries += [(None, entry) for entry in container]
    entries += [(k, v) for k, v in metrics.items() if _size_key(k) is not None]
    points: dict[int, ContextPoint] = {}
    for key, entry in entries:
        size: float | None = _size_key(key)
        seconds = number(entry)
        passed = seconds is not None
        if isinstance(entry, Mapping):
            size = size or first_number(entry, *_SIZE_KEYS)
            seconds = first_number(entry, *_SECONDS_KEYS)
            status = entry.get("passed", entry.get("ok", entry.get("status", seconds is not None)))
            passed = status is True or status == "passed"
        if size:
            points[int(size)] = ContextPoint(int(size), seconds, passed)
    return [points[size] for size in sorted(points)]


def _score(value: Any) -> float | None:
    if isinstance(value, Mapping):
        return first_number(value, "score", "percent", "accuracy", "value")
    return number(value)


def quality_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Per-category quality scores in percent (the category named as the profile named it)."""
    scores = metrics.get("scores")
    if not isinstance(scores, Mapping):
        return {}
    found = {str(k): _score(v) for k, v in scores.items() if str(k) != "overall"}
    return {k: v for k, v in found.items() if v is not None}


def quality_overall(metrics: Mapping[str, Any]) -> float | None:
    """The overall quality score in percent; the mean of the categories when none is given."""
    for value in (
        metrics.get("overall"),
        metrics.get("overall_score"),
        dig(metrics, "scores", "overall"),
    ):
        score = _score(value)
        if score is not None:
            return score
    scores = quality_scores(metrics)
    return statistics.fmean(scores.values()) if scores else None


QUALITY_CATEGORY_ALIASES = {
    "math": ("math", "arithmetic", "math_word_problems"),
    "comprehension": ("comprehension", "reading", "reading_comprehension"),
    "reasoning": ("reasoning", "logic", "logical_reasoning"),
    "format": ("format", "format_following", "format_compliance", "formatting"),
}


def quality_category(metrics: Mapping[str, Any], category: str) -> float | None:
    scores = quality_scores(metrics)
    for name in QUALITY_CATEGORY_ALIASES.get(category, (category,)):
        if name in scores:
            return scores[name]
    return None


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
    samples = metrics.get("samples")
    if not isinstance(samples, list):
        return []
    out = []
    for i, sample in enumerate(samples):
        if not isinstance(sample, Mapping):
            continue
        time_s = first_number(sample, "time", "time_s", "elapsed_s", "elapsed_seconds", "t")
        out.append(
            StressSample(
                time_s=time_s if time_s is not None else float(i),
                temperature_c=first_number(
                    sample, "cpu_temperature_c", "temperature", "temperature_c", "temp_c"
                ),
                tokens_per_second=first_number(sample, "tokens_per_second", "tps"),
            )
        )
    return out


def stress_max_temperature(metrics: Mapping[str, Any]) -> float | None:
    given = first_number(metrics, "max_temperature_c", "max_temperature")
    if given is not None:
        return given
    temps = [s.temperature_c for s in stress_samples(metrics) if s.temperature_c is not None]
    return max(temps) if temps else None


def stress_tps_drop_percent(metrics: Mapping[str, Any]) -> float | None:
    """How much slower the last third of a stress run decoded than the first third."""
    given = first_number(metrics, "tps_drop_percent", "degradation_percent")
    if given is not None:
        return given
    tps = [s.tokens_per_second for s in stress_samples(metrics) if s.tokens_per_second]
    third = len(tps) // 3
    if third < 1:
        return None
    early, late = statistics.median(tps[:third]), statistics.median(tps[-third:])
    return 100.0 * (early - late) / early if early else None


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


@dataclass(frozen=True)
class Check:
    """One measured metric against its threshold, as the usability rating weighs it; with its
    interval when the metric has samples (then a verdict across the threshold is borderline)."""

    profile: str
    metric: str
    value: float
    threshold: float
    higher_is_better: bool
    critical: bool
    interval: stats.Estimate | None = None

    @property
    def margin(self) -> float:
        return margin(self.value, self.threshold, self.higher_is_better)

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


def threshold_checks(
    cell: Mapping[str, Any], thresholds: Mapping[str, Any], limits: Mapping[str, Any]
) -> list[Check]:
    """Every metric of the cell that has a threshold.  Critical: without it the configuration
    cannot serve the profile at all (load, TTFT, decode speed, context load, abort temperature);
    quality misses are 'poor', not 'failed' — the model still works, just less accurately."""
    checks: list[Check] = []

    def add(
        profile: str,
        metric: str,
        value: float | None,
        limit: Any,
        higher: bool,
        critical: bool,
        zero_is_a_limit: bool = False,  # counts (0 stalls) are real limits at 0; else 0 is off
    ) -> None:
        limit_ = number(limit)
        if value is not None and limit_ is not None and (limit_ > 0 or zero_is_a_limit):
            interval = estimate(cell, profile, metric)
            checks.append(Check(profile, metric, value, limit_, higher, critical, interval))

    interactive = profile_metrics(cell, "interactive")
    t = thresholds.get("interactive") or {}
    add(
        "interactive",
        "tokens_per_second",
        number(interactive.get("tokens_per_second")),
        t.get("min_tokens_per_sec"),
        True,
        True,
    )
    add(
        "interactive",
        "ttft_seconds",
        number(interactive.get("ttft_seconds")),
        t.get("max_time_to_first_token"),
        False,
        True,
    )
    add(
        "interactive",
        "steadiness_cv_percent",
        number(interactive.get("steadiness_cv_percent")),
        t.get("max_variance"),
        False,
        False,
    )
    per_run = number(interactive.get("stalls_per_run"))
    add("interactive", "stalls_per_run", per_run, t.get("max_stalls"), False, False, True)
    add("load", "load_seconds", load_seconds(cell), limits.get("max_load_time"), False, True)
    add("load", "memory_gb", memory_gb(cell), limits.get("max_memory_gb"), False, True)
    long_context = profile_metrics(cell, "long_context")
    t = thresholds.get("long_context") or {}
    add(
        "long_context",
        "load_seconds",
        number(long_context.get("load_seconds")),
        t.get("max_initial_load_time"),
        False,
        True,
    )
    batch = profile_metrics(cell, "batch")
    t = thresholds.get("batch") or {}
    add("batch", "cv_percent", number(batch.get("cv_percent")), t.get("max_variance"), False, False)
    add(
        "batch",
        "degradation_percent",
        number(batch.get("degradation_percent")),
        t.get("max_degradation"),
        False,
        False,
    )
    quality = profile_metrics(cell, "quality")
    t = thresholds.get("quality") or {}
    for category, key in (
        ("math", "min_math_score"),
        ("comprehension", "min_comprehension_score"),
        ("reasoning", "min_reasoning_score"),
        ("format", "min_format_compliance"),
    ):
        add(
            "quality",
            f"{category}_score",
            quality_category(quality, category),
            t.get(key),
            True,
            False,
        )
    stress = profile_metrics(cell, "stress")
    t = thresholds.get("stress") or {}
    temperature = stress_max_temperature(stress)
    add("stress", "max_temperature_c", temperature, t.get("max_temperature"), False, False)
    add("stress", "max_temperature_c", temperature, t.get("abort_temperature"), False, True)
    add(
        "stress",
        "tps_drop_percent",
        stress_tps_drop_percent(stress),
        t.get("max_tps_drop"),
        False,
        False,
    )
    diverged = profile_metrics(cell, "divergence")
    t = thresholds.get("divergence") or {}
    add("divergence", "mean_kld", number(diverged.get("mean_kld")), t.get("max_kld"), False, False)
    add(
        "divergence",
        "same_top_percent",
        number(diverged.get("same_top_percent")),
        t.get("min_same_top_percent"),
        True,
        False,
    )
    add(
        "divergence",
        "ppl_increase_percent",
        number(diverged.get("ppl_increase_percent")),
        t.get("max_ppl_increase_percent"),
        False,
        False,
    )
    served = number(profile_metrics(cell, "serving").get("capacity_users"))
    min_users = dig(thresholds, "serving", "min_users")
    add("serving", "capacity_users", served, min_users, True, False, True)
    tuned = profile_metrics(cell, "finetune")
    t = thresholds.get("finetune") or {}
    add(
        "finetune",
        "improvement_percent",
        number(tuned.get("improvement_percent")),
        t.get("min_improvement_percent"),
        True,
        False,
    )
    add("finetune", "seconds", number(tuned.get("seconds")), t.get("max_seconds"), False, False)
    embedding = profile_metrics(cell, "embedding")
    t = thresholds.get("embedding") or {}
    latency = first_number(embedding, "latency_ms", "median_latency_ms")
    add("embedding", "latency_ms", latency, t.get("max_latency_ms"), False, False)
    return checks


def profile_rating(profile: Mapping[str, Any], checks: Sequence[Check]) -> str | None:
    """Usability rating of one profile: the profile's own rating when it set one, else its
    checks; a failed test caps it at 'poor', and an error or a failure with nothing measured is
    'failed'.  None for a profile that did not run."""
    status = profile.get("status")
    measured = bool(profile.get("metrics"))
    if status in ("skipped", "not run") and not measured:
        return None
    if status == "error" or (status == "failed" and not measured):
        return "failed"
    stored = profile.get("rating")
    if stored in RATING_POINTS:
        rating: str | None = stored
    elif checks:
        rating = rate([c.margin for c in checks], any(c.critical and not c.met for c in checks))
    else:
        rating = "acceptable" if measured or status == "passed" else None
    if status in ("failed", "partial"):
        rating = worst_rating([rating, "poor"])
    return rating


def derive_cell(cell: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The per-cell derived metrics: memory, efficiency, ratings per profile and overall."""
    thresholds = settings.get("thresholds") or {}
    limits = settings.get("limits") or {}
    default_ctx = number(dig(settings, "llama_cpp", "default_ctx_size"))
    checks = threshold_checks(cell, thresholds, limits)
    profiles = cell.get("profiles") or {}
    ratings = {
        name: profile_rating(entry, [c for c in checks if c.profile == name])
        for name, entry in profiles.items()
        if isinstance(entry, Mapping)
    }
    tps = number(profile_metrics(cell, "interactive").get("tokens_per_second"))
    same_top = number(profile_metrics(cell, "divergence").get("same_top_percent"))
    memory = memory_gb(cell)
    context = context_tokens(cell, int(default_ctx) if default_ctx else None)
    quality = quality_overall(profile_metrics(cell, "quality"))
    rating = worst_rating(ratings.values())
    if rating is None and cell.get("status") in ("failed", "error"):
        rating = "failed"
    return {
        "memory_gb": memory,
        "context_tokens": context,
        "efficiency_score": efficiency_score(tps, context, memory),
        "quality_overall": quality,
        # what accuracy decisions use: agreement with the reference when it was measured
        # (precise, per quant), else the quiz's overall score
        "accuracy": same_top if same_top is not None else quality,
        "accuracy_source": "divergence"
        if same_top is not None
        else "quality"
        if quality is not None
        else None,
        "cost_benefit_raw": cost_benefit_raw(
            same_top if same_top is not None else quality, tps, memory
        ),
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
        own = dig(result, "run", "settings")
        derived = derive_cell(result, own if isinstance(own, Mapping) else settings)
        out.append({**result, "derived": derived})
    scores = normalise_0_100([r["derived"]["cost_benefit_raw"] for r in out])
    for result, score in zip(out, scores, strict=True):
        result["derived"]["cost_benefit_score"] = score
    return out
