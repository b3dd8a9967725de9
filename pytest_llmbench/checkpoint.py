"""Checkpoint and resume: which cells of a run are finished, so an interrupted run can go on.

The controller (the only process when xdist is not used) writes ``<output>/llmbench-checkpoint.json``
atomically each time a cell's last test has reported its teardown, and once more at session end
(also after Ctrl+C)::

    {"format": "llmbench-checkpoint", "version": 1,
     "config_hash": "<sha256 of config>", "config": {...},
     "run": "<timestamp of the run that wrote it>", "updated_at": "...",
     "complete": false,
     "completed": {"<cell id>": {"run": "<timestamp of the run that finished it>",
                                 "record": {<the result store's record for the cell>}}},
     "remaining": ["<cell id>", ...],
     "observations": [<what finished cells taught the early-termination rules>]}

A cell is *completed* when every one of its collected tests has reported its teardown, whatever
the outcome (passed, failed, skipped); a cell whose worker crashed or that Ctrl+C cut short stays
in ``remaining`` and runs again on resume.

The config hash covers what changes the numbers or which tests run (:func:`fingerprint`): every
thresholds.yaml setting except where files go (``output``, ``logging``, ``registry``,
``model_dir``), the catalog entries of the selected models, the selected cell ids in order,
threads per server, early termination on/off, the ``--llm-server-url`` server's identity, and the
test selection (``-m``, ``-k`` and the test paths).  It leaves out the output directory, the
report formats and the registry, which change neither.

``--llm-resume [PATH]`` loads the checkpoint (default: the one in the output directory), refuses
one made with a different configuration, carries its completed cells into this run's result
store (``resumed: true`` in their records) and skips their tests without starting a server.  A
complete checkpoint leaves nothing to run: the run only re-renders the reports from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmbench.config import Settings
from pytest_llmbench.errors import USAGE_ERROR, LlmbenchError
from pytest_llmbench.matrix import Cell
from pytest_llmbench.models import atomic_write_text
from pytest_llmbench.results import ResultStore
from pytest_llmbench.termination import Observation

if TYPE_CHECKING:
    from pytest_llmbench.session import BenchSession

FILENAME = "llmbench-checkpoint.json"
FORMAT = "llmbench-checkpoint"
VERSION = 1
RESUMED_PREFIX = "resumed: completed in the checkpointed run of"
# thresholds.yaml keys that say where things go, not what is measured
UNHASHED_SETTINGS = ("output", "logging", "registry", "model_dir", "base_dir")


class CheckpointError(LlmbenchError):
    """A checkpoint that cannot be used; the message is one line naming the file and the fix."""

    exit_code = USAGE_ERROR


def timestamp(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# ------------------------------------------------------------------ the configuration hash


def fingerprint(
    settings: Settings,
    cells: Sequence[Cell],
    *,
    threads: int | None,
    early_stop: bool,
    external: Mapping[str, Any] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration that decides a run's results, as plain JSON data (see the module doc)."""
    raw = asdict(settings)
    models: dict[str, Any] = {}
    for cell in cells:
        models.setdefault(cell.model.id, asdict(cell.model))
    data = {
        "settings": {k: v for k, v in raw.items() if k not in UNHASHED_SETTINGS},
        "models": models,
        "cells": [cell.id for cell in cells],
        "threads": threads,
        "early_stop": early_stop,
        "external_server": dict(external) if external else None,
        "selection": dict(selection or {}),
    }
    return json.loads(json.dumps(data, sort_keys=True, default=str))  # tuples → lists, as on disk


def config_hash(config: Mapping[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Where two fingerprints differ, as ``key.path (old → new)``, leaves only."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path} (added)")
            elif key not in new:
                out.append(f"{path} (removed)")
            else:
                out.extend(differences(old[key], new[key], path))
        return out
    if old == new:
        return []
    return [f"{prefix or '(all)'} ({_short(old)} → {_short(new)})"]


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def selection_of(markexpr: str, keyword: str, args: Iterable[str], rootdir: Path) -> dict[str, Any]:
    """``-m``, ``-k`` and the test paths, the paths relative to the rootdir (``bench/`` = ``bench``)."""
    paths = []
    for arg in args:
        path, sep, rest = str(arg).partition("::")
        full = Path(os.path.abspath(path))
        try:
            shown = full.relative_to(rootdir.resolve()).as_posix()
        except ValueError:
            shown = full.as_posix()
        paths.append(shown + sep + rest)
    return {"markexpr": markexpr or "", "keyword": keyword or "", "paths": sorted(paths)}


# ------------------------------------------------------------------ reading and writing


@dataclass
class Checkpoint:
    config: dict[str, Any]
    run: str  # timestamp of the run that wrote it
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → {run, record}
    remaining: list[str] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    config_hash: str = ""
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "config_hash": config_hash(self.config),
            "config": self.config,
            "run": self.run,
            "updated_at": self.updated_at or timestamp(),
            "complete": self.complete,
            "completed": self.completed,
            "remaining": self.remaining,
            "observations": self.observations,
        }


