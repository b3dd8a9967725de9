"""Synthetic JSON reports for the report and recommendation tests: every profile measured, so
each chart and use case has data, without starting a server."""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any

from pytest_llmbench.config import Settings
from pytest_llmbench.metrics import measurement
from pytest_llmbench.session import _jsonable

# The charts the HTML report draws when every profile has data (one <svg id> each).
CHART_IDS = (
    "tps-vs-size",
    "memory-vs-size",
    "quality-vs-quant",
    "context-vs-load",
    "serving-curve",
    "size-vs-kld",
    "stress-temperature",
    "stress-tps",
    "finetune-loss",
)

# A fine-tuning run's figures, as workloads.finetune.Finetune.metrics() records them.
FINETUNE = {
    "loss": [2.9, 2.5, 2.2],
    "val_loss": [3.1, 3.0, 2.95],
    "first_loss": 2.9,
    "last_loss": 2.2,
    "improvement_percent": 24.1,
    "train_tokens_per_sec": 60.0,
    "seconds": 85.0,
    "trainer_peak_rss_mb": 2500.0,
}

HARDWARE = {"cpu": "Test CPU", "cores": 8, "logical_cpus": 16, "ram_gb": 16.0, "os": "Debian 12"}

# (model id, name, params_b, quant, size GB, rss MB, t/s, TTFT s, math %, overall %, docs/h, max ctx)
CELLS = (
    (
        "smollm2-135m",
        "SmolLM2-135M-Instruct",
        0.135,
        "Q2_K",
        0.088,
        300,
        140.0,
        0.12,
        20,
        35,
        70,
        8192,
    ),
    (
        "smollm2-135m",
        "SmolLM2-135M-Instruct",
        0.135,
        "Q4_K_M",
        0.105,
        320,
        120.0,
        0.15,
        30,
        45,
        65,
        8192,
    ),
    (
        "smollm2-135m",
        "SmolLM2-135M-Instruct",
        0.135,
        "Q8_0",
        0.145,
        350,
        95.0,
        0.18,
        32,
        47,
        55,
        8192,
    ),
    (
        "qwen2.5-1.5b",
        "Qwen2.5-1.5B-Instruct",
        1.5,
        "Q4_K_M",
        1.1,
        1500,
        18.0,
        1.9,
        85,
        88,
        32,
        32768,
    ),
    ("qwen2.5-1.5b", "Qwen2.5-1.5B-Instruct", 1.5, "Q8_0", 1.9, 2300, 9.0, 3.5, 90, 91, 20, 16384),
)
SIZES = (4096, 8192, 16384, 32768)


def _tests(cell_id: str, outcomes: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        f"test_{profile}[{cell_id}]": {"profile": profile, "outcome": outcome, "message": message}
        for profile, (outcome, message) in outcomes.items()
    }


# llama-perplexity's figures per quant against Q8_0, the shape real runs record
DIVERGENCE = {
    quant: {
        "mean_kld": kld,
        "mean_kld_pm": kld / 20,
        "kld_p99": kld * 8,
        "same_top_percent": same,
        "same_top_pm": 0.5,
        "ppl": 10.0 * ratio,
        "ppl_base": 10.0,
        "ppl_ratio": ratio,
        "ppl_increase_percent": 100 * (ratio - 1),
        "reference_quant": "Q8_0",
        "is_reference": quant == "Q8_0",
    }
    for quant, kld, same, ratio in (
        ("Q2_K", 0.42, 77.0, 1.35),
        ("Q4_K_M", 0.04, 92.5, 1.03),
        ("Q8_0", 0.0, 100.0, 1.0),
    )
}

SPREAD = (-0.02, -0.01, 0.0, 0.01, 0.02)  # five runs, ±2 %: a quiet machine


