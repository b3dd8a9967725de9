"""The root of pytest-llmbench's own errors, and how the pytest plugin reports them.

Every error the package raises on purpose derives from :class:`LlmbenchError`: its ``str`` is
the one line the user reads, its ``exit_code`` the status ``llmbench`` exits with.  The CLI
turns them into that line and code in ``main``; the plugin through :func:`usage_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

FAILURE = 1  # something went wrong: a file is missing or damaged, a download or a tool failed
USAGE_ERROR = int(pytest.ExitCode.USAGE_ERROR)  # the user's to fix: 4, as pytest's usage errors


class LlmbenchError(Exception):
    """An error worded as one line for the user, with the exit status it ends ``llmbench`` with."""

    exit_code: int = FAILURE


class UsageError(LlmbenchError):
    """A mistake the user can fix (an option, a file or an id); the message says how."""

    exit_code = USAGE_ERROR


@contextmanager
def usage_errors(prefix: str = "") -> Iterator[None]:
    """In the plugin: an error that is the user's to fix becomes pytest's usage error, one line
    (after ``prefix``) and exit status 4 instead of a traceback; any other error goes on as is."""
    try:
        yield
    except LlmbenchError as exc:
        if exc.exit_code != USAGE_ERROR:
            raise
        raise pytest.UsageError(f"{prefix}{exc}") from None
