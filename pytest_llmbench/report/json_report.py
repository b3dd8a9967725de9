"""The JSON report: run metadata plus one record per cell, written atomically.

Its shape is :class:`pytest_llmbench.record.Report`; ``SCHEMA_PATH`` is the shipped JSON Schema
the test-suite validates every written report against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_llmbench.models import atomic_write_text
from pytest_llmbench.record import SCHEMA_VERSION

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"


def build_report(metadata: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's report; ``cells`` are the result store's records in their JSON form."""
    return {"schema_version": SCHEMA_VERSION, "metadata": metadata, "results": cells}


def write_json(report: dict[str, Any], path: Path) -> Path:
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
    return path
