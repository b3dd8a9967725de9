"""Recommendations per use case, the overall best configuration and the run's key findings.

Everything here reads the JSON report (its ``results[]`` with the ``derived`` sections that
:func:`pytest_llmbench.judge.derive_results` adds) and returns plain JSON data, so the terminal
summary, the HTML report and ``llmbench report render`` on a merged file all say the same thing.
A use case whose profile did not run says "not measured" instead of guessing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import stats
from pytest_llmbench.config import Settings
from pytest_llmbench.judge import derive_results
from pytest_llmbench.metric_table import Metric, metric
from pytest_llmbench.termination import BITS_PER_WEIGHT

PASS, WARN, FAIL = "✓", "⚠", "✗"
MARK_ORDER = {PASS: 0, WARN: 1, FAIL: 2}
MAX_SUITABLE = 5  # ✓ / ⚠ lines shown per use case
MAX_UNSUITABLE = 3  # ✗ lines shown per use case
MATH_WARN_BAND = 10.0  # math within this many points under the threshold is ⚠, below is ✗
BATCH_GOOD_DOCS_PER_HOUR = 30.0  # "reasonable for moderate batches"

# the metric-table entries the recommendations weigh
TPS = metric("interactive.tokens_per_second")
TTFT = metric("interactive.ttft_seconds")
MEMORY = metric("load.memory_gb")
CONTEXT_LOAD = metric("long_context.load_seconds")
MAX_CONTEXT = metric("long_context.max_context_passed")
DOCS = metric("batch.docs_per_hour")
BATCH_CV = metric("batch.cv_percent")
MATH = metric("quality.math_score")
KLD = metric("divergence.mean_kld")
SAME_TOP = metric("divergence.same_top_percent")
USERS = metric("serving.capacity_users")
TEMPERATURE = metric("stress.max_temperature_c")
_DEFAULTS = Settings()


def _limit(entry: Metric, settings: Mapping[str, Any]) -> float:
    """The entry's limit in a report's settings, else the default settings' own."""
    found = entry.threshold(settings)
    return found if found is not None else entry.threshold(_DEFAULTS) or 0.0


Result = Mapping[str, Any]


@dataclass(frozen=True)
class Line:
    mark: str
    label: str
    cell_id: str
    summary: str
    numbers: dict[str, Any]


@dataclass(frozen=True)
class UseCase:
    key: str
    title: str
    profile: str
    lines: tuple[Line, ...]
    hidden: int = 0
    note: str | None = None


@dataclass(frozen=True)
class OverallBest:
    label: str
    cell_id: str
    score: float
    reasons: tuple[str, ...]
    tied_with: tuple[str, ...] = ()  # cells whose score is within measurement noise
    fastest: str | None = None  # named when the choice is not the fastest cell


TIE_RULE = "higher-precision quantization first, then less memory"


# ------------------------------------------------------------------ helpers


def settings_of(report: Mapping[str, Any]) -> dict[str, Any]:
    found = m.dig(report, "metadata", "config", "settings")
    return found if isinstance(found, dict) else {}


def _settings_for(result: Result, default: Mapping[str, Any]) -> Mapping[str, Any]:
    own = m.dig(result, "run", "settings")
    return own if isinstance(own, Mapping) else default


def model_label(result: Result, with_host: bool = False) -> str:
    """The model as a row or series name: "SmolLM2-135M-Instruct", "… [fa-on]" for a config
    variant (a cell of its own), "… @ host" when a merged report spans machines."""
    text = str(result.get("model_name") or result.get("model") or "?")
    if result.get("variant"):
        text += f" [{result['variant']}]"
    host = result.get("hostname")
    return f"{text} @ {host}" if with_host and host else text


def label(result: Result, with_host: bool = False) -> str:
    """ "SmolLM2-135M-Instruct Q4_K_M", "… Q4_K_M [fa-on]" for a variant, plus "@ host"."""
    name = result.get("model_name") or result.get("model") or "?"
    text = f"{name} {result.get('quant', '?')}"
    if result.get("variant"):
        text += f" [{result['variant']}]"
    host = result.get("hostname")
    return f"{text} @ {host}" if with_host and host else text


def spans_hosts(results: Sequence[Result]) -> bool:
    return len({r.get("hostname") for r in results if r.get("hostname")}) > 1


def profile_status(result: Result, profile: str) -> str | None:
    status = m.dig(result, "profiles", profile, "status")
    return status if isinstance(status, str) else None


