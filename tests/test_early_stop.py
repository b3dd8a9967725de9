"""Early termination in real runs: pre-flight skips, load failures, performance failures."""

from __future__ import annotations

import copy
import stat
from pathlib import Path

import pytest

from tests.conftest import EMBEDDED, BenchProject


def hub_model(**extra) -> dict:
    model = {
        "id": "giant-70b",
        "name": "Giant 70B",
        "size": "70B",
        "params_b": 70,
        "repo": "example/Giant-70B-GGUF",
        "files": {"Q4_1": "giant-70b.Q4_1.gguf"},
        "file_sizes_gb": {"Q4_1": 40},
    }
    return {**model, **extra}


def test_model_declared_at_40_gb_is_skipped_preflight_without_download(bench_project, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bench_project.write(
        models=[EMBEDDED, hub_model()], thresholds={"limits": {"max_memory_gb": 16}}
    )
    result = bench_project.run("-m", "load", "-rs")
    result.assert_outcomes(passed=3, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*pre-flight memory check: needs ~48.0 GB (40.0 GB file × 1.2 (KV cache unknown*), limit 16.0 GB (max_memory_gb)*available*"
        ]
    )
    assert not (bench_project.model_dir / "70B").exists()
    report = {c["cell_id"]: c for c in bench_project.report()["results"]}
    assert report["giant-70b-Q4_1"]["status"] == "skipped"
    assert report["giant-70b-Q4_1"]["skip_reason"].startswith(
        "pre-flight memory check: needs ~48.0 GB"
    )


def test_no_early_stop_lets_the_cell_run(bench_project):
    bench_project.write(models=[hub_model()])
    result = bench_project.run("-m", "load", "-rs", "--llm-no-early-stop")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*giant-70b-Q4_1: model file not found*"])


def test_failed_small_model_skips_the_larger_model_at_the_same_quant(bench_project):
    larger = copy.deepcopy(EMBEDDED)
    larger.update(id="smollm2-as-1b", name="Same file, declared 1B", size="1B", params_b=1.0)
    bench_project.write(
        models=[EMBEDDED, larger],
        thresholds={"thresholds": {"interactive": {"min_tokens_per_sec": 100000}}},
    )
    result = bench_project.run("-m", "interactive", "-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*a smaller model failed at this quantization: smollm2-135m-Q4_1 failed at * t/s < 100000 t/s*"
        ]
    )
    report = {c["cell_id"]: c for c in bench_project.report()["results"]}
    assert report["smollm2-135m-Q4_1"]["status"] == "partial"
    assert report["smollm2-as-1b-Q4_1"]["status"] == "skipped"


def oom_binary(tmp_path: Path) -> Path:
    script = tmp_path / "oom-llama-server"
    script.write_text(
        "#!/usr/bin/env bash\n"
        'echo "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 96000000000" >&2\n'
        'echo "llama_model_load: error loading model: unable to allocate CPU buffer" >&2\n'
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_out_of_memory_marks_the_model_too_large(bench_project, tmp_path):
    bench_project.write(quants=("Q4_K_M", "Q8_0"))
    result = bench_project.run("-m", "load", "-rs", "--llm-server-bin", str(oom_binary(tmp_path)))
    result.assert_outcomes(failed=1, skipped=5)
    result.stdout.fnmatch_lines(
        ["*model too large for this machine: smollm2-135m-Q4_K_M ran out of memory while loading*"]
    )


def embedded_with(*quants: str) -> dict:
    """The embedded model with more quantizations derived from its shipped Q4_1 file."""
    model = copy.deepcopy(EMBEDDED)
    model["derive"]["quants"] = sorted(set(model["derive"]["quants"]) | set(quants))
    for quant in quants:
        model["files"][quant] = f"SmolLM2-135M-Instruct.{quant}.gguf"
    return model


def test_q4_q5_q6_all_failing_skips_q8_of_that_size(bench_project):
    quants = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")
    bench_project.write(
        models=[embedded_with(*quants)],
        quants=quants,
        thresholds={"thresholds": {"interactive": {"min_tokens_per_sec": 100000}}},
    )
    result = bench_project.run("-m", "interactive", "-rs")
    result.stdout.fnmatch_lines(
        [
            "*quantization path exhausted for 135M: smollm2-135m-Q4_K_M, smollm2-135m-Q5_K_M, "
            "smollm2-135m-Q6_K all failed*"
        ]
    )
    statuses = {c["cell_id"]: c["status"] for c in bench_project.report()["results"]}
    assert statuses["smollm2-135m-Q8_0"] == "skipped"
    assert all(statuses[f"smollm2-135m-{q}"] == "partial" for q in quants[:3])


def test_with_llm_download_the_hub_size_is_checked_before_fetching(pytester, monkeypatch):
    """No catalog size: with --llm-download the hub's size feeds rule 1, so nothing is fetched."""
    from huggingface_hub import constants

    from tests.hub_server import FakeHub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False, raising=False)
    project = BenchProject(pytester, pytester.path / "store")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.add("org/Big-GGUF", "big.Q4_1.gguf", b"\0" * 3_000_000)
        model = hub_model(repo="org/Big-GGUF", files={"Q4_1": "big.Q4_1.gguf"})
        del model["file_sizes_gb"]
        project.write(models=[model], thresholds={"limits": {"max_memory_gb": 0.002}})
        result = project.run("-m", "load", "-rs", "--llm-download")
        gets = hub.gets("big.Q4_1.gguf")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        ["*pre-flight memory check: needs ~0.0 GB (0.0 GB file × 1.2 (KV cache unknown*"]
    )
    assert gets == [] and not (project.model_dir / "70B").exists()


def test_kv_cache_type_of_a_variant_changes_the_estimate():
    from pytest_llmbench import termination as t

    facts = t.CellFacts("c", "m", "7B", 7.0, "Q4_K_M", 4 * t.GB, 32, 8, 128, ctx_size=32768)
    q8 = t.CellFacts(
        **{**facts.__dict__, "kv_bytes_per_value": t.kv_bytes_per_value("q8_0", "q8_0")}
    )
    assert t.kv_cache_bytes(facts) == 2 * 32 * 32768 * 8 * 128 * 2  # f16: 4 GiB
    assert t.kv_cache_bytes(q8) == pytest.approx(t.kv_cache_bytes(facts) * 34 / 64, rel=1e-6)
    assert t.kv_bytes_per_value(None, None) == 2.0
    assert t.kv_bytes_per_value("q4_0", "f16") == pytest.approx((18 / 32 + 2) / 2)
