"""Serving capacity: how many users one server serves before replies get too slow.

The server runs with ``--parallel`` slots (continuous batching).  At each level the load
generator keeps N users busy (closed loop: each sends its next request when the previous one
ends) or sends requests at a rate with seeded Poisson arrivals (open loop).  Requests are timed
like every other profile's (TTFT to the first content chunk, the server's token counts, never
re-tokenised); every prompt is distinct (``cache_prompt: false``) and ``ignore_eos`` holds the
output length.  Per level: TTFT, TPOT, ITL and end-to-end percentiles, output tokens/s in total
and per user, requests/s, errors, and goodput — the rate of requests meeting every objective in
``serving.slo``.  Capacity is the highest concurrency whose share of requests meeting the
objectives is at least ``slo.min_share``.  The sweep stops once the box is saturated.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_llmbench import metrics as m
from pytest_llmbench import stats
from pytest_llmbench.client import LlamaClient, RequestFailed, RequestResult
from pytest_llmbench.config import ServingThresholds

SATURATION_GAIN = 1.05  # a level adding under 5 % total throughput ...
SATURATION_LATENCY = 1.2  # ... while median end-to-end latency grew 20 %: saturated


@dataclass(frozen=True)
class Request:
    prompt: str
    output_tokens: int


@dataclass(frozen=True)
class Outcome:
    """One request as the load generator saw it (``error`` set when it failed)."""

    sent_s: float
    result: RequestResult | None
    error: str | None = None

    @property
    def tpot_s(self) -> float | None:
        return self.result.tpot_s if self.result else None


def _pct(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    return {
        "p50": m.percentile(values, 50),
        "p90": m.percentile(values, 90),
        "p99": m.percentile(values, 99),
        "mean": statistics.fmean(values),
    }


@dataclass(frozen=True)
class Level:
    """The figures of one concurrency level (or request rate)."""

    kind: str  # "concurrency" or "rate"
    value: float
    outcomes: tuple[Outcome, ...]
    wall_s: float
    slo: dict[str, float | None]
    min_share: float

    @property
    def done(self) -> list[RequestResult]:
        return [o.result for o in self.outcomes if o.result is not None]

    def meets(self, result: RequestResult) -> bool:
        """Whether one request met every objective that is set."""
        ttft, tpot, e2e = (self.slo.get(k) for k in ("ttft_ms", "tpot_ms", "e2e_ms"))
        tpot_s = result.tpot_s
        return (
            (ttft is None or 1000 * result.ttft_s <= ttft)
            and (tpot is None or (tpot_s is not None and 1000 * tpot_s <= tpot))
            and (e2e is None or 1000 * result.e2e_s <= e2e)
        )

    @property
    def share_meeting(self) -> float:
        """Percent of the level's requests (failed ones count as missing) meeting the objectives."""
        if not self.outcomes:
            return 0.0
        return 100.0 * sum(self.meets(r) for r in self.done) / len(self.outcomes)

    @property
    def output_tps(self) -> float:
        return sum(r.output_tokens for r in self.done) / self.wall_s if self.wall_s else 0.0

    @property
    def e2e_median(self) -> float | None:
        e2e = [r.e2e_s for r in self.done]
        return statistics.median(e2e) if e2e else None

    def metrics(self) -> dict[str, Any]:
        done = self.done
        per_user = [r.decode_tps for r in done if r.decode_tps]
        ttft = [1000 * r.ttft_s for r in done]
        e2e = [1000 * r.e2e_s for r in done]
        return {
            "kind": self.kind,
            "level": self.value,
            "requests": len(self.outcomes),
            "errors": sum(o.error is not None for o in self.outcomes),
            "wall_seconds": self.wall_s,
            "ttft_ms": _pct(ttft),
            "tpot_ms": _pct([1000 * t for r in done if (t := r.tpot_s) is not None]),
            "itl_ms": _pct([1000 * g for r in done for g in r.itl_s]),
            "e2e_ms": _pct(e2e),
            "ttft_interval_ms": stats.median_interval(ttft).as_dict() if ttft else None,
            "e2e_interval_ms": stats.median_interval(e2e).as_dict() if e2e else None,
            "output_tokens_per_second": self.output_tps,
            "per_user_tokens_per_second": statistics.median(per_user) if per_user else None,
            "requests_per_second": len(done) / self.wall_s if self.wall_s else 0.0,
            "goodput_rps": sum(self.meets(r) for r in done) / self.wall_s if self.wall_s else 0.0,
            "share_meeting_slo_percent": self.share_meeting,
            "prompt_tokens_mean": statistics.fmean(r.prompt_tokens for r in done) if done else None,
            "output_tokens_mean": statistics.fmean(r.output_tokens for r in done) if done else None,
            "first_error": next((o.error for o in self.outcomes if o.error), None),
        }


