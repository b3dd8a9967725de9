"""One pytest run of the benchmark, from configure to the last report: the plugin's hooks hand
off to :class:`BenchRun`, which owns everything the run decides beyond a single cell.

It keeps the controller's checkpoint, the cells carried from it, the baseline plan, the stress
choice and the reports written, and at session end merges the xdist workers' records, finishes
the checkpoint, writes and compares the reports and saves the baseline.  Each cell's servers
are the :class:`~pytest_llmbench.session.BenchSession`'s business.
"""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench import baseline, checkpoint, parallel, stress_choice
from pytest_llmbench.client import RequestFailed
from pytest_llmbench.errors import usage_errors
from pytest_llmbench.items import cell_of, is_stress, profile_of
from pytest_llmbench.matrix import Cell
from pytest_llmbench.recommend import enrich_report
from pytest_llmbench.report.benchmark_json import write_benchmark_json
from pytest_llmbench.report.merge import ReportError, load_report
from pytest_llmbench.report.outputs import run_report, write_reports
from pytest_llmbench.report.progress_lines import cell_line, write_line
from pytest_llmbench.server import ServerError
from pytest_llmbench.session import BenchSession

# a test broke off with one of these: the cell's server may be dying, give it time to be reaped
BROKEN_CONNECTION = (RequestFailed, ServerError, OSError, http.client.HTTPException)
DEATH_WAIT_SECONDS = 3.0


