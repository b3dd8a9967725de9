"""The result store: per-cell facts, metrics per profile, and the outcome of every test.

Everything in it is plain JSON data, so an xdist worker can send it home unchanged and the
controller can merge it (:meth:`ResultStore.merge`).
"""

from __future__ import annotations

import copy
from typing import Any

from pytest_llmbench.matrix import Cell

STATUSES = ("passed", "partial", "failed", "skipped", "error", "not run")


class ResultStore:
    def __init__(self) -> None:
        self._cells: dict[str, dict[str, Any]] = {}

    # -------------------------------------------------------------- writing

    def cell(self, cell: Cell) -> dict[str, Any]:
        """The record for ``cell``, created with the catalog's facts on first use."""
        if cell.id not in self._cells:
            self._cells[cell.id] = {
                "cell_id": cell.id,
                "model": cell.model.id,
                "model_name": cell.model.name,
                "size": cell.model.size,
                "params_b": cell.model.params_b,
                "quant": cell.quant,
                "variant": cell.variant,
                "file": {},
                "gguf": {},
                "model_info": {},  # GGUF key/value snapshot, model card, compatibility hints
                "server": {},
                "compat": {},
                "profiles": {},
                "tests": {},
            }
        return self._cells[cell.id]

    def set_info(self, cell: Cell, section: str, values: dict[str, Any]) -> None:
        self.cell(cell)[section].update(values)

    def record(self, cell: Cell, profile: str, metrics: dict[str, Any]) -> None:
        """Merge measured metrics for one profile of one cell."""
        entry = self.cell(cell)["profiles"].setdefault(profile, {"metrics": {}})
        entry["metrics"].update(metrics)

    def set_rating(self, cell: Cell, profile: str, rating: str) -> None:
        self.cell(cell)["profiles"].setdefault(profile, {"metrics": {}})["rating"] = rating

    def outcome(self, cell: Cell, profile: str, test: str, outcome: str, message: str = "") -> None:
        """Record a test's outcome; setup errors and skips count as the test's outcome too."""
        tests = self.cell(cell)["tests"]
        previous = tests.get(test)
        if previous and previous["outcome"] in ("failed", "error") and outcome == "passed":
            return  # a passing teardown does not hide a failing call
        tests[test] = {"profile": profile, "outcome": outcome, "message": message}

    # -------------------------------------------------------------- reading

    def cells(self) -> list[dict[str, Any]]:
        """Every cell's record with its derived status, profile statuses and skip reason."""
        return [self._finished(record) for record in self._cells.values()]

    def _finished(self, record: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(record)
        for test in out["tests"].values():
            out["profiles"].setdefault(test["profile"], {"metrics": {}})
        for name, profile in out["profiles"].items():
            outcomes = [t["outcome"] for t in out["tests"].values() if t["profile"] == name]
            profile["status"] = aggregate_status(outcomes)
        out["status"] = aggregate_status([t["outcome"] for t in out["tests"].values()])
        skipped = [t["message"] for t in out["tests"].values() if t["outcome"] == "skipped"]
        out["skip_reason"] = skipped[0] if out["status"] == "skipped" and skipped else None
        return out

    # -------------------------------------------------------------- xdist transport

    def has_measurements(self, cell_id: str) -> bool:
        """Whether the cell's record holds profile results (else a snapshot may fill it in: a
        snapshot taken when the cell finished is older than what later cells updated since,
        e.g. quality relative to the model's best quant)."""
        record = self._cells.get(cell_id)
        return bool(record and record["profiles"])

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self._cells)

    def merge(self, data: dict[str, Any]) -> None:
        """Fold in a worker's cells (a cell runs on one worker, so records do not collide)."""
        for cell_id, record in data.items():
            mine = self._cells.get(cell_id)
            if mine is None:
                self._cells[cell_id] = copy.deepcopy(record)
                continue
            for section in ("file", "gguf", "model_info", "server", "compat", "tests"):
                mine.setdefault(section, {}).update(record.get(section, {}))
            for name, profile in record["profiles"].items():
                target = mine["profiles"].setdefault(name, {"metrics": {}})
                target["metrics"].update(profile.get("metrics", {}))
                if "rating" in profile:
                    target["rating"] = profile["rating"]


def aggregate_status(outcomes: list[str]) -> str:
    """The termination decision tree's statuses from test outcomes.

    error if anything errored; skipped if nothing ran; passed if all that ran passed; failed if
    all that ran failed; partial when some passed and some failed.
    """
    if not outcomes:
        return "not run"
    if "error" in outcomes:
        return "error"
    ran = [o for o in outcomes if o != "skipped"]
    if not ran:
        return "skipped"
    if all(o == "passed" for o in ran):
        return "passed"
    if all(o == "failed" for o in ran):
        return "failed"
    return "partial"
