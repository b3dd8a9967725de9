"""pytest-xdist: one worker per cell, one report, shared early-termination state, no leaks."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys

import psutil
import pytest

from pytest_llmbench.system import usable_cores
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
    share = max(1, usable_cores() // int(workers))  # the cores divided between the workers
    assert all(c["server"]["threads"] == share for c in cells.values())
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


def test_dist_each_is_refused_for_what_it_does(pytester):
    """--dist each does not split a cell: it runs the whole matrix on every worker."""
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --dist each runs every test on every worker, so each worker would benchmark "
         "every cell again, side by side; *drop --dist or pass --dist loadgroup"]
    )  # fmt: skip
    assert "split" not in result.stderr.str()


STATE_PROBE = """
import os, pathlib

def test_state_directory_exists_while_the_run_lasts(llm_session):
    names = sorted(p.name for p in pathlib.Path(os.environ["TMPDIR"]).glob("llmbench-state-*"))
    assert llm_session.state.directory.name in names
    assert names == sorted(
        ["llmbench-state-other-host", "llmbench-state-running", llm_session.state.directory.name]
    )
"""


def test_state_directories_go_at_the_end_of_a_run_and_after_killed_runs(pytester, monkeypatch):
    """The run's own directory is removed at its end; one whose run was killed (owner gone) is
    removed by the next run; another live run's is left alone."""
    tmp = pytester.path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owners = {
        "killed": f"{socket.gethostname()} {gone.pid}",
        "running": f"{socket.gethostname()} {os.getpid()}",
        "other-host": f"container-{os.getpid()} {gone.pid}",  # its pids are not ours to judge
    }
    for name, owner in owners.items():
        (tmp / f"llmbench-state-{name}").mkdir()
        (tmp / f"llmbench-state-{name}" / "owner.pid").write_text(owner)
    pytester.makepyfile(test_probe=STATE_PROBE)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert sorted(p.name for p in tmp.glob("llmbench-state-*")) == [
        "llmbench-state-other-host",
        "llmbench-state-running",
    ]


ORDER_CATALOG = """
models:
  - {id: first, name: First, size: 1B, params_b: 1, files: {Q4_K_M: first.gguf}}
  - {id: second, name: Second, size: 1B, params_b: 1, files: {Q4_K_M: second.gguf}}
"""

# The first cell's worker holds (before the plugin's setup skips the test) until the second
# cell has started and a little longer, so the second cell's results reach the controller first.
HOLD_FIRST = """
import os, pathlib, time

MARK = pathlib.Path(os.environ["ORDER_MARK"])


def pytest_runtest_logstart(nodeid, location):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller sees every logstart too
    if "[second-" in nodeid:
        MARK.touch()
    elif "[first-" in nodeid:
        deadline = time.monotonic() + 60
        while not MARK.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
"""


def test_report_rows_follow_the_matrix_not_the_completion_order(pytester, monkeypatch):
    pytester.makefile(".yaml", models=ORDER_CATALOG)
    pytester.makeconftest(HOLD_FIRST)
    pytester.makepyfile(test_x="def test_a(llm_cell): pass")
    monkeypatch.setenv("ORDER_MARK", str(pytester.path / "second-started"))
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--llm-output", "results", "--llm-no-registry", "-v"
    )
    result.assert_outcomes(skipped=2)  # no model files: the order is what matters here
    finished = [line for line in result.outlines if "SKIPPED" in line]
    assert "second-Q4_K_M" in finished[0]  # the completion order the report must not follow
    report = json.loads((pytester.path / "results" / "llmbench-report.json").read_text())
    assert [r["cell_id"] for r in report["results"]] == ["first-Q4_K_M", "second-Q4_K_M"]
    page = (pytester.path / "results" / "llmbench-report.html").read_text()
    table = page[page.index('id="results-table"') :]
    assert table.index(">First Q4_K_M</a>") < table.index(">Second Q4_K_M</a>")
    summary = result.stdout.str()[result.stdout.str().index("llmbench summary") :]
    assert summary.index("first-Q4_K_M") < summary.index("second-Q4_K_M")