def write(path: Path, checkpoint: Checkpoint) -> Path:
    checkpoint.updated_at = timestamp()
    text = json.dumps(checkpoint.to_json(), indent=1, default=str) + "\n"
    atomic_write_text(path, text)
    return path


def resolve_path(value: str | None, output_dir: Path) -> Path:
    """``--llm-resume`` with no value: the output directory's checkpoint; a directory: its one."""
    if not value:
        return output_dir / FILENAME
    path = Path(value).expanduser()
    if path.is_dir():
        if (path / FILENAME).is_file():
            return path / FILENAME
        raise CheckpointError(
            f"--llm-resume: {path} is a directory without {FILENAME} (was a test path taken as "
            "the checkpoint? put --llm-resume after the test paths, or write --llm-resume=PATH)"
        )
    return path


def read(path: Path) -> Checkpoint:
    fix = "delete it and run without --llm-resume to start over"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"--llm-resume: no checkpoint at {path} (one is written after each finished cell; "
            "run without --llm-resume to start, or name the file: --llm-resume=PATH)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}): {fix}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format is not {FORMAT!r}: not a checkpoint; {fix}")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: version {data.get('version')!r} is not {VERSION}, which this "
            f"pytest-llmbench reads: {fix}"
        )
    expected = {
        "config": dict,
        "run": str,
        "completed": dict,
        "remaining": list,
        "observations": list,
        "complete": bool,
        "config_hash": str,
    }
    for key, kind in expected.items():
        if not isinstance(data.get(key), kind):
            raise CheckpointError(
                f"{path}: key {key!r} is {_short(data.get(key))}, expected a {kind.__name__}: {fix}"
            )
    for cell_id, entry in data["completed"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("record"), dict)):
            raise CheckpointError(f"{path}: key 'completed.{cell_id}' has no record object: {fix}")
    if config_hash(data["config"]) != data["config_hash"]:
        raise CheckpointError(
            f"{path}: config_hash does not match its config (the file was edited): {fix}"
        )
    return Checkpoint(
        config=data["config"],
        run=data["run"],
        completed=data["completed"],
        remaining=data["remaining"],
        observations=data["observations"],
        complete=data["complete"],
        config_hash=data["config_hash"],
        updated_at=str(data.get("updated_at", "")),
    )


def check_config(path: Path, checkpoint: Checkpoint, current: Mapping[str, Any]) -> None:
    """Refuse a checkpoint made with another configuration: one line, what differs, the fix."""
    if checkpoint.config_hash == config_hash(current):
        return
    diffs = differences(checkpoint.config, dict(current))
    shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    raise CheckpointError(
        f"{path}: the checkpoint was made with a different configuration ({shown}): "
        "run with the configuration it was made with, or delete the file or drop --llm-resume "
        "to start a new run"
    )


# ------------------------------------------------------------------ a run's progress


def resumed_reason(run: str) -> str:
    return f"{RESUMED_PREFIX} {run}"


def strip_resume_marks(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("resumed", "resumed_from")}


