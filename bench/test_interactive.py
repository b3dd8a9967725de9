"""Interactive storytelling profile: does text appear quickly and stream at reading speed?

One warm-up, then story continuations of ``n_predict`` tokens each, repeated until the stopping
rule is met (``repetitions: auto``: the decode speed's interval within the target precision).
Medians are asserted and every message carries the 95 % interval.  TTFT is client-side (request
sent → first non-empty chunk); decode speed is 1 / TPOT with the server's token count.  The stream
is judged as a reader sees it: its pace over 1-second windows, and pauses longer than
``max_stall_ms``.
"""

import pytest

from pytest_llmbench import metrics
from pytest_llmbench.expect import at_least, at_most
from pytest_llmbench.workloads import interactive

pytestmark = pytest.mark.interactive


@pytest.fixture(scope="session")
def story(llm_client, llm_settings, llm_results, llm_cell):
    """The cell's story-continuation runs, measured once and shared by the tests below."""
    limits = llm_settings.thresholds.interactive
    rule = llm_settings.measurement.rule(limits.repetitions)
    measured = interactive.measure(llm_client, limits.n_predict, rule, limits.max_stall_ms)
    llm_results.record(llm_cell, "interactive", measured.metrics())
    llm_results.set_rating(llm_cell, "interactive", interactive.rating(measured, limits))
    return measured


def test_time_to_first_token(story, llm_settings):
    limit = llm_settings.thresholds.interactive.max_time_to_first_token
    ttft = story.ttft_s
    reading = metrics.interpret(metrics.TIME_TO_FIRST_TOKEN, ttft.value)
    at_most("TTFT", ttft.value, limit, "s", reading, ttft)


def test_streaming_speed(story, llm_settings):
    minimum = llm_settings.thresholds.interactive.min_tokens_per_sec
    tps = story.decode_tps
    reading = metrics.interpret(metrics.TOKENS_PER_SECOND, tps.value)
    at_least("decode speed", tps.value, minimum, "t/s", reading, tps)


def test_streaming_consistency(story, llm_settings):
    limits = llm_settings.thresholds.interactive
    if not story.too_short_for_pace:  # a reply streamed in under 2 s has no pace to vary
        cv = story.steadiness
        reading = metrics.reading_for(metrics.STREAM_CONSISTENCY_CV, cv)
        at_most("pace over 1-second windows, CV", cv, limits.max_variance, "%", reading)
    longest = max(story.stall_gaps_ms, default=0.0)
    at_most(
        f"pauses over {limits.max_stall_ms:g} ms per run (median)",
        story.stalls_per_run,
        limits.max_stalls,
        "",
        f"{len(story.stall_gaps_ms)} in {len(story.runs)} runs, the longest {longest:.0f} ms: "
        "the stream visibly stops",
    )
