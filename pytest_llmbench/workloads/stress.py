"""Stress: continuous generation for a sustained period while the machine is watched.

Off unless selected (``-m stress`` or ``profiles: [..., stress]``) and always after every other
test.  Which configuration is stressed is decided where the run is orchestrated
(:mod:`pytest_llmbench.stress_choice`); this module only measures the server it is given.

Requests of ``N_PREDICT`` tokens (``ignore_eos``, prompt cache off, rotating prompts) run back to
back for the duration; a sampler records temperature, CPU frequency, server RSS and swap every
interval, and the tokens/s of each interval comes from the streamed tokens' arrival times.
Safety: above the abort temperature the sampler stops the server at once; a request that fails
or hangs means the server stopped answering.  Either way the run ends and records why.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_llmbench.client import LlamaClient, RequestFailed, RequestResult
from pytest_llmbench.config import Settings, StressThresholds
from pytest_llmbench.metric_table import metric
from pytest_llmbench.monitor import NOT_AVAILABLE, ResourceMonitor, ResourceSample
from pytest_llmbench.server import LlamaServer

N_PREDICT = 128
MIN_SAMPLES = 10  # a short run samples at least this often, so trends have points
THROTTLE_DROP = 0.10  # a frequency 10 % below the start frequency…
THROTTLE_SUSTAIN = 3  # …for this many consecutive samples is throttling
PROMPTS = (
    "Write a long, detailed description of a busy harbour at dawn.",
    "Explain step by step how a mechanical clock keeps time.",
    "Describe a walk along a coastal path from the lighthouse to the village.",
    "Tell the story of a bakery's first year, month by month.",
)


# ------------------------------------------------------------------ settings


def duration_seconds(option: float | None, limits: StressThresholds) -> float:
    """``--llm-stress-duration`` (seconds) wins over ``stress.duration`` (minutes)."""
    return float(option) if option is not None else 60.0 * limits.duration


def sample_interval(duration_s: float, configured: float) -> float:
    """The configured interval, shortened for short runs so there are MIN_SAMPLES samples."""
    return max(0.5, min(configured, duration_s / MIN_SAMPLES))


# ------------------------------------------------------------------ statistics (pure)


def token_arrivals(result: RequestResult, start_s: float) -> list[tuple[float, float]]:
    """(time, tokens) per streamed chunk on the monitor's clock; a chunk's share of the
    server's token count, since one chunk may carry several tokens."""
    if not result.token_times_s:
        return []
    share = result.output_tokens / len(result.token_times_s)
    return [(start_s + t, share) for t in result.token_times_s]


def window_rates(
    sample_times: Sequence[float], arrivals: Sequence[tuple[float, float]], min_span: float = 0.0
) -> list[float | None]:
    """Tokens/s over the interval ending at each sample; None for the first sample and for a
    window shorter than ``min_span`` (the stub between the last full interval and the stop)."""
    rates: list[float | None] = [None] if sample_times else []
    for before, after in itertools.pairwise(sample_times):
        span = after - before
        tokens = sum(n for t, n in arrivals if before < t <= after)
        rates.append(tokens / span if span > 0 and span >= min_span else None)
    return rates


def tps_drop_percent(rates: Sequence[float | None]) -> float | None:
    """How much slower the last third of the run generated than the first third (median of
    each), in percent; None with fewer than three intervals."""
    known = [r for r in rates if r is not None]
    third = len(known) // 3
    if third < 1:
        return None
    early, late = statistics.median(known[:third]), statistics.median(known[-third:])
    return 100.0 * (early - late) / early if early > 0 else None


def throttled(
    freqs: Sequence[float | None], drop: float = THROTTLE_DROP, sustain: int = THROTTLE_SUSTAIN
) -> bool | None:
    """A sustained fall below the starting frequency; None when frequency is not exposed."""
    known = [f for f in freqs if f is not None]
    if len(known) < 2:
        return None
    floor, run, longest = known[0] * (1.0 - drop), 0, 0
    for f in known[1:]:
        run = run + 1 if f < floor else 0
        longest = max(longest, run)
    return longest >= min(sustain, len(known) - 1)


# ------------------------------------------------------------------ the run


