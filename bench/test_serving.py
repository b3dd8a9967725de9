"""Serving profile: how many users does this machine serve at your latency objectives?

The cell gets a server of its own with ``--parallel`` equal to the highest concurrency level and a
context that gives every slot what the requests need.  Closed-loop levels (``serving.concurrency``)
and optional open-loop request rates are swept with distinct synthetic prompts; per level the
percentiles, throughput and goodput are recorded, and capacity is the most users served with
``serving.slo.min_share`` of requests inside every objective in ``serving.slo``.
"""

from pathlib import Path

import pytest

from pytest_llmbench.client import LlamaClient
from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
from pytest_llmbench.workloads import serving

pytestmark = pytest.mark.serving

PROSE = Path(__file__).parent / "data" / "prose.txt"


@pytest.fixture(scope="session")
def swept(llm_session, llm_cell, llm_settings, llm_results):
    """The cell's serving sweep, measured once on its own multi-slot server."""
    limits = llm_settings.thresholds.serving
    slots = max(limits.concurrency)
    server = llm_session.profile_server(
        llm_cell,
        "serving",
        ctx_size=slots * limits.slot_ctx,
        options={"parallel": slots},
    )
    measured = serving.sweep(
        LlamaClient(server.url, api_key=server.api_key),
        PROSE.read_text().split(),
        limits,
        llm_session.progress,
    )
    llm_results.record(llm_cell, "serving", measured.metrics())
    return measured


def test_every_request_succeeds(swept):
    failed = [
        (lv.value, lv.metrics()["errors"], lv.metrics()["first_error"])
        for lv in swept.levels + swept.rate_levels
        if lv.metrics()["errors"]
    ]
    assert not failed, "requests failed under load: " + "; ".join(
        f"{n} at level {value:g} (first: {error})" for value, n, error in failed
    )


def test_capacity_at_the_objectives(swept, llm_settings):
    best = max(swept.levels, key=lambda lv: lv.output_tps)
    meets(
        metric("serving.capacity_users"),
        swept.capacity,
        llm_settings,
        detail=f"{swept.capacity_words()}; at most {best.output_tps:.1f} t/s in total with "
        f"{best.value:g} users; {swept.stopped}",
    )