def profile_reason(result: Result, profile: str) -> str:
    """The first failing, erroring or skipping test's message for one profile of a cell."""
    tests = result.get("tests") or {}
    for wanted in ("error", "failed", "skipped"):
        for test in tests.values():
            if test.get("profile") == profile and test.get("outcome") == wanted:
                return str(test.get("message") or wanted)
    return str(result.get("skip_reason") or profile_status(result, profile) or "not run")


def _rating(result: Result, profile: str) -> str | None:
    return m.dig(result, "derived", "profile_ratings", profile)


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "not measured" if value is None else f"{format(value, spec)}{unit}"


# ------------------------------------------------------------------ use cases


def _use_case(
    key: str,
    title: str,
    profile: str,
    results: Sequence[Result],
    judge: Callable[[Result], tuple[str, str, dict[str, Any], tuple[float, ...]] | None],
) -> UseCase:
    """Rank the cells that ran ``profile``: ``judge`` gives mark, summary, numbers and a sort key.

    Cells whose profile was skipped are counted in the note, not listed as unsuitable: a model
    that is not downloaded says nothing about whether it would suit the use case.
    """
    with_host = spans_hosts(results)
    ranked: list[tuple[tuple[Any, ...], Line]] = []
    skipped = 0
    for result in results:
        status = profile_status(result, profile)
        if status is None:
            continue
        judged = judge(result)
        if judged is None and status in ("skipped", "not run"):
            skipped += 1
            continue
        if judged is None:
            mark, summary, numbers, order = FAIL, profile_reason(result, profile), {}, ()
        else:
            mark, summary, numbers, order = judged
        line = Line(
            mark, label(result, with_host), str(result.get("cell_id", "")), summary, numbers
        )
        ranked.append(((MARK_ORDER[mark], *order), line))
    ranked.sort(key=lambda pair: pair[0])
    if key == "interactive":
        ranked = [((), line) for line in break_speed_ties([line for _, line in ranked])]
    suitable = [line for _, line in ranked if line.mark != FAIL]
    unsuitable = [line for _, line in ranked if line.mark == FAIL]
    shown = suitable[:MAX_SUITABLE] + unsuitable[:MAX_UNSUITABLE]
    notes = []
    if not ranked:
        notes.append(
            f"not measured: the {profile} profile did not run (select it with -m {profile})"
        )
    if skipped:
        notes.append(f"{skipped} cell{'s' if skipped != 1 else ''} skipped, not measured")
    return UseCase(
        key, title, profile, tuple(shown), len(ranked) - len(shown), "; ".join(notes) or None
    )


def _interactive(result: Result) -> tuple[str, str, dict[str, Any], tuple[float, ...]] | None:
    metrics = m.profile_metrics(result, "interactive")
    tps, ttft = TPS.value(result), TTFT.value(result)
    if tps is None or ttft is None:
        return None
    rating = _rating(result, "interactive") or "acceptable"
    status = profile_status(result, "interactive")
    if rating == "failed" or status in ("failed", "error"):
        mark = FAIL
    elif rating in ("excellent", "good") and status == "passed":
        mark = PASS
    else:
        mark = WARN
    noisy = ", noisy" if metrics.get("noisy") else ""
    reading = TPS.reading(tps)
    interval = TPS.estimate(result)
    speed = f"{tps:.1f} t/s" + (f" [{interval.low:.1f}–{interval.high:.1f}]" if interval else "")
    summary = f"{rating.capitalize()} ({speed}, {ttft:.2f} s TTFT{noisy}): {reading}"
    numbers = {
        "tokens_per_second": tps,
        "tokens_per_second_low": interval.low if interval else None,
        "tokens_per_second_high": interval.high if interval else None,
        "ttft_seconds": ttft,
        "rating": rating,
        "bits_per_weight": _bits(result),
        "memory_gb": m.number(m.dig(result, "derived", "memory_gb")),
    }
    return mark, summary, numbers, (-m.RATING_POINTS.get(rating, 0), -tps, ttft)


def _bits(result: Result) -> float:
    return BITS_PER_WEIGHT.get(str(result.get("quant")), 8.0)


def _speed_estimate(numbers: Mapping[str, Any]) -> stats.Estimate | None:
    low, high = numbers.get("tokens_per_second_low"), numbers.get("tokens_per_second_high")
    if low is None or high is None:
        return None
    return stats.Estimate(numbers["tokens_per_second"], low, high, 0, 0.0, "")


