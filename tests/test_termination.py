"""The early-termination rules as pure functions, with the numbers their reasons must show."""

from __future__ import annotations

from pytest_llmbench import judge
from pytest_llmbench import termination as t

GB = 10**9


def facts(**kw) -> t.CellFacts:
    base = dict(cell_id="m-Q4_K_M", model_id="m", size_class="7B", params_b=7.0, quant="Q4_K_M")
    return t.CellFacts(**{**base, **kw})


def obs(**kw) -> t.Observation:
    base = dict(cell_id="m-Q4_K_M", model_id="m", size_class="7B", params_b=7.0, quant="Q4_K_M")
    return t.Observation(**{**base, **kw})


MEMORY = t.Memory(available_bytes=14 * GB)


def test_preflight_uses_file_size_times_1_2_plus_kv_cache():
    f = facts(file_bytes=13 * GB, n_layers=40, n_kv_heads=8, head_dim=128, ctx_size=4096)
    kv = 2 * 40 * 4096 * 8 * 128 * 2
    assert t.kv_cache_bytes(f) == kv
    assert t.estimate_bytes(f) == int(13 * GB * 1.2) + kv
    reason = t.preflight(f, MEMORY)
    assert reason.startswith("pre-flight memory check: needs ~16.3 GB")
    assert "13.0 GB file × 1.2 + 0.7 GB KV cache at 4096 tokens" in reason
    assert reason.endswith("14.0 GB available")


def test_preflight_without_metadata_and_within_budget():
    assert t.preflight(facts(file_bytes=40 * GB), MEMORY).startswith(
        "pre-flight memory check: needs ~48.0 GB"
    )
    assert t.preflight(facts(file_bytes=4 * GB), MEMORY) is None
    assert t.preflight(facts(file_bytes=None), MEMORY) is None


def test_memory_limit_below_available_is_named():
    memory = t.Memory(available_bytes=20 * GB, limit_bytes=8 * GB)
    assert "limit 8.0 GB (max_memory_gb), 20.0 GB available" in t.preflight(
        facts(file_bytes=7 * GB), memory
    )


def test_out_of_memory_load_skips_larger_quants_of_that_model_only():
    seen = [obs(cell_id="m-Q4_K_M", quant="Q4_K_M", load_failed=True, out_of_memory=True)]
    assert (
        t.too_large(facts(quant="Q8_0"), seen)
        == "model too large for this machine: m-Q4_K_M ran out of memory while loading"
    )
    assert t.too_large(facts(quant="Q2_K"), seen) is None
    assert t.too_large(facts(quant="Q8_0", model_id="other"), seen) is None
    assert t.is_out_of_memory(
        "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 9 GB"
    )
    assert not t.is_out_of_memory("error loading model: unknown model architecture: 'foo'")


def interactive_checks(tps: float, ttft: float) -> list:
    cell = {
        "profiles": {"interactive": {"metrics": {"tokens_per_second": tps, "ttft_seconds": ttft}}}
    }
    limits = {"min_tokens_per_sec": 2, "max_time_to_first_token": 30}
    return judge.threshold_checks(cell, {"thresholds": {"interactive": limits}})


def test_performance_failure_skips_larger_models_at_the_same_quant():
    verdict = t.performance_failure(interactive_checks(1.5, 45.0))
    assert verdict == "failed at decode speed 1.5 t/s < 2 t/s, TTFT 45.0 s > 30 s"
    seen = [
        obs(
            cell_id="small-Q2_K",
            model_id="small",
            params_b=3.0,
            quant="Q2_K",
            perf_failed=True,
            perf_reason=verdict,
        )
    ]
    reason = t.larger_model_failed(facts(quant="Q2_K"), seen)
    assert reason == f"a smaller model failed at this quantization: small-Q2_K {verdict}"
    assert t.larger_model_failed(facts(quant="Q4_K_M"), seen) is None
    assert t.larger_model_failed(facts(quant="Q2_K", params_b=1.0), seen) is None
    assert t.performance_failure(interactive_checks(12.0, 1.0)) == ""
    assert t.performance_failure([]) == ""


def test_quant_path_exhausted_only_when_q4_q5_q6_all_failed():
    failed = [obs(cell_id=f"m-{q}", quant=q, perf_failed=True) for q in ("Q4_K_M", "Q5_K_M")]
    assert t.quant_path_exhausted(facts(quant="Q8_0"), failed) is None
    failed.append(obs(cell_id="m-Q6_K", quant="Q6_K", load_failed=True))
    assert t.quant_path_exhausted(facts(quant="Q8_0"), failed) == (
        "quantization path exhausted for 7B: m-Q4_K_M, m-Q5_K_M, m-Q6_K all failed"
    )
    assert t.quant_path_exhausted(facts(quant="Q8_0", size_class="3B"), failed) is None
    assert t.quant_path_exhausted(facts(quant="Q3_K_M"), failed) is None


def test_memory_trend_fit_and_prediction():
    seen = [
        obs(cell_id="a", file_bytes=4 * GB, rss_bytes=5 * GB),
        obs(cell_id="b", file_bytes=6 * GB, rss_bytes=7 * GB),
        obs(cell_id="c", file_bytes=8 * GB, rss_bytes=9 * GB),
    ]
    fit = t.fit_memory(seen)
    assert fit.slope == 1.0 and fit.intercept == 1 * GB and fit.points == 3
    reason = t.predicted_too_big(facts(file_bytes=13 * GB), seen, MEMORY)
    assert reason is None  # 14.0 GB predicted: exactly fits
    reason = t.predicted_too_big(facts(file_bytes=14 * GB), seen, MEMORY)
    assert (
        reason
        == "memory trend predicts ~15.0 GB (RSS ≈ 1.00 × file + 1.00 GB over 3 cells), 14.0 GB available"
    )
    assert t.fit_memory(seen[:1]) is None
    assert t.fit_memory([seen[0], obs(cell_id="d", file_bytes=4 * GB, rss_bytes=6 * GB)]) is None


def test_skip_reason_takes_the_first_rule_that_applies():
    seen = [obs(cell_id="m-Q4_K_M", quant="Q4_K_M", load_failed=True, out_of_memory=True)]
    assert t.skip_reason(facts(quant="Q8_0", file_bytes=40 * GB), seen, MEMORY).startswith(
        "pre-flight"
    )
    assert t.skip_reason(facts(quant="Q8_0", file_bytes=1 * GB), seen, MEMORY).startswith(
        "model too large"
    )
    assert t.skip_reason(facts(quant="Q8_0", file_bytes=1 * GB), [], MEMORY) is None
