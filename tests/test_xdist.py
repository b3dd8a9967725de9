"""pytest-xdist: one worker per cell, one report, shared early-termination state, no leaks."""

from __future__ import annotations

import copy

import psutil
import pytest

from tests.conftest import EMBEDDED


def llama_servers() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "llama-server"]


@pytest.mark.parametrize("workers", ["2", "4"])
def test_parallel_run_writes_one_report_with_every_cell(bench_project, workers):
    before = {p.pid for p in llama_servers()}
    bench_project.write(quants=("Q4_1", "Q8_0", "Q4_K_M"))
    result = bench_project.run("-n", workers, "-m", "interactive", "-v", subprocess=True)
    result.assert_outcomes(passed=9)
    # every test of a cell ran on the same worker
    placement: dict[str, set[str]] = {}
    for line in result.outlines:
        if line.startswith("[gw") and "PASSED" in line:
            cell = line.split("[smollm2-135m-", 1)[1].split("]", 1)[0]
            placement.setdefault(cell, set()).add(line.split("]", 1)[0])
    assert set(placement) == {"Q4_1", "Q8_0", "Q4_K_M"}
    assert all(len(w) == 1 for w in placement.values()), placement
    report = bench_project.report()
    cells = {c["cell_id"]: c for c in report["results"]}
    assert set(cells) == {"smollm2-135m-Q4_1", "smollm2-135m-Q8_0", "smollm2-135m-Q4_K_M"}
    assert all(c["status"] == "passed" for c in cells.values())
    assert all(
        c["profiles"]["interactive"]["metrics"]["tokens_per_second"] > 0 for c in cells.values()
    )
    assert report["metadata"]["config"]["workers"] == int(workers)
    assert all(c["server"]["threads"] == 1 for c in cells.values())  # 2 cores shared by ≥ 2 workers
    assert "workers ran servers side by side" in result.stdout.str()
    assert "Address already in use" not in result.stdout.str()
    assert {p.pid for p in llama_servers()} <= before


def test_explicit_dist_that_splits_cells_is_a_usage_error(bench_project):
    bench_project.write()
    result = bench_project.run("-n", "2", "--dist", "load", subprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --dist load would split one cell's tests across workers*--dist loadgroup*"]
    )


def test_explicit_loadgroup_is_accepted(bench_project):
    bench_project.write()
    result = bench_project.run("-n", "2", "--dist", "loadgroup", "-m", "load", subprocess=True)
    result.assert_outcomes(passed=3)


def test_failure_on_one_worker_skips_the_larger_model_on_another(bench_project):
    """Early-termination state is shared: the larger model waits for nothing but the shared store."""
    larger = copy.deepcopy(EMBEDDED)
    larger.update(id="smollm2-as-1b", name="Same file, declared 1B", size="1B", params_b=1.0)
    bench_project.write(
        models=[EMBEDDED, larger],
        thresholds={"thresholds": {"interactive": {"min_tokens_per_sec": 100000}}},
    )
    # one worker: cells run in order on it, but through the shared state directory like any worker
    result = bench_project.run("-n", "1", "-m", "interactive", "-rs", subprocess=True)
    result.assert_outcomes(passed=2, failed=1, skipped=3)
    result.stdout.fnmatch_lines(
        ["*a smaller model failed at this quantization: smollm2-135m-Q4_1*"]
    )
