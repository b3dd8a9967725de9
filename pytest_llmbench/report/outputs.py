"""Write every configured report format for a finished (or interrupted) run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pytest_llmbench import noise, remote, system
from pytest_llmbench.recommend import enrich_report
from pytest_llmbench.report.csv_report import write_csv
from pytest_llmbench.report.html_report import write_html
from pytest_llmbench.report.json_report import build_report, write_json
from pytest_llmbench.session import BenchSession


def run_metadata(session: BenchSession, exit_status: int | None = None) -> dict[str, Any]:
    server = _llama_server(session)  # a local version probe is bounded (5 s); in the wall time
    ended = time.time()
    target = session.settings.measurement.target_precision_percent
    return {
        "noise": noise.noise_floor(session.machine_state, session.store.cells(), target),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.started_at)),
        "hostname": system.hostname(),
        "hardware": system.hardware(),
        "llama_server": server,
        "config": session.config_snapshot(),
        "duration_seconds": round(ended - session.started_at, 2),
        "exit_status": exit_status,
    }


def _llama_server(session: BenchSession) -> dict[str, Any]:
    """The server that was measured: the remote one's own facts, else the local binary's."""
    if session.external is not None:
        return remote.server_facts(session.external)
    return {"path": _safe_binary(session), "version": session.server_version()}


def _safe_binary(session: BenchSession) -> str | None:
    try:
        return str(session.server_binary())
    except Exception:
        return None


REPORT_STEM = "llmbench-report"


def write_report_files(
    report: dict[str, Any], directory: Path, formats: tuple[str, ...], stem: str = REPORT_STEM
) -> list[Path]:
    """Enrich ``report`` (derived metrics, recommendations) and write it in every format.

    The JSON comes first and always: it is the raw data that ``llmbench report render`` and a
    merge start from, so a bug in a renderer can never cost the measurements.
    """
    enriched = enrich_report(report)
    written = [write_json(enriched, directory / f"{stem}.json")]
    if "csv" in formats:
        written.append(write_csv(enriched, directory / f"{stem}.csv"))
    if "html" in formats:
        written.append(write_html(enriched, directory / f"{stem}.html"))
    return written


def run_report(session: BenchSession, exit_status: int | None = None) -> dict[str, Any]:
    """The run's report as the JSON file holds it, before enrichment."""
    return build_report(run_metadata(session, exit_status), session.records())


def write_reports(
    session: BenchSession, exit_status: int | None = None, report: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``report`` (default: the run's report now) in every configured format."""
    if report is None:
        report = run_report(session, exit_status)
    return write_report_files(report, session.output_dir, session.settings.output.formats)
