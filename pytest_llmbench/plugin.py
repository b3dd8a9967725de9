"""pytest hooks and options for pytest-llmbench; the work itself lives in the other modules."""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench import baseline, checkpoint, options, parallel, stress_choice
from pytest_llmbench import config as cfg
from pytest_llmbench.client import RequestFailed
from pytest_llmbench.items import CELL_PARAM, PROFILE_ORDER, STRESS_GROUP, cell_of, profile_of
from pytest_llmbench.keys import (
    BASELINE_KEY,
    BASELINE_OUTCOME_KEY,
    PROGRESS_KEY,
    RESUMED_KEY,
    SESSION_KEY,
    STRESS_CHOICE_KEY,
    STRESS_PLAN_KEY,
)
from pytest_llmbench.matrix import Cell
from pytest_llmbench.report.benchmark_json import write_benchmark_json
from pytest_llmbench.report.merge import ReportError, load_report
from pytest_llmbench.report.outputs import run_report, write_reports
from pytest_llmbench.report.progress_lines import cell_line, write_line
from pytest_llmbench.report.terminal import summary_lines
from pytest_llmbench.server import ServerError
from pytest_llmbench.session import BenchSession
from pytest_llmbench.session_factory import build_session, close_run_logger

pytest_plugins = ["pytest_llmbench.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for profile in PROFILE_ORDER:
        config.addinivalue_line(
            "markers", f"{profile}: pytest-llmbench {profile.replace('_', ' ')} profile"
        )
    config.addinivalue_line(
        "markers", "xdist_group(name): run all tests of one group on one xdist worker"
    )
    try:
        session = build_session(config)
    except cfg.ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    workerinput = getattr(config, "workerinput", None)
    config.stash[BASELINE_KEY] = _baseline_plan(config, load=workerinput is None)
    _check_stress_source(config.option.llm_stress_from)
    if workerinput is None:  # the controller owns the checkpoint
        try:
            progress = checkpoint.start(session, _selection(config), config.option.llm_resume)
        except checkpoint.CheckpointError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[PROGRESS_KEY] = progress
        config.stash[RESUMED_KEY] = progress.resumed()
    else:
        config.stash[RESUMED_KEY] = dict(workerinput.get("llmbench_resumed", {}))
    config.pluginmanager.register(OutcomeRecorder(config), "llmbench-outcomes")
    if config.pluginmanager.hasplugin("html"):  # pytest-html is optional at run time
        from pytest_llmbench.report.pytest_html import HtmlExtras

        config.pluginmanager.register(HtmlExtras(), "llmbench-html")
    if workerinput and workerinput.get("llmbench_loadgroup"):
        config.option.loadgroup = True  # xdist tags items with their group from this flag


def _check_stress_source(source: str | None) -> None:
    if source:
        try:
            load_report(Path(source).expanduser())
        except ReportError as exc:
            raise pytest.UsageError(f"--llm-stress-from: {exc}") from None


def _baseline_plan(config: pytest.Config, load: bool) -> baseline.Plan | None:
    opt, rootdir = config.option, Path(config.rootpath)
    directory = baseline.baseline_dir(
        opt.llm_baseline_dir, config.getini("llmbench_baseline_dir"), rootdir, Path.cwd()
    )
    try:
        return baseline.Plan.from_options(
            directory,
            opt.llm_save_baseline,
            opt.llm_compare,
            opt.llm_compare_fail,
            Path.cwd(),
            load,
        )
    except baseline.BaselineError as exc:
        raise pytest.UsageError(str(exc)) from None


def _selection(config: pytest.Config) -> dict[str, object]:
    return checkpoint.selection_of(
        config.option.markexpr, config.option.keyword, config.args, Path(config.rootpath)
    )


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config):
    """With -n and no --dist, group each cell's tests on one worker; refuse modes that split them."""
    numprocesses = getattr(config.option, "numprocesses", None)
    dist = getattr(config.option, "dist", None)
    problem = parallel.dist_conflict(numprocesses, dist)
    if problem:
        raise pytest.UsageError(problem)
    if numprocesses and dist == "no":
        config.option.dist = parallel.GROUPING_MODE
    if numprocesses:  # xdist would hand out the biggest groups first: keep the matrix order
        config.option.loadscopereorder = False
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]
    """xdist controller: hand every worker the run's shared-state directory."""
    node.workerinput["llmbench_state"] = str(node.config.stash[SESSION_KEY].state.directory)
    # Workers re-parse the original command line, which may lack the --dist we chose for them.
    node.workerinput["llmbench_loadgroup"] = node.config.option.dist == parallel.GROUPING_MODE
    node.workerinput["llmbench_resumed"] = node.config.stash[RESUMED_KEY]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:  # type: ignore[no-untyped-def]
    """xdist controller: learn each cell's tests from a worker's collection ('id@group')."""
    bench, progress = node.config.stash[SESSION_KEY], node.config.stash[PROGRESS_KEY]
    for nodeid in ids:
        cell = bench.cell_by_id(nodeid.rpartition("@")[2])
        if cell is not None:
            progress.collected(cell.id, nodeid)


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or session.catalog is None:
        return []
    lines = [
        f"llmbench: {len(session.cells)} cells from {session.catalog.path}, "
        f"{session.threads} threads per server, output {session.output_dir}"
    ]
    if session.cpu_warning:
        lines.append(f"llmbench: {session.cpu_warning}")
    resumed = config.stash.get(RESUMED_KEY, {})
    if resumed:
        left = len(session.cells) - len(resumed)
        lines.append(
            f"llmbench: resuming: {len(resumed)} cells carried from the checkpoint, "
            + (f"{left} to run" if left else "nothing left to run (reports are re-rendered)")
        )
    return lines


