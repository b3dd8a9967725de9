"""Early termination in real runs: pre-flight skips, load failures, performance failures."""

from __future__ import annotations

import copy
import stat
from pathlib import Path

from tests.conftest import EMBEDDED


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
