"""Interactive storytelling: a story continuation streamed the way a reader would watch it.

Procedure: one unmeasured warm-up request, then ``repetitions`` requests for ``n_predict``
tokens each (``ignore_eos`` so every run produces the same length, ``cache_prompt: false`` and
a distinct opening line per run so no run reuses another's prompt).  TTFT, decode speed and the
steadiness of the stream (coefficient of variation of inter-token latency) are summarised with
the median across runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench.client import LlamaClient, RequestResult
from pytest_llmbench.config import InteractiveThresholds

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
    ttft_s: m.Summary
    decode_tps: m.Summary
    server_decode_tps: m.Summary | None
    itl_cv_percent: m.Summary | None  # None: no run streamed three or more chunks
    prompt_tokens: int
    output_tokens: int

    @property
    def itl_cv(self) -> float | None:
        """Median CV of inter-token gaps; None when not measurable (then the check fails)."""
        return self.itl_cv_percent.median if self.itl_cv_percent else None

    def metrics(self) -> dict[str, Any]:
        """Flat JSON-safe metrics for the result store and the reports."""
        out: dict[str, Any] = {
            "ttft_seconds": self.ttft_s.median,
            "tokens_per_second": self.decode_tps.median,
            "itl_cv_percent": self.itl_cv,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "repetitions": len(self.runs),
            "ttft_summary": self.ttft_s.as_dict(),
            "tokens_per_second_summary": self.decode_tps.as_dict(),
            "itl_cv_summary": self.itl_cv_percent.as_dict() if self.itl_cv_percent else None,
            "server_prompt_ms": [r.server_prompt_ms for r in self.runs],
            # per-run samples: what pytest-benchmark's export computes its stats over
            "tokens_per_second_samples": [r.decode_tps for r in self.runs if r.decode_tps],
            "ttft_seconds_samples": [r.ttft_s for r in self.runs],
            "e2e_seconds_samples": [r.e2e_s for r in self.runs],
            "noisy": bool(
                self.decode_tps.cv_percent and self.decode_tps.cv_percent > m.NOISY_CV_PERCENT
            ),
        }
        if self.server_decode_tps is not None:
            out["server_tokens_per_second"] = self.server_decode_tps.median
            out["client_vs_server_ratio"] = self.decode_tps.median / self.server_decode_tps.median
        return out


def prompt_for(run: int) -> str:
    return f"{OPENINGS[run % len(OPENINGS)]} (Draft {run + 1}.)\n\n{STORY_PROMPT}"


def measure(client: LlamaClient, n_predict: int, repetitions: int) -> InteractiveMeasurement:
    client.complete(prompt_for(0), 16)  # warm-up: lazy allocations are paid here, not measured
    runs = tuple(
        client.complete(prompt_for(i + 1), n_predict, ignore_eos=True, cache_prompt=False)
        for i in range(repetitions)
    )
    return summarise(runs)


def summarise(runs: tuple[RequestResult, ...]) -> InteractiveMeasurement:
    """Median-first summaries; runs that produced fewer than two tokens have no decode speed."""
    if not runs:
        raise ValueError("no runs to summarise")
    decode = [r.decode_tps for r in runs if r.decode_tps is not None]
    server = [r.server_decode_tps for r in runs if r.server_decode_tps]
    itl_cvs = [cv for r in runs if (cv := m.coefficient_of_variation(r.itl_s)) is not None]
    return InteractiveMeasurement(
        runs=runs,
        ttft_s=m.summarize([r.ttft_s for r in runs]),
        decode_tps=m.summarize(decode) if decode else m.summarize([0.0]),
        server_decode_tps=m.summarize(server) if server else None,
        itl_cv_percent=m.summarize(itl_cvs) if itl_cvs else None,
        prompt_tokens=runs[-1].prompt_tokens,
        output_tokens=runs[-1].output_tokens,
    )


def rating(measured: InteractiveMeasurement, limits: InteractiveThresholds) -> str:
    """Usability rating: TTFT and decode speed are critical, stream steadiness is not."""
    ttft, tps = measured.ttft_s.median, measured.decode_tps.median
    margins = [
        m.margin(tps, limits.min_tokens_per_sec, higher_is_better=True),
        m.margin(ttft, limits.max_time_to_first_token, higher_is_better=False),
    ]
    if measured.itl_cv is not None:
        margins.append(m.margin(measured.itl_cv, limits.max_variance, higher_is_better=False))
    critical = tps < limits.min_tokens_per_sec or ttft > limits.max_time_to_first_token
    return m.rate(margins, critical_missed=critical)
