"""Stash keys for per-run state (never attributes on ``config``, never module globals)."""

from __future__ import annotations

import pytest

from pytest_llmbench.session import BenchSession

SESSION_KEY = pytest.StashKey[BenchSession]()
