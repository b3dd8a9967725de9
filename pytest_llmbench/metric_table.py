"""The one table of profiles and their metrics.

Each entry says, once: where a cell's record keeps the number, its unit, which way is better, the
threshold field that bounds it, whether missing that threshold makes the configuration unusable
(critical), whether its margin moves the rating or it only passes or fails, the words for a
value, and where it shows (CSV column, HTML column, ``--llm-compare-fail`` name).

Everything that judges or shows a metric reads this table: the bench assertions
(:func:`pytest_llmbench.expect.meets`), the ratings and the reports' threshold checks
(:mod:`pytest_llmbench.judge`), the CSV and HTML columns, the baseline comparison and the
recommendations.  Adding a metric is one entry here plus its measurement in a workload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import readings as words
from pytest_llmbench import stats

Record = Mapping[str, Any]
Reader = Callable[[Record], Any]
LimitRule = Callable[[Any], float | None]  # settings → the limit, or None where it does not apply

PROFILE_WORDS = {
    "load": "",
    "interactive": "interactive",
    "long_context": "long-context",
    "batch": "batch",
    "quality": "quality",
    "divergence": "divergence",
    "serving": "serving",
    "stress": "stress",
    "embedding": "embedding",
    "finetune": "fine-tuning",
    "cell": "",
}


@dataclass(frozen=True)
class Metric:
    """One metric of one profile (``profile`` "cell": a figure derived from the whole record)."""

    profile: str
    key: str  # under profiles.<profile>.metrics (and .measurements when ``sampled``)
    words: str  # what it is, for messages and labels: "decode speed"
    unit: str = ""
    higher_is_better: bool = False
    limit: str | float | LimitRule | None = None  # "thresholds.batch.max_variance", a constant…
    critical: bool = False  # missing the limit: the configuration cannot serve the profile
    rated: bool = True  # its margin moves the rating; False: it only passes or fails
    zero_is_a_limit: bool = False  # counts: a limit of 0 is real (else 0 turns a check off)
    readings: words.Readings = ()
    fmt: str = ".3g"
    csv: str | None = None  # CSV column name
    html: str | None = None  # HTML results-table header
    compare: str | None = None  # --llm-compare-fail name
    sampled: bool = False  # the record keeps per-run samples and the median's interval
    text: bool = False  # a word, not a number (shown, never judged)
    check_id: str | None = None  # the entry's id when one key has two limits
    read: Reader | None = None  # for figures not kept under the profile's metrics as ``key``

    @property
    def id(self) -> str:
        return f"{self.profile}.{self.check_id or self.key}"

    @property
    def label(self) -> str:
        """ "interactive decode speed (t/s)": the words with the profile and the unit."""
        text = f"{PROFILE_WORDS.get(self.profile, self.profile)} {self.words}".strip()
        return f"{text} ({self.unit})" if self.unit else text

    def value(self, cell: Record) -> Any:
        """The cell's value: a finite number (or a word for ``text``), None if not measured."""
        raw = self.read(cell) if self.read else m.profile_metrics(cell, self.profile).get(self.key)
        return (raw if raw not in ("", None) else None) if self.text else m.number(raw)

    def estimate(self, cell: Record) -> stats.Estimate | None:
        return m.estimate(cell, self.profile, self.key) if self.sampled else None

    def samples(self, cell: Record) -> list[float]:
        return m.samples(cell, self.profile, self.key) if self.sampled else []

    def reading(self, value: float | None) -> str:
        """The words for a value ("" without a reading table or a value)."""
        return words.reading_for(self.readings, value) if self.readings else ""

    def threshold(self, settings: Any) -> float | None:
        """This metric's limit in ``settings`` (a Settings object or its JSON form); None when
        it has none, or the limit is off (0 turns a limit off unless ``zero_is_a_limit``)."""
        if self.limit is None:
            return None
        if isinstance(self.limit, int | float):
            found: Any = self.limit
        elif callable(self.limit):
            found = self.limit(settings)
        else:
            found = _field(settings, *self.limit.split("."))
        limit = m.number(found)
        if limit is None or (limit <= 0 and not self.zero_is_a_limit):
            return None
        return limit

    def met(self, value: float, limit: float) -> bool:
        """The same rule as a threshold check's: a margin of 0 or better."""
        return m.margin(value, limit, self.higher_is_better) >= 0

    def show(self, value: float) -> str:
        return format(value, self.fmt)


def _field(settings: Any, *path: str) -> Any:
    """``settings.a.b`` or ``settings["a"]["b"]``: the run's object or a report's JSON copy."""
    for name in path:
        if settings is None:
            return None
        settings = (
            settings.get(name) if isinstance(settings, Mapping) else getattr(settings, name, None)
        )
    return settings


