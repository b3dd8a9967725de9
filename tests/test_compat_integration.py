"""The compatibility registry and config variants in real runs with the real llama-server.

Wrapper scripts around the real binary make a start crash (while a marker file exists) or
fail once; the ``llmbench`` command is run as a user would, against the same files.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_llmbench.binaries import find_tool
from pytest_llmbench.registry import Registry
from tests.conftest import EMBEDDED

CELL = "smollm2-135m-Q4_1"
# A crash of the server, not of the file (a damaged file is not retried nor held against the cell)
CRASH = "llama_model_load: error loading model: GGML_ASSERT(ggml_nbytes(src0) <= INT_MAX) failed"


def wrapper(directory: Path, name: str, prelude: str) -> Path:
    """A llama-server stand-in: ``prelude`` (bash) may fail; otherwise the real server runs.
    Every invocation is logged in ``<name>.starts`` (the plugin also asks for --version)."""
    script = directory / name
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> "{directory / name}.starts"\n'
        f"{prelude}\n"
        f'exec "{find_tool("llama-server")}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def starts(script: Path) -> int:
    counter = script.with_name(script.name + ".starts")
    lines = counter.read_text().splitlines() if counter.exists() else []
    return sum("--model" in line for line in lines)


def llmbench(project: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``llmbench`` command on the project's catalog and registry."""
    paths = ["--models", str(project.path / "models.yaml"), "--registry", str(registry_of(project))]
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmbench.cli", *args, *paths],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def registry_of(project: Any) -> Path:
    return project.path / "state" / "registry.sqlite3"


def run(project: Any, binary: Path, *args: str):  # type: ignore[no-untyped-def]
    return project.run(
        "-m", "load", "-rs", "--llm-server-bin", str(binary),
        "--llm-registry", str(registry_of(project)), *args,
    )  # fmt: skip


def test_crash_is_recorded_skipped_next_time_and_reset_runs_it_again(bench_project, tmp_path):  # type: ignore[no-untyped-def]
    marker = tmp_path / "broken"
    marker.touch()
    server = wrapper(
        tmp_path, "crashing", f'if [ -e "{marker}" ]; then echo "{CRASH}" >&2; exit 1; fi'
    )
    bench_project.write(modules=("test_load.py",))

    first = run(bench_project, server)
    first.assert_outcomes(failed=1, skipped=2)
    assert starts(server) == 2  # the default load_retries: 1
    record = Registry(registry_of(bench_project)).get(CELL)
    assert record is not None and record.status == "incompatible"
    assert "load failed (2 attempts): llama-server exit code 1 during startup" in record.notes
    assert CRASH in record.notes
    (cell,) = bench_project.report()["results"]
    assert cell["compat"]["status"] == "incompatible"
    assert CRASH in cell["compat"]["notes"]

    second = run(bench_project, server)
    second.assert_outcomes(skipped=3)
    second.stdout.fnmatch_lines([f"SKIPPED*registry: incompatible: *{CRASH}*compat reset {CELL}*"])
    assert starts(server) == 2  # not even started

    retried = run(bench_project, server, "--llm-retry-incompatible")
    retried.assert_outcomes(failed=1, skipped=2)
    assert starts(server) == 4

    marker.unlink()  # the crash is fixed; the registry still says incompatible
    reset = llmbench(bench_project, "compat", "reset", CELL)
    assert reset.returncode == 0, reset.stderr
    assert f"{CELL}: unknown (was incompatible)" in reset.stdout

    third = run(bench_project, server)
    third.assert_outcomes(passed=3)
    record = Registry(registry_of(bench_project)).get(CELL)
    assert record is not None
    assert (record.status, record.status_source) == ("compatible", "run")
    assert CRASH in record.notes  # history stays
    shown = llmbench(bench_project, "compat", "show", CELL)
    assert "status:       compatible (set by run)" in shown.stdout


def test_a_start_that_fails_once_then_loads_is_degraded(bench_project, tmp_path):  # type: ignore[no-untyped-def]
    marker = tmp_path / "failed-once"
    server = wrapper(
        tmp_path,
        "flaky",
        f'if [ ! -e "{marker}" ]; then touch "{marker}"; '
        'echo "ggml_vulkan: error: device lost" >&2; exit 1; fi',
    )
    bench_project.write(modules=("test_load.py",))
    result = run(bench_project, server)
    result.assert_outcomes(passed=3)
    assert starts(server) == 2
    record = Registry(registry_of(bench_project)).get(CELL)
    assert record is not None and record.status == "degraded"
    assert "loaded on attempt 2 of 2 after: llama-server exit code 1 during startup" in record.notes
    assert "device lost" in record.notes
    (cell,) = bench_project.report()["results"]
    assert cell["compat"]["status"] == "degraded"
    assert cell["server"]["load_attempts"] == 2


