"""The pytest-benchmark export: its format, its statistics, and pytest-benchmark's own reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench.cli import main as llmbench
from pytest_llmbench.metrics import measurement
from pytest_llmbench.report.benchmark_json import build_benchmark_json
from tests.synthetic_reports import full_report

SAMPLES = {
    "measurements": {
        "tokens_per_second": measurement([100.0, 125.0, 80.0], "t/s"),
        "ttft_seconds": measurement([0.2, 0.1, 0.3], "s"),
        "e2e_seconds": measurement([1.5, 1.2, 1.8], "s"),
    }
}


MEASURED = sorted({r["cell_id"] for r in full_report()["results"] if r["status"] != "skipped"})


def report_with_samples() -> dict[str, Any]:
    """Per-run samples on one cell only; the others keep single values, as older reports do."""
    report = full_report()
    for result in report["results"]:
        result["profiles"].get("interactive", {}).get("metrics", {}).pop("measurements", None)
    report["results"][1]["profiles"]["interactive"]["metrics"].update(SAMPLES)
    return report


def by_name(exported: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {bench["name"]: bench for bench in exported["benchmarks"]}


def test_decode_is_time_per_token_so_ops_is_tokens_per_second() -> None:
    benches = by_name(build_benchmark_json(report_with_samples()))
    decode = benches["decode_time_per_token[smollm2-135m-Q4_K_M]"]
    stats = decode["stats"]
    assert stats["rounds"] == 3 and stats["iterations"] == 1
    assert stats["data"] == pytest.approx([0.01, 0.008, 0.0125])
    assert stats["min"] == pytest.approx(0.008) and stats["max"] == pytest.approx(0.0125)
    assert stats["median"] == pytest.approx(0.01)
    # ops = rounds / total time: 3 tokens in 30.5 ms, the harmonic mean of the three speeds
    assert stats["ops"] == pytest.approx(3 / (1 / 100 + 1 / 125 + 1 / 80))
    assert decode["group"] == "interactive"
    assert decode["params"] == {"model": "smollm2-135m", "quant": "Q4_K_M", "variant": None}
    assert decode["extra_info"]["metric"] == "interactive.tokens_per_second"
    assert decode["extra_info"]["unit"] == "tokens/s"
    assert decode["extra_info"]["samples"] == "per repetition"
    assert decode["fullname"] == "llmbench/interactive::decode_time_per_token[smollm2-135m-Q4_K_M]"

    ttft = benches["ttft[smollm2-135m-Q4_K_M]"]["stats"]
    assert ttft["rounds"] == 3 and ttft["median"] == pytest.approx(0.2)
    assert benches["end_to_end[smollm2-135m-Q4_K_M]"]["stats"]["mean"] == pytest.approx(1.5)


def test_a_metric_without_per_run_samples_is_one_round_and_says_so() -> None:
    benches = by_name(build_benchmark_json(report_with_samples()))
    decode = benches["decode_time_per_token[smollm2-135m-Q8_0]"]
    assert decode["stats"]["rounds"] == 1 and decode["stats"]["ops"] == pytest.approx(95.0)
    assert decode["extra_info"]["samples"] == "one value (no per-run samples)"
    assert "end_to_end[smollm2-135m-Q8_0]" not in benches  # not recorded: not invented


def test_every_cell_and_timed_profile_is_a_benchmark_with_machine_and_commit_info() -> None:
    exported = build_benchmark_json(report_with_samples())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(exported)
    assert {"id", "dirty", "branch", "project"} <= set(exported["commit_info"])
    assert exported["machine_info"]["node"] == "bench-host"  # the report's machine, not this one
    benches = by_name(exported)
    for cell in MEASURED:
        assert f"load_time[{cell}]" in benches, cell
        assert f"time_per_document[{cell}]" not in benches  # synthetic batch has no per-doc list
    assert not [name for name in benches if "llama-3.2-3b" in name]  # skipped: nothing measured
    assert benches["context_fill_4096[smollm2-135m-Q2_K]"]["group"] == "long_context"
    stress = benches["sustained_time_per_token[smollm2-135m-Q2_K]"]
    assert stress["group"] == "stress" and stress["stats"]["rounds"] == 12  # one per window
    groups = {b["group"] for b in exported["benchmarks"]}
    assert groups == {"load", "interactive", "long_context", "stress"}
    assert len({b["fullname"] for b in exported["benchmarks"]}) == len(exported["benchmarks"])


def test_the_same_cell_from_two_hosts_gets_two_names() -> None:
    first, second = full_report(), full_report()
    for report, host in ((first, "laptop"), (second, "ci")):
        for result in report["results"]:
            result["hostname"] = host
    merged = {"metadata": {}, "results": first["results"][:1] + second["results"][:1]}
    names = sorted(by_name(build_benchmark_json(merged)))
    assert "load_time[smollm2-135m-Q2_K@ci]" in names
    assert "load_time[smollm2-135m-Q2_K@laptop]" in names


def test_pytest_benchmark_compare_lists_the_exported_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "llmbench-report.json"
    source.write_text(json.dumps(report_with_samples()))
    assert llmbench(["report", "export", "--format", "pytest-benchmark", str(source)]) == 0
    target = tmp_path / "llmbench-report-benchmark.json"
    assert f"wrote {target}" in capsys.readouterr().out

    compare = ["compare", "--columns=min,median,ops,rounds", "--name=long", str(target)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", *compare],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for group in ("interactive", "load", "long_context", "stress"):
        assert f"benchmark '{group}'" in result.stdout
    for cell in MEASURED:
        assert f"llmbench/interactive::decode_time_per_token[{cell}]" in result.stdout, cell
        assert f"llmbench/load::load_time[{cell}]" in result.stdout, cell


def test_export_of_a_bad_report_is_one_line_and_exit_code_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert llmbench(["report", "export", "--format", "pytest-benchmark", str(bad)]) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.json" in err and "results" in err
    assert (
        llmbench(["report", "export", "--format", "pytest-benchmark", str(bad), "-o", str(bad)])
        == 4
    )