def test_explicit_loadgroup_is_accepted(bench_project):
    bench_project.write()
    result = bench_project.run("-n", "2", "--dist", "loadgroup", "-m", "load", subprocess=True)
    result.assert_outcomes(passed=3)


# The hold test runs first (load) and last (batch) in each cell: Q4_1 waits at its start, so the
# Q4_K_M worker asks for the next group (the 1B cell) first; Q4_K_M then waits at its end until
# Q4_1 has failed on the other worker, and only then starts the 1B cell.
HOLD_MODULE = """
import os, time, pytest

@pytest.mark.load
def test_hold_first(llm_cell):
    if llm_cell.id == "smollm2-135m-Q4_1":
        time.sleep(8)

@pytest.mark.batch
def test_hold_last(llm_cell):
    if llm_cell.id == "smollm2-135m-Q4_K_M":
        time.sleep(25)
"""


def worker_of(result: pytest.RunResult, test_id: str) -> str:
    """The [gwN] that reported a test's outcome in -v output."""
    (line,) = [ln for ln in result.outlines if ln.startswith("[gw") and test_id in ln]
    return line.split("]", 1)[0] + "]"


def test_failure_on_one_worker_skips_the_larger_model_on_another(bench_project):
    """Early-termination state is shared: a failure on gw1 skips a cell that gw0 starts later."""
    larger = copy.deepcopy(EMBEDDED)
    larger.update(id="smollm2-as-1b", name="Same file, declared 1B", size="1B", params_b=1.0)
    del larger["derive"]
    larger["files"] = {"Q4_1": EMBEDDED["files"]["Q4_1"]}
    bench_project.write(
        models=[EMBEDDED, larger],
        quants=("Q4_K_M", "Q4_1"),
        thresholds={"thresholds": {"interactive": {"min_tokens_per_sec": 100000}}},
    )
    (bench_project.path / "bench" / "test_hold.py").write_text(HOLD_MODULE)
    result = bench_project.run(
        "-n", "2", "-v", "-rs", "-m", "load or interactive or batch", subprocess=True
    )
    failed_on = worker_of(result, "test_streaming_speed[smollm2-135m-Q4_1]")
    skipped_on = worker_of(result, "test_streaming_speed[smollm2-as-1b-Q4_1]")
    assert failed_on != skipped_on, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*a smaller model failed at this quantization: smollm2-135m-Q4_1*"]
    )
    cells = {c["cell_id"]: c for c in bench_project.report()["results"]}
    assert cells["smollm2-as-1b-Q4_1"]["status"] == "skipped"


STRESS = {"stress": {"sample_interval": 1, "max_tps_drop": 1000, "max_temperature": 1000}}


def test_stress_under_xdist_runs_once_on_the_last_passing_cell(bench_project):
    bench_project.write(
        quants=("Q4_1", "Q8_0", "Q4_K_M"),
        modules=("test_interactive.py", "test_stress.py"),
        thresholds={"thresholds": STRESS},
    )
    result = bench_project.run(
        "-n",
        "2",
        "-v",
        "-rs",
        "-m",
        "interactive or stress",
        "--llm-stress-duration",
        "3",
        subprocess=True,
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    order = ["smollm2-135m-Q4_K_M", "smollm2-135m-Q8_0", "smollm2-135m-Q4_1"]  # matrix order
    cells = {c["cell_id"]: c for c in bench_project.report()["results"]}
    stressed = [c for c in order if cells[c]["profiles"].get("stress", {}).get("metrics")]
    assert [cells[c]["profiles"]["stress"]["status"] for c in order[:2]] == ["skipped"] * 2
    assert stressed == [order[-1]]
    metrics = cells[order[-1]]["profiles"]["stress"]["metrics"]
    assert metrics["chosen_because"] == "the last configuration that passed the earlier profiles"
    assert metrics["tokens_generated"] > 0
    result.stdout.fnmatch_lines(
        [f"*stress runs one configuration: {order[-1]} (the last configuration that passed*"]
    )
    stress_workers = {
        line.split("]", 1)[0]
        for line in result.outlines
        if line.startswith("[gw") and "test_stress.py" in line
    }
    assert len(stress_workers) == 1, stress_workers