def _unless_swap_allowed(settings: Any) -> float | None:
    """No swap growth at all, unless ``limits.allow_swap`` says swapping is accepted."""
    return None if _field(settings, "limits", "allow_swap") else 0.0


def _count(profile: str, key: str) -> Reader:
    """How many entries a list (or 1 for a message) the profile recorded under ``key``."""

    def read(cell: Record) -> float | None:
        found = m.profile_metrics(cell, profile)
        if key not in found:
            return None
        value = found[key]
        return float(len(value)) if isinstance(value, list | dict) else float(bool(value))

    return read


def _failed_sizes(cell: Record) -> float | None:
    sizes = m.profile_metrics(cell, "long_context").get("sizes")
    if not isinstance(sizes, Mapping) or not sizes:
        return None
    return float(sum(1 for s in sizes.values() if isinstance(s, Mapping) and not s.get("passed")))


def _throttled(cell: Record) -> float | None:
    found = m.profile_metrics(cell, "stress").get("throttling")
    return float(found) if isinstance(found, bool) else None


def _derived(key: str) -> Reader:
    return lambda cell: m.dig(cell, "derived", key)


def _quality_score(category: str) -> Reader:
    return lambda cell: m.quality_scores(m.profile_metrics(cell, "quality")).get(category)


def _score(category: str, limit: str, html: str | None = None) -> Metric:
    return Metric(
        "quality",
        f"{category}_score",
        f"{category} score",
        "%",
        True,
        f"thresholds.quality.{limit}",
        readings=words.QUALITY_PERCENT,
        fmt=".0f",
        csv=f"quality_{category}",
        html=html,
        read=_quality_score(category),
    )


def _fault(
    profile: str, key: str, what: str, read: Reader | None = None, critical: bool = True
) -> Metric:
    """A condition that must not occur (its count stays 0); ``critical``: it makes the profile
    unusable, else it makes the profile 'poor'."""
    return Metric(
        profile,
        key,
        what,
        limit=0.0,
        critical=critical,
        rated=False,
        zero_is_a_limit=True,
        fmt=".0f",
        read=read or _count(profile, key),
    )


