"""Derived metrics (metrics.py), recommendations and key findings (recommend.py), and the
recommendations in the terminal summary — all on synthetic reports, no server."""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench import judge
from pytest_llmbench import metrics as m
from pytest_llmbench.config import InteractiveThresholds, Settings, Thresholds
from pytest_llmbench.metric_table import metric
from pytest_llmbench.recommend import (
    FAIL,
    MAX_SUITABLE,
    PASS,
    WARN,
    enrich_report,
    format_recommendations,
)
from pytest_llmbench.report.html_report import render_html
from pytest_llmbench.report.terminal import summary_lines

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_reports import full_report, partial_report, skipped_cell

THRESHOLDS = {
    "interactive": {
        "min_tokens_per_sec": 10.0,
        "max_time_to_first_token": 2.0,
        "max_variance": 20.0,
    },
    "quality": {"min_math_score": 80.0},
}


def use_case(report: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in report["recommendations"]["use_cases"] if c["key"] == key)


def marks(case: dict[str, Any]) -> dict[str, str]:
    return {line["cell_id"]: line["mark"] for line in case["lines"]}


# ------------------------------------------------------------------ derived metrics


def test_efficiency_score_is_speed_times_context_per_gigabyte() -> None:
    assert m.efficiency_score(20.0, 8192, 4.0) == pytest.approx(40960.0)
    assert m.efficiency_score(20.0, 8192, None) is None
    assert m.efficiency_score(20.0, 8192, 0.0) is None
    assert m.efficiency_score(None, 8192, 4.0) is None


def test_cost_benefit_is_normalised_so_the_best_scores_100() -> None:
    assert m.normalise_0_100([2.0, 4.0, None]) == [50.0, 100.0, None]
    assert m.normalise_0_100([None, None]) == [None, None]
    assert m.cost_benefit_raw(90.0, 20.0, 2.0) == pytest.approx(9.0)
    assert m.cost_benefit_raw(None, 20.0, 2.0) is None
    scores = [r["derived"]["cost_benefit_score"] for r in enrich_report(full_report())["results"]]
    known = [s for s in scores if s is not None]
    assert max(known) == pytest.approx(100.0) and all(0 <= s <= 100 for s in known)
    assert scores[-1] is None  # the skipped cell


def cell(
    metrics: dict[str, Any], status: str = "passed", rating: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"metrics": metrics, "status": status}
    if rating:
        entry["rating"] = rating
    return {"cell_id": "c", "profiles": {"interactive": entry}, "server": {}, "status": status}


@pytest.mark.parametrize(
    ("tps", "ttft", "cv", "expected"),
    [
        (30.0, 0.5, 5.0, "excellent"),  # every metric beats its threshold by ≥ 50 %
        (13.0, 1.0, 5.0, "good"),  # the worst margin is 30 %
        (10.5, 1.9, 5.0, "acceptable"),  # all meet, narrowly
        (30.0, 0.5, 40.0, "poor"),  # a non-critical metric misses
        (5.0, 0.5, 5.0, "failed"),  # a critical metric misses
    ],
)
def test_usability_rating_from_threshold_margins(
    tps: float, ttft: float, cv: float, expected: str
) -> None:
    record = cell({"tokens_per_second": tps, "ttft_seconds": ttft, "steadiness_cv_percent": cv})
    derived = judge.derive_cell(record, {"thresholds": THRESHOLDS, "limits": {}})
    assert derived["profile_ratings"]["interactive"] == expected
    assert derived["rating"] == expected


def test_profile_rating_prefers_the_profiles_own_and_caps_failures() -> None:
    fast = {"tokens_per_second": 30.0, "ttft_seconds": 0.5, "steadiness_cv_percent": 5.0}
    settings = {"thresholds": THRESHOLDS, "limits": {}}
    assert judge.derive_cell(cell(fast, rating="good"), settings)["rating"] == "good"
    assert judge.derive_cell(cell(fast, status="partial"), settings)["rating"] == "poor"
    assert judge.derive_cell(cell({}, status="error"), settings)["rating"] == "failed"
    assert judge.derive_cell(cell({}, status="failed"), settings)["rating"] == "failed"
    assert judge.derive_cell(cell({}, status="skipped"), settings)["rating"] is None


