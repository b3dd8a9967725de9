"""The compatibility registry: what runs and users learned about loading each cell.

One SQLite file (default ``<rootdir>/.llmbench/registry.sqlite3``) is shared by the controller,
every xdist worker and the ``llmbench`` command.  A WAL journal, a 30 s busy timeout and one
``BEGIN IMMEDIATE`` transaction per write keep concurrent writers safe; ``PRAGMA user_version``
is the schema version and :data:`MIGRATIONS` brings an older file up to date on first use.

A user's status is protected: ``testing`` never replaces it, and a run's outcome (evidence)
replaces it only with a note saying so.  Notes are only ever appended to by runs.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from pytest_llmbench import server_options
from pytest_llmbench.config import VARIANT_MODES, Settings, VariantOption
from pytest_llmbench.errors import USAGE_ERROR, LlmbenchError

if TYPE_CHECKING:
    from pytest_llmbench.matrix import Cell

STATUSES = ("unknown", "compatible", "incompatible", "degraded", "testing")
RUN_OUTCOMES = ("compatible", "incompatible", "degraded")
# "testing" is the plugin's own mark while a cell runs; a user who set it would hide the cell's
# real outcome, so it is not theirs to set
USER_STATUSES = tuple(s for s in STATUSES if s != "testing")
BUSY_TIMEOUT_S = 30.0
DEFAULT_PATH = Path(".llmbench") / "registry.sqlite3"

# Each migration is a list of statements run in one transaction; index i brings version i to i+1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: one row per cell
        """CREATE TABLE compat (
            cell_id TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            quant TEXT NOT NULL,
            variant TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'unknown',
            notes TEXT NOT NULL DEFAULT '',
            load_config TEXT NOT NULL DEFAULT '{}',
            last_tested_at TEXT,
            updated_at TEXT NOT NULL
        )""",
    ),
    (  # 2: who set the status, the latest headline metrics, `llmbench variants set` edits
        "ALTER TABLE compat ADD COLUMN status_source TEXT NOT NULL DEFAULT 'run'",
        "ALTER TABLE compat ADD COLUMN max_throughput_tps REAL",
        "ALTER TABLE compat ADD COLUMN ttft_seconds REAL",
        "ALTER TABLE compat ADD COLUMN quality_scores TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE compat ADD COLUMN quantization TEXT",
        "ALTER TABLE compat ADD COLUMN metrics_at TEXT",
        """CREATE TABLE variant_options (
            model_id TEXT NOT NULL,
            variant TEXT NOT NULL,
            key TEXT NOT NULL,
            mode TEXT NOT NULL,
            value TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (model_id, variant, key)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class RegistryError(LlmbenchError):
    """The registry file cannot be used (unreadable, locked too long, newer schema, bad value)."""

    exit_code = USAGE_ERROR


class LoadConfigError(LlmbenchError, ValueError):
    """A load_config that is not a JSON object of known llama-server options; says which key."""

    exit_code = USAGE_ERROR


def validate_load_config(data: Any) -> dict[str, Any]:
    """A JSON object of known (or passed-through) options; null drops a known option, as in
    ``server_options.merge``.  Raises OptionError naming the key and why."""
    if not isinstance(data, Mapping):
        return server_options.validate(data)  # raises: not an object
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        known = key in server_options.OPTION_MAP or key.startswith("--")
        out[key] = None if value is None and known else server_options.check(key, value)
    return out


def parse_load_config(text: str) -> dict[str, Any]:
    """Validate a user's load_config before it is saved: JSON, an object, known keys and values."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadConfigError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    try:
        return validate_load_config(data)
    except server_options.OptionError as exc:
        raise LoadConfigError(str(exc)) from None


def registry_path(explicit: str | Path | None, settings: Settings, root: Path) -> Path:
    """The option (relative to the working directory), then thresholds.yaml's ``registry`` (relative
    to that file), then ``<root>/.llmbench/registry.sqlite3``."""
    if explicit:
        return Path.cwd() / Path(explicit).expanduser()
    if settings.registry:
        return settings.resolve_path(settings.registry)
    return root / DEFAULT_PATH


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise RegistryError(f"{status!r} is not a status; expected one of {', '.join(STATUSES)}")
    return status


def check_user_status(status: str) -> str:
    if status not in USER_STATUSES:
        why = " (the plugin's own mark while a cell runs)" if status in STATUSES else ""
        raise RegistryError(
            f"{status!r} is not a status you can set{why}; expected one of {', '.join(USER_STATUSES)}"
        )
    return status


@dataclass(frozen=True)
class CellRef:
    """A cell's identity as the registry stores it (a cell may have left the catalog)."""

    cell_id: str
    model_id: str
    quant: str
    variant: str | None = None

    @classmethod
    def of(cls, cell: Cell | CellRef) -> CellRef:
        if isinstance(cell, CellRef):
            return cell
        return cls(cell.id, cell.model.id, cell.quant, cell.variant)


