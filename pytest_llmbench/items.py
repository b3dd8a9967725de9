"""What a collected test item is in benchmark terms: its matrix cell and its profile.

The plugin's hooks and the pytest-html extras both ask; neither should import the other for it.
"""

from __future__ import annotations

import pytest

from pytest_llmbench import config as cfg
from pytest_llmbench.matrix import Cell

PROFILE_ORDER = cfg.PROFILES
CELL_PARAM = "llm_cell"  # the session-scoped parameter that carries a test's cell
STRESS_GROUP = "llmbench-stress"  # the stress tests' own xdist group, run after all cells


def cell_of(item: pytest.Item) -> Cell | None:
    callspec = getattr(item, "callspec", None)
    cell = callspec.params.get(CELL_PARAM) if callspec else None
    return cell if isinstance(cell, Cell) else None


def profile_of(item: pytest.Item) -> str:
    """The profile marker, else the module's name without ``test_`` (``other`` outside one)."""
    for profile in PROFILE_ORDER:
        if item.get_closest_marker(profile):
            return profile
    return (
        item.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        if hasattr(item, "module")
        else "other"
    )


def is_stress(item: pytest.Item) -> bool:
    return profile_of(item) == "stress"
