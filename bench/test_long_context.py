"""Long-context profile: can the model read a long document and still answer?

One test per size in ``thresholds.long_context.test_sizes``: the window is filled with the
bundled prose to that many tokens (counted by the server's tokenizer, prompt cache off, a prompt
that shares no prefix with another size), the time to the first generated token is the context
load time, and a short answer proves generation works with the window that full.  Sizes above
the model's trained context or the server's n_ctx are skipped with the reason.
"""

from pathlib import Path

import pytest

from pytest_llmbench.expect import meets
from pytest_llmbench.fixtures import parametrize_context_sizes
from pytest_llmbench.metric_table import metric
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
    if reason is not None:
        pytest.skip(reason)
    return context_bench.runs[context_size]


def test_context_size(filled, llm_settings):
    assert filled.generated, (
        f"no answer with {filled.size} tokens in context: "
        f"{filled.error or 'the server generated no tokens'}"
    )
    speed = filled.prompt_tokens_per_second
    prompt = metric("long_context.prompt_tokens_per_second")
    meets(
        metric("long_context.load_seconds"),
        filled.load_seconds,
        llm_settings,
        what=f"context load ({filled.prompt_tokens} tokens)",
        detail=f"{speed:.0f} t/s, {prompt.reading(speed)}" if speed else "",
    )
    meets(metric("long_context.swap_growth_mb"), filled.swap_growth_mb, llm_settings)
