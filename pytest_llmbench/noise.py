"""The run's noise floor: how busy the machine was, and how much repeated runs spread.

A verdict can be no finer than the noise it was measured in.  The report's metadata keeps the
machine's state at the start (load average, CPU frequency range) and the spread of the first
measured cell's repetitions; the terminal summary warns when that noise is wider than the
requested precision can resolve, so a reader knows which differences are ties.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import psutil

from pytest_llmbench import metrics as m

BUSY_LOAD_PER_CORE = 0.5  # a 1-minute load average above this per core: others are running


def machine_state() -> dict[str, Any]:
    """Load average and CPU frequency range now (None where the OS does not say)."""
    try:
        load = os.getloadavg()
    except (AttributeError, OSError):
        load = None
    try:
        freqs = [f.current for f in psutil.cpu_freq(percpu=True) or [] if f.current]
    except (AttributeError, NotImplementedError, OSError):
        freqs = []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "load_average_1m": round(load[0], 2) if load else None,
        "load_average_5m": round(load[1], 2) if load else None,
        "cores": cores,
        "cpu_mhz_min": round(min(freqs)) if freqs else None,
        "cpu_mhz_max": round(max(freqs)) if freqs else None,
    }


def first_spread(cells: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The spread of the first cell (in matrix order) whose decode speed has samples."""
    for cell in cells:
        estimate = m.estimate(cell, "interactive", "tokens_per_second")
        samples = m.samples(cell, "interactive", "tokens_per_second")
        if estimate is not None and samples:
            return {
                "cell_id": cell.get("cell_id"),
                "runs": len(samples),
                "cv_percent": m.coefficient_of_variation(samples),
                "half_width_percent": estimate.half_width_percent,
            }
    return None


def noise_floor(
    state: Mapping[str, Any], cells: Sequence[Mapping[str, Any]], target_percent: float
) -> dict[str, Any]:
    """The metadata's ``noise`` section, with the warnings the terminal prints."""
    spread = first_spread(cells)
    warnings = []
    load, cores = m.number(state.get("load_average_1m")), m.number(state.get("cores"))
    if load is not None and cores and load / cores > BUSY_LOAD_PER_CORE:
        warnings.append(
            f"the machine was busy at the start (load average {load:.1f} on {cores:.0f} cores): "
            "other work competes with the benchmark and widens every interval"
        )
    half = m.number((spread or {}).get("half_width_percent"))
    if half is not None and half > target_percent:
        warnings.append(
            f"run-to-run noise (±{half:.1f} % on {spread['cell_id']}, {spread['runs']} runs) is "
            f"wider than the requested precision ({target_percent:g} %): decode speeds closer "
            f"than about {2 * half:.0f} % are ties, not differences"
        )
    return {
        "machine": dict(state),
        "first_cell": spread,
        "target_precision_percent": target_percent,
        "warnings": warnings,
    }