def _tie_rule_key(numbers: Mapping[str, Any]) -> tuple[float, float]:
    """Higher precision first, then less memory (unknown memory last)."""
    memory = numbers.get("memory_gb")
    return (-(numbers.get("bits_per_weight") or 0.0), memory if memory is not None else 1e9)


def break_speed_ties(lines: Sequence[Line]) -> list[Line]:
    """Lines whose decode-speed intervals overlap the leader's (with the same mark and rating)
    are tied: they are ordered by the tie rule and say so.  Lines without an interval (older
    reports) keep their order."""
    out = list(lines)
    start = 0
    while start < len(out):
        leader = out[start]
        lead = _speed_estimate(leader.numbers)
        end = start + 1
        while (
            lead is not None
            and end < len(out)
            and out[end].mark == leader.mark
            and out[end].numbers.get("rating") == leader.numbers.get("rating")
            and (other := _speed_estimate(out[end].numbers)) is not None
            and stats.tied(lead, other)
        ):
            end += 1
        group = sorted(out[start:end], key=lambda line: _tie_rule_key(line.numbers))
        if len(group) > 1:
            names = [line.label for line in group]
            group = [
                Line(
                    line.mark,
                    line.label,
                    line.cell_id,
                    line.summary
                    + "; tied with "
                    + ", ".join(n for n in names if n != line.label)
                    + f" within measurement noise (order: {TIE_RULE})",
                    line.numbers,
                )
                for line in group
            ]
        out[start:end] = group
        start = end
    return out


def _long_context(
    largest_tried: int | None,
) -> Callable[[Result], tuple[str, str, dict[str, Any], tuple[float, ...]] | None]:
    def judge(result: Result) -> tuple[str, str, dict[str, Any], tuple[float, ...]] | None:
        metrics = m.profile_metrics(result, "long_context")
        points = m.long_context_points(metrics)
        passed = [p for p in points if p.passed]
        largest = m.number(metrics.get("max_context_passed")) or (
            passed[-1].size if passed else None
        )
        if not largest:
            return None
        at_largest = next((p.seconds for p in passed if p.size == largest), None)
        seconds = at_largest if at_largest is not None else m.number(metrics.get("load_seconds"))
        memory = m.dig(result, "derived", "memory_gb")
        tried = max([p.size for p in points] or [largest_tried or 0, int(largest)])
        complete = largest >= tried and profile_status(result, "long_context") == "passed"
        mark = PASS if complete else WARN
        reach = (
            f"{int(largest):,} tokens"
            if complete
            else f"up to {int(largest):,} of {tried:,} tokens"
        )
        parts = [reach, _fmt(seconds, ".1f", " s load")]
        if memory is not None:
            parts.append(f"{memory:.1f} GB RAM")
        reading = f": {CONTEXT_LOAD.reading(seconds)}" if seconds is not None else ""
        skipped = metrics.get("skipped_sizes")
        untried = {int(k): why for k, why in skipped.items() if str(k).isdigit()} if isinstance(skipped, Mapping) else {}  # fmt: skip
        if untried:
            smallest = min(untried)
            reading += f" ({smallest:,} tokens and up not tried: {untried[smallest]})"
        numbers = {"max_context_passed": int(largest), "load_seconds": seconds, "memory_gb": memory}
        return mark, ", ".join(parts) + reading, numbers, (-largest, seconds or 0.0)

    return judge


def _batch(result: Result) -> tuple[str, str, dict[str, Any], tuple[float, ...]] | None:
    docs = DOCS.value(result)
    if docs is None:
        return None
    cv = BATCH_CV.value(result)
    status = profile_status(result, "batch")
    mark = PASS if docs >= BATCH_GOOD_DOCS_PER_HOUR and status == "passed" else WARN
    spread = f", {cv:.0f} % spread" if cv is not None else ""
    summary = f"{docs:.0f} docs/hour{spread}: {DOCS.reading(docs)}"
    return mark, summary, {"docs_per_hour": docs, "cv_percent": cv}, (-docs, cv or 0.0)


