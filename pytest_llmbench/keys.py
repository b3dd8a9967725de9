"""Stash keys for per-run state (never attributes on ``config``, never module globals)."""

from __future__ import annotations

import pytest

from pytest_llmbench.baseline import Outcome, Plan
from pytest_llmbench.checkpoint import Progress
from pytest_llmbench.session import BenchSession
from pytest_llmbench.stress_choice import StressPlan

SESSION_KEY = pytest.StashKey[BenchSession]()

# the controller's checkpoint progress (absent on xdist workers)
PROGRESS_KEY = pytest.StashKey[Progress]()
# cells carried from a checkpoint → the skip reason of their tests (controller and workers)
RESUMED_KEY = pytest.StashKey[dict[str, str]]()

# --llm-save-baseline / --llm-compare: what to do (controller and workers), and what was done
BASELINE_KEY = pytest.StashKey[Plan | None]()
BASELINE_OUTCOME_KEY = pytest.StashKey[Outcome]()

# the stress profile: what its choice waits for (set at collection), and the choice once made
STRESS_PLAN_KEY = pytest.StashKey[StressPlan]()
STRESS_CHOICE_KEY = pytest.StashKey[tuple[str | None, str]]()
