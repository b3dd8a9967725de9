"""The result store: one typed record per cell (:class:`pytest_llmbench.record.CellRecord`).

Its JSON form is plain data, so an xdist worker can send it home unchanged and the controller
can merge it (:meth:`ResultStore.merge`).
"""

from __future__ import annotations

from typing import Any

from pytest_llmbench.matrix import Cell
from pytest_llmbench.record import FACT_SECTIONS, CellRecord, Outcome


class ResultStore:
    def __init__(self) -> None:
        self._cells: dict[str, CellRecord] = {}

    # -------------------------------------------------------------- writing

    def cell(self, cell: Cell) -> CellRecord:
        """The record for ``cell``, created with the catalog's facts on first use."""
        if cell.id not in self._cells:
            self._cells[cell.id] = CellRecord(
                cell_id=cell.id,
                model=cell.model.id,
                model_name=cell.model.name,
                size=cell.model.size,
                params_b=cell.model.params_b,
                quant=cell.quant,
                variant=cell.variant,
            )
        return self._cells[cell.id]

    def set_info(self, cell: Cell, section: str, values: dict[str, Any]) -> None:
        if section not in FACT_SECTIONS:
            raise ValueError(f"unknown record section {section!r}")
        getattr(self.cell(cell), section).update(values)

    def record(self, cell: Cell, profile: str, metrics: dict[str, Any]) -> None:
        """Merge measured metrics for one profile of one cell."""
        self.cell(cell).profile(profile).metrics.update(metrics)

    def outcome(self, cell: Cell, profile: str, test: str, outcome: str, message: str = "") -> None:
        """Record a test's outcome; setup errors and skips count as the test's outcome too."""
        tests = self.cell(cell).tests
        previous = tests.get(test)
        if previous and previous.outcome in ("failed", "error") and outcome == "passed":
            return  # a passing teardown does not hide a failing call
        tests[test] = Outcome(profile, outcome, message)

    # -------------------------------------------------------------- reading

    def snapshot(self, cell_id: str) -> dict[str, Any] | None:
        """The cell's record as JSON now (None for a cell not seen), for readers of the record."""
        record = self._cells.get(cell_id)
        return record.to_json() if record else None

    def cells(self) -> list[dict[str, Any]]:
        """Every cell's record, finished: statuses from its tests' outcomes, skip reason."""
        return [record.finished().to_json() for record in self._cells.values()]

    # -------------------------------------------------------------- xdist transport

    def has_measurements(self, cell_id: str) -> bool:
        """Whether the cell's record holds profile results (else a snapshot may fill it in: a
        snapshot taken when the cell finished is older than what later cells updated since,
        e.g. quality relative to the model's best quant)."""
        record = self._cells.get(cell_id)
        return bool(record and record.profiles)

    def to_json(self) -> dict[str, Any]:
        return {cell_id: record.to_json() for cell_id, record in self._cells.items()}

    def merge(self, data: dict[str, Any]) -> None:
        """Fold in a worker's cells (a cell runs on one worker, so records do not collide)."""
        for cell_id, raw in data.items():
            theirs = CellRecord.from_json(raw)
            mine = self._cells.get(cell_id)
            if mine is None:
                self._cells[cell_id] = theirs
                continue
            for section in FACT_SECTIONS:
                getattr(mine, section).update(getattr(theirs, section))
            mine.tests.update(theirs.tests)
            for name, profile in theirs.profiles.items():
                target = mine.profile(name)
                target.metrics.update(profile.metrics)
                if profile.rating is not None:
                    target.rating = profile.rating