@dataclass(frozen=True)
class StressRun:
    duration_s: float
    interval_s: float
    elapsed_s: float
    samples: tuple[ResourceSample, ...]
    rates: tuple[float | None, ...]
    tokens: float
    aborted: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    chosen_because: str = ""

    @property
    def max_temperature_c(self) -> float | None:
        temps = [s.cpu_temperature_c for s in self.samples if s.cpu_temperature_c is not None]
        return max(temps) if temps else None

    @property
    def throttled(self) -> bool | None:
        return throttled([s.cpu_freq_mhz for s in self.samples])

    @property
    def tps_drop_percent(self) -> float | None:
        return tps_drop_percent(self.rates)

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.elapsed_s if self.elapsed_s > 0 else None

    def metrics(self) -> dict[str, Any]:
        throttle = self.throttled
        resources = {k: v for k, v in self.resources.items() if k not in ("samples", "interval_s")}
        return {
            **resources,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 2),
            "sample_interval_s": self.interval_s,
            "aborted": self.aborted,
            "chosen_because": self.chosen_because,
            "tokens_generated": round(self.tokens),
            "tokens_per_second": self.tokens_per_second,
            "tps_drop_percent": self.tps_drop_percent,
            "max_temperature_c": self.max_temperature_c or NOT_AVAILABLE,
            "throttling": NOT_AVAILABLE if throttle is None else throttle,
            "samples": [
                {**s.as_dict(), "tokens_per_second": None if r is None else round(r, 2)}
                for s, r in zip(self.samples, self.rates, strict=True)
            ],
        }


def run(
    server: LlamaServer,
    duration_s: float,
    interval_s: float,
    abort_temperature: float,
    progress: Callable[[str], None] = lambda _msg: None,
) -> StressRun:
    """Generate continuously for ``duration_s``; stop the server at once if it overheats or
    stops answering, and say why.  ``progress`` hears the elapsed and remaining time about
    every ``interval_s``."""
    client = LlamaClient(server.url, timeout=max(60.0, 4 * interval_s), api_key=server.api_key)
    aborted: list[str] = []

    def watch(sample: ResourceSample) -> None:
        temp = sample.cpu_temperature_c
        if temp is not None and temp >= abort_temperature and not aborted:
            aborted.append(
                f"CPU at {temp:.0f} °C, at or above the abort temperature {abort_temperature:.0f} °C"
            )
            server.stop()

    arrivals: list[tuple[float, float]] = []
    with ResourceMonitor(server.pid, interval_s, on_sample=watch) as monitor:
        try:
            if not aborted:  # the first sample may already be too hot
                client.complete(PROMPTS[0], 8)  # warm-up: lazy allocation, not measured
        except RequestFailed as exc:
            aborted.append(f"server stopped answering before the run: {exc}")
        i, reported = 0, 0.0
        while not aborted and monitor.elapsed() < duration_s:
            start = monitor.elapsed()
            if start - reported >= interval_s:
                reported = start
                left = max(0.0, duration_s - start)
                progress(
                    f"stress: {start / 60:.1f} of {duration_s / 60:.1f} min, "
                    f"{left / 60:.1f} min to go, {sum(n for _, n in arrivals)} tokens so far"
                )
            try:
                result = client.complete(
                    f"{PROMPTS[i % len(PROMPTS)]} (Part {i + 1}.)",
                    N_PREDICT,
                    ignore_eos=True,
                    cache_prompt=False,
                )
            except RequestFailed as exc:
                if not aborted:
                    aborted.append(f"server stopped answering: {exc}")
                    server.stop()
                break
            arrivals += token_arrivals(result, start)
            i += 1
        elapsed = monitor.elapsed()
    samples = tuple(monitor.samples)
    return StressRun(
        duration_s=duration_s,
        interval_s=interval_s,
        elapsed_s=elapsed,
        samples=samples,
        rates=tuple(window_rates([s.time_s for s in samples], arrivals, interval_s / 2)),
        tokens=sum(n for _, n in arrivals),
        aborted=aborted[0] if aborted else None,
        resources=monitor.summary(),
    )


def run_for_settings(
    server: LlamaServer,
    settings: Settings,
    duration_option: float | None,
    chosen_because: str,
    progress: Callable[[str], None] = lambda _msg: None,
) -> StressRun:
    limits = settings.thresholds.stress
    duration = duration_seconds(duration_option, limits)
    interval = sample_interval(duration, limits.sample_interval)
    # the critical temperature limit of the metric table stops the run at once (none: never)
    abort = metric("stress.abort_temperature_c").threshold(settings) or float("inf")
    result = run(server, duration, interval, abort, progress)
    return dataclasses.replace(result, chosen_because=chosen_because)