class Progress:
    """The controller's view of a run's cells: which tests each has, which are done.

    ``collected`` learns each cell's test node ids (from the items, or from an xdist worker's
    collection); ``torn_down`` marks a test done and says when that finished its cell.
    """

    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        run: str,
        carried: Checkpoint | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.run = run
        self.carried: dict[str, dict[str, Any]] = dict(carried.completed) if carried else {}
        self.observations: list[dict[str, Any]] = list(carried.observations) if carried else []
        self.planned: dict[str, set[str]] = {}  # cell id → node ids of its tests
        self.done: set[str] = set()
        self.completed: dict[str, dict[str, Any]] = dict(self.carried)
        self.saved: Path | None = None  # where the last checkpoint went

    def resumed(self) -> dict[str, str]:
        """Cells carried from the checkpoint → the skip reason their tests get."""
        return {cell_id: resumed_reason(entry["run"]) for cell_id, entry in self.carried.items()}

    def carried_failures(self) -> list[str]:
        """The carried cells with a failed or erroring test: a resumed run exits as the whole
        run would have."""
        return [
            cell_id
            for cell_id, entry in self.carried.items()
            if any(
                test.get("outcome") in ("failed", "error")
                for test in entry["record"].get("tests", {}).values()
            )
        ]

    def carry_into(self, store: ResultStore) -> None:
        """Put the checkpoint's finished cells into this run's store, marked as resumed."""
        for cell_id, entry in self.carried.items():
            record = {**entry["record"], "resumed": True, "resumed_from": entry["run"]}
            store.merge({cell_id: record})

    def collected(self, cell_id: str, nodeid: str) -> None:
        self.planned.setdefault(cell_id, set()).add(nodeid)

    def torn_down(self, cell_id: str, nodeid: str) -> bool:
        """Note a test's teardown; True when it was the last test of a cell not yet completed."""
        self.done.add(nodeid)
        tests = self.planned.get(cell_id)
        return bool(tests) and cell_id not in self.completed and tests <= self.done

    def complete_cell(self, cell_id: str, record: Mapping[str, Any]) -> None:
        self.completed[cell_id] = {"run": self.run, "record": strip_resume_marks(record)}

    def remaining(self, order: Sequence[str]) -> list[str]:
        """Planned cells not completed, in matrix order (unknown plans: every cell not done)."""
        wanted = self.planned.keys() if self.planned else order
        return [c for c in order if c in wanted and c not in self.completed]

    def checkpoint(
        self, order: Sequence[str], observations: Iterable[Observation] = ()
    ) -> Checkpoint:
        learned = {o["cell_id"]: o for o in self.observations}
        learned.update({o.cell_id: o.as_dict() for o in observations})
        completed = {c: self.completed[c] for c in order if c in self.completed}
        remaining = self.remaining(order)
        return Checkpoint(
            config=self.config,
            run=self.run,
            completed=completed,
            remaining=remaining,
            observations=[learned[c] for c in learned if c in completed],
            complete=not remaining,
        )

    def save(self, order: Sequence[str], observations: Iterable[Observation] = ()) -> Path:
        self.saved = write(self.path, self.checkpoint(order, observations))
        return self.saved

    def summary(self, order: Sequence[str]) -> str:
        remaining = self.remaining(order)
        done = len([c for c in order if c in self.completed])
        tail = "complete" if not remaining else "continue with --llm-resume"
        return f"checkpoint: {self.path} ({done} cells done, {len(remaining)} remaining; {tail})"


# ------------------------------------------------------------------ a run with a session


def start(bench: BenchSession, selection: Mapping[str, Any], resume: str | None) -> Progress:
    """The controller's progress for this run; with ``resume`` (the --llm-resume value, "" for
    the default path) the checkpoint's finished cells are carried into the run's store."""
    config = fingerprint(
        bench.settings,
        bench.cells,
        threads=bench.threads,
        early_stop=bench.early_stop,
        external=bench.external,
        selection=selection,
    )
    path = bench.output_dir / FILENAME
    carried = None
    if resume is not None:
        source = resolve_path(resume, bench.output_dir)
        carried = read(source)
        check_config(source, carried, config)
    progress = Progress(path, config, timestamp(bench.started_at), carried)
    progress.carry_into(bench.store)
    if bench.state is not None:  # the early-termination rules remember the finished cells
        for observation in progress.observations:
            bench.state.add_observation(Observation(**observation))
    return progress


def cell_done(bench: BenchSession, progress: Progress, cell_id: str) -> Path | None:
    """A cell's last test is torn down: fold in its worker's record and save the checkpoint."""
    if bench.state is not None:
        record = bench.state.cell_records().get(cell_id)
        if record:
            bench.store.merge({cell_id: record})
    progress.complete_cell(cell_id, bench.store.to_json().get(cell_id, {}))
    return save(bench, progress)


def save(bench: BenchSession, progress: Progress) -> Path | None:
    """Write the checkpoint; a failure to write is a warning, never the end of the run."""
    observations = bench.state.observations() if bench.state is not None else ()
    try:
        return progress.save([c.id for c in bench.cells], observations)
    except OSError as exc:
        bench.progress(f"warning: checkpoint {progress.path} not written: {exc}")
        return None


def finish_run(bench: BenchSession, progress: Progress) -> Path | None:
    """Session end (also after Ctrl+C): list the cells never reached as 'not run' in the store,
    refresh the finished cells' records and save the checkpoint.

    Nothing is written before some cell has finished, so ``--collect-only`` or a run stopped in
    its first cell leaves an earlier run's checkpoint alone."""
    order = [c.id for c in bench.cells]
    records = bench.store.to_json()
    if progress.done:  # tests ran in this session: the cells it never reached are 'not run'
        for cell_id in progress.remaining(order):
            cell = bench.cell_by_id(cell_id)
            if cell is not None and cell_id not in records:
                bench.store.cell(cell)
    if not progress.completed:
        return None
    for cell_id in list(progress.completed):
        if cell_id not in progress.carried and cell_id in records:
            progress.complete_cell(cell_id, records[cell_id])
    return save(bench, progress)
