"""One small run of each profile against the real llama-server and the embedded model.

Thresholds that judge speed are loosened: these runs check that every profile measures, records
and asserts end to end on a shared machine; the bench run with the real thresholds judges speed.
"""

from __future__ import annotations

import json

LOOSE_BATCH = {
    "num_documents": 4,
    "max_variance": 1000,
    "max_degradation": 1000,
    "max_memory_growth_mb": 4096,
}


def metrics_of(project, profile: str) -> dict:
    (cell,) = project.report()["results"]
    return cell["profiles"][profile]["metrics"]


def test_long_context_measures_admitted_sizes_and_skips_the_rest(bench_project):
    bench_project.write(
        modules=("test_long_context.py",),
        thresholds={"thresholds": {"long_context": {"test_sizes": [512, 1024, 16384]}}},
    )
    result = bench_project.run("-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*16384 tokens is above the model's trained context (8192*"])
    recorded = metrics_of(bench_project, "long_context")
    assert recorded["n_ctx"] == 1024  # started for the largest admitted size
    assert recorded["max_context_passed"] == 1024
    for size in ("512", "1024"):
        entry = recorded["sizes"][size]
        assert entry["generated"] and entry["server_prompt_tokens"] == entry["prompt_tokens"]
        assert int(size) - 24 <= entry["prompt_tokens"] + entry["output_tokens"] <= int(size)
        assert entry["prompt_tokens_per_second"] > 0 and entry["peak_rss_mb"] > 0
    assert "16384" in recorded["skipped_sizes"]


def test_batch_processes_every_document(bench_project):
    bench_project.write(
        modules=("test_batch.py",),
        thresholds={"thresholds": {"batch": LOOSE_BATCH}},
    )
    bench_project.run().assert_outcomes(passed=4)
    recorded = metrics_of(bench_project, "batch")
    assert recorded["documents"] == 4 and recorded["docs_per_hour"] > 0
    assert all(200 <= n <= 560 for n in recorded["prompt_tokens"])  # document + instruction
    assert recorded["output_tokens"] == [64] * 4
    assert len(recorded["rss_mb"]) == 4 and recorded["resources"]["samples"] >= 2


def test_quality_scores_a_user_question_file(bench_project):
    questions = [
        ("m", "math", "What is 2 + 2? Answer with the number only.", {"type": "number", "expected": 4}),
        ("c", "comprehension", "Passage: Tom has a red kite.\nWhat colour is Tom's kite?", {"type": "regex", "pattern": "red"}),
        ("r", "reasoning", "Is 10 greater than 3? Answer yes or no.", {"type": "regex", "pattern": "yes"}),
        ("f", "format", "Write the word OK and nothing else.", {"type": "exact", "expected": "OK"}),
    ]  # fmt: skip
    bench_project.write(
        modules=("test_quality.py",),
        quants=("Q4_K_M", "Q8_0"),  # run in this order; Q8_0 is the reference of both
        thresholds={"thresholds": {"quality": {"questions": "mine.jsonl"}}},
    )
    (bench_project.path / "mine.jsonl").write_text(
        "\n".join(
            json.dumps({"id": i, "category": c, "prompt": p, "scorer": s, "max_tokens": 16})
            for i, c, p, s in questions
        )
    )
    outcomes = bench_project.run().parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 10
    recorded = [r["profiles"]["quality"]["metrics"] for r in bench_project.report()["results"]]
    for metrics in recorded:
        assert set(metrics["scores"]) == {"math", "comprehension", "reasoning", "format"}
        assert metrics["questions"] == 4 and not metrics["errors"]
    # the first cell's comparison is updated once the higher-precision quant has been measured
    assert [metrics["reference_quant"] for metrics in recorded] == ["Q8_0", "Q8_0"]


def test_embedding_vectors_are_checked_and_timed(bench_project):
    bench_project.write(
        modules=("test_embedding.py",),
        thresholds={"thresholds": {"embedding": {"repetitions": 2, "max_latency_ms": 60000}}},
    )
    off = bench_project.run("--collect-only")  # not in the default profiles: -m must name it
    assert off.parseoutcomes().get("deselected", 0) >= 7 and "<Function" not in off.stdout.str()
    result = bench_project.run("-m", "embedding")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 7, result.stdout.str()[-2000:]  # triplets may fail
    recorded = metrics_of(bench_project, "embedding")
    assert recorded["dimension"] == recorded["expected_dimension"] == 576
    assert len(recorded["single_ms"]) == len(recorded["batch_ms"]) == 2
    (cell,) = bench_project.report()["results"]
    assert "--embeddings" in cell["server"]["embedding_command"]


def test_stress_is_off_unless_selected_then_samples_a_short_run(bench_project):
    bench_project.write(
        modules=("test_load.py", "test_stress.py"),
        thresholds={"thresholds": {"stress": {"sample_interval": 1, "max_tps_drop": 1000}}},
    )
    bench_project.run().assert_outcomes(passed=3, deselected=5)
    # -m deselects the load tests after the plugin sorted them: the choice must not wait for them
    result = bench_project.run("-m", "stress", "--llm-stress-duration", "4", subprocess=True)
    assert "stress waits" not in result.stdout.str()
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()[-2000:]
    recorded = metrics_of(bench_project, "stress")
    assert recorded["aborted"] is None and recorded["duration_s"] == 4
    assert len(recorded["samples"]) >= 5 and recorded["tokens_generated"] > 0
    assert recorded["chosen_because"].startswith("nothing was measured earlier")
    temperature = recorded["max_temperature_c"]  # a reading, or said to be missing
    assert temperature == "not available" or 0 < float(temperature) < 150, temperature
