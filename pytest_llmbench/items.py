"""What a collected test item is in benchmark terms: its matrix cell, its profile, and so its
place in the run (parameters, xdist group, order).

The plugin's hooks, the run and the pytest-html extras all ask; none imports another for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmbench import config as cfg
from pytest_llmbench.matrix import Cell

if TYPE_CHECKING:
    from pytest_llmbench.session import BenchSession

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


def cell_params(bench: BenchSession, stress: bool) -> list[Any]:
    """One parameter per cell, in matrix order.  Under xdist a cell's tests share a worker
    (their group is the cell); the stress tests form one group of their own, run last."""
    if not bench.cells:
        reason = (
            "no models.yaml found: pass --llm-models PATH or put one in the rootdir"
            if bench.catalog is None
            else "no cell matches the selection (--llm-mode / --llm-model / --llm-quant)"
        )
        return [pytest.param(None, id="no-cells", marks=pytest.mark.skip(reason=reason))]
    return [
        pytest.param(
            cell, id=cell.id, marks=pytest.mark.xdist_group(STRESS_GROUP if stress else cell.id)
        )
        for cell in bench.cells
    ]


def arrange(bench: BenchSession, markexpr: str, items: list[pytest.Item]) -> list[pytest.Item]:
    """Drop (and return) the tests of profiles thresholds.yaml ``profiles`` leaves out unless
    -m names them; order the rest: each cell's tests together in matrix order, profiles in
    their order (load first), stress after everything."""

    def off(item: pytest.Item) -> bool:
        profile = profile_of(item)
        return profile in PROFILE_ORDER and not bench.settings.runs_profile(profile, markexpr)

    deselected = [item for item in items if off(item)]
    if deselected:
        dropped = {id(item) for item in deselected}
        items[:] = [item for item in items if id(item) not in dropped]
    rank = {cell.id: i for i, cell in enumerate(bench.cells)}
    position = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, int, int]:
        cell = cell_of(item)
        profile = profile_of(item)
        cell_rank = rank.get(cell.id, -1) if cell else -1
        profile_rank = (
            PROFILE_ORDER.index(profile) if profile in PROFILE_ORDER else len(PROFILE_ORDER)
        )
        return (int(profile == "stress"), cell_rank, profile_rank, position[id(item)])

    items.sort(key=key)
    return deselected