def _accuracy(
    min_math: float,
) -> Callable[[Result], tuple[str, str, dict[str, Any], tuple[float, ...]] | None]:
    def judge(result: Result) -> tuple[str, str, dict[str, Any], tuple[float, ...]] | None:
        metrics = m.profile_metrics(result, "quality")
        math_score = MATH.value(result)
        overall = m.quality_overall(metrics)
        if math_score is None:
            return None
        if math_score >= min_math:
            mark = PASS
        elif math_score >= min_math - MATH_WARN_BAND:
            mark = WARN
        else:
            mark = FAIL
        also = f" (overall {overall:.0f} %)" if overall is not None else ""
        verdict = "" if mark == PASS else f", below the {min_math:.0f} % threshold"
        summary = f"{math_score:.0f} % math accuracy{also}{verdict}"
        numbers = {"math_score": math_score, "overall_score": overall}
        return mark, summary, numbers, (-math_score, -(overall or 0.0))

    return judge


def _divergence(
    kld_limit: float, same_top_limit: float
) -> Callable[[Result], tuple[str, str, dict[str, Any], tuple[float, ...]] | None]:
    def judge(result: Result) -> tuple[str, str, dict[str, Any], tuple[float, ...]] | None:
        metrics = m.profile_metrics(result, "divergence")
        kld, same = KLD.value(result), SAME_TOP.value(result)
        if kld is None or same is None:
            return None
        met = (kld <= kld_limit) + (same >= same_top_limit)
        mark = PASS if met == 2 else WARN if met == 1 else FAIL
        reference = metrics.get("reference_quant") or "the reference"
        if metrics.get("is_reference"):
            summary = f"the reference ({reference}): no loss by definition"
        else:
            pm = m.number(metrics.get("same_top_pm"))
            spread = f" ± {pm:.1f}" if pm is not None else ""
            summary = (
                f"same top token as {reference} {same:.1f}{spread} %, mean KLD {kld:.3g}: "
                f"{KLD.reading(kld)}"
            )
        quiz = MATH.value(result)
        if quiz is not None:
            summary += f" (quiz: {quiz:.0f} % math)"
        numbers = {"mean_kld": kld, "same_top_percent": same, "reference": reference}
        return mark, summary, numbers, (-same, kld)

    return judge


def _serving(
    users_needed: float,
) -> Callable[[Result], tuple[str, str, dict[str, Any], tuple[float, ...]] | None]:
    def judge(result: Result) -> tuple[str, str, dict[str, Any], tuple[float, ...]] | None:
        metrics = m.profile_metrics(result, "serving")
        users = USERS.value(result)
        if users is None:
            return None
        top = m.number(metrics.get("max_output_tokens_per_second")) or 0.0
        mark = PASS if users >= users_needed and users > 0 else WARN if users > 0 else FAIL
        summary = f"{metrics.get('capacity')}; up to {top:.1f} t/s in total"
        numbers = {"capacity_users": users, "max_output_tokens_per_second": top}
        return mark, summary, numbers, (-users, -top)

    return judge


def use_cases(results: Sequence[Result], settings: Mapping[str, Any]) -> list[UseCase]:
    thresholds = settings.get("thresholds") or {}
    sizes = m.dig(thresholds, "long_context", "test_sizes")
    largest = (
        max((int(s) for s in sizes if m.number(s)), default=None)
        if isinstance(sizes, list)
        else None
    )
    min_math = _limit(MATH, settings)
    diverged = any(m.profile_metrics(r, "divergence").get("mean_kld") is not None for r in results)
    if diverged:  # measured per quant against a reference: precise; the quiz is a second signal
        kld_limit = _limit(KLD, settings)
        same_top_limit = _limit(SAME_TOP, settings)
        accuracy = _use_case(
            "accuracy",
            "Accuracy-critical work (loss against the reference)",
            "divergence",
            results,
            _divergence(kld_limit, same_top_limit),
        )
    else:
        accuracy = _use_case(
            "accuracy", "Accuracy-critical work (math)", "quality", results, _accuracy(min_math)
        )
    return [
        _use_case("interactive", "Interactive storytelling", "interactive", results, _interactive),
        _use_case(
            "long_context",
            "Long-context work (largest context that passed)",
            "long_context",
            results,
            _long_context(largest),
        ),
        _use_case("batch", "Document batch processing", "batch", results, _batch),
        accuracy,
        *(
            [
                _use_case(
                    "serving",
                    "Serving several users (most users at your objectives)",
                    "serving",
                    results,
                    _serving(_limit(USERS, settings)),
                )
            ]
            if any(m.profile_metrics(r, "serving") for r in results)
            else []
        ),
    ]


# ------------------------------------------------------------------ overall best