# ------------------------------------------------------------------ collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CELL_PARAM not in metafunc.fixturenames:
        return
    session = metafunc.config.stash[SESSION_KEY]
    if not session.cells:
        reason = (
            "no models.yaml found: pass --llm-models PATH or put one in the rootdir"
            if session.catalog is None
            else "no cell matches the selection (--llm-mode / --llm-model / --llm-quant)"
        )
        metafunc.parametrize(
            CELL_PARAM,
            [pytest.param(None, id="no-cells", marks=pytest.mark.skip(reason=reason))],
            scope="session",
        )
        return
    apart = metafunc.definition.get_closest_marker("stress") is not None
    params = [  # xdist: a cell's tests share a worker; stress tests form one group, run last
        pytest.param(
            cell,
            id=cell.id,
            marks=pytest.mark.xdist_group(STRESS_GROUP if apart else cell.id),
        )
        for cell in session.cells
    ]
    metafunc.parametrize(CELL_PARAM, params, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group each cell's tests together in matrix order, load first; stress after everything.
    A profile that thresholds.yaml ``profiles`` does not list runs only when -m names it."""
    session = config.stash[SESSION_KEY]
    markexpr = config.option.markexpr

    def off(item: pytest.Item) -> bool:
        profile = profile_of(item)
        return profile in PROFILE_ORDER and not session.settings.runs_profile(profile, markexpr)

    deselected = [item for item in items if off(item)]
    if deselected:
        dropped = {id(item) for item in deselected}
        items[:] = [item for item in items if id(item) not in dropped]
        config.hook.pytest_deselected(items=deselected)
    rank = {cell.id: i for i, cell in enumerate(session.cells)}
    position = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, int, int]:
        cell = cell_of(item)
        profile = profile_of(item)
        stress = 1 if profile == "stress" else 0
        cell_rank = rank.get(cell.id, -1) if cell else -1
        profile_rank = (
            PROFILE_ORDER.index(profile) if profile in PROFILE_ORDER else len(PROFILE_ORDER)
        )
        return (stress, cell_rank, profile_rank, position[id(item)])

    items.sort(key=key)


def _plan_stress(config: pytest.Config, items: list[pytest.Item]) -> None:
    plan = stress_choice.plan(items, config.stash[RESUMED_KEY], config.option.llm_stress_from)
    if plan is not None:
        config.stash[STRESS_PLAN_KEY] = plan


def pytest_collection_finish(session: pytest.Session) -> None:
    """The controller's checkpoint tracks each cell's profile tests (stress runs apart).
    Runs after every plugin's deselection (-m, -k), so the stress plan sees the final items."""
    _plan_stress(session.config, session.items)
    progress = session.config.stash.get(PROGRESS_KEY, None)
    if progress is not None:
        for item in session.items:
            cell = cell_of(item)
            if cell is not None and profile_of(item) != "stress":
                progress.collected(cell.id, item.nodeid)


# ------------------------------------------------------------------ running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Bring the cell's server up before any fixture, so a load failure is reported once."""
    cell = cell_of(item)
    if cell is not None:
        resumed = item.config.stash[RESUMED_KEY].get(cell.id)
        if resumed:  # finished in the checkpointed run: no server, results carried over
            pytest.skip(resumed)
        if profile_of(item) == "stress":  # decided before a server is started for nothing
            reason = stress_choice.skip_reason(*_stress_choice(item.config), cell)
            if reason:
                pytest.skip(reason)
        run = item.config.stash[SESSION_KEY].run_for(cell)
        if run.skip_reason:
            pytest.skip(run.skip_reason)
        if run.load_error:
            if run.load_error_reported:
                pytest.skip(f"load failed: {run.short_error}")
            run.load_error_reported = True
            if not (item.get_closest_marker("load") and "llm_run" in item.fixturenames):
                pytest.fail(f"load failed for {cell.id}: {run.load_error}", pytrace=False)
            # else: the load test asserts on the error itself and shows all of it
        if run.died:
            pytest.skip(run.died.splitlines()[0])
        _fail_if_server_died(item, cell)
    return (yield from _server_deaths(item, cell))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _server_deaths(item, cell_of(item)))


