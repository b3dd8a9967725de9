"""--llm-server-url: benchmark a llama-server started by hand; --llm-ci selects CI models."""

from __future__ import annotations

import copy
import json

import pytest

from pytest_llmbench.binaries import find_tool
from pytest_llmbench.config import PackageSource
from pytest_llmbench.models import package_file
from pytest_llmbench.server import LlamaServer, ServerError, ServerSpec, get_json, server_args
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


KEY = "llmbench-test-key-7d3f"


@pytest.fixture
def keyed_server(tmp_path):
    """A "remote" server as someone else would run it: two slots and an API key."""
    model = package_file(PackageSource(**EMBEDDED["source"]))
    args = server_args(2048, 2, 0)
    spec = ServerSpec(find_tool("llama-server"), model, args, threads=2, api_key=KEY)
    with LlamaServer(spec, tmp_path / "keyed.log") as server:
        yield server


def test_remote_run_reports_the_servers_facts_and_uses_its_api_key(
    bench_project, keyed_server, monkeypatch
):
    with pytest.raises(ServerError, match="HTTP 401"):
        get_json(keyed_server.url, "/props")  # the key is required
    bench_project.write()
    refused = bench_project.run("--llm-server-url", keyed_server.url, subprocess=True)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*the server wants an API key: pass its key with --llm-api-key*"])

    monkeypatch.setenv("LLMBENCH_API_KEY", KEY)
    result = bench_project.run("--llm-server-url", keyed_server.url)
    result.assert_outcomes(passed=4, skipped=2)
    report = bench_project.report()
    (cell,) = report["results"]
    props = get_json(keyed_server.url, "/props", api_key=KEY)
    server = cell["server"]
    assert server["model_path"] == props["model_path"]
    assert (server["n_ctx"], server["slots"], server["ctx_size"]) == (1024, 2, 2048)
    assert server["build"] == props["build_info"]
    assert report["metadata"]["llama_server"] == {
        "url": keyed_server.url,
        "version": props["build_info"],
        "model_path": props["model_path"],
        "n_ctx": 1024,
        "slots": 2,
    }  # nothing of the local binary
    assert report["metadata"]["config"]["threads"] is None  # nor of this machine's CPU split
    assert cell["derived"]["context_tokens"] == 1024  # the server's, not llama_cpp's 2048
    assert not (bench_project.path / ".llmbench").exists()  # no registry written
    assert KEY not in json.dumps(report) and KEY not in result.stdout.str()

    # the same profile on a local server started with the key (--llm-api-key this time):
    # it passes, and records the same fields as the remote cell
    monkeypatch.delenv("LLMBENCH_API_KEY")
    bench_project.run("--llm-api-key", KEY).assert_outcomes(passed=6)
    local = bench_project.report()["results"][0]
    assert KEY not in " ".join(local["server"]["command"])
    for section in ("interactive",):
        assert set(local["profiles"][section]["metrics"]) == set(
            cell["profiles"][section]["metrics"]
        )


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