def _ram_gb(result: Result, metadata: Mapping[str, Any]) -> float | None:
    return m.number(m.dig(result, "hardware", "ram_gb")) or m.number(
        m.dig(metadata, "hardware", "ram_gb")
    )


def _ran(results: Sequence[Result]) -> list[Result]:
    """Cells that ran and were not rated failed: the reference for a model's best accuracy."""
    return [
        r
        for r in results
        if r.get("status") in ("passed", "partial")
        and m.dig(r, "derived", "rating") not in (None, "failed")
    ]


def _best_quality_by_model(results: Sequence[Result]) -> dict[str, float]:
    best: dict[str, float] = {}
    for result in results:
        quality = m.number(m.dig(result, "derived", "quality_overall"))
        model = str(result.get("model"))
        if quality is not None:
            best[model] = max(best.get(model, 0.0), quality)
    return best


NO_BEST = "no configuration met every threshold"


def overall_best(results: Sequence[Result], metadata: Mapping[str, Any]) -> OverallBest | None:
    """The cell with the best balance of performance (ratings across profiles, and decode
    speed), memory headroom and accuracy.  Accuracy is weighed against the most accurate cell
    in the report, not only against the model's own best quant: a small model that keeps all of
    its little accuracy is not the best choice for work that needs accuracy.  Only cells that
    ran and met every threshold (rated acceptable or better) are eligible: a "best" that missed
    one is no recommendation.

    Never inside the noise: cells whose score, with decode speed anywhere in its interval,
    can match the top score are tied, and the tie rule (:data:`TIE_RULE`) picks among them.  A
    lower quantization whose quality loss was not measured is not chosen over a higher one of
    the same model that is rated as well: its edge is speed alone.  The fastest cell is then
    named beside the choice."""
    eligible = [
        r
        for r in _ran(results)
        if m.dig(r, "derived", "rating") in ("excellent", "good", "acceptable")
    ]
    if not eligible:
        return None
    top_tps = max((_tps(r) or 0.0 for r in eligible), default=0.0)
    top_quality = max((_quality(r) or 0.0 for r in eligible), default=0.0)

    def balance(result: Result) -> float:
        ratings = [v for v in (m.dig(result, "derived", "profile_ratings") or {}).values() if v]
        return sum(m.RATING_POINTS[v] for v in ratings) / (4 * len(ratings)) if ratings else 0.0

    def score(result: Result, tps: float | None = None) -> float:
        tps = _tps(result) if tps is None else tps
        speed = (tps or 0.0) / top_tps if top_tps else 0.0
        memory, ram = m.dig(result, "derived", "memory_gb"), _ram_gb(result, metadata)
        headroom = max(0.0, 1 - memory / ram) if memory is not None and ram else None
        quality = _quality(result)
        accuracy = quality / top_quality if quality is not None and top_quality else None
        neutral = 0.5  # an unmeasured part neither helps nor hurts one cell against another
        return (
            0.4 * (0.7 * balance(result) + 0.3 * speed)
            + 0.2 * (headroom if headroom is not None else neutral)
            + 0.4 * (accuracy if accuracy is not None else neutral)
        )

    def score_range(result: Result) -> tuple[float, float]:
        interval = TPS.estimate(result)
        if interval is None:
            return score(result), score(result)
        return score(result, interval.low), score(result, interval.high)

    def rule_key(result: Result) -> tuple[float, float]:
        memory = m.number(m.dig(result, "derived", "memory_gb"))
        return (_bits(result), -(memory if memory is not None else 1e9))

    top = max(eligible, key=lambda r: (score(r), _tps(r) or 0.0))
    floor = score_range(top)[0]
    tied = [r for r in eligible if score_range(r)[1] >= floor]
    winner = max(tied, key=rule_key)
    notes: list[str] = []
    if len(tied) > 1:
        others = ", ".join(label(r) for r in tied if r is not winner)
        notes.append(
            f"tied with {others} within measurement noise; chosen by the tie rule: {TIE_RULE}"
        )
    if _quality(winner) is None:
        same_model = [
            r
            for r in eligible
            if r.get("model") == winner.get("model")  # any server variant of the model
            and _bits(r) > _bits(winner)
            and _quality(r) is None
            and balance(r) >= balance(winner)
        ]
        if same_model:
            faster = winner
            winner = max(same_model, key=rule_key)
            notes.append(
                f"chosen over {label(faster)}, whose edge is speed alone: its quality loss was "
                "not measured (run -m quality to weigh it)"
            )
    fastest = max(eligible, key=lambda r: _tps(r) or 0.0)
    fastest_text = None
    if fastest is not winner and _tps(fastest) is not None:
        interval = TPS.estimate(fastest)
        ci = f" ({m.interval_text(interval, '.1f')})" if interval else ""
        fastest_text = f"{label(fastest)} at {_tps(fastest):.1f} t/s{ci}"
        notes.append(f"fastest: {fastest_text}")
    return OverallBest(
        label(winner, spans_hosts(results)),
        str(winner.get("cell_id", "")),
        round(100 * score(winner), 1),
        tuple(_reasons(winner, metadata, _best_quality_by_model(_ran(results))) + notes),
        tuple(label(r) for r in tied if r is not winner),
        fastest_text,
    )