METRICS: tuple[Metric, ...] = (
    # ---------------------------------------------------------------- load
    Metric("load", "file_size_gb", "file size", "GB", fmt=".3f", csv="size_gb", html="Size GB",
           read=m.file_size_gb),
    Metric("load", "memory_gb", "memory", "GB", False, "limits.max_memory_gb", critical=True,
           readings=words.MEMORY_GB, fmt=".2f", csv="memory_gb", html="Memory GB",
           compare="peak_rss", read=m.memory_gb),
    Metric("load", "load_seconds", "load time", "s", False, "limits.max_load_time",
           critical=True, readings=words.CONTEXT_LOAD, fmt=".2f", csv="load_seconds",
           html="Load s", compare="load_time", read=m.load_seconds),
    # ---------------------------------------------------------------- interactive
    Metric("interactive", "tokens_per_second", "decode speed", "t/s", True,
           "thresholds.interactive.min_tokens_per_sec", critical=True,
           readings=words.TOKENS_PER_SECOND, fmt=".1f", csv="interactive_tps", html="t/s",
           compare="tokens_per_sec", sampled=True),
    Metric("interactive", "ttft_seconds", "TTFT", "s", False,
           "thresholds.interactive.max_time_to_first_token", critical=True,
           readings=words.TIME_TO_FIRST_TOKEN, fmt=".3f", csv="interactive_ttft", html="TTFT s",
           compare="ttft", sampled=True),
    Metric("interactive", "e2e_seconds", "end-to-end time", "s", fmt=".3f",
           csv="interactive_e2e", sampled=True),
    Metric("interactive", "repetitions", "runs", fmt=".0f", csv="interactive_runs"),
    # steadiness and stalls only pass or fail: their distance from the limit never moves a
    # rating, so jitter cannot decide one
    Metric("interactive", "steadiness_cv_percent", "pace over 1-second windows, CV", "%", False,
           "thresholds.interactive.max_variance", rated=False,
           readings=words.STREAM_CONSISTENCY_CV, fmt=".0f", csv="interactive_steadiness_cv",
           html="Pace CV %"),
    Metric("interactive", "stalls_per_run", "pauses per run (median)", "", False,
           "thresholds.interactive.max_stalls", rated=False, zero_is_a_limit=True, fmt=".0f",
           csv="interactive_stalls_per_run", html="Stalls/run"),
    Metric("interactive", "itl_cv_percent", "inter-token gap CV", "%", fmt=".0f",
           csv="interactive_itl_cv"),
    Metric("interactive", "itl_p99_ms", "99th percentile inter-token gap", "ms", False,
           fmt=".0f", csv="interactive_itl_p99", compare="itl_p99"),
    # ---------------------------------------------------------------- long context
    Metric("long_context", "load_seconds", "context load", "s", False,
           "thresholds.long_context.max_initial_load_time", critical=True,
           readings=words.CONTEXT_LOAD, fmt=".1f", csv="long_context_load",
           html="Context load s"),
    Metric("long_context", "max_context_passed", "largest context that passed", "tokens", True,
           fmt=",.0f", csv="long_context_max", html="Max context"),
    Metric("long_context", "prompt_tokens_per_second", "prompt speed", "t/s", True,
           readings=words.PROMPT_TOKENS_PER_SECOND, fmt=".1f",
           compare="prompt_tokens_per_sec"),
    Metric("long_context", "swap_growth_mb", "swap growth", "MB", False, _unless_swap_allowed,
           rated=False, zero_is_a_limit=True, readings=words.SWAP_GROWTH_MB, fmt=".0f"),
    # a size that failed caps the rating at 'poor': smaller contexts still serve
    _fault("long_context", "failed_sizes", "failed context sizes", _failed_sizes, critical=False),
    # ---------------------------------------------------------------- batch
    Metric("batch", "docs_per_hour", "throughput", "documents/hour", True,
           readings=words.BATCH_DOCS_PER_HOUR, fmt=".0f", csv="batch_throughput", html="Docs/h",
           compare="docs_per_hour", sampled=True),
    Metric("batch", "cv_percent", "time per document CV", "%", False,
           "thresholds.batch.max_variance", readings=words.BATCH_CONSISTENCY_CV, fmt=".1f",
           csv="batch_cv"),
    Metric("batch", "degradation_percent", "slowdown, last vs first documents", "%", False,
           "thresholds.batch.max_degradation", readings=words.SLOWDOWN_PERCENT, fmt=".1f"),
    Metric("batch", "memory_growth_mb", "server RSS growth over the run", "MB", False,
           "thresholds.batch.max_memory_growth_mb", readings=words.MEMORY_GROWTH_MB, fmt=".0f"),
    _fault("batch", "error", "unfinished batch"),
    # ---------------------------------------------------------------- quality
    _score("math", "min_math_score", html="Math %"),
    _score("comprehension", "min_comprehension_score"),
    _score("reasoning", "min_reasoning_score"),
    _score("format", "min_format_compliance"),
    Metric("quality", "overall", "overall score", "%", True, readings=words.QUALITY_PERCENT,
           fmt=".1f", csv="quality_overall", compare="quality"),
    _fault("quality", "errors", "unanswered questions"),
    # ---------------------------------------------------------------- divergence
    Metric("divergence", "reference_quant", "reference", text=True, csv="divergence_reference"),
    Metric("divergence", "mean_kld", "mean KL divergence from the reference", "", False,
           "thresholds.divergence.max_kld", readings=words.KL_DIVERGENCE, fmt=".4f",
           csv="divergence_kld", html="KLD", compare="kld"),
    Metric("divergence", "mean_kld_pm", "mean KLD uncertainty", fmt=".4f",
           csv="divergence_kld_pm"),
    Metric("divergence", "kld_p99", "99th percentile KLD", fmt=".4f", csv="divergence_kld_p99"),
    Metric("divergence", "same_top_percent", "same most likely token as the reference", "%",
           True, "thresholds.divergence.min_same_top_percent", fmt=".2f",
           csv="divergence_same_top", html="Same top %", compare="same_top"),
    Metric("divergence", "same_top_pm", "same top token uncertainty", "%", fmt=".2f",
           csv="divergence_same_top_pm"),
    Metric("divergence", "ppl", "perplexity", fmt=".4g", csv="divergence_ppl"),
    Metric("divergence", "ppl_ratio", "perplexity ratio to the reference", fmt=".4f",
           csv="divergence_ppl_ratio"),
    Metric("divergence", "ppl_increase_percent", "perplexity increase over the reference", "%",
           False, "thresholds.divergence.max_ppl_increase_percent", fmt=".1f"),
    # ---------------------------------------------------------------- serving
    Metric("serving", "capacity_users", "concurrent users served at the objectives", "users",
           True, "thresholds.serving.min_users", zero_is_a_limit=True, fmt=".0f",
           csv="serving_capacity_users", html="Users served", compare="capacity"),
    Metric("serving", "max_output_tokens_per_second", "most tokens/s in total", "t/s", True,
           fmt=".1f", csv="serving_max_tps"),
    Metric("serving", "capacity", "capacity", text=True, csv="serving_capacity"),
    # ---------------------------------------------------------------- fine-tuning
    Metric("finetune", "first_loss", "loss after the first epoch", fmt=".4f",
           csv="finetune_first_loss"),
    Metric("finetune", "last_loss", "loss after the last epoch", fmt=".4f",
           csv="finetune_last_loss"),
    Metric("finetune", "improvement_percent", "training loss improvement, first to last epoch",
           "%", True, "thresholds.finetune.min_improvement_percent", fmt=".1f",
           csv="finetune_improvement_percent"),
    Metric("finetune", "train_tokens_per_sec", "training speed", "t/s", True, fmt=".1f",
           csv="finetune_train_tps"),
    Metric("finetune", "seconds", "fine-tuning time", "s", False,
           "thresholds.finetune.max_seconds", fmt=".0f", csv="finetune_seconds"),
    Metric("finetune", "trainer_peak_rss_mb", "trainer peak RSS", "MB", fmt=".0f",
           csv="finetune_peak_rss_mb"),
    # ---------------------------------------------------------------- stress
    Metric("stress", "max_temperature_c", "CPU temperature", "°C", False,
           "thresholds.stress.max_temperature", readings=words.TEMPERATURE_C, fmt=".0f",
           csv="stress_max_temperature", html="Max °C"),
    Metric("stress", "max_temperature_c", "CPU temperature", "°C", False,
           "thresholds.stress.abort_temperature", critical=True, readings=words.TEMPERATURE_C,
           fmt=".0f", check_id="abort_temperature_c"),
    Metric("stress", "tps_drop_percent", "tokens/s drop, last vs first third of the run", "%",
           False, "thresholds.stress.max_tps_drop", readings=words.SLOWDOWN_PERCENT, fmt=".1f",
           csv="stress_tps_drop"),
    Metric("stress", "swap_growth_mb", "swap growth", "MB", False, _unless_swap_allowed,
           critical=True, rated=False, zero_is_a_limit=True, readings=words.SWAP_GROWTH_MB,
           fmt=".0f"),
    _fault("stress", "aborted", "aborted run"),
    _fault("stress", "throttling", "thermal throttling", _throttled),
    # ---------------------------------------------------------------- embedding
    Metric("embedding", "latency_ms", "embedding latency, one text per request", "ms", False,
           "thresholds.embedding.max_latency_ms", readings=words.EMBEDDING_LATENCY_MS,
           fmt=".1f", csv="embedding_latency_ms", sampled=True),
    Metric("embedding", "batch_latency_ms", "embedding latency per text, batched", "ms", False,
           "thresholds.embedding.max_latency_ms", readings=words.EMBEDDING_LATENCY_MS,
           fmt=".1f", sampled=True),
    _fault("embedding", "error", "failed embedding requests"),
    _fault("embedding", "vector_problems", "malformed vectors"),
    # ---------------------------------------------------------------- the whole cell
    Metric("cell", "quality_overall", "overall quality", "%", True, fmt=".0f",
           html="Quality %", read=_derived("quality_overall")),
    Metric("cell", "efficiency_score", "efficiency score", "", True, fmt=",.0f",
           csv="efficiency_score", html="Efficiency", read=_derived("efficiency_score")),
    Metric("cell", "cost_benefit_score", "cost-benefit score", "", True, fmt=".0f",
           csv="cost_benefit_score", html="Cost-benefit", read=_derived("cost_benefit_score")),
)  # fmt: skip

BY_ID: dict[str, Metric] = {metric.id: metric for metric in METRICS}
# the order the reports list the profiles in: the table's (the run order is config.PROFILES)
PROFILES = tuple(dict.fromkeys(e.profile for e in METRICS if e.profile != "cell"))
COMPARED: dict[str, Metric] = {metric.compare: metric for metric in METRICS if metric.compare}


def metric(metric_id: str) -> Metric:
    """The entry ``"profile.key"`` (a KeyError names a typo at import time of its caller)."""
    return BY_ID[metric_id]


def of_profile(profile: str) -> tuple[Metric, ...]:
    return tuple(entry for entry in METRICS if entry.profile == profile)


def judged() -> tuple[Metric, ...]:
    """The metrics with a limit: what the bench asserts and the ratings weigh."""
    return tuple(entry for entry in METRICS if entry.limit is not None)


def for_key(profile: str, key: str) -> Metric | None:
    """The first entry that reads ``key`` of ``profile`` (for the words of a raw record value)."""
    return next((e for e in METRICS if e.profile == profile and e.key == key), None)
