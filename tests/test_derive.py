"""Derived quantizations: ``llmbench models derive`` runs the real llama-quantize once per file.

llama-quantize is reached through a small wrapper script that logs its arguments before running
the real program, so the test sees how often it ran and where it wrote.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest
import yaml

from pytest_llmbench.binaries import ToolNotFound, find_tool
from pytest_llmbench.cli import main as llmbench
from pytest_llmbench.config import PackageSource
from pytest_llmbench.models import package_file
from tests.conftest import EMBEDDED


@pytest.fixture
def quantize_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A llama-quantize beside a (named, absent) llama-server that logs each call's arguments."""
    try:
        real = find_tool("llama-quantize")
    except ToolNotFound as exc:
        pytest.skip(f"llama-quantize is not built: {exc}")
    tools = tmp_path / "tools"
    tools.mkdir()
    log = tools / "calls.log"
    wrapper = tools / "llama-quantize"
    wrapper.write_text(
        f'#!/usr/bin/env bash\necho "$*" >> {shlex.quote(str(log))}\n'
        f'exec {shlex.quote(str(real))} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("LLMBENCH_SERVER_BIN", str(tools / "llama-server"))
    return log


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"models": [EMBEDDED]}))
    (tmp_path / "thresholds.yaml").write_text(yaml.safe_dump({"model_dir": "store"}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_derive_writes_atomically_records_provenance_and_runs_once(
    project: Path, quantize_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = project / "store" / EMBEDDED["size"] / EMBEDDED["files"]["Q8_0"]
    base = package_file(PackageSource(**EMBEDDED["source"]))

    assert llmbench(["models", "derive", "smollm2-135m", "--quant", "Q8_0"]) == 0

    (argv,) = calls(quantize_log)
    assert argv == ["--allow-requantize", str(base), argv[2], "Q8_0"]
    written = Path(argv[2])  # llama-quantize wrote a hidden partial file, renamed when complete
    assert written.parent == target.parent and written.name.startswith(".")
    assert not written.exists() and target.is_file()
    assert f"ok     smollm2-135m-Q8_0: {target}" in capsys.readouterr().out

    entry = json.loads((project / "store" / "metadata.json").read_text())["files"][str(target)]
    assert entry["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert entry["derived_from"] == str(base)
    assert entry["requantized"] is True
    assert (entry["source"], entry["quant"], entry["size_bytes"]) == (
        "derived",
        "Q8_0",
        target.stat().st_size,
    )
    assert entry["mtime_ns"] == target.stat().st_mtime_ns and entry["family"] == "llama"

    assert llmbench(["models", "derive", "smollm2-135m", "--quant", "Q8_0"]) == 0
    assert len(calls(quantize_log)) == 1  # found, verified, not made again
    assert f"ok     smollm2-135m-Q8_0: {target}" in capsys.readouterr().out