def test_readers_find_memory_context_and_scores_where_the_workloads_write_them() -> None:
    record = full_report()["results"][0]  # smollm2 Q2_K: 300 MB after load, 340 MB in batch
    assert m.memory_gb(record) == pytest.approx(340 / 1024)
    assert m.context_tokens(record) == 8192  # long_context's largest passed size
    del record["profiles"]["long_context"]
    record["server"]["command"] = ["llama-server", "--ctx-size", "4096"]
    assert m.context_tokens(record, 2048) == 4096
    record["server"] = {}
    assert m.context_tokens(record, 2048) == 2048

    sizes = {"sizes": {"8192": {"load_seconds": 2.0, "passed": True}, "4096": {"load_seconds": 1.0, "passed": True}, "32768": {"load_seconds": 80.0, "passed": False}}}  # fmt: skip
    assert [(p.size, p.seconds, p.passed) for p in m.long_context_points(sizes)] == [
        (4096, 1.0, True),
        (8192, 2.0, True),
        (32768, 80.0, False),
    ]

    quality = {"scores": {"math": 70.0, "comprehension": 80, "reasoning": 90.0}}
    assert m.quality_scores(quality) == {"math": 70.0, "comprehension": 80.0, "reasoning": 90.0}
    assert m.quality_overall(quality) == pytest.approx(80.0)  # no overall given: the mean
    assert m.quality_overall({**quality, "overall": 66}) == 66.0
    in_cell = {"profiles": {"quality": {"metrics": quality}}}
    assert metric("quality.math_score").value(in_cell) == 70.0
    assert metric("quality.format_score").value(in_cell) is None


def test_readers_never_raise_on_odd_records() -> None:
    odd = [
        {},
        {"cell_id": "x", "profiles": None, "server": "?", "status": "passed"},
        {
            "cell_id": "y",
            "profiles": {
                "interactive": {"metrics": {"tokens_per_second": "fast", "ttft_seconds": math.nan}}
            },
        },
        {
            "cell_id": "z",
            "profiles": {"long_context": {"metrics": {"sizes": [1, None, {"size": "big"}]}}},
        },
        {"cell_id": "s", "profiles": {"stress": {"metrics": {"samples": "hot"}}}},
    ]
    report = enrich_report({"metadata": {}, "results": odd})
    assert len(report["results"]) == len(odd)
    assert format_recommendations(report["recommendations"])
    assert enrich_report({})["key_findings"] == ["no cells ran"]


def test_readings_come_from_the_metric_table() -> None:
    assert metric("interactive.tokens_per_second").reading(12.0) == "comfortable reading speed"
    assert metric("batch.docs_per_hour").reading(45) == "reasonable for moderate batches"
    assert metric("load.load_seconds").reading(40.0) == "coffee-break territory"
    assert metric("interactive.ttft_seconds").reading(None) == ""
    assert metric("finetune.first_loss").reading(1.0) == ""  # no reading table


# ------------------------------------------------------------------ recommendations


def test_use_cases_rank_with_marks_and_the_numbers_behind_them() -> None:
    report = enrich_report(full_report())
    cases = report["recommendations"]["use_cases"]
    assert [c["key"] for c in cases] == ["interactive", "long_context", "batch", "accuracy"]

    interactive = use_case(report, "interactive")
    first = interactive["lines"][0]
    assert first["mark"] == PASS and first["numbers"]["rating"] == "excellent"
    assert "t/s" in first["summary"] and "TTFT" in first["summary"]
    assert interactive["note"] == "1 cell skipped, not measured"

    long_context = use_case(report, "long_context")
    assert long_context["lines"][0]["cell_id"] == "qwen2.5-1.5b-Q4_K_M"  # the largest that passed
    assert long_context["lines"][0]["numbers"]["max_context_passed"] == 32768
    assert marks(long_context)["smollm2-135m-Q2_K"] == WARN  # 16k and 32k failed
    assert "up to 8,192 of 32,768 tokens" in long_context["lines"][-1]["summary"]

    batch = use_case(report, "batch")
    assert batch["lines"][0]["numbers"]["docs_per_hour"] == 70
    assert marks(batch)["qwen2.5-1.5b-Q8_0"] == WARN  # 20 docs/hour: overnight jobs only

    accuracy = use_case(report, "accuracy")
    assert [line["cell_id"] for line in accuracy["lines"][:2]] == [
        "qwen2.5-1.5b-Q8_0",
        "qwen2.5-1.5b-Q4_K_M",
    ]
    assert marks(accuracy) == {
        "qwen2.5-1.5b-Q8_0": PASS,
        "qwen2.5-1.5b-Q4_K_M": PASS,
        "smollm2-135m-Q8_0": FAIL,
        "smollm2-135m-Q4_K_M": FAIL,
        "smollm2-135m-Q2_K": FAIL,
    }
    assert "85 % math accuracy" in accuracy["lines"][1]["summary"]


