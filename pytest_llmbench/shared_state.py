"""State shared by every process of one run (the controller and its xdist workers).

A directory the controller creates and hands to workers: ``observations.json`` (what finished
cells taught the early-termination rules) behind a file lock, and ``cells/<id>.json`` with each
finished cell's results, so a worker that crashes loses only the cell it was running, and
``finished/<id>`` for every cell whose tests are all done, skipped cells included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

from pytest_llmbench.models import atomic_write_text
from pytest_llmbench.termination import Observation

PREFIX = "llmbench-state-"
OWNER = "owner.pid"


def new_run_directory() -> Path:
    """A fresh state directory for this run (the controller's), after removing those left by
    runs that can no longer clean up after themselves (killed with SIGTERM or SIGKILL)."""
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{PREFIX}*"):
        if _abandoned(stale):
            shutil.rmtree(stale, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    (directory / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}", encoding="utf-8")
    return directory


def _abandoned(directory: Path) -> bool:
    """Its owner process, on this host, is gone (a container sharing /tmp has its own pids, and
    its own host name); or it has no owner file and is a day old (an older version's)."""
    try:
        host, pid = (directory / OWNER).read_text(encoding="utf-8").split()
        return host == socket.gethostname() and not psutil.pid_exists(int(pid))
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            return directory.is_dir() and directory.stat().st_mtime < time.time() - 86400
    return False


class SharedState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "cells").mkdir(exist_ok=True)
        (self.directory / "finished").mkdir(exist_ok=True)
        self._lock = FileLock(str(directory / ".lock"))
        self._observations = directory / "observations.json"

    def observations(self) -> list[Observation]:
        with self._lock:
            return [Observation(**o) for o in self._read()]

    def add_observation(self, observation: Observation) -> None:
        with self._lock:
            data = [o for o in self._read() if o["cell_id"] != observation.cell_id]
            data.append(observation.as_dict())
            atomic_write_text(self._observations, json.dumps(data, indent=1))

    def _read(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self._observations.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    def save_cell(self, cell_id: str, record: dict[str, Any]) -> None:
        atomic_write_text(
            self.directory / "cells" / f"{cell_id}.json", json.dumps(record, default=str)
        )

    def cell_records(self) -> dict[str, dict[str, Any]]:
        records = {}
        for path in sorted((self.directory / "cells").glob("*.json")):
            records[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        return records

    def mark_finished(self, cell_id: str) -> None:
        (self.directory / "finished" / cell_id).touch()

    def finished(self) -> set[str]:
        """The cells whose tests are all done, on any worker."""
        return {path.name for path in (self.directory / "finished").iterdir()}
