"""Running under pytest-xdist: one worker per cell group, and a fair share of the CPU for each.

Parallel servers on one machine distort each other's timings, so each worker's servers get
``cores // workers`` threads (at least one) pinned to cores of their own where the OS allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GROUPING_MODE = "loadgroup"


@dataclass(frozen=True)
class CpuShare:
    threads: int
    affinity: tuple[int, ...] | None
    workers: int
    oversubscribed: bool  # more workers than cores: servers share cores

    def describe(self) -> str:
        cores = ",".join(map(str, self.affinity)) if self.affinity else "any"
        return f"{self.workers} workers, {self.threads} threads per server on cores {cores}"


def cpu_share(cores: int, workers: int, index: int, threads: int | None = None) -> CpuShare:
    """Worker ``index`` of ``workers`` gets a contiguous block of the ``cores`` usable cores."""
    if workers <= 1:
        return CpuShare(threads=threads or cores, affinity=None, workers=1, oversubscribed=False)
    per_worker = threads or max(1, cores // workers)
    start = (index * per_worker) % cores
    affinity = tuple(sorted({(start + i) % cores for i in range(per_worker)}))
    return CpuShare(per_worker, affinity, workers, oversubscribed=workers > cores)


def oversubscription(cores: int, workers: int, threads: int | None = None) -> str | None:
    """One warning with the split chosen when ``-n`` asks for more workers than usable cores
    (None when each worker has cores of its own)."""
    if workers <= cores:
        return None
    split = ", ".join(
        f"gw{i}: core {','.join(map(str, cpu_share(cores, workers, i, threads).affinity or ()))}"
        for i in range(workers)
    )
    per = cpu_share(cores, workers, 0, threads).threads
    return (
        f"warning: -n {workers} on {cores} usable cores: {per} thread(s) per server and workers "
        f"share cores ({split}); their timings disturb each other, use -n {cores} or fewer"
    )


def worker_identity(workerinput: dict[str, Any]) -> tuple[int, int]:
    """(index, count) from xdist's workerinput ('gw3' → 3)."""
    worker_id = str(workerinput.get("workerid", "gw0"))
    return int(worker_id.removeprefix("gw") or 0), int(workerinput.get("workercount", 1))


def dist_conflict(numprocesses: Any, dist: str | None) -> str | None:
    """A usage error when the user chose a distribution mode that splits a cell across workers."""
    if not numprocesses or dist in (None, "no", GROUPING_MODE):
        return None
    what = (
        "runs every test on every worker, so each worker would benchmark every cell again, "
        "side by side"
        if dist == "each"
        else "would split one cell's tests across workers, so each would start its own server "
        "for the same model"
    )
    return (
        f"--dist {dist} {what}; pytest-llmbench needs --dist {GROUPING_MODE} (the default it "
        "sets when you give -n without --dist): drop --dist or pass --dist loadgroup"
    )