def cell(
    model: str, name: str, params_b: float, quant: str, size_gb: float, rss_mb: float, tps: float,
    ttft: float, math: float, overall: float, docs: float, max_ctx: int,
) -> dict[str, Any]:  # fmt: skip
    cell_id = f"{model}-{quant}"
    sizes = {
        str(size): {
            "load_seconds": round(size / 4096 * (1.5 if params_b > 1 else 0.3), 2),
            "passed": size <= max_ctx,
        }
        for size in SIZES
    }
    stress = [
        {
            "time_s": 30.0 * i,
            "cpu_temperature_c": 55.0 + 1.5 * i,
            "tokens_per_second": tps * (1 - 0.01 * i),
        }
        for i in range(12)
    ]
    math_ok = math >= 80
    profiles = {
        "load": {
            "metrics": {
                "load_seconds": 0.5 + size_gb,
                "rss_after_load_mb": rss_mb,
                "file_size_gb": size_gb,
            }
        },
        "interactive": {
            "metrics": {
                "ttft_seconds": ttft,
                "tokens_per_second": tps,
                "steadiness_cv_percent": 8.0,
                "stalls_per_run": 0,
                "itl_p99_ms": round(3000.0 / tps, 1),
                "noisy": quant == "Q2_K",
                "measurements": {
                    "tokens_per_second": measurement([tps * (1 + d) for d in SPREAD], "t/s"),
                    "ttft_seconds": measurement([ttft * (1 + d) for d in SPREAD], "s"),
                },
            },
            "rating": "excellent" if tps > 20 else "good",
        },
        "long_context": {
            "metrics": {
                "sizes": sizes,
                "max_context_passed": max_ctx,
                "load_seconds": sizes[str(max_ctx)]["load_seconds"],
            }
        },
        "batch": {
            "metrics": {"docs_per_hour": docs, "cv_percent": 6.0, "peak_rss_mb": rss_mb + 40}
        },
        "quality": {
            "metrics": {
                "scores": {
                    "math": math,
                    "comprehension": overall,
                    "reasoning": overall - 5,
                    "format": 95.0,
                },
                "overall": overall,
            }
        },
        "stress": {
            "metrics": {
                "samples": stress,
                "max_temperature_c": stress[-1]["cpu_temperature_c"],
                "tps_drop_percent": 100
                * (1 - stress[-2]["tokens_per_second"] / stress[1]["tokens_per_second"]),
            }
        },
        "divergence": {"metrics": DIVERGENCE.get(quant, DIVERGENCE["Q4_K_M"])},
        "finetune": {"metrics": FINETUNE},
    }
    outcomes = {
        "load": ("passed", ""),
        "interactive": ("passed", ""),
        "long_context": ("passed", "")
        if max_ctx == SIZES[-1]
        else ("failed", f"context {SIZES[-1]} failed"),
        "batch": ("passed", ""),
        "quality": ("passed", "") if math_ok else ("failed", f"math {math} % < 80 %"),
        "stress": ("passed", ""),
        "divergence": ("passed", "") if quant != "Q2_K" else ("failed", "mean KLD 0.42 > 0.3"),
        "finetune": ("passed", ""),
    }
    statuses = {k: v[0] for k, v in outcomes.items()}
    for profile, entry in profiles.items():
        entry["status"] = statuses[profile]
    overall_status = "passed" if all(s == "passed" for s in statuses.values()) else "partial"
    return {
        "cell_id": cell_id,
        "model": model,
        "model_name": name,
        "size": "x",
        "params_b": params_b,
        "quant": quant,
        "file": {"path": f"/models/{cell_id}.gguf", "size_gb": size_gb, "sha256": "ab" * 32},
        "gguf": {},
        "server": {
            "command": ["llama-server", "--ctx-size", "8192"],
            "threads": 8,
            "log": f"/nonexistent/logs/{cell_id}.log",
            "load_seconds": 0.5 + size_gb,
            "rss_after_load_mb": rss_mb,
        },
        "profiles": profiles,
        "tests": _tests(cell_id, outcomes),
        "status": overall_status,
        "skip_reason": None,
    }


