"""Baselines and regressions: comparisons of synthetic reports, the CLI, and two real runs."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench import baseline
from pytest_llmbench.cli import main
from pytest_llmbench.metrics import measurement
from pytest_llmbench.report.outputs import write_report_files
from tests.synthetic_reports import full_report

CELL = "smollm2-135m-Q4_K_M"  # 120 t/s, TTFT 0.15 s in the synthetic report


def _with(report: dict[str, Any], cell_id: str, profile: str, key: str, value: float) -> None:
    """Set a metric's value; its per-run samples (if any) move with it, keeping their spread."""
    result = next(r for r in report["results"] if r["cell_id"] == cell_id)
    metrics = result["profiles"][profile]["metrics"]
    old = metrics.get(key)
    metrics[key] = value
    kept = metrics.get("measurements", {}).get(key)
    if kept and old:
        samples = [v * value / old for v in kept["samples"]]
        metrics["measurements"][key] = measurement(samples, kept["unit"])


def _samples(report: dict[str, Any], cell_id: str, samples: list[float]) -> None:
    """Give a cell's decode speed these per-run samples (the value becomes their median)."""
    result = next(r for r in report["results"] if r["cell_id"] == cell_id)
    metrics = result["profiles"]["interactive"]["metrics"]
    metrics["measurements"]["tokens_per_second"] = measurement(samples, "t/s")
    metrics["tokens_per_second"] = statistics.median(samples)


def _compare(current: dict[str, Any], *limits: str) -> baseline.Comparison:
    return baseline.compare(full_report(), current, baseline.parse_thresholds(limits), "base")


def test_a_20_percent_slowdown_fails_naming_cell_metric_and_both_values() -> None:
    current = full_report()
    _with(current, CELL, "interactive", "tokens_per_second", 96.0)
    comparison = _compare(current, "tokens_per_sec:10%")
    (message,) = comparison.regressions
    assert message.startswith(
        f"{CELL} interactive decode speed (t/s) 120.0 → 96.0 (-20.0 %, 95 % CI -2"
    )
    assert message.endswith("limit -10 %)")
    (row,) = [r for r in comparison.rows if r.exceeded]
    assert (row.cell_id, row.metric.compare, row.baseline, row.current) == (
        CELL,
        "tokens_per_sec",
        120.0,
        96.0,
    )
    assert row.change_percent == pytest.approx(-20.0)
    flagged = [line for line in comparison.lines() if "REGRESSION" in line]
    assert len(flagged) == 1 and CELL in flagged[0] and "limit -10 %" in flagged[0]


def test_a_5_percent_slowdown_passes_a_10_percent_limit() -> None:
    current = full_report()
    _with(current, CELL, "interactive", "tokens_per_second", 114.0)
    comparison = _compare(current, "tokens_per_sec:10%")
    assert comparison.regressions == []
    row = next(
        r for r in comparison.rows if r.cell_id == CELL and r.metric.compare == "tokens_per_sec"
    )
    assert row.change_percent == pytest.approx(-5.0)


def test_exactly_at_the_limit_passes() -> None:
    current = full_report()
    _with(current, CELL, "interactive", "tokens_per_second", 108.0)  # -10 %
    assert _compare(current, "tokens_per_sec:10%").regressions == []


def test_lower_is_better_ttft_fails_when_it_grows_and_passes_when_it_shrinks() -> None:
    slower = full_report()
    _with(slower, CELL, "interactive", "ttft_seconds", 0.18)  # +20 %
    (message,) = _compare(slower, "ttft:10%").regressions
    assert message.startswith(f"{CELL} interactive TTFT (s) 0.150 → 0.180 (+20.0 %, 95 % CI +")
    assert message.endswith("limit +10 %)")
    faster = full_report()
    _with(faster, CELL, "interactive", "ttft_seconds", 0.10)  # -33 %: better
    _with(faster, CELL, "interactive", "tokens_per_second", 200.0)  # +67 %: better
    assert _compare(faster, "ttft:10%", "tokens_per_sec:10%").regressions == []


def test_absolute_limits_are_in_the_metric_unit() -> None:
    within = full_report()
    _with(within, CELL, "interactive", "ttft_seconds", 0.19)  # +0.04 s
    assert _compare(within, "ttft:0.05").regressions == []
    beyond = full_report()
    _with(beyond, CELL, "interactive", "ttft_seconds", 0.21)  # +0.06 s
    (message,) = _compare(beyond, "ttft:0.05").regressions
    assert message.startswith(f"{CELL} interactive TTFT (s) 0.150 → 0.210 (+40.0 %, 95 % CI")
    assert message.endswith("limit +0.05)")


