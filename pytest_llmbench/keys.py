"""Stash keys for per-run state (never attributes on ``config``, never module globals)."""

from __future__ import annotations

import pytest

from pytest_llmbench.checkpoint import Progress
from pytest_llmbench.session import BenchSession

SESSION_KEY = pytest.StashKey[BenchSession]()

# the controller's checkpoint progress (absent on xdist workers)
PROGRESS_KEY = pytest.StashKey[Progress]()
# cells carried from a checkpoint → the skip reason of their tests (controller and workers)
RESUMED_KEY = pytest.StashKey[dict[str, str]]()