@dataclass
class Sweep:
    """Every level measured, the capacity found and why the sweep stopped."""

    levels: list[Level] = field(default_factory=list)
    rate_levels: list[Level] = field(default_factory=list)
    stopped: str = "every level measured"
    min_share: float = 90.0
    slo: dict[str, float | None] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        """The highest concurrency at which the objectives' share holds (0: not even one user)."""
        good = [int(lv.value) for lv in self.levels if lv.share_meeting >= self.min_share]
        return max(good, default=0)

    def capacity_words(self) -> str:
        """ "serves 3 concurrent users with TTFT p90 ≤ 1 s and ≥ 10 t/s each" """
        objectives = []
        if (ttft := self.slo.get("ttft_ms")) is not None:
            objectives.append(f"TTFT ≤ {ttft / 1000:g} s")
        if (tpot := self.slo.get("tpot_ms")) is not None:
            objectives.append(f"≥ {1000 / tpot:.3g} t/s each")
        if (e2e := self.slo.get("e2e_ms")) is not None:
            objectives.append(f"replies within {e2e / 1000:g} s")
        goals = " and ".join(objectives) or "no objectives set"
        share = f"for {self.min_share:g} % of requests"
        n = self.capacity
        if n == 0:
            return f"serves no user at its objectives ({goals}, {share})"
        return f"serves {n} concurrent user{'s' if n != 1 else ''} with {goals} ({share})"

    def metrics(self) -> dict[str, Any]:
        best = max(self.levels, key=lambda lv: lv.output_tps, default=None)
        return {
            "capacity_users": self.capacity,
            "capacity": self.capacity_words(),
            "stopped": self.stopped,
            "slo": dict(self.slo),
            "min_share_percent": self.min_share,
            "max_output_tokens_per_second": best.output_tps if best else None,
            "levels": [lv.metrics() for lv in self.levels],
            "rate_levels": [lv.metrics() for lv in self.rate_levels],
        }


# ------------------------------------------------------------------ prompts


def _lengths(rng: random.Random, mean: int, stdev: int, count: int) -> list[int]:
    return [max(1, round(rng.gauss(mean, stdev))) for _ in range(count)]


def make_requests(
    words: Sequence[str],
    tokens_per_word: float,
    count: int,
    settings: ServingThresholds,
    rng: random.Random,
    tag: str,
) -> list[Request]:
    """Distinct synthetic prompts of about ``isl`` tokens (mean, stdev) asking for ``osl``."""
    inputs = _lengths(rng, settings.isl, settings.isl_stdev, count)
    outputs = _lengths(rng, settings.osl, settings.osl_stdev, count)
    requests = []
    for i, (isl, osl) in enumerate(zip(inputs, outputs, strict=True)):
        n_words = max(1, round(isl / tokens_per_word))
        start = rng.randrange(len(words))
        body = " ".join(words[(start + j) % len(words)] for j in range(n_words))
        requests.append(Request(f"[{tag} request {i}] {body}", osl))
    return requests


# ------------------------------------------------------------------ the load generator


def _send(client: LlamaClient, request: Request, started: float, seed: int) -> Outcome:
    sent = time.perf_counter() - started
    try:
        result = client.complete(
            request.prompt, request.output_tokens, seed=seed, ignore_eos=True, cache_prompt=False
        )
        return Outcome(sent, result)
    except (RequestFailed, OSError) as exc:
        return Outcome(sent, None, f"{type(exc).__name__}: {exc}")


