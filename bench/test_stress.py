"""Stress profile: can the machine sustain generation without overheating, throttling or swapping?

Off unless selected (``-m stress`` or ``profiles: [..., stress]``) and run after everything else,
on one configuration: the last that passed the earlier profiles in this run (or in the report
given with ``--llm-stress-from``).  Generation runs
continuously for ``thresholds.stress.duration`` minutes (``--llm-stress-duration`` seconds
overrides) while temperature, CPU frequency, server RSS, swap and tokens/s are sampled every
``sample_interval`` seconds.  Above the abort temperature, or when the server stops answering,
the run stops the server at once and records why.  Readings the OS does not expose are skipped
as "not available", never invented.
"""

import pytest

from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
from pytest_llmbench.workloads import stress

pytestmark = pytest.mark.stress


@pytest.fixture(scope="session")
def stressed(
    llm_server, llm_session, llm_cell, llm_settings, llm_results, llm_stress_reason, pytestconfig
):
    """The chosen configuration under continuous generation, measured once."""
    duration = pytestconfig.getoption("llm_stress_duration")
    measured = stress.run_for_settings(
        llm_server, llm_settings, duration, llm_stress_reason, llm_session.progress
    )
    llm_results.record(llm_cell, "stress", measured.metrics())
    return measured


def test_runs_for_the_whole_duration(stressed):
    assert stressed.aborted is None, (
        f"stress run aborted after {stressed.elapsed_s:.0f} of {stressed.duration_s:.0f} s: "
        f"{stressed.aborted}"
    )


def test_temperature_stays_below_limit(stressed, llm_settings):
    temperature = stressed.max_temperature_c
    if temperature is None:
        pytest.skip("CPU temperature not available: the OS exposes no CPU sensor")
    meets(metric("stress.max_temperature_c"), temperature, llm_settings)


def test_no_thermal_throttling(stressed):
    if stressed.throttled is None:
        pytest.skip("CPU frequency not available: the OS does not expose it")
    freqs = [s.cpu_freq_mhz for s in stressed.samples if s.cpu_freq_mhz is not None]
    assert not stressed.throttled, (
        f"CPU frequency fell from {freqs[0]:.0f} MHz to {min(freqs):.0f} MHz and stayed low: "
        "thermal throttling, reduce the load or improve cooling"
    )


def test_no_swapping(stressed, llm_settings):
    if llm_settings.limits.allow_swap:
        pytest.skip("limits.allow_swap is true")
    growth = stressed.resources.get("swap_growth_mb")
    growth = growth if isinstance(growth, int | float) else None
    meets(metric("stress.swap_growth_mb"), growth, llm_settings)


def test_generation_speed_is_stable(stressed, llm_settings):
    meets(metric("stress.tps_drop_percent"), stressed.tps_drop_percent, llm_settings)
