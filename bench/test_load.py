"""Load profile: can this machine load the model, how long does it take, what does it cost?

The plugin starts each cell's llama-server before its first test; this module states what a
successful load means.  A server that cannot start fails here once with its own error, and the
cell's other tests are skipped with "load failed: …".
"""

import pytest

from pytest_llmbench.expect import meets
from pytest_llmbench.metric_table import metric

pytestmark = pytest.mark.load


def test_server_loads(llm_run, llm_results, llm_cell):
    if llm_run.load_error:
        pytest.fail(f"load failed: {llm_run.load_error}", pytrace=False)
    server = llm_run.server
    rss = server.rss_bytes()
    size = llm_run.model_path.stat().st_size if llm_run.model_path else None
    llm_results.record(
        llm_cell,
        "load",
        {
            "load_seconds": server.load_seconds,
            "load_measured": not server.external,
            "rss_after_load_mb": round(rss / 2**20, 1) if rss else None,
            "file_size_gb": round(size / 1e9, 3) if size else None,
        },
    )


def test_load_time_within_limit(llm_server, llm_settings):
    if llm_server.external:
        pytest.skip("external server (--llm-server-url): load time not measured")
    meets(metric("load.load_seconds"), llm_server.load_seconds, llm_settings)


def test_model_metadata_readable(llm_run, llm_results, llm_cell, llm_server):
    if llm_server.external:
        pytest.skip("external server (--llm-server-url): its GGUF file is not on this machine")
    info = llm_run.gguf
    assert info is not None, "GGUF metadata could not be read (see the JSON report's gguf.error)"
    assert info.tensor_count > 0, "the GGUF file declares no tensors"
    llm_results.record(
        llm_cell,
        "load",
        {
            "architecture": info.architecture,
            "parameter_count": info.parameter_count,
            "tensor_count": info.tensor_count,
            "context_length": info.context_length,
            "file_type": info.file_type,
            "license": info.license,
        },
    )
