"""Which configuration the stress profile runs on, decided where the run is orchestrated.

One configuration is stressed: the last one, in matrix order, that passed the earlier
performance profiles in this run (quality does not count: accuracy does not heat a CPU), or in
the report given with ``--llm-stress-from``; with nothing measured at all, the last selected
configuration, and the reason says it is unverified.  Under xdist the stress tests form one
group of their own, which waits until the other workers have finished their cells.  The stress
workload itself only measures the server it is handed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmbench.items import cell_of, is_stress
from pytest_llmbench.report.merge import load_report
from pytest_llmbench.results import ResultStore

if TYPE_CHECKING:
    from pytest_llmbench.matrix import Cell
    from pytest_llmbench.session import BenchSession

NOT_JUDGED = ("quality", "stress")
STALL_SECONDS = 1800.0  # no cell finished on any worker for this long: stop waiting for them
WAIT_POLL_SECONDS = 1.0
Choice = tuple[str | None, str]  # the cell id to stress (None: none) and why


def passed_earlier(record: Mapping[str, Any]) -> bool:
    """Every earlier performance profile that ran for this cell passed."""
    statuses = [
        p.get("status")
        for name, p in (record.get("profiles") or {}).items()
        if name not in NOT_JUDGED
    ]
    ran = [s for s in statuses if s not in (None, "skipped", "not run")]
    return bool(ran) and all(s == "passed" for s in ran)


def choose(records: Sequence[Mapping[str, Any]], order: Sequence[str]) -> Choice:
    """The cell id to stress and why; None when nothing qualifies."""
    judged = {
        r["cell_id"]: r
        for r in records
        if any(t.get("profile") not in NOT_JUDGED for t in (r.get("tests") or {}).values())
    }
    if not judged:
        if not order:
            return None, "no configuration selected"
        return order[-1], (
            "nothing was measured earlier in this run and no --llm-stress-from report was "
            "given: the last selected configuration, unverified"
        )
    passing = [
        cell_id for cell_id in order if cell_id in judged and passed_earlier(judged[cell_id])
    ]
    if not passing:
        return None, "no configuration passed the earlier profiles"
    return passing[-1], "the last configuration that passed the earlier profiles"


@dataclass(frozen=True)
class StressPlan:
    """What the stress choice waits for and reads, fixed at collection (same on every worker).

    ``wait_for``: the cells with other tests in this run; under xdist they may still be running
    on other workers when the stress tests start.  ``from_report``: ``--llm-stress-from``, a JSON
    report whose results replace this run's as the evidence (the cells must still be selected).
    """

    wait_for: frozenset[str] = frozenset()
    from_report: Path | None = None


def finished_records(session: BenchSession) -> list[dict[str, Any]]:
    """Every cell this run finished, on any worker (the shared state), with derived statuses."""
    store = ResultStore()
    if session.state is not None:
        store.merge(session.state.cell_records())
    store.merge(session.store.to_json())
    return store.cells()


def wait_for_cells(
    session: BenchSession, cells: frozenset[str], stall_s: float = STALL_SECONDS
) -> list[str]:
    """Block until every cell in ``cells`` is finished by some worker; the ones still missing
    when no cell has finished for ``stall_s`` seconds (a crashed or hung worker)."""
    if session.state is None:
        return []
    told, last_change, done = False, time.monotonic(), session.state.finished()
    while missing := sorted(cells - done):
        if time.monotonic() - last_change > stall_s:
            return missing
        if not told:
            session.progress(f"stress waits for {len(missing)} cells on other workers")
            told = True
        time.sleep(WAIT_POLL_SECONDS)
        now = session.state.finished()
        if now != done:
            done, last_change = now, time.monotonic()
    return []


def decide(session: BenchSession, plan: StressPlan) -> Choice:
    """The configuration to stress and why, once the earlier profiles are all done."""
    order = [c.id for c in session.cells]
    if plan.from_report is not None:
        report = load_report(plan.from_report)
        chosen, why = choose(report["results"], order)
        if chosen is not None and why.startswith("nothing was measured"):
            return None, f"{plan.from_report} has no measured configuration selected in this run"
        return chosen, f"{why} in {plan.from_report}"
    missing = wait_for_cells(session, plan.wait_for)
    chosen, why = choose(finished_records(session), order)
    if missing:
        why += f" (not finished after {STALL_SECONDS / 60:.0f} min: {', '.join(missing)})"
    return chosen, why


def skip_reason(chosen: str | None, why: str, cell: Cell) -> str | None:
    """Why this cell is not stressed (None when it is the chosen one)."""
    if chosen == cell.id:
        return None
    if chosen is None:
        return f"stress skipped: {why}"
    return f"stress runs one configuration: {chosen} ({why})"


def plan(
    items: Sequence[pytest.Item], resumed: Mapping[str, str], source: str | None
) -> StressPlan | None:
    """The plan for this run's stress tests (None without any): wait for every cell with
    other tests here, except those carried from a checkpoint."""
    if not any(is_stress(item) for item in items):
        return None
    others = {
        cell.id for item in items if (cell := cell_of(item)) is not None and not is_stress(item)
    }
    return StressPlan(
        wait_for=frozenset(others - resumed.keys()),
        from_report=Path(source).expanduser().resolve() if source else None,
    )
