"""Interactive storytelling profile: does text appear quickly and stream at reading speed?

One warm-up, then ``thresholds.interactive.repetitions`` story continuations of ``n_predict``
tokens each; medians are asserted.  TTFT is client-side (request sent → first non-empty
chunk); decode speed is 1 / TPOT with the server's token count.
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
    measured = interactive.measure(llm_client, limits.n_predict, limits.repetitions)
    llm_results.record(llm_cell, "interactive", measured.metrics())
    llm_results.set_rating(llm_cell, "interactive", interactive.rating(measured, limits))
    return measured


def test_time_to_first_token(story, llm_settings):
    limit = llm_settings.thresholds.interactive.max_time_to_first_token
    ttft = story.ttft_s.median
    at_most("TTFT", ttft, limit, "s", metrics.interpret(metrics.TIME_TO_FIRST_TOKEN, ttft))


def test_streaming_speed(story, llm_settings):
    minimum = llm_settings.thresholds.interactive.min_tokens_per_sec
    tps = story.decode_tps.median
    at_least("decode speed", tps, minimum, "t/s", metrics.interpret(metrics.TOKENS_PER_SECOND, tps))


def test_streaming_consistency(story, llm_settings):
    limit = llm_settings.thresholds.interactive.max_variance
    cv = story.itl_cv
    at_most(
        "inter-token latency CV",
        cv,
        limit,
        "%",
        metrics.reading_for(metrics.STREAM_CONSISTENCY_CV, cv),
    )