def test_accuracy_within_ten_points_of_the_threshold_is_a_warning() -> None:
    report = full_report()
    report["results"][4]["profiles"]["quality"]["metrics"]["scores"]["math"] = 72.0
    assert marks(use_case(enrich_report(report), "accuracy"))["qwen2.5-1.5b-Q8_0"] == WARN


def test_profiles_that_did_not_run_say_not_measured() -> None:
    report = enrich_report(partial_report())
    for key, profile in (
        ("long_context", "long_context"),
        ("batch", "batch"),
        ("accuracy", "quality"),
    ):
        case = use_case(report, key)
        assert case["lines"] == []
        assert case["note"].startswith(f"not measured: the {profile} profile did not run")
    reasons = report["recommendations"]["overall_best"]["reasons"]
    assert "accuracy retention: not measured (the quality profile did not run)" in reasons


def test_a_profile_that_failed_outright_is_listed_with_its_reason() -> None:
    report = full_report()
    broken = report["results"][3]
    broken["profiles"]["interactive"] = {"metrics": {}, "status": "error"}
    broken["tests"]["test_interactive[qwen2.5-1.5b-Q4_K_M]"] = {
        "profile": "interactive", "outcome": "error", "message": "server died mid-stream",
    }  # fmt: skip
    lines = use_case(enrich_report(report), "interactive")["lines"]
    assert lines[-1]["mark"] == FAIL and lines[-1]["summary"] == "server died mid-stream"


def test_long_lists_are_cut_and_counted() -> None:
    report = full_report()
    template = report["results"][1]
    for i in range(6):
        extra = copy.deepcopy(template)
        extra["cell_id"] = f"extra-{i}"
        report["results"].append(extra)
    case = use_case(enrich_report(report), "interactive")
    assert len(case["lines"]) == MAX_SUITABLE
    assert case["hidden"] == 11 - MAX_SUITABLE


def test_overall_best_balances_performance_memory_and_accuracy() -> None:
    best = enrich_report(full_report())["recommendations"]["overall_best"]
    # smollm2 is six times faster, but 45 % quality against 88 % costs it the overall pick
    assert best["cell_id"] == "qwen2.5-1.5b-Q4_K_M"
    reasons = " | ".join(best["reasons"])
    assert "balanced performance: 4 of 6 profiles rated good or better" in reasons
    assert "memory headroom: 1.50 GB of 16 GB RAM (91 % free)" in reasons
    assert (
        "accuracy retention: 97 % of the model's best quantization (88 % overall quality)"
        in reasons
    )
    assert "18.0 t/s (94 % CI 17.6–18.4, 5 runs), 1.90 s TTFT" in reasons
    # without quality scores, performance and headroom decide
    assert enrich_report(partial_report())["recommendations"]["overall_best"]["cell_id"].startswith(
        "smollm2"
    )


def test_no_overall_best_when_nothing_ran() -> None:
    report = enrich_report({"metadata": {}, "results": [skipped_cell()]})
    assert report["recommendations"]["overall_best"] is None
    assert "Overall best: none (no configuration met every threshold)" in format_recommendations(
        report["recommendations"]
    )