@dataclass(frozen=True)
class CompatRecord:
    """One cell's row: its status, who set it, notes, custom load config and latest metrics."""

    cell_id: str
    model_id: str
    quant: str
    variant: str | None = None
    status: str = "unknown"
    status_source: str = "run"  # 'run' or 'user'
    notes: str = ""
    load_config: dict[str, Any] = field(default_factory=dict)
    last_tested_at: str | None = None
    updated_at: str | None = None
    max_throughput_tps: float | None = None
    ttft_seconds: float | None = None
    quality_scores: dict[str, float] = field(default_factory=dict)
    quantization: str | None = None
    metrics_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def one_line_notes(self) -> str:
        return " | ".join(line.strip() for line in self.notes.splitlines() if line.strip())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def append_note(notes: str, text: str) -> str:
    """``notes`` plus a timestamped line; a repeat of the last line's text is not added again."""
    text = " ".join(text.split())
    lines = [line for line in notes.splitlines() if line.strip()]
    if lines and lines[-1].partition("] ")[2] == text:
        return notes
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return "\n".join([*lines, f"[{stamp}] {text}"])


class Registry:
    """The registry at ``path``; the file is created and migrated on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    # -------------------------------------------------------------- connection

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(f"{self.path}: cannot open the registry: {exc}") from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not self._ready:
                # Switching a new file to WAL is not covered by the busy timeout when another
                # process does the same at once, so first use is serialized by a file lock.
                with FileLock(f"{self.path}.lock", timeout=BUSY_TIMEOUT_S):
                    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        conn.execute("PRAGMA journal_mode = WAL")
                    self._migrate(conn)
                self._ready = True
        except (sqlite3.Error, Timeout) as exc:
            conn.close()
            raise RegistryError(f"{self.path}: not a usable registry: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if self._version(conn) == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")  # another process may be migrating: read again inside
        try:
            version = self._version(conn)
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"{self.path}: schema version {version} is newer than this pytest-llmbench "
                f"understands ({SCHEMA_VERSION}); upgrade pytest-llmbench or use another --llm-registry"
            )
        return version

    def schema_version(self) -> int:
        with self._read() as conn:
            return self._version(conn)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: {exc}") from None
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so two writers never deadlock on upgrade."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: {exc}") from None
        finally:
            conn.close()

    # -------------------------------------------------------------- reading

    def get(self, cell_id: str) -> CompatRecord | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM compat WHERE cell_id = ?", (cell_id,)).fetchone()
        return self._record(row) if row else None

    def record_for(self, cell: Cell | CellRef) -> CompatRecord:
        """The cell's row, or an 'unknown' record when it was never seen."""
        ref = CellRef.of(cell)
        return self.get(ref.cell_id) or CompatRecord(
            ref.cell_id, ref.model_id, ref.quant, ref.variant
        )

    def all(self) -> list[CompatRecord]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM compat ORDER BY model_id, quant, variant").fetchall()
        return [self._record(row) for row in rows]

    def _record(self, row: sqlite3.Row) -> CompatRecord:
        try:
            load_config = json.loads(row["load_config"] or "{}")
            quality = json.loads(row["quality_scores"] or "{}")
        except json.JSONDecodeError as exc:
            raise RegistryError(
                f"{self.path}: {row['cell_id']}: stored JSON is damaged ({exc.msg}); "
                f"set it again with llmbench compat set {row['cell_id']} --load-config '{{}}'"
            ) from None
        return CompatRecord(
            cell_id=row["cell_id"],
            model_id=row["model_id"],
            quant=row["quant"],
            variant=row["variant"] or None,
            status=row["status"],
            status_source=row["status_source"],
            notes=row["notes"],
            load_config=load_config,
            last_tested_at=row["last_tested_at"],
            updated_at=row["updated_at"],
            max_throughput_tps=row["max_throughput_tps"],
            ttft_seconds=row["ttft_seconds"],
            quality_scores=quality,
            quantization=row["quantization"],
            metrics_at=row["metrics_at"],
        )

    # -------------------------------------------------------------- writing

    def _ensure_row(self, conn: sqlite3.Connection, ref: CellRef) -> sqlite3.Row:
        conn.execute(
            "INSERT OR IGNORE INTO compat (cell_id, model_id, quant, variant, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (ref.cell_id, ref.model_id, ref.quant, ref.variant or "", _now()),
        )
        return conn.execute("SELECT * FROM compat WHERE cell_id = ?", (ref.cell_id,)).fetchone()

    def set_user(
        self,
        cell: Cell | CellRef,
        *,
        status: str | None = None,
        notes: str | None = None,
        load_config: Mapping[str, Any] | None = None,
    ) -> CompatRecord:
        """A user's edit (``llmbench compat set``); a status other than unknown is protected."""
        ref = CellRef.of(cell)
        if status is not None:
            check_user_status(status)
        if load_config is not None:
            load_config = validate_load_config(load_config)
        with self._write() as conn:
            self._ensure_row(conn, ref)
            if status is not None:
                source = "run" if status == "unknown" else "user"
                conn.execute(
                    "UPDATE compat SET status = ?, status_source = ? WHERE cell_id = ?",
                    (status, source, ref.cell_id),
                )
            if notes is not None:
                conn.execute("UPDATE compat SET notes = ? WHERE cell_id = ?", (notes, ref.cell_id))
            if load_config is not None:
                conn.execute(
                    "UPDATE compat SET load_config = ? WHERE cell_id = ?",
                    (json.dumps(dict(load_config)), ref.cell_id),
                )
            conn.execute(
                "UPDATE compat SET updated_at = ? WHERE cell_id = ?", (_now(), ref.cell_id)
            )
        return self.record_for(ref)

    def reset(self, cell: Cell | CellRef) -> CompatRecord:
        """Back to unknown so the next run tries the cell again; notes and load_config stay."""
        ref = CellRef.of(cell)
        with self._write() as conn:
            row = self._ensure_row(conn, ref)
            notes = append_note(row["notes"], f"reset to unknown (was {row['status']})")
            conn.execute(
                "UPDATE compat SET status = 'unknown', status_source = 'run', notes = ?, "
                "updated_at = ? WHERE cell_id = ?",
                (notes, _now(), ref.cell_id),
            )
        return self.record_for(ref)

    def mark_testing(self, cell: Cell | CellRef) -> None:
        """The cell's server is starting; a user-set status is left as it is."""
        ref = CellRef.of(cell)
        with self._write() as conn:
            self._ensure_row(conn, ref)
            conn.execute(
                "UPDATE compat SET status = 'testing', updated_at = ? "
                "WHERE cell_id = ? AND status_source != 'user'",
                (_now(), ref.cell_id),
            )

    def record_outcome(self, cell: Cell | CellRef, status: str, note: str = "") -> CompatRecord:
        """A run's evidence (compatible, incompatible, degraded), with an optional note.

        It may replace a user-set status, but then a note says what it replaced.
        """
        if status not in RUN_OUTCOMES:
            raise ValueError(f"a run records one of {RUN_OUTCOMES}, not {status!r}")
        ref = CellRef.of(cell)
        now = _now()
        with self._write() as conn:
            row = self._ensure_row(conn, ref)
            notes, source = row["notes"], "run"
            if row["status_source"] == "user":
                if row["status"] == status:
                    source = "user"  # the run agrees: the user's setting stands
                else:
                    notes = append_note(
                        notes, f"run: {status} replaces the user-set status {row['status']}"
                    )
            if note:
                notes = append_note(notes, note)
            conn.execute(
                "UPDATE compat SET status = ?, status_source = ?, notes = ?, last_tested_at = ?, "
                "updated_at = ? WHERE cell_id = ?",
                (status, source, notes, now, now, ref.cell_id),
            )
        return self.record_for(ref)

    def record_metrics(
        self,
        cell: Cell | CellRef,
        *,
        max_throughput_tps: float | None = None,
        ttft_seconds: float | None = None,
        quality_scores: Mapping[str, float] | None = None,
        quantization: str | None = None,
    ) -> None:
        """The latest headline metrics; what this run did not measure keeps its last value."""
        ref = CellRef.of(cell)
        quality = json.dumps(dict(quality_scores)) if quality_scores else None
        with self._write() as conn:
            self._ensure_row(conn, ref)
            conn.execute(
                "UPDATE compat SET max_throughput_tps = COALESCE(?, max_throughput_tps), "
                "ttft_seconds = COALESCE(?, ttft_seconds), "
                "quality_scores = COALESCE(?, quality_scores), "
                "quantization = COALESCE(?, quantization), metrics_at = ?, updated_at = ? "
                "WHERE cell_id = ?",
                (
                    max_throughput_tps,
                    ttft_seconds,
                    quality,
                    quantization,
                    _now(),
                    _now(),
                    ref.cell_id,
                ),
            )

    # -------------------------------------------------------------- variant edits

    def variant_options(self, model_id: str, variant: str) -> dict[str, VariantOption]:
        """Options set with ``llmbench variants set``; they overlay models.yaml's definition."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT key, mode, value FROM variant_options WHERE model_id = ? AND variant = ? "
                "ORDER BY rowid",
                (model_id, variant),
            ).fetchall()
        return {
            row["key"]: VariantOption(row["mode"], json.loads(row["value"] or "null"))
            for row in rows
        }

    def set_variant_option(
        self, model_id: str, variant: str, key: str, option: VariantOption | None
    ) -> None:
        """Store one option of a variant (validated first); None forgets it, so models.yaml's
        definition applies again.  Raises OptionError naming the key and why."""
        value = None
        if option is not None:
            if option.mode not in VARIANT_MODES:
                raise server_options.OptionError(
                    f"{key}: mode {option.mode!r}: expected one of {', '.join(VARIANT_MODES)}"
                )
            value = option.value
            if option.mode == "override":
                value = server_options.check(key, value)
            elif not key.startswith("--") and key not in server_options.OPTION_MAP:
                server_options.check(key, None)  # raises the unknown-key message
        with self._write() as conn:
            if option is None:
                conn.execute(
                    "DELETE FROM variant_options WHERE model_id = ? AND variant = ? AND key = ?",
                    (model_id, variant, key),
                )
                return
            conn.execute(
                "INSERT INTO variant_options (model_id, variant, key, mode, value, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model_id, variant, key) DO UPDATE SET "
                "mode = excluded.mode, value = excluded.value, updated_at = excluded.updated_at",
                (model_id, variant, key, option.mode, json.dumps(value), _now()),
            )
