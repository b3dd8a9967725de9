"""Interactive storytelling profile: does text appear quickly and stream at reading speed?

One warm-up, then story continuations of ``n_predict`` tokens each, repeated until the stopping
rule is met (``repetitions: auto``: the decode speed's interval within the target precision).
Medians are asserted and every message carries the 95 % interval.  TTFT is client-side (request
sent → first non-empty chunk); decode speed is 1 / TPOT with the server's token count.  The stream
is judged as a reader sees it: its pace over 1-second windows, and pauses longer than
``max_stall_ms``.
"""

import pytest

from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
from pytest_llmbench.workloads import interactive

pytestmark = pytest.mark.interactive


@pytest.fixture(scope="session")
def story(llm_client, llm_settings, llm_results, llm_cell):
    """The cell's story-continuation runs, measured once and shared by the tests below."""
    limits = llm_settings.thresholds.interactive
    rule = llm_settings.measurement.rule(limits.repetitions)
    measured = interactive.measure(llm_client, limits.n_predict, rule, limits.max_stall_ms)
    llm_results.record(llm_cell, "interactive", measured.metrics())
    return measured


def test_time_to_first_token(story, llm_settings):
    meets(metric("interactive.ttft_seconds"), story.ttft_s.value, llm_settings, story.ttft_s)


def test_streaming_speed(story, llm_settings):
    tps = story.decode_tps
    meets(metric("interactive.tokens_per_second"), tps.value, llm_settings, tps)


def test_streaming_consistency(story, llm_settings):
    if not story.too_short_for_pace:  # a reply streamed in under 2 s has no pace to vary
        meets(metric("interactive.steadiness_cv_percent"), story.steadiness, llm_settings)
    longest = max(story.stall_gaps_ms, default=0.0)
    meets(
        metric("interactive.stalls_per_run"),
        story.stalls_per_run,
        llm_settings,
        what=f"pauses over {story.stall_ms:g} ms per run (median)",
        detail=f"{len(story.stall_gaps_ms)} in {len(story.runs)} runs, the longest "
        f"{longest:.0f} ms: the stream visibly stops",
    )