def test_no_overall_best_when_every_cell_missed_a_threshold() -> None:
    """A cell rated poor (it ran, but missed a threshold) is no one's recommendation."""
    report = full_report()
    for result in report["results"]:
        for profile in result.get("profiles", {}).values():
            profile["rating"] = "poor"
    enriched = enrich_report(report)
    assert {r["derived"]["rating"] for r in enriched["results"]} <= {"poor", "failed", None}
    assert enriched["recommendations"]["overall_best"] is None
    lines = format_recommendations(enriched["recommendations"])
    assert "Overall best: none (no configuration met every threshold)" in lines
    assert "No configuration met every threshold." in render_html(enriched)


def test_key_findings_name_extremes_accuracy_drops_noise_and_skips() -> None:
    findings = "\n".join(enrich_report(full_report())["key_findings"])
    assert "6 cells over 3 models" in findings
    assert "fastest decode: SmolLM2-135M-Instruct Q2_K at 140.0 t/s" in findings
    assert "largest context that passed: 32,768 tokens (Qwen2.5-1.5B-Instruct Q4_K_M)" in findings
    assert (
        "below 80 % on math, avoid for accuracy-critical work: SmolLM2-135M-Instruct Q2_K (20 %)"
        in findings
    )
    assert (
        "not measured to the target precision" in findings
        and "hottest under stress: 72 °C" in findings
    )
    assert "1 cell skipped; most common reason (1): model file not in the model store" in findings


# ------------------------------------------------------------------ terminal


def test_format_follows_the_designs_layout() -> None:
    lines = format_recommendations(enrich_report(full_report())["recommendations"])
    assert lines[0] == "RECOMMENDED CONFIGURATIONS"
    assert "Interactive storytelling:" in lines
    assert any(
        line.startswith("  ✓ SmolLM2-135M-Instruct Q2_K - Excellent (140.0 t/s") for line in lines
    )
    assert any(
        line.startswith("  ✗ SmolLM2-135M-Instruct Q2_K - 20 % math accuracy") for line in lines
    )
    best = lines.index("Overall best: Qwen2.5-1.5B-Instruct Q4_K_M")
    assert lines[best + 1].startswith("  - balanced performance")


def test_terminal_summary_lists_the_table_then_the_recommendations() -> None:
    cells = full_report()["results"]
    strict = replace(
        Settings(),
        thresholds=Thresholds(interactive=InteractiveThresholds(min_tokens_per_sec=50.0)),
    )
    for cell_ in cells:
        cell_["profiles"]["interactive"].pop("rating", None)  # let the thresholds decide
    lines = summary_lines(cells, strict, {"ram_gb": 16.0})
    assert lines[0].startswith("cell") and "smollm2-135m-Q2_K" in lines[1]
    start = lines.index("RECOMMENDED CONFIGURATIONS")
    text = "\n".join(lines[start:])
    assert "✗ Qwen2.5-1.5B-Instruct Q4_K_M - Failed (18.0 t/s" in text  # below the strict 50 t/s
    assert text.endswith("Overall best: none (no configuration met every threshold)")
    assert "of 16 GB RAM" in "\n".join(summary_lines(cells, Settings(), {"ram_gb": 16.0}))


def test_long_context_sizes_above_the_model_are_noted_not_held_against_it() -> None:
    report = full_report()
    smol = report["results"][0]["profiles"]["long_context"]
    smol["metrics"]["sizes"] = {k: v for k, v in smol["metrics"]["sizes"].items() if int(k) <= 8192}
    smol["metrics"]["skipped_sizes"] = {"16384": "above the model's trained context (8192)"}
    smol["status"] = "passed"
    line = next(
        line
        for line in use_case(enrich_report(report), "long_context")["lines"]
        if line["cell_id"] == "smollm2-135m-Q2_K"
    )
    assert line["mark"] == PASS
    assert line["summary"].startswith("8,192 tokens, 0.6 s load")
    assert (
        "16,384 tokens and up not tried: above the model's trained context (8192)"
        in line["summary"]
    )


def test_stress_readers_accept_the_monitors_sample_keys() -> None:
    stress = {
        "max_temperature_c": "not available",
        "samples": [
            {"time_s": 0.0, "cpu_temperature_c": 61.0, "tokens_per_second": 10.0},
            {"time_s": 30.0, "cpu_temperature_c": None, "tokens_per_second": 9.0},
        ],
    }
    assert [s.time_s for s in m.stress_samples(stress)] == [0.0, 30.0]
    assert [s.temperature_c for s in m.stress_samples(stress)] == [61.0, None]
    in_cell = {"profiles": {"stress": {"metrics": stress}}}
    assert metric("stress.max_temperature_c").value(in_cell) is None  # a word is not a number


