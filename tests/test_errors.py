"""Every error of ours carries the exit code ``llmbench`` ends with, and the plugin's helper turns
only the user's mistakes into pytest's usage errors."""

from __future__ import annotations

import pytest

from pytest_llmbench.baseline import BaselineError
from pytest_llmbench.binaries import ToolNotFound
from pytest_llmbench.checkpoint import CheckpointError
from pytest_llmbench.client import RequestFailed
from pytest_llmbench.config import ConfigError
from pytest_llmbench.errors import LlmbenchError, UsageError, usage_errors
from pytest_llmbench.hub import ChecksumMismatch, HubError
from pytest_llmbench.models import ModelCorrupt, ModelUnavailable
from pytest_llmbench.registry import LoadConfigError, RegistryError
from pytest_llmbench.report.merge import ReportError
from pytest_llmbench.server import ServerError
from pytest_llmbench.server_options import OptionError
from pytest_llmbench.workloads.divergence import DivergenceError
from pytest_llmbench.workloads.finetune import FinetuneError

USER_MISTAKES = (
    UsageError,
    ConfigError,
    ReportError,
    BaselineError,
    CheckpointError,
    RegistryError,
    OptionError,
    LoadConfigError,
)
FAILURES = (
    ModelUnavailable,
    ModelCorrupt,
    HubError,
    ChecksumMismatch,
    ToolNotFound,
    ServerError,
    RequestFailed,
    DivergenceError,
    FinetuneError,
)


@pytest.mark.parametrize("error", USER_MISTAKES, ids=lambda e: e.__name__)
def test_a_users_mistake_exits_4_as_pytests_usage_errors_do(error: type[LlmbenchError]) -> None:
    assert issubclass(error, LlmbenchError)
    assert error.exit_code == pytest.ExitCode.USAGE_ERROR == 4


@pytest.mark.parametrize("error", FAILURES, ids=lambda e: e.__name__)
def test_a_failure_exits_1(error: type[LlmbenchError]) -> None:
    assert issubclass(error, LlmbenchError)
    assert error.exit_code == 1


def test_the_plugin_reports_a_users_mistake_as_one_usage_error_line() -> None:
    with pytest.raises(pytest.UsageError) as caught, usage_errors("--llm-stress-from: "):
        raise ReportError("r.json: cannot be read")
    assert str(caught.value) == "--llm-stress-from: r.json: cannot be read"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_failure_passes_the_plugins_helper_unchanged() -> None:
    failure = ModelUnavailable("m-Q4_K_M: no file on this machine")
    with pytest.raises(ModelUnavailable) as caught, usage_errors():
        raise failure
    assert caught.value is failure