class BenchRun:
    """The run's state beyond one cell, on the controller and on each xdist worker."""

    def __init__(self, config: pytest.Config, bench: BenchSession) -> None:
        self.config = config
        self.bench = bench
        self.is_worker = hasattr(config, "workerinput")
        self.resumed: dict[str, str] = {}  # cells carried from a checkpoint → their skip reason
        self.progress: checkpoint.Progress | None = None  # the checkpoint (controller only)
        self.baseline_plan: baseline.Plan | None = None
        self.baseline_outcome: baseline.Outcome | None = None
        self.stress_plan: stress_choice.StressPlan | None = None
        self._stress_choice: stress_choice.Choice | None = None
        self.reports: list[Path] = []
        self.report: dict[str, Any] | None = None  # the run's report, enriched, once written

    # -------------------------------------------------------------- configure

    def start(self) -> None:
        """Read the options that need checking before anything runs: the baseline, the stress
        source and (on the controller) the checkpoint.  A mistake is a usage error."""
        workerinput = getattr(self.config, "workerinput", None)
        self.baseline_plan = self._baseline_plan(load=workerinput is None)
        _check_stress_source(self.config.option.llm_stress_from)
        if workerinput is not None:
            self.resumed = dict(workerinput.get("llmbench_resumed", {}))
            return
        with usage_errors():
            self.progress = checkpoint.start(
                self.bench, self._selection(), self.config.option.llm_resume
            )
        self.resumed = self.progress.resumed()

    def _baseline_plan(self, load: bool) -> baseline.Plan | None:
        opt, rootdir = self.config.option, Path(self.config.rootpath)
        directory = baseline.baseline_dir(
            opt.llm_baseline_dir, self.config.getini("llmbench_baseline_dir"), rootdir, Path.cwd()
        )
        with usage_errors():
            return baseline.Plan.from_options(
                directory,
                opt.llm_save_baseline,
                opt.llm_compare,
                opt.llm_compare_fail,
                Path.cwd(),
                load,
            )

    def _selection(self) -> dict[str, object]:
        option = self.config.option
        return checkpoint.selection_of(
            option.markexpr, option.keyword, self.config.args, Path(self.config.rootpath)
        )

    def worker_input(self) -> dict[str, Any]:
        """What the xdist controller hands every worker: the shared-state directory, the
        grouping (workers re-parse the original command line, which may lack the --dist we
        chose for them) and the cells carried from the checkpoint."""
        return {
            "llmbench_state": str(self.bench.state.directory) if self.bench.state else None,
            "llmbench_loadgroup": self.config.option.dist == parallel.GROUPING_MODE,
            "llmbench_resumed": self.resumed,
        }

    # -------------------------------------------------------------- collection

    def collected_on_worker(self, nodeids: list[str]) -> None:
        """xdist controller: learn each cell's tests from a worker's collection ('id@group')."""
        for nodeid in nodeids:
            cell = self.bench.cell_by_id(nodeid.rpartition("@")[2])
            if cell is not None and self.progress is not None:
                self.progress.collected(cell.id, nodeid)

    def collection_finished(self, items: list[pytest.Item]) -> None:
        """Plan the stress choice on the final items (after every plugin's deselection), and
        let the controller's checkpoint track each cell's profile tests (stress runs apart)."""
        self.stress_plan = stress_choice.plan(
            items, self.resumed, self.config.option.llm_stress_from
        )
        if self.progress is None:
            return
        for item in items:
            cell = cell_of(item)
            if cell is not None and not is_stress(item):
                self.progress.collected(cell.id, item.nodeid)

    # -------------------------------------------------------------- running

    def stress_choice(self) -> stress_choice.Choice:
        """The stress configuration, decided once per process when the first stress test starts."""
        if self._stress_choice is None:
            assert self.stress_plan is not None, "stress tests are planned at collection"
            try:
                self._stress_choice = stress_choice.decide(self.bench, self.stress_plan)
            except ReportError as exc:
                self._stress_choice = (None, f"--llm-stress-from: {exc}")
        return self._stress_choice

    def prepare_cell(self, item: pytest.Item, cell: Cell) -> None:
        """Before a cell test's fixtures: skip it (carried over, not the stressed cell, a cell
        that cannot run) or fail it once for a load failure; otherwise its server is up."""
        carried = self.resumed.get(cell.id)
        if carried:  # finished in the checkpointed run: no server, results carried over
            pytest.skip(carried)
        if is_stress(item):  # decided before a server is started for nothing
            reason = stress_choice.skip_reason(*self.stress_choice(), cell)
            if reason:
                pytest.skip(reason)
        cell_run = self.bench.run_for(cell)
        if cell_run.skip_reason:
            pytest.skip(cell_run.skip_reason)
        if cell_run.load_error:
            if cell_run.load_error_reported:
                pytest.skip(f"load failed: {cell_run.short_error}")
            cell_run.load_error_reported = True
            if not (item.get_closest_marker("load") and "llm_run" in item.fixturenames):
                pytest.fail(f"load failed for {cell.id}: {cell_run.load_error}", pytrace=False)
            # else: the load test asserts on the error itself and shows all of it
        if cell_run.died:
            pytest.skip(cell_run.died.splitlines()[0])
        self.fail_if_server_died(item, cell)

    def fail_if_server_died(
        self, item: pytest.Item, cell: Cell, error: BaseException | None = None
    ) -> None:
        """Fail the test with one short message when the cell's server exited under it; after
        a broken connection (``error``) a dying server gets a moment to be reaped first."""
        wait = DEATH_WAIT_SECONDS if isinstance(error, BROKEN_CONNECTION) else 0.0
        activity = f"the {profile_of(item)} profile ran {item.name.split('[', 1)[0]}"
        death = self.bench.server_death(cell, activity, wait)
        if death:
            raise pytest.fail.Exception(death, pytrace=False) from None

    def test_done(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """Stop a cell's server as soon as its last test is done, and share what it taught."""
        cell = cell_of(item)
        next_cell = cell_of(nextitem) if nextitem is not None else None
        # the cell's profiles end where its stress test (run apart, after all cells) begins
        apart = nextitem is not None and is_stress(nextitem) != is_stress(item)
        if cell is not None and (next_cell is None or next_cell.id != cell.id or apart):
            self.bench.finish(cell)

    def record_report(self, report: pytest.TestReport) -> None:
        """A cell test's outcome into the store, where the reports end up (the controller under
        xdist); a cell's last teardown also saves the checkpoint."""
        props = dict(report.user_properties)
        cell = self.bench.cell_by_id(props.get("llmbench_cell"))
        if cell is None or cell.id in self.resumed:
            return  # a resumed cell keeps the checkpoint's outcomes
        if report.when == "teardown" and self.progress is not None:
            if report.failed:
                self._record_outcome(cell, props["llmbench_profile"], report)
            if self.progress.torn_down(cell.id, report.nodeid):
                checkpoint.cell_done(self.bench, self.progress, cell.id)
                gateway = getattr(getattr(report, "node", None), "gateway", None)
                if gateway is not None:  # xdist: workers print nothing, so one line per cell
                    record = self.bench.store.to_json().get(cell.id)
                    write_line(self.config, cell_line(cell.id, gateway.id, record))
            return
        if report.when != "call" and report.outcome == "passed":
            return
        self._record_outcome(cell, props["llmbench_profile"], report)

    def _record_outcome(self, cell: Cell, profile: str, report: pytest.TestReport) -> None:
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        message = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            message = _first_line(report)
        name = report.nodeid.rsplit("::", 1)[-1].split("@", 1)[0]  # xdist appends "@group"
        self.bench.store.outcome(cell, profile, name, outcome, message)

    def worker_finished(self, workeroutput: dict[str, Any]) -> None:
        """xdist controller: fold a finished worker's results into the one store."""
        data = workeroutput.get("llmbench_results")
        if data:
            self.bench.store.merge(data)

    # -------------------------------------------------------------- finishing

    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        """Session end, on every path out: stop the servers; a worker sends its results home,
        the controller merges them, finishes the checkpoint and writes and compares the reports."""
        bench = self.bench
        bench.stop_all()
        if self.is_worker:
            session.config.workeroutput["llmbench_results"] = bench.store.to_json()  # type: ignore[attr-defined]
            return
        self._merge_crashed_workers()
        if self.progress is not None:  # also lists the cells never reached as 'not run'
            checkpoint.finish_run(bench, self.progress)
            if session.exitstatus == pytest.ExitCode.OK and self.progress.carried_failures():
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # as the whole run would exit
        if any(cell_of(item) is not None for item in session.items) or bench.store.cells():
            self._write_reports(session, exitstatus)

    def _merge_crashed_workers(self) -> None:
        """Measurements of workers that crashed after finishing cells, from the shared state."""
        state, store = self.bench.state, self.bench.store
        if state is None:
            return
        for record in state.cell_records().values():
            if not store.has_measurements(record["cell_id"]):
                store.merge({record["cell_id"]: record})

    def _write_reports(self, session: pytest.Session, exitstatus: int) -> None:
        # judged once: the comparison, the files, the baseline and the summary all read it
        report = enrich_report(run_report(self.bench, int(session.exitstatus)))
        plan = self.baseline_plan
        comparison = plan.compare(report) if plan else None
        if comparison is not None:
            report["comparison"] = comparison.as_dict()
            if comparison.regressions and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # like --benchmark-compare-fail
                report["metadata"]["exit_status"] = int(session.exitstatus)
        written = write_reports(self.bench, report=report)
        benchmark_json = self.config.option.llm_benchmark_json
        if benchmark_json:
            target = Path(benchmark_json).expanduser()
            try:
                written.append(write_benchmark_json(report, target))
            except OSError as exc:  # the run's own reports are written: a warning, not a crash
                self.bench.progress(f"warning: --llm-benchmark-json {target} not written: {exc}")
        self.reports = written
        self.report = report
        if plan is not None:
            interrupted = exitstatus in (
                pytest.ExitCode.INTERRUPTED,
                pytest.ExitCode.INTERNAL_ERROR,
            )
            self.baseline_outcome = plan.finish(report, comparison, interrupted)

    def close(self) -> None:
        """Stop every server; the controller removes the run's shared state, even when stopping
        a server raised."""
        try:
            self.bench.stop_all()
        finally:
            if self.bench.state is not None and not self.is_worker:
                shutil.rmtree(self.bench.state.directory, ignore_errors=True)


def _check_stress_source(source: str | None) -> None:
    if source:
        with usage_errors("--llm-stress-from: "):
            load_report(Path(source).expanduser())


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.splitlines()[0] if text else ""