# ------------------------------------------------------------------ decisions with ties


def _speed_cell(quant: str, samples: list[float], memory_mb: float) -> dict[str, Any]:
    """A passed interactive-only cell of one model with these decode-speed samples."""
    median = sorted(samples)[len(samples) // 2]
    return {
        "cell_id": f"smollm2-135m-{quant}",
        "model": "smollm2-135m",
        "model_name": "SmolLM2-135M-Instruct",
        "quant": quant,
        "status": "passed",
        "server": {"load_seconds": 0.4, "rss_after_load_mb": memory_mb},
        "profiles": {
            "interactive": {
                "status": "passed",
                "metrics": {
                    "tokens_per_second": median,
                    "ttft_seconds": 0.1,
                    "steadiness_cv_percent": 5.0,
                    "stalls_per_run": 0,
                    "measurements": {"tokens_per_second": m.measurement(samples, "t/s")},
                },
            }
        },
    }


def _enrich(*cells: dict[str, Any]) -> dict[str, Any]:
    settings = {"thresholds": THRESHOLDS, "limits": {}}
    metadata = {"hardware": {"ram_gb": 24}, "config": {"settings": settings}}
    return enrich_report({"metadata": metadata, "results": list(cells)})


def test_speeds_within_noise_are_tied_and_ordered_by_precision_then_memory() -> None:
    report = _enrich(
        _speed_cell("Q4_K_M", [77.0, 78.0, 79.5, 80.0, 78.5], 300),
        _speed_cell("Q8_0", [76.5, 77.5, 78.0, 79.0, 78.2], 400),
        _speed_cell("Q5_K_M", [76.0, 77.0, 78.0, 79.0, 78.2], 350),
    )
    lines = use_case(report, "interactive")["lines"]
    assert [line["cell_id"][13:] for line in lines] == ["Q8_0", "Q5_K_M", "Q4_K_M"]
    assert "tied with" in lines[0]["summary"] and "within measurement noise" in lines[0]["summary"]
    best = report["recommendations"]["overall_best"]
    assert best["cell_id"] == "smollm2-135m-Q8_0"
    assert any("tied with" in reason for reason in best["reasons"])


def test_a_faster_lower_quant_is_not_chosen_for_speed_alone_when_quality_is_unmeasured() -> None:
    report = _enrich(
        _speed_cell("Q2_K", [93.0, 94.0, 95.0, 94.5, 93.5], 250),
        _speed_cell("Q8_0", [72.0, 73.0, 72.5, 73.5, 72.2], 400),
    )
    best = report["recommendations"]["overall_best"]
    assert best["cell_id"] == "smollm2-135m-Q8_0"
    assert best["fastest"].startswith("SmolLM2-135M-Instruct Q2_K at 94.0 t/s")
    assert any("speed alone" in reason for reason in best["reasons"])
    variant = _speed_cell("Q4_K_M", [99.0, 100.0, 101.0, 100.5, 99.5], 240)
    variant["variant"], variant["cell_id"] = "kv-q8", "smollm2-135m-Q4_K_M-kv-q8"
    best = _enrich(variant, _speed_cell("Q8_0", [72.0, 73.0, 72.5, 73.5, 72.2], 400))[
        "recommendations"
    ]["overall_best"]
    assert best["cell_id"] == "smollm2-135m-Q8_0"  # a server variant is no reason either


def test_a_clearly_faster_cell_wins_when_quality_was_measured() -> None:
    fast = _speed_cell("Q2_K", [93.0, 94.0, 95.0, 94.5, 93.5], 250)
    slow = _speed_cell("Q8_0", [72.0, 73.0, 72.5, 73.5, 72.2], 400)
    for cell_, score in ((fast, 60.0), (slow, 60.0)):
        cell_["profiles"]["quality"] = {"status": "passed", "metrics": {"overall": score}}
    best = _enrich(fast, slow)["recommendations"]["overall_best"]
    assert best["cell_id"] == "smollm2-135m-Q2_K" and best["fastest"] is None