def closed_loop(
    client: LlamaClient,
    requests: Sequence[Request],
    users: int,
    duration_s: float | None = None,
) -> tuple[list[Outcome], float]:
    """``users`` threads, each sending its next request as soon as its previous one ended, until
    the requests run out (or, with ``duration_s``, no new request starts after that time)."""
    queue = list(enumerate(requests))
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    started = time.perf_counter()

    def user() -> None:
        while True:
            with lock:
                late = duration_s is not None and time.perf_counter() - started >= duration_s
                if not queue or late:
                    return
                index, request = queue.pop(0)
            outcome = _send(client, request, started, index)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=user, daemon=True) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - started


def open_loop(
    client: LlamaClient, requests: Sequence[Request], rate: float, rng: random.Random
) -> tuple[list[Outcome], float]:
    """Requests sent at seeded Poisson arrivals of ``rate`` per second, whatever the replies do."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    started = time.perf_counter()
    threads = []
    due = 0.0
    for index, request in enumerate(requests):
        due += rng.expovariate(rate)
        time.sleep(max(0.0, due - (time.perf_counter() - started)))

        def send(request: Request = request, index: int = index) -> None:
            outcome = _send(client, request, started, index)
            with lock:
                outcomes.append(outcome)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - started


def saturated(previous: Level, current: Level) -> str | None:
    """Why the sweep should stop after ``current`` (None to go on)."""
    if current.share_meeting < previous.min_share <= previous.share_meeting:
        return (
            f"stopped after {current.value:g} users: the share meeting the objectives fell to "
            f"{current.share_meeting:.0f} %"
        )
    more = current.output_tps < SATURATION_GAIN * previous.output_tps
    slower = (
        previous.e2e_median is not None
        and current.e2e_median is not None
        and current.e2e_median > SATURATION_LATENCY * previous.e2e_median
    )
    if more and slower:
        return (
            f"stopped after {current.value:g} users: saturated — total throughput no longer "
            f"rises ({previous.output_tps:.1f} → {current.output_tps:.1f} t/s) while latency does"
        )
    return None


def sweep(
    client: LlamaClient,
    words: Sequence[str],
    settings: ServingThresholds,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Sweep:
    """Concurrency levels in order (stopping once saturated), then any request rates."""
    rng = random.Random(settings.seed)
    tokens_per_word = client.count_tokens(" ".join(words[:200])) / min(200, len(words))
    slo = {
        "ttft_ms": settings.slo.ttft_ms,
        "tpot_ms": settings.slo.tpot_ms,
        "e2e_ms": settings.slo.e2e_ms,
    }
    result = Sweep(min_share=settings.slo.min_share, slo=slo)
    started = time.monotonic()
    for users in settings.concurrency:
        count = max(settings.requests_per_level, users)
        if settings.duration_s is not None:  # enough for the duration at any plausible speed
            count = max(count, users * 500)
        warm = make_requests(words, tokens_per_word, users, settings, rng, f"warm-up c{users}")
        closed_loop(client, warm, users)  # fills every slot once before timing
        batch = make_requests(words, tokens_per_word, count, settings, rng, f"c{users}")
        outcomes, wall = closed_loop(client, batch, users, settings.duration_s)
        level = Level("concurrency", users, tuple(outcomes), wall, slo, settings.slo.min_share)
        result.levels.append(level)
        progress(
            f"serving: {users} users, {level.output_tps:.1f} t/s total, "
            f"{level.share_meeting:.0f} % within objectives ({time.monotonic() - started:.0f} s)"
        )
        if len(result.levels) > 1 and (why := saturated(result.levels[-2], level)):
            result.stopped = why
            break
    for rate in settings.request_rates:
        batch = make_requests(
            words, tokens_per_word, settings.requests_per_level, settings, rng, f"r{rate:g}"
        )
        outcomes, wall = open_loop(client, batch, rate, rng)
        result.rate_levels.append(
            Level("rate", rate, tuple(outcomes), wall, slo, settings.slo.min_share)
        )
    return result
