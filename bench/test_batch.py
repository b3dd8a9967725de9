"""Batch profile: can the machine work through a pile of documents at a steady pace?

``thresholds.batch.num_documents`` summarisation tasks of 200–500 tokens, built from the
bundled prose, are processed one after another after one warm-up.  Each document's time is
measured; the run must be consistent (coefficient of variation), must not slow down (last 10
against first 10 documents) and must not leak memory (server RSS trend over the run).
"""

from pathlib import Path

import pytest

from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
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
    return measured


def test_all_documents_processed(documents_run):
    assert documents_run.complete, (
        f"batch incomplete: {len(documents_run.documents)} of {documents_run.planned} documents "
        f"({documents_run.error})"
    )


def test_time_per_document_is_consistent(documents_run, llm_settings):
    per_hour = documents_run.docs_per_hour
    throughput = metric("batch.docs_per_hour")
    detail = f"{per_hour:.0f} documents/hour: {throughput.reading(per_hour)}" if per_hour else ""
    meets(metric("batch.cv_percent"), documents_run.cv_percent, llm_settings, detail=detail)


def test_no_slowdown_over_the_run(documents_run, llm_settings):
    meets(metric("batch.degradation_percent"), documents_run.degradation_percent, llm_settings)


def test_no_memory_growth(documents_run, llm_settings):
    meets(metric("batch.memory_growth_mb"), documents_run.memory_growth_mb, llm_settings)
