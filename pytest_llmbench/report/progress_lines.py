"""The ``[llmbench]`` progress lines on pytest's terminal, each on a line of its own.

pytest leaves its progress line open while a file's tests run (``bench/test_x.py .F``) and writes
the next character straight after the last one, so a line written in between would carry the
next characters with it.  Here a progress line ends pytest's line first, then puts pytest's
prefix back (the file name at the default verbosity) or leaves the line for pytest to end (its
``-v`` lines always start on a new one).  Short at ``-q`` (one terminal-wide line), full
otherwise; with live logging (``--log-cli-level``, ini ``log_cli``) pytest shows the log record
itself, in full, so nothing is written twice.  xdist workers print nothing (their output is not
shown); the controller prints one line per finished cell.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

PREFIX = "[llmbench] "


def progress_writer(config: pytest.Config, log: logging.Logger) -> Callable[[str], None]:
    """The run's ``progress`` callback: the ``pytest_llmbench`` log, and the terminal.

    The plugins are looked up at each call: the terminal reporter is registered after the
    session that holds this callback is built."""

    def progress(message: str) -> None:
        warning = message.startswith("warning")
        log.log(logging.WARNING if warning else logging.INFO, message)
        if hasattr(config, "workerinput") or live_logging(config):
            return
        write_line(config, PREFIX + message, yellow=warning)

    return progress


def live_logging(config: pytest.Config) -> bool:
    """pytest's own test for live logging (``LoggingPlugin._log_cli_enabled``)."""
    return config.getoption("log_cli_level", None) is not None or bool(config.getini("log_cli"))


def write_line(config: pytest.Config, text: str, **markup: bool) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    paused = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with paused:
        own_line(reporter, text, **markup)


def own_line(reporter: Any, text: str, **markup: bool) -> None:
    """Write ``text`` on a line of its own without breaking pytest's progress line.

    ``currentfspath`` is what pytest's reporter has open: a path (default verbosity: the file
    name, progress characters follow), a string (``-v``: a test's location, its word follows),
    -2 (``-v``: a finished test's line) or None (``-q``: characters only)."""
    tw = reporter._tw  # the reporter's writer: the only place that knows the cursor's column
    if reporter.verbosity < 0:
        text = shorten(text, tw.fullwidth)
    prefix = reporter.currentfspath
    if tw.width_of_current_line:
        tw.line()
    if isinstance(prefix, Path):
        tw.line(text, **markup)
        tw.write(_relative(reporter, prefix) + " ")  # the next character lands after it again
    elif prefix is None:
        tw.line(text, **markup)
    else:  # -v: pytest starts its next line with a newline once it sees this is not its prefix
        tw.write(text, **markup)
        reporter.currentfspath = -2
    tw.flush()


def _relative(reporter: Any, path: Path) -> str:
    try:
        return str(path.relative_to(reporter.startpath))
    except ValueError:
        return str(path)


def shorten(text: str, width: int) -> str:
    """The first line of ``text``, cut to fit ``width`` columns with an ellipsis."""
    line = text.splitlines()[0] if text else ""
    limit = max(20, width - 1)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def cell_line(cell_id: str, worker: str, record: Mapping[str, Any] | None) -> str:
    """One line for a cell finished on an xdist worker: its outcomes and headline numbers."""
    record = record or {}
    tests = record.get("tests") or {}
    counts = Counter(t.get("outcome", "?") for t in tests.values() if isinstance(t, Mapping))
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no tests"
    metrics = ((record.get("profiles") or {}).get("interactive") or {}).get("metrics") or {}
    numbers = []
    if isinstance(metrics.get("tokens_per_second"), int | float):
        numbers.append(f"{metrics['tokens_per_second']:.1f} t/s")
    if isinstance(metrics.get("ttft_seconds"), int | float):
        numbers.append(f"TTFT {metrics['ttft_seconds']:.3f} s")
    headline = f"; {', '.join(numbers)}" if numbers else ""
    return f"{PREFIX}{cell_id} finished on {worker}: {outcomes}{headline}"