def _server_deaths(item: pytest.Item, cell: Cell | None):  # type: ignore[no-untyped-def]
    """Run a test phase; an error it raises because the cell's server died becomes one short
    failure that says so (not the client's traceback)."""
    try:
        return (yield)
    except Exception as exc:
        if cell is not None:  # a broken connection: give a dying server time to be reaped
            _fail_if_server_died(item, cell, 3.0 if isinstance(exc, _BROKEN) else 0.0)
        raise


_BROKEN = (RequestFailed, ServerError, OSError, http.client.HTTPException)


def _fail_if_server_died(item: pytest.Item, cell: Cell, wait: float = 0.0) -> None:
    activity = f"the {profile_of(item)} profile ran {item.name.split('[', 1)[0]}"
    death = item.config.stash[SESSION_KEY].server_death(cell, activity, wait)
    if death:
        raise pytest.fail.Exception(death, pytrace=False) from None


def _stress_choice(config: pytest.Config) -> tuple[str | None, str]:
    """The stress configuration, decided once per process when the first stress test starts."""
    if STRESS_CHOICE_KEY not in config.stash:
        try:
            choice = stress_choice.decide(config.stash[SESSION_KEY], config.stash[STRESS_PLAN_KEY])
        except ReportError as exc:
            choice = (None, f"--llm-stress-from: {exc}")
        config.stash[STRESS_CHOICE_KEY] = choice
    return config.stash[STRESS_CHOICE_KEY]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Stop a cell's server as soon as its last test is done, and share what it taught."""
    try:
        return (yield)
    finally:
        cell = cell_of(item)
        next_cell = cell_of(nextitem) if nextitem is not None else None
        # the cell's profiles end where its stress test (run apart, after all cells) begins
        apart = nextitem is not None and (profile_of(nextitem) == "stress") != (
            profile_of(item) == "stress"
        )
        if cell is not None and (next_cell is None or next_cell.id != cell.id or apart):
            item.config.stash[SESSION_KEY].finish(cell)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Tag the report with its cell and profile; they travel with it from an xdist worker."""
    report = yield
    cell = cell_of(item)
    if cell is not None:
        report.user_properties.append(("llmbench_cell", cell.id))
        report.user_properties.append(("llmbench_profile", profile_of(item)))
    return report


class OutcomeRecorder:
    """Records every cell test's outcome where the reports end up (the controller under xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        bench = self.config.stash[SESSION_KEY]
        cell = bench.cell_by_id(props.get("llmbench_cell"))
        if cell is None or cell.id in self.config.stash[RESUMED_KEY]:
            return  # a resumed cell keeps the checkpoint's outcomes
        progress = self.config.stash.get(PROGRESS_KEY, None)
        if report.when == "teardown" and progress is not None:
            if report.failed:
                self._record(bench, cell, props, report)
            if progress.torn_down(cell.id, report.nodeid):
                checkpoint.cell_done(bench, progress, cell.id)
                gateway = getattr(getattr(report, "node", None), "gateway", None)
                if gateway is not None:  # xdist: workers print nothing, so one line per cell
                    record = bench.store.to_json().get(cell.id)
                    write_line(self.config, cell_line(cell.id, gateway.id, record))
            return
        if report.when != "call" and report.outcome == "passed":
            return
        self._record(bench, cell, props, report)

    def _record(
        self, bench: BenchSession, cell: Cell, props: dict[str, Any], report: pytest.TestReport
    ) -> None:
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        message = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            message = _first_line(report)
        name = report.nodeid.rsplit("::", 1)[-1].split("@", 1)[0]  # xdist appends "@group"
        bench.store.outcome(cell, props["llmbench_profile"], name, outcome, message)


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.splitlines()[0] if text else ""