def test_back_to_back_runs_of_one_configuration_are_not_a_regression() -> None:
    """Two runs of the same machine drift a few percent; a 5 % limit must not trip on that."""
    rng = random.Random(1)
    base, current = full_report(), full_report()
    _samples(base, CELL, [rng.gauss(78.0, 2.0) for _ in range(6)])
    _samples(current, CELL, [rng.gauss(75.5, 2.5) for _ in range(6)])
    comparison = baseline.compare(base, current, baseline.parse_thresholds(["tokens_per_sec:5%"]))
    assert comparison.regressions == []
    row = next(
        r for r in comparison.rows if r.cell_id == CELL and r.metric.compare == "tokens_per_sec"
    )
    assert row.interval is not None


def test_a_20_percent_slowdown_with_realistic_spread_is_flagged_and_noise_reads_so() -> None:
    rng = random.Random(2)
    base, slower, same = full_report(), full_report(), full_report()
    _samples(base, CELL, [rng.gauss(78.0, 2.0) for _ in range(6)])
    _samples(slower, CELL, [rng.gauss(62.4, 2.0) for _ in range(6)])
    _samples(same, CELL, [78.5, 76.0, 80.5, 77.0, 79.5, 75.5])
    limit = baseline.parse_thresholds(["tokens_per_sec:5%"])
    (message,) = baseline.compare(base, slower, limit).regressions
    assert "95 % CI" in message and "limit -5 %" in message
    row = next(
        r
        for r in baseline.compare(base, same, limit).rows
        if r.cell_id == CELL and r.metric.compare == "tokens_per_sec"
    )
    assert row.within_noise and "within noise" in row.change() and not row.exceeded


def test_reports_without_samples_are_compared_by_value_with_a_note() -> None:
    base, current = full_report(), full_report()
    for report in (base, current):
        for result in report["results"]:
            result["profiles"].get("interactive", {}).get("metrics", {}).pop("measurements", None)
    _with(current, CELL, "interactive", "tokens_per_second", 96.0)
    comparison = baseline.compare(base, current, baseline.parse_thresholds(["tokens_per_sec:10%"]))
    assert comparison.regressions == [
        f"{CELL} interactive decode speed (t/s) 120.0 → 96.0 (-20.0 %, limit -10 %)"
    ]
    assert any("compared by value alone" in line for line in comparison.lines())


def test_every_metric_is_read_from_keys_the_report_writes() -> None:
    """Each table entry finds its value in a cell record (peak RSS from the derived section)."""
    current = full_report(divergence=True, serving=True)
    _with(current, CELL, "long_context", "prompt_tokens_per_second", 300.0)
    base = full_report(divergence=True, serving=True)
    _with(base, CELL, "long_context", "prompt_tokens_per_second", 400.0)
    comparison = baseline.compare(base, current, baseline.parse_thresholds(["peak_rss:1%"]))
    compared = {r.metric.compare for r in comparison.rows if r.cell_id == CELL}
    assert compared == set(baseline.BY_NAME)
    rss = next(r for r in comparison.rows if r.cell_id == CELL and r.metric.compare == "peak_rss")
    assert rss.baseline == pytest.approx(360 / 1024)  # batch peak 320 + 40 MB, the cell's highest


def test_peak_rss_growth_is_a_regression() -> None:
    current = full_report()
    _with(current, CELL, "batch", "peak_rss_mb", 720.0)  # 360 → 720 MB
    (message,) = _compare(current, "peak_rss:25%").regressions
    assert message.startswith(f"{CELL} memory (GB) 0.35 → 0.70 (+100.0 %")


def test_cells_missing_on_either_side_are_noted() -> None:
    base, current = full_report(), full_report()
    current["results"] = [r for r in current["results"] if r["cell_id"] != CELL]
    base["results"] = [r for r in base["results"] if r["cell_id"] != "qwen2.5-1.5b-Q8_0"]
    comparison = baseline.compare(base, current, baseline.parse_thresholds(["quality:5%"]))
    assert comparison.only_in_baseline == (CELL,)
    assert comparison.only_in_current == ("qwen2.5-1.5b-Q8_0",)
    assert "llama-3.2-3b-Q4_K_M" not in comparison.only_in_baseline  # skipped on both sides
    lines = "\n".join(comparison.lines())
    assert f"only in the baseline (not measured now): {CELL}" in lines
    assert "only in this run (not in the baseline): qwen2.5-1.5b-Q8_0" in lines