def _quality(result: Result) -> float | None:
    """The accuracy decisions weigh: agreement with the reference (divergence profile) when it
    was measured, else the quiz's overall score."""
    accuracy = m.number(m.dig(result, "derived", "accuracy"))
    return (
        accuracy if accuracy is not None else m.number(m.dig(result, "derived", "quality_overall"))
    )


_tps = TPS.value


def _reasons(
    result: Result, metadata: Mapping[str, Any], best_quality: Mapping[str, float]
) -> list[str]:
    ratings = {k: v for k, v in (m.dig(result, "derived", "profile_ratings") or {}).items() if v}
    good = sum(1 for v in ratings.values() if v in ("excellent", "good"))
    listed = ", ".join(f"{k} {v}" for k, v in ratings.items())
    reasons = [
        f"balanced performance: {good} of {len(ratings)} profiles rated good or better ({listed})"
    ]
    memory, ram = m.dig(result, "derived", "memory_gb"), _ram_gb(result, metadata)
    if memory is None:
        reasons.append("memory headroom: not measured")
    elif ram:
        free = 100 * max(0.0, 1 - memory / ram)
        reading = MEMORY.reading(memory)
        reasons.append(
            f"memory headroom: {memory:.2f} GB of {ram:.0f} GB RAM ({free:.0f} % free), {reading}"
        )
    else:
        reasons.append(f"memory: {memory:.2f} GB, {MEMORY.reading(memory)}")
    quality = m.number(m.dig(result, "derived", "quality_overall"))
    best = best_quality.get(str(result.get("model")))
    diverged = m.profile_metrics(result, "divergence")
    if m.number(diverged.get("same_top_percent")) is not None:
        reasons.append(
            f"accuracy: same top token as {diverged.get('reference_quant') or 'the reference'} "
            f"{diverged['same_top_percent']:.1f} % of the time, mean KLD "
            f"{m.number(diverged.get('mean_kld')) or 0:.3g} "
            f"({KLD.reading(m.number(diverged.get('mean_kld')) or 0.0)})"
        )
    elif quality is not None and best:
        reasons.append(
            f"accuracy retention: {100 * quality / best:.0f} % of the model's best quantization "
            f"({quality:.0f} % overall quality)"
        )
    else:
        reasons.append("accuracy retention: not measured (the quality profile did not run)")
    tps, ttft = TPS.value(result), TTFT.value(result)
    if tps is not None and ttft is not None:
        interval = TPS.estimate(result)
        ci = f" ({m.interval_text(interval, '.1f')})" if interval else ""
        reasons.append(f"{tps:.1f} t/s{ci}, {ttft:.2f} s TTFT: {TPS.reading(tps)}")
    cost_benefit = m.number(m.dig(result, "derived", "cost_benefit_score"))
    if cost_benefit is not None:
        reasons.append(f"cost-benefit score {cost_benefit:.0f} / 100")
    return reasons


# ------------------------------------------------------------------ key findings