def skipped_cell() -> dict[str, Any]:
    reason = "model file not in the model store: llama-3.2-3b Q4_K_M <script>alert(1)</script>"
    return {
        "cell_id": "llama-3.2-3b-Q4_K_M",
        "model": "llama-3.2-3b",
        "model_name": "Llama-3.2-3B-Instruct",
        "size": "3B",
        "params_b": 3.2,
        "quant": "Q4_K_M",
        "file": {},
        "gguf": {},
        "server": {},
        "profiles": {
            p: {"metrics": {}, "status": "skipped"} for p in ("load", "interactive", "quality")
        },
        "tests": _tests(
            "llama-3.2-3b-Q4_K_M",
            {p: ("skipped", reason) for p in ("load", "interactive", "quality")},
        ),
        "status": "skipped",
        "skip_reason": reason,
    }


def serving_metrics(tps: float) -> dict[str, Any]:
    """A serving sweep whose total rises with users while each user slows down."""
    levels = []
    for users in (1, 2, 4, 8):
        total = tps * users / (1 + 0.35 * (users - 1))
        share = 100.0 if total / users >= 10 else 40.0
        pct = {"p50": 200.0 * users, "p90": 300.0 * users, "p99": 400.0 * users, "mean": 220.0}
        levels.append(
            {
                "kind": "concurrency",
                "level": users,
                "requests": 16,
                "errors": 0,
                "ttft_ms": pct,
                "tpot_ms": {k: 1000 * users / total for k in ("p50", "p90", "p99", "mean")},
                "itl_ms": pct,
                "e2e_ms": pct,
                "output_tokens_per_second": total,
                "per_user_tokens_per_second": total / users,
                "requests_per_second": total / 64,
                "goodput_rps": total / 64 * share / 100,
                "share_meeting_slo_percent": share,
            }
        )
    capacity = max(
        (lv["level"] for lv in levels if lv["share_meeting_slo_percent"] >= 90), default=0
    )
    return {
        "capacity_users": capacity,
        "capacity": f"serves {capacity} concurrent users with TTFT ≤ 1 s and ≥ 10 t/s each",
        "stopped": "every level measured",
        "max_output_tokens_per_second": max(lv["output_tokens_per_second"] for lv in levels),
        "levels": levels,
        "rate_levels": [],
    }


def full_report(
    hostname: str = "bench-host",
    divergence: bool = False,
    serving: bool = False,
    finetune: bool = False,
) -> dict[str, Any]:
    """Every default profile measured; ``divergence`` adds the divergence profile (which changes
    what the accuracy use case and the overall best decide by), ``serving`` a serving sweep,
    ``finetune`` the finetune profile."""
    settings = _jsonable(asdict(Settings()))
    results = [cell(*row) for row in CELLS]
    if serving:
        for result in results:
            tps = result["profiles"]["interactive"]["metrics"]["tokens_per_second"]
            result["profiles"]["serving"] = {"status": "passed", "metrics": serving_metrics(tps)}
    left_out = [
        p for p, wanted in (("divergence", divergence), ("finetune", finetune)) if not wanted
    ]
    for result in results:
        for profile in left_out:
            del result["profiles"][profile]
            result["tests"] = {
                k: v for k, v in result["tests"].items() if v.get("profile") != profile
            }
        if all(p["status"] == "passed" for p in result["profiles"].values()):
            result["status"] = "passed"
    return {
        "schema_version": 1,
        "metadata": {
            "timestamp": "2026-01-02T03:04:05Z",
            "hostname": hostname,
            "hardware": copy.deepcopy(HARDWARE),
            "llama_server": {"path": "/usr/bin/llama-server", "version": "version: 1 (test)"},
            "config": {"settings": settings, "catalog": "models.yaml", "cells": [], "threads": 8},
            "duration_seconds": 3725.0,
            "exit_status": 1,
        },
        "results": [*results, skipped_cell()],
    }


def partial_report() -> dict[str, Any]:
    """Only load and interactive ran (the quickest real run)."""
    report = full_report()
    for result in report["results"]:
        result["profiles"] = {
            k: v for k, v in result["profiles"].items() if k in ("load", "interactive")
        }
        result["tests"] = {
            k: v for k, v in result["tests"].items() if v["profile"] in ("load", "interactive")
        }
    return report
