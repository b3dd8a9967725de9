"""Embedding profile: does the model give sound vectors, fast enough for search?

A server in embedding mode (``--embeddings``, mean pooling) embeds a fixed set of code and text
snippets (``bench/data/embedding_snippets.json``).  The vectors must have the model's embedding
length, unit norm and values in [-1, 1]; similarities must be in range and related snippets must
score above unrelated ones.  Latency per embedding, for one text per request and for batches of
five, is the median over ``thresholds.embedding.repetitions`` requests after a warm-up.
"""

from pathlib import Path

import pytest

from pytest_llmbench.client import LlamaClient
from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric
from pytest_llmbench.workloads import embedding

pytestmark = pytest.mark.embedding

SNIPPETS = Path(__file__).parent / "data" / "embedding_snippets.json"


@pytest.fixture(scope="session")
def embedded(llm_session, llm_run, llm_cell, llm_settings, llm_results):
    """The snippets embedded by the cell's embedding server, measured once."""
    server = llm_session.profile_server(llm_cell, "embedding", extra_args=embedding.SERVER_ARGS)
    limits = llm_settings.thresholds.embedding
    measured = embedding.measure(
        LlamaClient(server.url, api_key=server.api_key),
        server.pid,
        embedding.load_snippets(SNIPPETS),
        llm_run.gguf.embedding_length if llm_run.gguf else None,
        limits.repetitions,
    )
    llm_results.record(llm_cell, "embedding", measured.metrics())
    return measured


def test_embeddings_returned(embedded):
    assert embedded.error is None, f"the embedding server failed: {embedded.error}"


def test_dimension_matches_model(embedded):
    problems = embedding.dimension_problems(embedded.vectors, embedded.expected_dimension)
    assert not problems, (
        f"expected {embedded.expected_dimension} dimensions (GGUF embedding_length): "
        + "; ".join(problems)
    )


def test_vectors_have_unit_norm(embedded):
    problems = embedding.norm_problems(embedded.vectors)
    assert not problems, "L2 norm is not 1 (± 0.001): " + "; ".join(problems)


def test_values_within_unit_range(embedded):
    problems = embedding.range_problems(embedded.vectors)
    assert not problems, "values outside [-1, 1]: " + "; ".join(problems)


def test_similarities_within_range(embedded):
    problems = embedding.similarity_problems(embedded.vectors)
    assert not problems, "cosine similarity outside [-1, 1]: " + "; ".join(problems)


def test_related_snippets_score_higher(embedded):
    problems = embedding.misordered_triplets(embedded.vectors, embedded.triplets)
    assert not problems, (
        "related snippets do not score above unrelated ones, so search results would be "
        "ranked wrongly: " + "; ".join(problems)
    )


def test_single_text_latency(embedded, llm_settings):
    meets(metric("embedding.latency_ms"), embedded.latency_ms, llm_settings, embedded.latency)


def test_batch_latency(embedded, llm_settings):
    meets(
        metric("embedding.batch_latency_ms"),
        embedded.batch_latency_ms,
        llm_settings,
        embedded.batch_latency,
        what=f"embedding latency per text, {embedding.BATCH_SIZE} per request",
    )
