"""Fixtures the profile modules in ``bench/`` use.

``llm_cell`` is parametrized by the plugin (one value per matrix cell, session scope), so every
fixture below is computed once per cell.  By the time a test's fixtures run, the plugin has
already brought the cell's server up (or skipped / failed the test with the reason).
"""

from __future__ import annotations

import pytest

from pytest_llmbench.client import LlamaClient
from pytest_llmbench.config import Settings
from pytest_llmbench.keys import RUN_KEY, SESSION_KEY
from pytest_llmbench.matrix import Cell
from pytest_llmbench.results import ResultStore
from pytest_llmbench.server import LlamaServer
from pytest_llmbench.session import BenchSession, CellRun
from pytest_llmbench.workloads.long_context import SIZE_PARAM


@pytest.fixture(scope="session")
def llm_session(pytestconfig: pytest.Config) -> BenchSession:
    return pytestconfig.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def llm_settings(llm_session: BenchSession) -> Settings:
    return llm_session.settings


@pytest.fixture(scope="session")
def llm_results(llm_session: BenchSession) -> ResultStore:
    return llm_session.store


@pytest.fixture(scope="session")
def llm_cell(request: pytest.FixtureRequest) -> Cell:
    """The matrix cell under test (parametrized by the plugin)."""
    return request.param


@pytest.fixture(scope="session")
def llm_run(llm_session: BenchSession, llm_cell: Cell) -> CellRun:
    """The cell's load outcome: server, model file, GGUF facts, or the load error."""
    return llm_session.run_for(llm_cell)


@pytest.fixture(scope="session")
def llm_server(llm_run: CellRun) -> LlamaServer:
    """The cell's running llama-server (the plugin has skipped the test if it could not start)."""
    if llm_run.server is None:
        pytest.skip(f"load failed: {llm_run.short_error}")
    return llm_run.server


@pytest.fixture(scope="session")
def llm_client(llm_server: LlamaServer) -> LlamaClient:
    return LlamaClient(llm_server.url, api_key=llm_server.api_key)


@pytest.fixture(scope="session")
def llm_stress_reason(pytestconfig: pytest.Config) -> str:
    """Why the stress profile runs on this cell (the plugin decided before the test started)."""
    return pytestconfig.stash[RUN_KEY].stress_choice()[1]


def parametrize_context_sizes(metafunc: pytest.Metafunc) -> None:
    """For the long-context module's ``pytest_generate_tests``: one test per size in
    ``thresholds.long_context.test_sizes``, in the order given."""
    if SIZE_PARAM not in metafunc.fixturenames:
        return
    sizes = metafunc.config.stash[SESSION_KEY].settings.thresholds.long_context.test_sizes
    metafunc.parametrize(SIZE_PARAM, sizes, ids=[str(s) for s in sizes])
