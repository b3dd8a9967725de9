"""Checkpoint and resume in real runs: a real llama-server per cell, two small cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from pytest_llmbench import checkpoint as cp
from tests.processes import ctrl_c, llama_servers_of, still_running

Q8, Q4 = "smollm2-135m-Q8_0", "smollm2-135m-Q4_1"  # matrix order: Q8_0 first
SELECT = ("-m", "load or interactive")

# Holds the cell named by $LLMBENCH_TEST_HOLD (its server up) so Ctrl+C lands inside it.
HOLD_MODULE = """
import os, time, pytest

@pytest.mark.interactive
def test_hold(llm_cell, llm_server):
    if os.environ.get("LLMBENCH_TEST_HOLD") == llm_cell.id:
        time.sleep(120)
"""


def serving(pid: int, quant: str) -> bool:
    """Whether a llama-server child of ``pid`` serves the ``quant`` file now."""
    for server in llama_servers_of(pid):
        try:
            if any(quant in arg for arg in server.cmdline()):
                return True
        except psutil.Error:  # exited (or a zombie) between listing and asking
            continue
    return False


def read_checkpoint(project) -> dict:
    return json.loads((project.path / "results" / cp.FILENAME).read_text())


def test_checkpoint_lists_finished_cells_and_a_complete_one_only_rerenders(bench_project):
    bench_project.write(quants=("Q4_1", "Q8_0"), modules=("test_interactive.py",))
    result = bench_project.run("-m", "interactive")
    result.assert_outcomes(passed=6)
    data = read_checkpoint(bench_project)
    assert data["config_hash"] == cp.config_hash(data["config"])
    assert data["config"]["cells"] == [Q8, Q4]
    assert data["config"]["settings"]["thresholds"]["interactive"]["n_predict"] == 32
    assert data["complete"] is True and data["remaining"] == []
    assert list(data["completed"]) == [Q8, Q4]
    for cell_id, entry in data["completed"].items():
        record = entry["record"]
        assert record["cell_id"] == cell_id
        assert record["profiles"]["interactive"]["metrics"]["tokens_per_second"] > 0
        assert {t["outcome"] for t in record["tests"].values()} == {"passed"}
    assert [o["cell_id"] for o in data["observations"]] == [Q8, Q4]
    result.stdout.fnmatch_lines(
        [f"checkpoint: *{cp.FILENAME} (2 cells done, 0 remaining; complete)"]
    )

    again = bench_project.run("-m", "interactive", "--llm-resume", "-rs")
    again.assert_outcomes(skipped=6)
    again.stdout.fnmatch_lines(
        [
            "llmbench: resuming: 2 cells carried from the checkpoint, nothing left to run*",
            f"SKIPPED*resumed: completed in the checkpointed run of {data['run']}",
        ]
    )
    assert "starting llama-server" not in again.stdout.str()
    report = bench_project.report()
    assert [r["cell_id"] for r in report["results"]] == [Q8, Q4]
    for cell in report["results"]:
        assert cell["resumed"] is True and cell["status"] == "passed"
        carried = data["completed"][cell["cell_id"]]["record"]["profiles"]["interactive"]
        assert cell["profiles"]["interactive"]["metrics"] == carried["metrics"]


def test_ctrl_c_checkpoints_the_finished_cell_and_resume_runs_only_the_rest(bench_project):
    bench_project.write(quants=("Q4_1", "Q8_0"))
    (bench_project.path / "bench" / "test_hold.py").write_text(HOLD_MODULE)
    out = bench_project.path / "results"
    command = [sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider"]
    command += ["-p", "no:randomly", "--llm-output", str(out), *SELECT]
    proc = subprocess.Popen(
        command,
        cwd=bench_project.path,
        env={**os.environ, "LLMBENCH_TEST_HOLD": Q4},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        # the first cell is checkpointed and the second one's server is up
        while not ((out / cp.FILENAME).exists() and serving(proc.pid, "Q4_1")):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "the second cell never started"
            time.sleep(0.1)
        time.sleep(0.5)
        servers = llama_servers_of(proc.pid)
        output = ctrl_c(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = output.decode()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert servers and not still_running(servers), "llama-server survived Ctrl+C"

    partial = bench_project.report()  # valid JSON: written atomically after Ctrl+C
    assert partial["metadata"]["exit_status"] == pytest.ExitCode.INTERRUPTED
    by_id = {r["cell_id"]: r for r in partial["results"]}
    assert by_id[Q8]["status"] == "passed"
    assert Q4 in by_id and by_id[Q4].get("resumed") is None
    data = read_checkpoint(bench_project)
    assert list(data["completed"]) == [Q8] and data["remaining"] == [Q4]
    assert data["complete"] is False
    q8_log = out / "logs" / f"{Q8}.log"
    q8_log_written = q8_log.stat().st_mtime_ns

    resumed = bench_project.run(*SELECT, "--llm-resume", "-rs")
    text = resumed.stdout.str()
    assert resumed.ret == 0, text
    resumed.stdout.fnmatch_lines(
        [f"SKIPPED ?7?*resumed: completed in the checkpointed run of {data['run']}"]
    )
    assert f"starting llama-server for {Q4}" in text
    assert f"starting llama-server for {Q8}" not in text
    assert q8_log.stat().st_mtime_ns == q8_log_written  # no server was started for it
    report = bench_project.report()
    by_id = {r["cell_id"]: r for r in report["results"]}
    assert list(by_id) == [Q8, Q4]
    assert by_id[Q8]["resumed"] is True and by_id[Q8]["resumed_from"] == data["run"]
    assert by_id[Q8]["status"] == "passed"
    assert (
        by_id[Q8]["profiles"]["interactive"]["metrics"]
        == data["completed"][Q8]["record"]["profiles"]["interactive"]["metrics"]
    )
    assert "resumed" not in by_id[Q4] and by_id[Q4]["status"] == "passed"
    assert by_id[Q4]["profiles"]["interactive"]["metrics"]["tokens_per_second"] > 0
    final = read_checkpoint(bench_project)
    assert final["complete"] is True and list(final["completed"]) == [Q8, Q4]
    assert final["completed"][Q8]["run"] == data["run"]  # it still names the run that did it


def test_a_resumed_run_exits_as_the_whole_run_would_have(bench_project):
    bench_project.write(
        modules=("test_interactive.py",),
        thresholds={"thresholds": {"interactive": {"min_tokens_per_sec": 100000}}},
    )
    first = bench_project.run("-m", "interactive")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    first.assert_outcomes(passed=2, failed=1)

    again = bench_project.run("-m", "interactive", "--llm-resume")
    again.assert_outcomes(skipped=3)  # nothing ran, but the carried failure still counts
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    assert bench_project.report()["metadata"]["exit_status"] == pytest.ExitCode.TESTS_FAILED


def test_resume_with_changed_thresholds_is_one_line_exit_4(bench_project):
    bench_project.write()
    first = bench_project.run("-m", "load")
    first.assert_outcomes(passed=3)
    assert read_checkpoint(bench_project)["complete"] is True
    bench_project.write(thresholds={"thresholds": {"interactive": {"n_predict": 64}}})
    result = bench_project.run("-m", "load", "--llm-resume", subprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert "the checkpoint was made with a different configuration" in errors[0]
    assert "settings.thresholds.interactive.n_predict (32 → 64)" in errors[0]
    assert "delete the file or drop --llm-resume" in errors[0]
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_resume_without_a_checkpoint_says_how_to_start(bench_project):
    bench_project.write()
    result = bench_project.run("--llm-resume")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --llm-resume: no checkpoint at *run without --llm-resume*"]
    )


def test_under_xdist_the_controller_checkpoints_every_workers_cells(bench_project):
    bench_project.write(quants=("Q4_1", "Q8_0"))
    result = bench_project.run("-n", "2", "-m", "load", subprocess=True)
    result.assert_outcomes(passed=6)
    data = read_checkpoint(bench_project)
    assert data["complete"] is True and sorted(data["completed"]) == sorted([Q8, Q4])
    for entry in data["completed"].values():  # the workers' measurements, not only outcomes
        assert entry["record"]["server"]["load_seconds"] > 0
    logs = bench_project.path / "results" / "logs"
    written = {log.name: log.stat().st_mtime_ns for log in logs.glob("*.log")}
    again = bench_project.run("-n", "2", "-m", "load", "--llm-resume", "-rs", subprocess=True)
    again.assert_outcomes(skipped=6)
    again.stdout.fnmatch_lines(["*resumed: completed in the checkpointed run of*"])
    assert {log.name: log.stat().st_mtime_ns for log in logs.glob("*.log")} == written
    report = bench_project.report()
    assert sorted(r["cell_id"] for r in report["results"]) == sorted([Q8, Q4])
    assert all(r["resumed"] is True and r["status"] == "passed" for r in report["results"])
