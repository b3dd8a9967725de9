"""Batch profile: can the machine work through a pile of documents at a steady pace?

``thresholds.batch.num_documents`` summarisation tasks of 200–500 tokens, built from the
bundled prose, are processed one after another after one warm-up.  Each document's time is
measured; the run must be consistent (coefficient of variation), must not slow down (last 10
against first 10 documents) and must not leak memory (server RSS trend over the run).
"""

from pathlib import Path

import pytest

from pytest_llmbench import metrics
from pytest_llmbench.expect import at_most
from pytest_llmbench.workloads import batch
from pytest_llmbench.workloads.texts import load_paragraphs

pytestmark = pytest.mark.batch

PROSE = Path(__file__).parent / "data" / "prose.txt"


@pytest.fixture(scope="session")
def documents_run(llm_client, llm_server, llm_settings, llm_results, llm_cell):
    """The cell's batch run, measured once and shared by the tests below."""
    limits = llm_settings.thresholds.batch
    documents = batch.build_documents(
        load_paragraphs(PROSE), limits.num_documents, llm_client.count_tokens
    )
    measured = batch.measure(llm_client, llm_server.pid, documents)
    llm_results.record(llm_cell, "batch", measured.metrics())
    llm_results.set_rating(llm_cell, "batch", batch.rating(measured, limits))
    return measured


def test_all_documents_processed(documents_run):
    assert documents_run.complete, (
        f"batch incomplete: {len(documents_run.documents)} of {documents_run.planned} documents "
        f"({documents_run.error})"
    )


def test_time_per_document_is_consistent(documents_run, llm_settings):
    cv = documents_run.cv_percent
    per_hour = documents_run.docs_per_hour
    reading = metrics.reading_for(metrics.BATCH_CONSISTENCY_CV, cv)
    if per_hour:
        reading += f"; {per_hour:.0f} documents/hour: "
        reading += metrics.interpret(metrics.BATCH_DOCS_PER_HOUR, per_hour)
    at_most("time per document CV", cv, llm_settings.thresholds.batch.max_variance, "%", reading)


def test_no_slowdown_over_the_run(documents_run, llm_settings):
    slowdown = documents_run.degradation_percent
    at_most(
        "slowdown, last vs first documents",
        slowdown,
        llm_settings.thresholds.batch.max_degradation,
        "%",
        metrics.reading_for(metrics.SLOWDOWN_PERCENT, slowdown),
    )


def test_no_memory_growth(documents_run, llm_settings):
    growth = documents_run.memory_growth_mb
    at_most(
        "server RSS growth over the run",
        growth,
        llm_settings.thresholds.batch.max_memory_growth_mb,
        "MB",
        metrics.reading_for(metrics.MEMORY_GROWTH_MB, growth),
    )
