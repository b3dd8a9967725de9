"""An llmbench report in pytest-benchmark's JSON format, so the tools that already keep benchmark
history (``pytest-benchmark compare``, github-action-benchmark's ``pytest`` tool, Bencher) read it.

One benchmark per cell and timed metric. pytest-benchmark times *one operation*, so every metric
becomes seconds per operation: decode is the time per output token (``ops`` is then tokens/s),
TTFT, end-to-end and load are seconds per request, batch is seconds per document.  ``stats`` are
pytest-benchmark's own (:class:`pytest_benchmark.stats.Stats`) over the per-repetition samples the
record holds; a metric recorded only as one value gives one round, and ``extra_info`` says so.
``machine_info`` and ``commit_info`` come from pytest-benchmark's helpers.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_benchmark
from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
from pytest_benchmark.stats import Stats
from pytest_benchmark.utils import get_commit_info

from pytest_llmbench.models import atomic_write_text

Samples = Callable[[Mapping[str, Any]], list[float]]


def _numbers(values: Any) -> list[float]:
    if isinstance(values, int | float) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, list | tuple):
        return []
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _get(metrics: Mapping[str, Any], key: str) -> Any:
    """``metrics[key]``, where a dotted key walks nested mappings (``measurements.x.samples``)."""
    value: Any = metrics
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _seconds(*keys: str, scale: float = 1.0) -> Samples:
    """The first of ``keys`` that holds numbers, as seconds (``scale``: the key's unit in s)."""

    def read(metrics: Mapping[str, Any]) -> list[float]:
        for key in keys:
            values = _numbers(_get(metrics, key))
            if values:
                return [v * scale for v in values if v > 0]
        return []

    return read


def _per_token(*keys: str) -> Samples:
    """Seconds per token from tokens/s values (the first of ``keys`` that holds numbers)."""

    def read(metrics: Mapping[str, Any]) -> list[float]:
        for key in keys:
            values = _numbers(_get(metrics, key))
            if values:
                return [1.0 / v for v in values if v > 0]
        return []

    return read


def _stress_per_token(metrics: Mapping[str, Any]) -> list[float]:
    windows = metrics.get("samples") if isinstance(metrics.get("samples"), list) else []
    rates = [w.get("tokens_per_second") for w in windows if isinstance(w, Mapping)]
    return [1.0 / r for r in _numbers(rates) if r > 0]


@dataclass(frozen=True)
class Timed:
    """One exported metric: where its samples are and what they mean."""

    profile: str
    name: str  # the benchmark's name, without the cell
    metric: str  # the report's metric it comes from
    unit: str  # the report metric's unit
    samples: Samples  # seconds per operation, one per repetition
    per_run: str  # the key holding per-run samples (else the record keeps only a summary)


TIMED = (
    Timed("load", "load_time", "load_seconds", "s", _seconds("load_seconds"), ""),
    Timed(
        "interactive",
        "decode_time_per_token",
        "tokens_per_second",
        "tokens/s",
        _per_token("measurements.tokens_per_second.samples", "tokens_per_second"),
        "measurements.tokens_per_second.samples",
    ),
    Timed(
        "interactive",
        "ttft",
        "ttft_seconds",
        "s",
        _seconds("measurements.ttft_seconds.samples", "ttft_seconds"),
        "measurements.ttft_seconds.samples",
    ),
    Timed(
        "interactive",
        "end_to_end",
        "e2e_seconds",
        "s",
        _seconds("measurements.e2e_seconds.samples"),
        "measurements.e2e_seconds.samples",
    ),
    Timed(
        "batch",
        "time_per_document",
        "seconds_per_document",
        "s",
        _seconds("seconds_per_document"),
        "seconds_per_document",
    ),
    Timed(
        "embedding", "latency", "latency_ms", "ms", _seconds("single_ms", scale=1e-3), "single_ms"
    ),
    Timed(
        "embedding",
        "batch_latency",
        "batch_latency_ms",
        "ms",
        _seconds("batch_ms", scale=1e-3),
        "batch_ms",
    ),
    Timed(
        "stress",
        "sustained_time_per_token",
        "samples[].tokens_per_second",
        "tokens/s",
        _stress_per_token,
        "samples",
    ),
)


def stats_of(samples: list[float]) -> dict[str, Any]:
    """pytest-benchmark's statistics over ``samples`` (seconds), with the data and iterations."""
    stats = Stats()
    for value in samples:
        stats.update(value)
    out = stats.as_dict()
    out["data"] = list(samples)
    out["iterations"] = 1
    return out


def _cell_metrics(cell: Mapping[str, Any]) -> Iterator[tuple[Timed, Mapping[str, Any]]]:
    profiles = cell.get("profiles") if isinstance(cell.get("profiles"), Mapping) else {}
    for timed in TIMED:
        entry = profiles.get(timed.profile)
        metrics = entry.get("metrics") if isinstance(entry, Mapping) else None
        if isinstance(metrics, Mapping):
            yield timed, metrics
    long_context = profiles.get("long_context")
    metrics = long_context.get("metrics") if isinstance(long_context, Mapping) else None
    sizes = metrics.get("sizes") if isinstance(metrics, Mapping) else None
    for size, record in sorted((sizes or {}).items(), key=lambda kv: int(kv[0])):
        if isinstance(record, Mapping):  # one fill per size: one round each
            yield (
                Timed(
                    "long_context",
                    f"context_fill_{size}",
                    f"sizes.{size}.load_seconds",
                    "s",
                    _seconds("load_seconds"),
                    "",
                ),
                record,
            )


def _benchmarks(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    results = [r for r in results if isinstance(r, Mapping) and r.get("cell_id")]
    repeated = {k for k, n in Counter(r["cell_id"] for r in results).items() if n > 1}
    out = []
    for cell in results:
        label = str(cell["cell_id"])
        if label in repeated:  # a merged report: the same cell from several hosts
            label = f"{label}@{cell.get('hostname') or 'unknown'}"
        for timed, metrics in _cell_metrics(cell):
            samples = timed.samples(metrics)
            if not samples:
                continue
            name = f"{timed.name}[{label}]"
            runs = _get(metrics, timed.per_run) if timed.per_run else None
            per_run = isinstance(runs, list) and bool(runs)
            out.append(
                {
                    "group": timed.profile,
                    "name": name,
                    "fullname": f"llmbench/{timed.profile}::{name}",
                    "params": {
                        "model": cell.get("model"),
                        "quant": cell.get("quant"),
                        "variant": cell.get("variant"),
                    },
                    "param": label,
                    "extra_info": {
                        "metric": f"{timed.profile}.{timed.metric}",
                        "unit": timed.unit,
                        "value": _headline(metrics, timed.metric),
                        "stats_unit": "s/token" if timed.unit == "tokens/s" else "s",
                        "samples": "per repetition"
                        if per_run
                        else "one value (no per-run samples)",
                        "cell_id": cell["cell_id"],
                        "model_name": cell.get("model_name"),
                        "hostname": cell.get("hostname"),
                        "status": cell.get("status"),
                    },
                    "options": {},
                    "stats": stats_of(samples),
                }
            )
    return out


def _headline(metrics: Mapping[str, Any], key: str) -> Any:
    value = metrics.get(key)
    return value if isinstance(value, int | float | str) else None


def machine_info(report: Mapping[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's machine info when the report was made here; otherwise what the report
    says about its machine (exporting on another host must not claim this host's CPU)."""
    metadata = report.get("metadata") if isinstance(report.get("metadata"), Mapping) else {}
    hostname = metadata.get("hostname")
    if hostname in (None, platform.node()):
        info = pytest_benchmark_generate_machine_info()
    else:
        hardware = metadata.get("hardware") if isinstance(metadata.get("hardware"), Mapping) else {}
        info = {
            "node": hostname,
            "cpu": {"brand_raw": hardware.get("cpu"), "count": hardware.get("logical_cpus")},
            "system": hardware.get("os"),
        }
    info["llmbench"] = {
        "hardware": metadata.get("hardware"),
        "llama_server": metadata.get("llama_server"),
    }
    return info


def _datetime(report: Mapping[str, Any]) -> str:
    stamp = (report.get("metadata") or {}).get("timestamp")
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return datetime.now(UTC).isoformat()


def build_benchmark_json(
    report: Mapping[str, Any], project_name: str | None = None
) -> dict[str, Any]:
    return {
        "machine_info": machine_info(report),
        "commit_info": get_commit_info(project_name),
        "benchmarks": _benchmarks(report.get("results") or []),
        "datetime": _datetime(report),
        "version": pytest_benchmark.__version__,
    }


def write_benchmark_json(report: Mapping[str, Any], path: Path) -> Path:
    atomic_write_text(path, json.dumps(build_benchmark_json(report), indent=2, default=str) + "\n")
    return path
