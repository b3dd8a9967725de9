"""Background resource sampler: server RSS, available RAM, swap, CPU temperature and frequency.

A reading the OS does not expose is ``None`` in a sample and ``"not available"`` in a summary,
never a guess: a VM without sensors reports that, not a made-up 0 °C.  Sampling runs in a
daemon thread at a fixed interval (plus one sample at start and one at stop), so a profile gets
its resource trace without interleaving measurement code with bookkeeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

NOT_AVAILABLE = "not available"
MB = 2**20

# psutil sensor groups that measure the CPU itself (package, cores, Tctl); anything else
# (NVMe, GPU, battery) would be a wrong answer to "how hot is the CPU".
CPU_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal")


@dataclass(frozen=True)
class ResourceSample:
    time_s: float  # seconds since the monitor started
    server_rss_mb: float | None
    available_ram_mb: float | None
    swap_used_mb: float | None
    cpu_temperature_c: float | None
    cpu_freq_mhz: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def cpu_temperature_c() -> float | None:
    """The hottest CPU sensor psutil can see; None where the OS exposes none."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    try:
        groups = read()
    except (OSError, RuntimeError, ValueError):
        return None
    for name, entries in groups.items():
        if name in CPU_SENSORS or "cpu" in name.lower():
            temps = [e.current for e in entries if e.current and e.current > 0]
            if temps:
                return float(max(temps))
    return None


def cpu_freq_mhz() -> float | None:
    """Current CPU frequency (mean over cores as psutil reports it); None where not exposed."""
    try:
        freq = psutil.cpu_freq()
    except (OSError, RuntimeError, NotImplementedError):
        return None
    return float(freq.current) if freq is not None and freq.current > 0 else None


def process_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / MB
    except psutil.Error:
        return None


def take_sample(pid: int | None, time_s: float = 0.0) -> ResourceSample:
    try:
        available: float | None = psutil.virtual_memory().available / MB
    except (OSError, RuntimeError):
        available = None
    try:
        swap: float | None = psutil.swap_memory().used / MB
    except (OSError, RuntimeError):
        swap = None
    return ResourceSample(
        time_s=time_s,
        server_rss_mb=process_rss_mb(pid),
        available_ram_mb=available,
        swap_used_mb=swap,
        cpu_temperature_c=cpu_temperature_c(),
        cpu_freq_mhz=cpu_freq_mhz(),
    )


class ResourceMonitor:
    """Samples every ``interval`` seconds in a daemon thread; use as a context manager.

    ``on_sample`` runs in the sampling thread after each sample (the stress profile uses it to
    abort at once on overheating); an exception it raises is kept, not lost, and stops sampling.
    """

    def __init__(
        self,
        pid: int | None,
        interval: float = 1.0,
        on_sample: Callable[[ResourceSample], None] | None = None,
        sampler: Callable[[int | None, float], ResourceSample] = take_sample,
    ) -> None:
        self.pid, self.interval, self.on_sample, self._sampler = pid, interval, on_sample, sampler
        self._samples: list[ResourceSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.error: BaseException | None = None

    @property
    def samples(self) -> list[ResourceSample]:
        with self._lock:
            return list(self._samples)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def __enter__(self) -> ResourceMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="llmbench-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and take a final sample (so a short run still has a start and an end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval))
            self._thread = None
            if self.error is None:
                self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._sample():
                return

    def _sample(self) -> bool:
        sample = self._sampler(self.pid, self.elapsed())
        with self._lock:
            self._samples.append(sample)
        if self.on_sample is not None:
            try:
                self.on_sample(sample)
            except BaseException as exc:
                self.error = exc
                return False
        return True

    def summary(self) -> dict[str, Any]:
        return summarise(self.samples, self.interval)


def _known(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _r(value: float) -> float:
    return round(value, 1)


def summarise(samples: Sequence[ResourceSample], interval: float | None = None) -> dict[str, Any]:
    """Start / peak / end of each reading; ``"not available"`` where no sample had a value."""
    out: dict[str, Any] = {"samples": len(samples), "interval_s": interval}
    rss = _known([s.server_rss_mb for s in samples])
    if rss:
        out.update(rss_start_mb=_r(rss[0]), peak_rss_mb=_r(max(rss)), rss_end_mb=_r(rss[-1]))
    else:
        out["peak_rss_mb"] = NOT_AVAILABLE
    available = _known([s.available_ram_mb for s in samples])
    out["available_ram_min_mb"] = _r(min(available)) if available else NOT_AVAILABLE
    swap = _known([s.swap_used_mb for s in samples])
    if swap:
        out.update(
            swap_used_start_mb=_r(swap[0]),
            swap_used_peak_mb=_r(max(swap)),
            swap_growth_mb=_r(max(0.0, max(swap) - swap[0])),
        )
    else:
        out["swap_growth_mb"] = NOT_AVAILABLE
    temps = _known([s.cpu_temperature_c for s in samples])
    out["max_temperature_c"] = _r(max(temps)) if temps else NOT_AVAILABLE
    freqs = _known([s.cpu_freq_mhz for s in samples])
    if freqs:
        out.update(cpu_freq_start_mhz=_r(freqs[0]), cpu_freq_min_mhz=_r(min(freqs)))
    else:
        out["cpu_freq_start_mhz"] = NOT_AVAILABLE
    return out


def swap_growth_mb(summary: dict[str, Any]) -> float | None:
    """The swap growth a summary recorded, or None where swap could not be read."""
    value = summary.get("swap_growth_mb")
    return float(value) if isinstance(value, int | float) else None