def test_a_limit_on_a_metric_no_cell_has_is_noted() -> None:
    comparison = _compare(full_report(), "prompt_tokens_per_sec:5%")
    assert comparison.unmatched_limits == ("prompt_tokens_per_sec:5%",)
    assert any("prompt_tokens_per_sec:5%: no cell" in line for line in comparison.lines())


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("tokens:10%", "unknown metric 'tokens'"),
        ("tokens_per_sec", "expected METRIC:N% or METRIC:N"),
        ("tokens_per_sec:ten%", "expected METRIC:N% or METRIC:N"),
        ("tokens_per_sec:-5%", "expected METRIC:N% or METRIC:N"),
        (":10%", "expected METRIC:N% or METRIC:N"),
        ("ttft:0.05s", "expected METRIC:N% or METRIC:N"),
    ],
)
def test_bad_expressions_are_rejected_with_the_metric_names(expr: str, says: str) -> None:
    with pytest.raises(baseline.BaselineError) as info:
        baseline.parse_threshold(expr)
    message = str(info.value)
    assert says in message and "\n" not in message
    assert message.endswith("metrics: " + ", ".join(baseline.BY_NAME))
    assert "tokens_per_sec, ttft" in message


def test_good_expressions_parse() -> None:
    pct, absolute = baseline.parse_thresholds(["tokens_per_sec:10%", " ttft : 0.05 "])
    assert (pct.metric.compare, pct.amount, pct.percent) == ("tokens_per_sec", 10.0, True)
    assert (absolute.metric.compare, absolute.amount, absolute.percent) == ("ttft", 0.05, False)


@pytest.mark.parametrize("name", ["../up", "a b", "", ".hidden", "x" * 101, "a/b", "é"])
def test_unsafe_baseline_names_are_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(baseline.BaselineError, match="is not allowed"):
        baseline.Plan.from_options(tmp_path, name, None, [], tmp_path)


def test_save_and_compare_by_name_round_trip(tmp_path: Path) -> None:
    report = full_report()
    report["comparison"] = {"rows": []}  # a run's own comparison is not part of its baseline
    path = baseline.save(report, tmp_path / "baselines", "nightly-2026.01_a")
    assert path == tmp_path / "baselines" / "nightly-2026.01_a.json"
    saved = json.loads(path.read_text())
    assert "comparison" not in saved and "derived" in saved["results"][0]
    assert not list(path.parent.glob(".*.tmp"))  # written through a temp file, nothing left over
    plan = baseline.Plan.from_options(
        tmp_path / "baselines", None, "nightly-2026.01_a", ["tokens_per_sec:10%"], tmp_path
    )
    assert plan is not None and plan.compare_path == path
    comparison = plan.compare(full_report())
    assert comparison is not None and comparison.rows and comparison.regressions == []


def test_compare_with_a_report_path(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps(full_report()))
    plan = baseline.Plan.from_options(tmp_path / "none", None, "old.json", [], tmp_path)
    assert plan is not None and plan.baseline is not None and plan.compare_name == "old.json"


def test_unknown_baseline_names_the_saved_ones(tmp_path: Path) -> None:
    baseline.save(full_report(), tmp_path, "main")
    with pytest.raises(baseline.BaselineError) as info:
        baseline.Plan.from_options(tmp_path, None, "mian", [], tmp_path)
    assert "no baseline" in str(info.value) and "saved: main" in str(info.value)


def test_compare_fail_without_compare_is_refused(tmp_path: Path) -> None:
    with pytest.raises(baseline.BaselineError, match="add --llm-compare NAME"):
        baseline.Plan.from_options(tmp_path, "x", None, ["ttft:10%"], tmp_path)


def test_workers_do_not_load_the_baseline(tmp_path: Path) -> None:
    plan = baseline.Plan.from_options(tmp_path, None, "absent", ["ttft:1%"], tmp_path, False)
    assert plan is not None and plan.baseline is None and plan.compare(full_report()) is None


def test_reports_render_with_and_without_a_comparison(tmp_path: Path) -> None:
    current = full_report()
    _with(current, CELL, "interactive", "tokens_per_second", 96.0)
    current["comparison"] = _compare(current, "tokens_per_sec:10%").as_dict()
    written = write_report_files(current, tmp_path, ("csv", "html"))
    data = json.loads(written[0].read_text())
    assert data["comparison"]["regressions"] and data["comparison"]["rows"][0]["metric"]
    assert {p.suffix for p in written} == {".json", ".csv", ".html"}
    old = write_report_files(full_report(), tmp_path / "old", ("csv", "html"))
    assert "comparison" not in json.loads(old[0].read_text())