def test_compat_set_rejects_bad_json_and_statuses_in_one_line(bench_project):  # type: ignore[no-untyped-def]
    bench_project.write()
    bad_json = llmbench(bench_project, "compat", "set", CELL, "--load-config", '{"a":')
    bad_status = llmbench(bench_project, "compat", "set", CELL, "--status", "broken")
    testing = llmbench(bench_project, "compat", "set", CELL, "--status", "testing")
    unknown = llmbench(bench_project, "compat", "show", "smollm2-135m-Q9_9")
    for result in (bad_json, bad_status, testing, unknown):
        assert result.returncode == 4
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stdout == ""
    assert bad_json.stderr == (
        "llmbench: error: --load-config '{\"a\":': invalid JSON: Expecting value at line 1 column 6\n"
    )
    assert "--status 'broken' is not a status you can set; expected one of unknown, compatible" in (
        bad_status.stderr
    )
    assert testing.stderr == (
        "llmbench: error: --status 'testing' is not a status you can set (the plugin's own mark "
        "while a cell runs); expected one of unknown, compatible, incompatible, degraded\n"
    )
    assert not (bench_project.path / ".llmbench").exists()  # nothing was written
    assert "unknown cell id 'smollm2-135m-Q9_9'" in unknown.stderr


def test_variants_run_as_cells_and_export_prints_the_servers_arguments(bench_project):  # type: ignore[no-untyped-def]
    model = {
        **EMBEDDED,
        "variants": {
            "fa-on": {"quants": ["Q4_1"], "options": {"flash_attn": "on"}},
            "kv-q8": {
                "quants": ["Q4_1"],
                "options": {
                    "cache_type_k": "q8_0",
                    "cache_type_v": "q8_0",
                    "ctx_size": {"mode": "inherit"},
                    "batch_size": {"mode": "inactive"},
                },
            },
        },
    }
    bench_project.write(models=[model], modules=("test_load.py",))
    result = bench_project.run(
        "-m", "load", "-v", "--llm-registry", str(registry_of(bench_project))
    )  # fmt: skip
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(
        [
            f"*test_server_loads?{CELL}? PASSED*",
            f"*test_server_loads?{CELL}-fa-on? PASSED*",
            f"*test_server_loads?{CELL}-kv-q8? PASSED*",
        ]
    )
    cells = {c["cell_id"]: c for c in bench_project.report()["results"]}
    assert list(cells) == [CELL, f"{CELL}-fa-on", f"{CELL}-kv-q8"]
    for variant, flags in (("fa-on", ["--flash-attn", "on"]), ("kv-q8", ["--cache-type-k"])):
        cell = cells[f"{CELL}-{variant}"]
        command = cell["server"]["command"]
        assert command[7:] == cell["server"]["args"]  # binary --model M --host H --port P, args
        exported = llmbench(bench_project, "variants", "export", "smollm2-135m", variant)
        assert exported.returncode == 0, exported.stderr
        assert json.loads(exported.stdout) == cell["server"]["args"]
        assert " ".join(flags) in " ".join(cell["server"]["args"])
        log = Path(cell["server"]["log"]).read_text().splitlines()[0]
        assert log == "$ " + " ".join(command)
        assert cell["compat"]["status"] == "compatible"
        assert cell["variant"] == variant
    settings = {s["key"]: s for s in cells[f"{CELL}-kv-q8"]["compat"]["settings"]}
    assert settings["cache_type_k"]["state"] == "override"
    assert settings["ctx_size"]["state"] == "inherit"
    assert settings["batch_size"]["state"] == "inactive"
    assert "--flash-attn" not in cells[CELL]["server"]["args"]
    html = (bench_project.path / "results" / "llmbench-report.html").read_text()
    assert "Compatibility: <strong>compatible</strong>" in html
    assert "<td>cache_type_k</td><td>q8_0</td><td>override</td><td>models.yaml</td>" in html
    csv_text = (bench_project.path / "results" / "llmbench-report.csv").read_text()
    assert "compat_status" in csv_text.splitlines()[0]
    shown = llmbench(bench_project, "variants", "show", "smollm2-135m", "kv-q8")
    assert shown.returncode == 0, shown.stderr
    assert any(
        line.split()[:4] == ["cache_type_k", "q8_0", "override", "models.yaml"]
        for line in shown.stdout.splitlines()
    )
