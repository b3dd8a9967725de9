"""The JSON report: run metadata plus one record per cell, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_llmbench.models import atomic_write_text

# 2: timed metrics carry their per-run samples and 95 % intervals (metrics.measurements);
# 1: no samples.  Both are read; the shape is described by SCHEMA_PATH.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"


def build_report(metadata: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "metadata": metadata, "results": cells}


def write_json(report: dict[str, Any], path: Path) -> Path:
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
    return path
