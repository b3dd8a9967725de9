"""Merging JSON reports from several machines or CI jobs into one.

Each result keeps where it was measured: ``hostname``, ``hardware``, ``source`` (the file it
came from) and ``run`` (that run's timestamp, llama-server and settings, so its ratings are
judged by the thresholds it ran under).  Merging a merged report again keeps those as they are.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench.record import SCHEMA_VERSION, Report, ReportError

__all__ = ["ReportError", "load_report", "merge_reports"]


def load_report(path: Path) -> dict[str, Any]:
    """A report file's JSON, in the current schema (an older readable version is upgraded)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ReportError(f"{path}: not an llmbench JSON report (no 'results' list)")
    return Report.from_json(data, str(path)).to_json()


def _same(values: Sequence[Any]) -> Any:
    """The common value when every source agrees, else None."""
    return values[0] if values and all(v == values[0] for v in values) else None


def merge_reports(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """One report from ``(source name, report)`` pairs; derived sections are dropped (they are
    recomputed over the whole), and the same cell of the same run given twice is kept once."""
    results: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for source, report in reports:
        metadata = report.get("metadata") or {}
        nested = metadata.get("merged_from")
        if isinstance(nested, list):
            sources += [dict(entry) for entry in nested]
        else:
            sources.append(
                {
                    "source": source,
                    "hostname": metadata.get("hostname"),
                    "timestamp": metadata.get("timestamp"),
                    "duration_seconds": metadata.get("duration_seconds"),
                    "hardware": metadata.get("hardware"),
                    "llama_server": metadata.get("llama_server"),
                    "config": metadata.get("config"),
                }
            )
        run = {
            "timestamp": metadata.get("timestamp"),
            "duration_seconds": metadata.get("duration_seconds"),
            "llama_server": metadata.get("llama_server"),
            "settings": (metadata.get("config") or {}).get("settings"),
        }
        for original in report.get("results") or []:
            result = copy.deepcopy(dict(original))
            result.pop("derived", None)
            result.setdefault("hostname", metadata.get("hostname"))
            result.setdefault("hardware", copy.deepcopy(metadata.get("hardware")))
            result.setdefault("source", source)
            result.setdefault("run", copy.deepcopy(run))
            key = (
                result.get("hostname"),
                result.get("cell_id"),
                (result.get("run") or {}).get("timestamp"),
            )
            if key in seen:
                continue
            seen.add(key)
            results.append(result)
    durations = [d for s in sources if isinstance(d := s.get("duration_seconds"), int | float)]
    return {
        "schema_version": SCHEMA_VERSION,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hostname": _same([s.get("hostname") for s in sources]),
            "hardware": _same([s.get("hardware") for s in sources]),
            "llama_server": _same([s.get("llama_server") for s in sources]),
            "config": copy.deepcopy(sources[0].get("config")) if sources else None,
            "duration_seconds": round(sum(durations), 2) if durations else None,
            "merged_from": sources,
        },
        "results": results,
    }