# ------------------------------------------------------------------ finishing


def _uses_cells(session: pytest.Session) -> bool:
    return any(cell_of(item) is not None for item in session.items)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    bench = session.config.stash.get(SESSION_KEY, None)
    if bench is None:
        return
    bench.stop_all()
    if hasattr(session.config, "workerinput"):
        session.config.workeroutput["llmbench_results"] = bench.store.to_json()  # type: ignore[attr-defined]
        return
    if bench.state is not None:  # measurements of workers that crashed after finishing cells
        for record in bench.state.cell_records().values():
            if not bench.store.has_measurements(record["cell_id"]):
                bench.store.merge({record["cell_id"]: record})
    progress = session.config.stash.get(PROGRESS_KEY, None)
    if progress is not None:  # also lists the cells never reached as 'not run'
        checkpoint.finish_run(bench, progress)
        if session.exitstatus == pytest.ExitCode.OK and progress.carried_failures():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # as the whole run would exit
    if _uses_cells(session) or bench.store.cells():
        report = run_report(bench, int(session.exitstatus))
        plan = session.config.stash.get(BASELINE_KEY, None)
        comparison = plan.compare(report) if plan else None
        if comparison is not None:
            report["comparison"] = comparison.as_dict()
            if comparison.regressions and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # like --benchmark-compare-fail
                report["metadata"]["exit_status"] = int(session.exitstatus)
        written = write_reports(bench, report=report)
        if session.config.option.llm_benchmark_json:
            target = Path(session.config.option.llm_benchmark_json).expanduser()
            try:
                written.append(write_benchmark_json(report, target))
            except OSError as exc:  # the run's own reports are written: a warning, not a crash
                bench.progress(f"warning: --llm-benchmark-json {target} not written: {exc}")
        session.config.stash[REPORTS_KEY] = written
        if plan is not None:
            interrupted = exitstatus in (
                pytest.ExitCode.INTERRUPTED,
                pytest.ExitCode.INTERNAL_ERROR,
            )
            outcome = plan.finish(report, comparison, interrupted)
            session.config.stash[BASELINE_OUTCOME_KEY] = outcome


REPORTS_KEY = pytest.StashKey[list[Path]]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # type: ignore[no-untyped-def]
    """xdist controller: fold a finished worker's results into the one store."""
    data = getattr(node, "workeroutput", {}).get("llmbench_results")
    if data:
        node.config.stash[SESSION_KEY].store.merge(data)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    bench = config.stash.get(SESSION_KEY, None)
    if bench is None or hasattr(config, "workerinput"):
        return
    cells = bench.records()
    if not cells:
        return
    terminalreporter.section("llmbench summary")
    for line in summary_lines(cells, bench.settings, machine_state=bench.machine_state):
        terminalreporter.write_line(line)
    for path in config.stash.get(REPORTS_KEY, []):
        terminalreporter.write_line(f"report: {path}")
    progress = config.stash.get(PROGRESS_KEY, None)
    if progress is not None and progress.saved is not None:
        terminalreporter.write_line(progress.summary([c.id for c in bench.cells]))
    if bench.workers > 1:
        terminalreporter.write_line(
            f"warning: {bench.workers} workers ran servers side by side ({bench.threads} threads "
            "each); their timings disturb each other, so compare cells from a serial run",
            yellow=True,
        )
    _baseline_summary(terminalreporter, config.stash.get(BASELINE_OUTCOME_KEY, None))


def _baseline_summary(terminalreporter, outcome: baseline.Outcome | None) -> None:  # type: ignore[no-untyped-def]
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


def pytest_unconfigure(config: pytest.Config) -> None:
    close_run_logger()
    bench = config.stash.get(SESSION_KEY, None)
    if bench is not None:
        try:
            bench.stop_all()
        finally:  # the state directory goes even when stopping a server raised
            if bench.state is not None and not hasattr(config, "workerinput"):
                shutil.rmtree(bench.state.directory, ignore_errors=True)
