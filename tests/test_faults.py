"""Things going wrong in real runs: a server that dies mid-run, a model file that is not whole.

The server is the real llama-server; a fault is injected by a small wrapper script around it
(given as --llm-server-bin) or by a damaged copy of the embedded model's file.
"""

from __future__ import annotations

import copy
import re
import stat
import sys
from pathlib import Path

from pytest_llmbench.binaries import find_tool
from pytest_llmbench.registry import Registry
from tests.conftest import EMBEDDED

KILLER = """#!{python}
# The first server this wrapper starts is killed with SIGKILL (and the wrapper with it) as soon
# as its log says it started processing a request; later servers run untouched.
import os, signal, subprocess, sys
real, marker, args = {real!r}, {marker!r}, sys.argv[1:]
if os.path.exists(marker) or "--port" not in args:
    os.execv(real, [real, *args])
open(marker, "w").close()
server = subprocess.Popen([real, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
for line in server.stdout:
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
    if b"processing task" in line:
        break
server.kill()
server.wait()
os.kill(os.getpid(), signal.SIGKILL)
"""


def killer_binary(folder: Path) -> Path:
    script = folder / "bin" / "llama-server"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        KILLER.format(
            python=sys.executable,
            real=str(find_tool("llama-server")),
            marker=str(folder / "killed-once"),
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def second_embedded() -> dict:
    """Another catalog entry for the shipped file: a second cell after the first."""
    model = copy.deepcopy(EMBEDDED)
    model.update(id="smollm2-again", name="SmolLM2 again")
    model.pop("derive")
    model["files"] = {"Q4_1": model["files"]["Q4_1"]}
    return model


def test_a_server_killed_mid_run_is_one_failure_that_says_so(bench_project, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # summary lines whole, not cut at 80 columns
    bench_project.write(models=[EMBEDDED, second_embedded()])
    registry = tmp_path / "registry.sqlite3"
    result = bench_project.run(
        "-q",
        "-rfEs",
        "--llm-server-bin",
        str(killer_binary(tmp_path)),
        "--llm-registry",
        str(registry),
    )
    out = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, out
    summary = [ln for ln in result.stdout.lines if re.match(r"(FAILED|ERROR) ", ln)]
    assert len(summary) == 1, out
    assert "smollm2-135m-Q4_1" in summary[0], out
    assert "llama-server exited (signal SIGKILL) after" in summary[0], out
    # the cell's other tests skip naming the death; the next cell runs and passes
    skips = [ln for ln in result.stdout.lines if ln.startswith("SKIPPED")]
    assert skips and all("llama-server exited (signal SIGKILL)" in ln for ln in skips), out
    assert outcomes.get("passed", 0) >= 6, out  # the second cell's load and interactive tests
    assert "Traceback" not in out and "RequestFailed" not in out, out
    for section in re.split(r"^_{3,} .* _{3,}$", out, flags=re.M)[1:]:
        body = section.split("=" * 10, 1)[0].strip().splitlines()
        assert len(body) <= 10, section
    record = Registry(registry).get("smollm2-135m-Q4_1")
    assert record is not None and record.status == "degraded", record
    assert "SIGKILL" in record.one_line_notes()
    assert Registry(registry).get("smollm2-again-Q4_1").status == "compatible"


def embedded_file() -> Path:
    from pytest_llmbench.config import PackageSource
    from pytest_llmbench.models import package_file

    return package_file(PackageSource(**EMBEDDED["source"]))


LOCAL = {  # a catalog entry for a file the user put in the store by hand
    "id": "smollm2-local",
    "name": "SmolLM2 put there by hand",
    "size": "135M",
    "params_b": 0.135,
    "files": {"Q4_1": "smollm2-local.Q4_1.gguf"},
}


def test_a_truncated_file_fails_its_cell_and_a_complete_copy_then_measures(
    bench_project, tmp_path, monkeypatch
):
    from pytest_llmbench.cli import main

    monkeypatch.setenv("COLUMNS", "400")

    store = tmp_path / "models"
    target = store / "135M" / LOCAL["files"]["Q4_1"]
    target.parent.mkdir(parents=True)
    whole = embedded_file().read_bytes()
    target.write_bytes(whole[: 3 * 2**20])  # the first megabytes of a real file
    bench_project.write(models=[LOCAL], thresholds={"model_dir": str(store)})

    first = bench_project.run("-m", "load", "-q", "-rfE", subprocess=True)  # no pytester state
    assert first.ret == 1
    out = first.stdout.str()
    lines = [ln for ln in first.stdout.lines if re.match(r"(FAILED|ERROR) ", ln)]
    assert len(lines) == 1 and "not a loadable GGUF file" in lines[0], out
    assert "Warning" not in out and "warnings summary" not in out, out
    assert "attempt 2" not in out  # a damaged file is not loaded twice
    assert (
        not (store / "metadata.json").exists()
        or str(target) not in (store / "metadata.json").read_text()
    )  # never recorded
    command = re.search(r"`(llmbench models \w+ [^`]+)`", out)
    assert command is not None, out

    target.write_bytes(whole)
    args = command.group(1).split()[1:]
    assert main([*args, "--models", str(bench_project.path / "models.yaml")]) == 0

    second = bench_project.run("-m", "load", "-q")
    second.assert_outcomes(passed=3)
    assert second.ret == 0
    (cell,) = bench_project.report()["results"]
    assert cell["file"]["size_bytes"] == len(whole)


HANGING_VERSION = """#!/usr/bin/env bash
if [ "$1" = "--version" ]; then exec sleep 60; fi
exec {real} "$@"
"""


def test_a_hanging_version_probe_is_bounded_and_recorded_as_unknown(bench_project, tmp_path):
    import time

    script = tmp_path / "llama-server"
    script.write_text(HANGING_VERSION.format(real=find_tool("llama-server")))
    script.chmod(0o755)
    bench_project.write(modules=("test_load.py",))
    started = time.monotonic()
    result = bench_project.run("-m", "load", "--llm-server-bin", str(script))
    wall = time.monotonic() - started
    result.assert_outcomes(passed=3)
    metadata = bench_project.report()["metadata"]
    assert metadata["llama_server"]["version"] == "unknown"
    assert 4 <= metadata["duration_seconds"] <= wall  # the bounded probe is part of the run
    assert wall < 55  # not the 60 s the binary would hang


def test_more_workers_than_cores_warns_once_with_the_split(bench_project, monkeypatch):
    from pytest_llmbench import session_factory

    monkeypatch.setattr(session_factory, "usable_cores", lambda: 2)
    bench_project.write()
    result = bench_project.run("-n", "3", "--collect-only")
    warnings = [ln for ln in result.outlines if "usable cores" in ln]
    assert warnings == [
        "llmbench: warning: -n 3 on 2 usable cores: 1 thread(s) per server and workers share "
        "cores (gw0: core 0, gw1: core 1, gw2: core 0); their timings disturb each other, "
        "use -n 2 or fewer"
    ], result.outlines


def test_a_crashing_binary_has_an_unknown_version_not_its_last_words(tmp_path):
    from pytest_llmbench.binaries import tool_version

    script = tmp_path / "llama-server"
    script.write_text(
        "#!/usr/bin/env bash\necho 'Illegal instruction (core dumped)' >&2\nexit 132\n"
    )
    script.chmod(0o755)
    assert tool_version(script) == "unknown"
    assert tool_version(find_tool("llama-server")).startswith("version")
