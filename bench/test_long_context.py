"""Long-context profile: can the model read a long document and still answer?

One test per size in ``thresholds.long_context.test_sizes``: the window is filled with the
bundled prose to that many tokens (counted by the server's tokenizer, prompt cache off, a prompt
that shares no prefix with another size), the time to the first generated token is the context
load time, and a short answer proves generation works with the window that full.  Sizes above
the model's trained context or the server's n_ctx are skipped with the reason.
"""

from pathlib import Path

import pytest

from pytest_llmbench import metrics
from pytest_llmbench.expect import at_most
from pytest_llmbench.fixtures import parametrize_context_sizes
from pytest_llmbench.workloads import long_context

pytestmark = pytest.mark.long_context

PROSE = Path(__file__).parent / "data" / "prose.txt"


def pytest_generate_tests(metafunc):
    parametrize_context_sizes(metafunc)


@pytest.fixture(scope="session")
def context_bench(llm_session, llm_run):
    """The cell's long-context server, started once with room for the largest admitted size."""
    return long_context.ContextBench.for_cell(llm_session, llm_run, PROSE)


@pytest.fixture
def filled(context_bench, context_size, llm_results, llm_cell):
    """The window filled to ``context_size`` tokens and answered from; every size is recorded."""
    reason = context_bench.skip_reason(context_size)
    if reason is None:
        context_bench.measure(context_size)
    llm_results.record(llm_cell, "long_context", context_bench.metrics())
    if rating := long_context.rating(context_bench):
        llm_results.set_rating(llm_cell, "long_context", rating)
    if reason is not None:
        pytest.skip(reason)
    return context_bench.runs[context_size]


def test_context_size(filled, llm_settings):
    assert filled.generated, (
        f"no answer with {filled.size} tokens in context: "
        f"{filled.error or 'the server generated no tokens'}"
    )
    limit = llm_settings.thresholds.long_context.max_initial_load_time
    seconds, speed = filled.load_seconds, filled.prompt_tokens_per_second
    reading = metrics.reading_for(metrics.CONTEXT_LOAD, seconds)
    if speed:
        reading += (
            f" ({speed:.0f} t/s, {metrics.interpret(metrics.PROMPT_TOKENS_PER_SECOND, speed)})"
        )
    at_most(f"context load ({filled.prompt_tokens} tokens)", seconds, limit, "s", reading)
    if not llm_settings.limits.allow_swap:
        growth = filled.swap_growth_mb
        reading = metrics.reading_for(metrics.SWAP_GROWTH_MB, growth)
        at_most("swap growth", growth, 0.0, "MB", reading)