def _write(path: Path, report: dict[str, Any]) -> Path:
    path.write_text(json.dumps(report))
    return path


def test_cli_compare_exits_1_on_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path / "base.json", full_report())
    slower = full_report()
    _with(slower, CELL, "interactive", "tokens_per_second", 96.0)
    current = _write(tmp_path / "current.json", slower)
    assert main(["report", "compare", str(base), str(current)]) == 0  # no limit: only shown
    assert main(["report", "compare", str(base), str(current), "--fail", "ttft:10%"]) == 0
    capsys.readouterr()
    assert main(["report", "compare", str(base), str(current), "--fail", "tokens_per_sec:10%"]) == 1
    out = capsys.readouterr().out
    assert (
        f"regression: {CELL} interactive decode speed (t/s) 120.0 → 96.0 (-20.0 %, 95 % CI" in out
    )


def test_cli_compare_bad_input_is_one_line_and_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path / "base.json", full_report())
    assert main(["report", "compare", str(base), str(base), "--fail", "speed:10%"]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmbench: error: --fail 'speed:10%': unknown metric") and "\n" not in err
    assert main(["report", "compare", str(base), str(tmp_path / "missing.json")]) == 4
    assert "cannot be read" in capsys.readouterr().err


# ------------------------------------------------------------------ real runs


def _faster_baseline(path: Path, factor: float) -> float:
    data = json.loads(path.read_text())
    (result,) = data["results"]
    metrics = result["profiles"]["interactive"]["metrics"]
    metrics["tokens_per_second"] *= factor
    # without samples the baseline is compared by value, as an older report would be: two
    # fast-threshold runs have two samples each, too few to prove anything on a busy machine
    metrics.pop("measurements")
    path.write_text(json.dumps(data))
    return metrics["tokens_per_second"]


def test_save_then_compare_fails_on_a_slowdown_serial_and_under_xdist(bench_project) -> None:  # type: ignore[no-untyped-def]
    bench_project.write(modules=("test_interactive.py",))
    first = bench_project.run("--llm-save-baseline", "base")
    assert first.ret == 0, first.stdout.str()
    saved = bench_project.path / ".llmbench" / "baselines" / "base.json"
    assert f"baseline saved: {saved}" in first.stdout.str()
    # 20× faster than measured: a regression whatever the shared machine's noise in later runs
    base_tps = _faster_baseline(saved, 20)

    second = bench_project.run("--llm-compare", "base", "--llm-compare-fail", "tokens_per_sec:10%")
    second.assert_outcomes(passed=3)  # every test passed, the comparison alone fails the run
    assert second.ret == pytest.ExitCode.TESTS_FAILED
    out = second.stdout.str()
    assert "llmbench compare vs base" in out
    assert f"regression: smollm2-135m-Q4_1 interactive decode speed (t/s) {base_tps:.1f} → " in out
    assert "limit -10 %)" in out
    report = bench_project.report()
    assert report["metadata"]["exit_status"] == 1
    assert report["comparison"]["regressions"][0].startswith("smollm2-135m-Q4_1 interactive")

    third = bench_project.run(
        "-n",
        "2",
        "--llm-compare",
        "base",
        "--llm-compare-fail",
        "tokens_per_sec:10%",
        "--llm-save-baseline",
        "parallel",
        subprocess=True,
    )
    third.assert_outcomes(passed=3)
    assert third.ret == pytest.ExitCode.TESTS_FAILED
    assert "regression: smollm2-135m-Q4_1 interactive decode speed (t/s)" in third.stdout.str()
    merged = json.loads((saved.parent / "parallel.json").read_text())
    (cell,) = merged["results"]
    assert cell["profiles"]["interactive"]["metrics"]["tokens_per_second"] < base_tps
    assert "comparison" not in merged and merged["metadata"]["config"]["workers"] == 2


def test_bad_compare_fail_expression_is_a_usage_error(bench_project) -> None:  # type: ignore[no-untyped-def]
    bench_project.write(modules=("test_interactive.py",))
    result = bench_project.run("--llm-compare", "base", "--llm-compare-fail", "speed:10%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --llm-compare-fail 'speed:10%': unknown metric 'speed'; metrics: tokens_per_sec*"]
    )
