"""--llm-server-url: benchmark a llama-server started by hand; --llm-ci selects CI models."""

from __future__ import annotations

import copy

import pytest

from pytest_llmbench.binaries import find_tool
from pytest_llmbench.config import PackageSource
from pytest_llmbench.models import package_file
from pytest_llmbench.server import LlamaServer, ServerSpec, server_args
from tests.conftest import EMBEDDED


@pytest.fixture
def hand_started_server(tmp_path):
    model = package_file(PackageSource(**EMBEDDED["source"]))
    spec = ServerSpec(find_tool("llama-server"), model, server_args(2048, 1, 0), threads=2)
    with LlamaServer(spec, tmp_path / "by-hand.log") as server:
        yield server


def test_interactive_profile_against_a_server_started_by_hand(bench_project, hand_started_server):
    bench_project.write()
    result = bench_project.run("--llm-server-url", hand_started_server.url, "-rs")
    result.assert_outcomes(passed=4, skipped=2)
    result.stdout.fnmatch_lines(["*external server (--llm-server-url): load time not measured*"])
    assert hand_started_server.is_running()  # never stopped by the plugin
    report = bench_project.report()
    (cell,) = report["results"]
    assert cell["cell_id"] == "smollm2-135m-Q4_1"  # identified through /props against the catalog
    assert cell["server"]["external"] is True
    assert cell["server"]["url"] == hand_started_server.url
    assert cell["profiles"]["load"]["metrics"]["load_measured"] is False
    assert cell["profiles"]["interactive"]["metrics"]["tokens_per_second"] > 0
    assert report["metadata"]["config"]["external_server"]["quant"] == "Q4_1"


def test_unknown_model_gets_a_cell_named_after_its_file(bench_project, hand_started_server):
    other = copy.deepcopy(EMBEDDED)
    other.update(id="other", files={"Q4_1": "something-else.gguf"})
    other.pop("derive")
    bench_project.write(models=[other])
    result = bench_project.run("--llm-server-url", hand_started_server.url, "--collect-only", "-q")
    assert "test_server_loads[smollm2-135m-instruct.q4_1-Q4_1]" in result.stdout.str()


def test_unreachable_url_is_a_usage_error(bench_project):
    bench_project.write()
    result = bench_project.run("--llm-server-url", "http://127.0.0.1:9", subprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --llm-server-url: url = 'http://127.0.0.1:9': no llama-server answers there*"]
    )


CI_CATALOG = """
models:
  - {id: big, name: Big, size: 7B, params_b: 7, ci_suitable: false, files: {Q4_K_M: big.gguf}}
  - {id: mid, name: Mid, size: 1B, params_b: 1.5, ci_suitable: true, files: {Q4_K_M: mid.gguf}}
  - {id: tiny, name: Tiny, size: 135M, params_b: 0.135, ci_suitable: true, files: {Q4_K_M: tiny.gguf}}
"""


def test_llm_ci_selects_ci_suitable_models_smallest_first(pytester, monkeypatch):
    pytester.makefile(".yaml", models=CI_CATALOG)
    pytester.makepyfile(test_x="def test_a(llm_cell): pass")
    result = pytester.runpytest("--llm-ci", "--collect-only", "-q")
    assert [line for line in result.outlines if "::" in line] == [
        "test_x.py::test_a[tiny-Q4_K_M]",
        "test_x.py::test_a[mid-Q4_K_M]",
    ]
    monkeypatch.setenv("LLMBENCH_MODEL", "mid")
    result = pytester.runpytest("--llm-ci", "--collect-only", "-q")
    assert [line for line in result.outlines if "::" in line] == ["test_x.py::test_a[mid-Q4_K_M]"]
