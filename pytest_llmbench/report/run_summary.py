"""What the run prints in pytest's terminal: the header lines at the start and the llmbench
summary (cells, reports, checkpoint, baseline comparison) at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_llmbench.report.terminal import summary_lines

if TYPE_CHECKING:
    from pytest_llmbench.baseline import Outcome
    from pytest_llmbench.run import BenchRun


def header_lines(run: BenchRun) -> list[str]:
    bench = run.bench
    if bench.catalog is None:
        return []
    lines = [
        f"llmbench: {len(bench.cells)} cells from {bench.catalog.path}, "
        f"{bench.threads} threads per server, output {bench.output_dir}"
    ]
    if bench.cpu_warning:
        lines.append(f"llmbench: {bench.cpu_warning}")
    if run.resumed:
        left = len(bench.cells) - len(run.resumed)
        lines.append(
            f"llmbench: resuming: {len(run.resumed)} cells carried from the checkpoint, "
            + (f"{left} to run" if left else "nothing left to run (reports are re-rendered)")
        )
    return lines


def write_summary(terminalreporter: Any, run: BenchRun) -> None:
    """The controller's summary section; nothing when no cell has a record."""
    bench = run.bench
    cells = bench.records()
    if not cells:
        return
    terminalreporter.section("llmbench summary")
    lines = summary_lines(
        cells, bench.settings, machine_state=bench.machine_state, judged=run.report
    )
    for line in lines:
        terminalreporter.write_line(line)
    for path in run.reports:
        terminalreporter.write_line(f"report: {path}")
    if run.progress is not None and run.progress.saved is not None:
        terminalreporter.write_line(run.progress.summary([c.id for c in bench.cells]))
    if bench.workers > 1:
        terminalreporter.write_line(
            f"warning: {bench.workers} workers ran servers side by side ({bench.threads} threads "
            "each); their timings disturb each other, so compare cells from a serial run",
            yellow=True,
        )
    _baseline_summary(terminalreporter, run.baseline_outcome)


def _baseline_summary(terminalreporter: Any, outcome: Outcome | None) -> None:
    if outcome is None:
        return
    comparison = outcome.comparison
    if comparison is not None:
        terminalreporter.section(f"llmbench compare vs {comparison.name}")
        for line in comparison.lines():
            terminalreporter.write_line(line, red="REGRESSION" in line)
        for message in comparison.regressions:
            terminalreporter.write_line(f"regression: {message}", red=True, bold=True)
        if comparison.thresholds and not comparison.regressions:
            limits = ", ".join(t.text for t in comparison.thresholds)
            terminalreporter.write_line(f"no regression beyond {limits}", green=True)
    if outcome.saved is not None:
        terminalreporter.write_line(f"baseline saved: {outcome.saved}")
    if outcome.note:
        terminalreporter.write_line(outcome.note, yellow=True)
