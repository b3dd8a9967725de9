"""Stress: continuous generation for a sustained period while the machine is watched.

Off unless selected (``-m stress`` or ``profiles: [..., stress]``) and always after every other
test.  One configuration is stressed: the last one, in matrix order, that passed the earlier
performance profiles in this run (quality does not count: accuracy does not heat a CPU), or in
the report given with ``--llm-stress-from``; with nothing measured at all, the last selected
configuration, and the reason says it is unverified.  Under xdist the stress tests form one
group of their own, which waits until the other workers have finished their cells.

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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmbench.client import LlamaClient, RequestFailed, RequestResult
from pytest_llmbench.config import Settings, StressThresholds
from pytest_llmbench.monitor import NOT_AVAILABLE, ResourceMonitor, ResourceSample
from pytest_llmbench.report.merge import load_report
from pytest_llmbench.results import ResultStore
from pytest_llmbench.server import LlamaServer

if TYPE_CHECKING:
    from pytest_llmbench.matrix import Cell
    from pytest_llmbench.session import BenchSession

N_PREDICT = 128
MIN_SAMPLES = 10  # a short run samples at least this often, so trends have points
THROTTLE_DROP = 0.10  # a frequency 10 % below the start frequency…
THROTTLE_SUSTAIN = 3  # …for this many consecutive samples is throttling
NOT_JUDGED = ("quality", "stress")
STALL_SECONDS = 1800.0  # no cell finished on any worker for this long: stop waiting for them
WAIT_POLL_SECONDS = 1.0
XDIST_GROUP = "llmbench-stress"
PROMPTS = (
    "Write a long, detailed description of a busy harbour at dawn.",
    "Explain step by step how a mechanical clock keeps time.",
    "Describe a walk along a coastal path from the lighthouse to the village.",
    "Tell the story of a bakery's first year, month by month.",
)


# ------------------------------------------------------------------ selection


def duration_seconds(option: float | None, limits: StressThresholds) -> float:
    """``--llm-stress-duration`` (seconds) wins over ``stress.duration`` (minutes)."""
    return float(option) if option is not None else 60.0 * limits.duration


def sample_interval(duration_s: float, configured: float) -> float:
    """The configured interval, shortened for short runs so there are MIN_SAMPLES samples."""
    return max(0.5, min(configured, duration_s / MIN_SAMPLES))


def passed_earlier(record: Mapping[str, Any]) -> bool:
    """Every earlier performance profile that ran for this cell passed."""
    statuses = [
        p.get("status")
        for name, p in (record.get("profiles") or {}).items()
        if name not in NOT_JUDGED
    ]
    ran = [s for s in statuses if s not in (None, "skipped", "not run")]
    return bool(ran) and all(s == "passed" for s in ran)


def choose(records: Sequence[Mapping[str, Any]], order: Sequence[str]) -> tuple[str | None, str]:
    """The cell id to stress and why; None when nothing qualifies."""
    judged = {
        r["cell_id"]: r
        for r in records
        if any(t.get("profile") not in NOT_JUDGED for t in (r.get("tests") or {}).values())
    }
    if not judged:
        if not order:
            return None, "no configuration selected"
        return order[-1], (
            "nothing was measured earlier in this run and no --llm-stress-from report was "
            "given: the last selected configuration, unverified"
        )
    passing = [
        cell_id for cell_id in order if cell_id in judged and passed_earlier(judged[cell_id])
    ]
    if not passing:
        return None, "no configuration passed the earlier profiles"
    return passing[-1], "the last configuration that passed the earlier profiles"


@dataclass(frozen=True)
class StressPlan:
    """What the stress choice waits for and reads, fixed at collection (same on every worker).

    ``wait_for``: the cells with other tests in this run; under xdist they may still be running
    on other workers when the stress tests start.  ``from_report``: ``--llm-stress-from``, a JSON
    report whose results replace this run's as the evidence (the cells must still be selected).
    """

    wait_for: frozenset[str] = frozenset()
    from_report: Path | None = None


def finished_records(session: BenchSession) -> list[dict[str, Any]]:
    """Every cell this run finished, on any worker (the shared state), with derived statuses."""
    store = ResultStore()
    if session.state is not None:
        store.merge(session.state.cell_records())
    store.merge(session.store.to_json())
    return store.cells()


def wait_for_cells(
    session: BenchSession, cells: frozenset[str], stall_s: float = STALL_SECONDS
) -> list[str]:
    """Block until every cell in ``cells`` is finished by some worker; the ones still missing
    when no cell has finished for ``stall_s`` seconds (a crashed or hung worker)."""
    if session.state is None:
        return []
    told, last_change, done = False, time.monotonic(), session.state.finished()
    while missing := sorted(cells - done):
        if time.monotonic() - last_change > stall_s:
            return missing
        if not told:
            session.progress(f"stress waits for {len(missing)} cells on other workers")
            told = True
        time.sleep(WAIT_POLL_SECONDS)
        now = session.state.finished()
        if now != done:
            done, last_change = now, time.monotonic()
    return []


def decide(session: BenchSession, plan: StressPlan) -> tuple[str | None, str]:
    """The configuration to stress and why, once the earlier profiles are all done."""
    order = [c.id for c in session.cells]
    if plan.from_report is not None:
        report = load_report(plan.from_report)
        chosen, why = choose(report["results"], order)
        if chosen is not None and why.startswith("nothing was measured"):
            return None, f"{plan.from_report} has no measured configuration selected in this run"
        return chosen, f"{why} in {plan.from_report}"
    missing = wait_for_cells(session, plan.wait_for)
    chosen, why = choose(finished_records(session), order)
    if missing:
        why += f" (not finished after {STALL_SECONDS / 60:.0f} min: {', '.join(missing)})"
    return chosen, why


def skip_reason(chosen: str | None, why: str, cell: Cell) -> str | None:
    """Why this cell is not stressed (None when it is the chosen one)."""
    if chosen == cell.id:
        return None
    if chosen is None:
        return f"stress skipped: {why}"
    return f"stress runs one configuration: {chosen} ({why})"


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
    result = run(server, duration, interval, limits.abort_temperature, progress)
    return dataclasses.replace(result, chosen_because=chosen_because)
