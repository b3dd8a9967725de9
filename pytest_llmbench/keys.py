"""Stash keys for per-run state (never attributes on ``config``, never module globals)."""

from __future__ import annotations

import pytest

from pytest_llmbench.run import BenchRun
from pytest_llmbench.session import BenchSession

# the run: checkpoint, carried cells, baseline, stress choice, reports (controller and workers)
RUN_KEY = pytest.StashKey[BenchRun]()
# the run's cells, their servers and the result store (what the fixtures hand the profiles)
SESSION_KEY = pytest.StashKey[BenchSession]()