def key_findings(
    results: Sequence[Result], metadata: Mapping[str, Any], settings: Mapping[str, Any]
) -> list[str]:
    """Short statements a reader should not miss: counts, extremes, accuracy drops, noise."""
    if not results:
        return ["no cells ran"]
    with_host = spans_hosts(results)
    statuses = Counter(str(r.get("status")) for r in results)
    models = {r.get("model") for r in results}
    counts = ", ".join(f"{n} {s}" for s, n in statuses.most_common())
    findings = [
        f"{len(results)} cells over {len(models)} model{'s' if len(models) != 1 else ''}: {counts}"
    ]

    def extreme(entry: Metric, highest: bool) -> tuple[Result, float] | None:
        known = [(r, v) for r in results if (v := entry.value(r)) is not None]
        if not known:
            return None
        return (max if highest else min)(known, key=lambda pair: pair[1])

    extremes: tuple[tuple[Metric, bool, Callable[[str, float], str]], ...] = (
        (TPS, True, lambda c, v: f"fastest decode: {c} at {v:.1f} t/s ({TPS.reading(v)})"),
        (TTFT, False, lambda c, v: f"quickest first token: {c} in {v:.2f} s ({TTFT.reading(v)})"),
        (MEMORY, False, lambda c, v: f"smallest memory footprint: {c} with {v:.2f} GB"),
        (MAX_CONTEXT, True, lambda c, v: f"largest context that passed: {int(v):,} tokens ({c})"),
        (DOCS, True, lambda c, v: f"best batch throughput: {c} at {v:.0f} docs/hour"),
    )  # fmt: skip
    for reader, highest, say in extremes:
        if found := extreme(reader, highest):
            findings.append(say(label(found[0], with_host), found[1]))
    min_math = _limit(MATH, settings)
    weak = [
        f"{label(r, with_host)} ({score:.0f} %)"
        for r in results
        if (score := MATH.value(r)) is not None and score < min_math
    ]
    if weak:
        findings.append(
            f"below {min_math:.0f} % on math, avoid for accuracy-critical work: {', '.join(weak)}"
        )
    noisy = [
        label(r, with_host) for r in results if m.profile_metrics(r, "interactive").get("noisy")
    ]
    if noisy:
        findings.append(
            "decode speed not measured to the target precision within the run limits "
            "(see the noise section), treat as approximate: " + ", ".join(noisy)
        )
    if found := extreme(TEMPERATURE, True):
        hottest, degrees = found
        findings.append(
            f"hottest under stress: {degrees:.0f} °C with {label(hottest, with_host)} "
            f"({TEMPERATURE.reading(degrees)})"
        )
    reasons = Counter(str(r.get("skip_reason")) for r in results if r.get("status") == "skipped")
    if reasons:
        reason, n = reasons.most_common(1)[0]
        total = sum(reasons.values())
        findings.append(
            f"{total} cell{'s' if total != 1 else ''} skipped; most common reason ({n}): {reason}"
        )
    return findings


# ------------------------------------------------------------------ the report's analysis


def recommendations(results: Sequence[Result], metadata: Mapping[str, Any]) -> dict[str, Any]:
    settings = m.dig(metadata, "config", "settings") or {}
    best = overall_best(results, metadata)
    plain = {
        "use_cases": [asdict(u) for u in use_cases(results, settings)],
        "overall_best": asdict(best) if best else None,
    }
    return json.loads(json.dumps(plain))  # exactly what the JSON report holds (lists, not tuples)


def enrich_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``report`` with derived metrics per result, recommendations and key findings.

    A report is judged once: one that is already enriched comes back as it is (a merge drops
    the derived sections, so a merged report is judged as a whole; a report of an older schema
    loses them on loading and is judged anew)."""
    raw = report.get("results") or []
    if "recommendations" in report and all(isinstance(r, Mapping) and "derived" in r for r in raw):
        return dict(report)
    metadata = report.get("metadata") or {}
    settings = settings_of(report)
    results = derive_results(list(report.get("results") or []), settings)
    return {
        **report,
        "results": results,
        "recommendations": recommendations(results, metadata),
        "key_findings": key_findings(results, metadata, settings),
    }


def format_recommendations(recs: Mapping[str, Any]) -> list[str]:
    """The recommendations as terminal lines, in the layout of the design's example."""
    lines = ["RECOMMENDED CONFIGURATIONS"]
    for case in recs.get("use_cases") or []:
        lines.append("")
        lines.append(f"{case['title']}:")
        for line in case.get("lines") or []:
            lines.append(f"  {line['mark']} {line['label']} - {line['summary']}")
        if case.get("hidden"):
            lines.append(f"  … and {case['hidden']} more (see the HTML report)")
        if case.get("note"):
            lines.append(f"  {case['note']}")
    best = recs.get("overall_best")
    lines.append("")
    if best:
        lines.append(f"Overall best: {best['label']}")
        lines += [f"  - {reason}" for reason in best.get("reasons") or []]
    else:
        lines.append(f"Overall best: none ({NO_BEST})")
    return lines
