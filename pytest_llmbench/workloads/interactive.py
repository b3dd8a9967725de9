"""Interactive storytelling: a story continuation streamed the way a reader would watch it.

Procedure: one unmeasured warm-up request, then story continuations of ``n_predict`` tokens each
(``ignore_eos`` so every run produces the same length, ``cache_prompt: false`` and a distinct
opening line per run so no run reuses another's prompt), repeated until the stopping rule is met:
a fixed count, or (``repetitions: auto``) until the decode speed's median interval is within the
target precision.  Every timed metric keeps its per-run samples; medians with their 95 % interval
are what the assertions see.

Stream consistency is judged as a reader perceives it: the pace over 1-second windows
(coefficient of variation of tokens/s per window) and stalls (gaps longer than ``max_stall_ms``).
The per-gap inter-token latency and its CV stay in the record as information only: at tens of
tokens per second a few milliseconds of jitter between single tokens is invisible.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import stats
from pytest_llmbench.client import LlamaClient, RequestResult

STORY_PROMPT = (
    "The lighthouse keeper had not spoken to anyone in three weeks when the boat appeared on "
    "the horizon. It was small, painted a faded blue, and it moved against the wind as if "
    "something beneath the water were pulling it toward the rocks. She set down her tea, "
    "took the brass telescope from its hook, and climbed the spiral stairs two at a time. "
    "Continue the story:"
)

OPENINGS = (
    "Chapter one.",
    "Part one: the visitor.",
    "A story from the northern coast.",
    "The keeper's log, entry one.",
    "Told as the fishermen tell it.",
)


@dataclass(frozen=True)
class InteractiveMeasurement:
    runs: tuple[RequestResult, ...]
    ttft_s: stats.Estimate
    decode_tps: stats.Estimate
    e2e_s: stats.Estimate
    server_decode_tps: m.Summary | None
    steadiness: float | None  # median per-run CV (%) of 1-s window rates; None: too short
    stall_ms: float  # a gap longer than this is a stall
    stalls_per_run: float  # median count of gaps over the stall limit
    stall_gaps_ms: tuple[float, ...]  # every stall seen, all runs
    itl_ms: tuple[float, ...]  # every inter-token gap, all runs (information)
    itl_cv: float | None  # median per-run CV (%) of the gaps (information)
    stop_reason: str
    target_precision_percent: float | None

    @property
    def too_short_for_pace(self) -> bool:
        """Every run streamed its tokens within two 1-second windows: the reader sees the reply
        at once, so its pace cannot vary visibly (steadiness is then "n/a", not a failure)."""
        return self.steadiness is None and all(
            len(r.token_times_s) >= 2 and r.token_times_s[-1] - r.token_times_s[0] < 2.0
            for r in self.runs
        )

    @property
    def precision_reached(self) -> bool:
        precision = self.decode_tps.half_width_percent
        target = self.target_precision_percent
        return target is None or (precision is not None and precision <= target)

    def metrics(self) -> dict[str, Any]:
        """Flat JSON-safe metrics for the result store and the reports."""
        itl = self.itl_ms
        last = self.runs[-1]
        out: dict[str, Any] = {
            "ttft_seconds": self.ttft_s.value,
            "tokens_per_second": self.decode_tps.value,
            "e2e_seconds": self.e2e_s.value,
            "steadiness_cv_percent": self.steadiness,
            "steadiness_note": "n/a: each reply streamed in under 2 s"
            if self.too_short_for_pace
            else None,
            "stall_ms": self.stall_ms,
            "stalls_per_run": self.stalls_per_run,
            "stalls_total": len(self.stall_gaps_ms),
            "longest_stall_ms": max(self.stall_gaps_ms, default=None),
            "itl_cv_percent": self.itl_cv,
            "itl_p50_ms": m.percentile(itl, 50) if itl else None,
            "itl_p90_ms": m.percentile(itl, 90) if itl else None,
            "itl_p99_ms": m.percentile(itl, 99) if itl else None,
            "prompt_tokens": last.prompt_tokens,
            "prompt_tokens_per_run": [r.prompt_tokens for r in self.runs],
            "output_tokens": last.output_tokens,
            "repetitions": len(self.runs),
            "precision": {
                "target_percent": self.target_precision_percent,
                "achieved_percent": self.decode_tps.half_width_percent,
                "reached": self.precision_reached,
                "stopped_because": self.stop_reason,
            },
            "measurements": {
                "tokens_per_second": m.measurement(_decode_samples(self.runs), "t/s"),
                "ttft_seconds": m.measurement([r.ttft_s for r in self.runs], "s"),
                "e2e_seconds": m.measurement([r.e2e_s for r in self.runs], "s"),
            },
            "server_prompt_ms": [r.server_prompt_ms for r in self.runs],
            "noisy": not self.precision_reached,
        }
        if self.server_decode_tps is not None:
            out["server_tokens_per_second"] = self.server_decode_tps.median
            out["client_vs_server_ratio"] = self.decode_tps.value / self.server_decode_tps.median
        return out


def prompt_for(run: int) -> str:
    return f"{OPENINGS[run % len(OPENINGS)]} (Draft {run + 1}.)\n\n{STORY_PROMPT}"


def measure(
    client: LlamaClient, n_predict: int, rule: stats.StopRule, stall_ms: float
) -> InteractiveMeasurement:
    """Warm up, then repeat the measured continuation until ``rule`` says stop."""
    client.complete(prompt_for(0), 16)  # warm-up: lazy allocations are paid here, not measured
    runs: list[RequestResult] = []
    started = time.monotonic()
    while True:
        runs.append(
            client.complete(
                prompt_for(len(runs) + 1), n_predict, ignore_eos=True, cache_prompt=False
            )
        )
        reason = rule.decide(_decode_samples(runs), time.monotonic() - started)
        if reason is not None:
            break
    target = None if rule.fixed is not None else rule.target_precision_percent
    return summarise(tuple(runs), stall_ms, reason, target)


def _decode_samples(runs: tuple[RequestResult, ...] | list[RequestResult]) -> list[float]:
    """Decode speed per run; a run with fewer than two tokens has none and counts as 0."""
    return [r.decode_tps or 0.0 for r in runs]


def summarise(
    runs: tuple[RequestResult, ...],
    stall_ms: float = 250.0,
    stop_reason: str = "fixed count",
    target_precision_percent: float | None = None,
) -> InteractiveMeasurement:
    """Medians with their intervals, steadiness and stalls over the measured runs."""
    if not runs:
        raise ValueError("no runs to summarise")
    server = [r.server_decode_tps for r in runs if r.server_decode_tps]
    steadiness = [cv for r in runs if (cv := m.steadiness_cv(r.token_times_s)) is not None]
    itl_cvs = [cv for r in runs if (cv := m.coefficient_of_variation(r.itl_s)) is not None]
    per_run_stalls = [m.stalls(r.itl_s, stall_ms) for r in runs]
    return InteractiveMeasurement(
        runs=runs,
        ttft_s=stats.median_interval([r.ttft_s for r in runs]),
        decode_tps=stats.median_interval(_decode_samples(runs)),
        e2e_s=stats.median_interval([r.e2e_s for r in runs]),
        server_decode_tps=m.summarize(server) if server else None,
        steadiness=statistics.median(steadiness) if steadiness else None,
        stall_ms=stall_ms,
        stalls_per_run=statistics.median(len(s) for s in per_run_stalls),
        stall_gaps_ms=tuple(g for s in per_run_stalls for g in s),
        itl_ms=tuple(1000.0 * g for r in runs for g in r.itl_s),
        itl_cv=statistics.median(itl_cvs) if itl_cvs else None,
        stop_reason=stop_reason,
        target_precision_percent=target_precision_percent,
    )
