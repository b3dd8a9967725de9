"""pytest hooks for pytest-llmbench: each one hands off to the run (:mod:`pytest_llmbench.run`),
the options (:mod:`pytest_llmbench.options`) or the items (:mod:`pytest_llmbench.items`)."""

from __future__ import annotations

import pytest

from pytest_llmbench import options, parallel
from pytest_llmbench.errors import usage_errors
from pytest_llmbench.items import (
    CELL_PARAM,
    PROFILE_ORDER,
    arrange,
    cell_of,
    cell_params,
    profile_of,
)
from pytest_llmbench.keys import RUN_KEY, SESSION_KEY
from pytest_llmbench.matrix import Cell
from pytest_llmbench.report.run_summary import header_lines, write_summary
from pytest_llmbench.run import BenchRun
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
    with usage_errors():
        bench = build_session(config)
    config.stash[SESSION_KEY] = bench
    run = config.stash[RUN_KEY] = BenchRun(config, bench)  # stashed first: closed on any error
    run.start()
    config.pluginmanager.register(OutcomeRecorder(run), "llmbench-outcomes")
    if config.pluginmanager.hasplugin("html"):  # pytest-html is optional at run time
        from pytest_llmbench.report.pytest_html import HtmlExtras

        config.pluginmanager.register(HtmlExtras(), "llmbench-html")
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get("llmbench_loadgroup"):
        config.option.loadgroup = True  # xdist tags items with their group from this flag


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
    node.workerinput.update(node.config.stash[RUN_KEY].worker_input())


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:  # type: ignore[no-untyped-def]
    node.config.stash[RUN_KEY].collected_on_worker(ids)


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash.get(RUN_KEY, None)
    return header_lines(run) if run is not None else []


# ------------------------------------------------------------------ collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CELL_PARAM in metafunc.fixturenames:
        stress = metafunc.definition.get_closest_marker("stress") is not None
        params = cell_params(metafunc.config.stash[SESSION_KEY], stress)
        metafunc.parametrize(CELL_PARAM, params, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselected = arrange(config.stash[SESSION_KEY], config.option.markexpr, items)
    if deselected:
        config.hook.pytest_deselected(items=deselected)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Runs after every plugin's deselection (-m, -k), so the run sees the final items."""
    session.config.stash[RUN_KEY].collection_finished(session.items)


# ------------------------------------------------------------------ running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Bring the cell's server up before any fixture, so a load failure is reported once."""
    cell = cell_of(item)
    if cell is not None:
        item.config.stash[RUN_KEY].prepare_cell(item, cell)
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
        if cell is not None:
            item.config.stash[RUN_KEY].fail_if_server_died(item, cell, exc)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    try:
        return (yield)
    finally:
        item.config.stash[RUN_KEY].test_done(item, nextitem)


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
    """Hears every test report where the reports end up (the controller under xdist)."""

    def __init__(self, run: BenchRun) -> None:
        self.run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.run.record_report(report)


# ------------------------------------------------------------------ finishing


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None:
        run.finish(session, exitstatus)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # type: ignore[no-untyped-def]
    node.config.stash[RUN_KEY].worker_finished(getattr(node, "workeroutput", {}))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    run = config.stash.get(RUN_KEY, None)
    if run is not None and not run.is_worker:
        write_summary(terminalreporter, run)


def pytest_unconfigure(config: pytest.Config) -> None:
    close_run_logger()
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.close()
