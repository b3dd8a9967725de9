"""Hub downloads: one catalog file from its Hugging Face repository into the model store.

huggingface_hub speaks the protocol (the file's metadata from a HEAD on ``/resolve``, the
ranged GET that retries and resumes a dropped connection); the file lands in the store's own
layout (``<model_dir>/<size>/<file>``) rather than in huggingface_hub's cache, because the store
is what the plugin reads, checksums and reports.  On top of huggingface_hub this module adds
what a benchmark run needs: a disk-space check that refuses to start, a partial file that a later
run resumes, and a sha256 check against the hub's LFS hash before the file gets its final name,
so a corrupt download is never loaded.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from filelock import FileLock

from pytest_llmbench.config import Model
from pytest_llmbench.matrix import Cell
from pytest_llmbench.model_info import card_summary
from pytest_llmbench.models import (
    ModelCorrupt,
    ModelStore,
    ModelUnavailable,
    from_hub,
    new_record,
    sha256_file,
    verified,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
DISK_MARGIN_BYTES = 256 * 1024**2  # headroom beyond the file itself: logs, reports, the filesystem
METADATA_TIMEOUT = 10.0
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class HubError(ModelUnavailable):
    """A hub lookup or download failed; the message says why and what to do."""


class HubOffline(HubError):
    """The hub is not reachable or ``HF_HUB_OFFLINE`` is set, and the file is not on disk."""


class InsufficientDiskSpace(HubError):
    """The store's disk has less room than the file needs; nothing was downloaded."""


class ChecksumMismatch(HubError, ModelCorrupt):
    """The downloaded bytes do not hash to the hub's sha256; the file was discarded."""


def _silent(_message: str) -> None:
    pass


# ---------------------------------------------------------------- environment


def hub_endpoint(endpoint: str | None = None) -> str:
    """``HF_ENDPOINT`` read now, not at import (huggingface_hub reads it once, at import)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (read now) or huggingface_hub's own offline switch."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def human_bytes(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def check_disk_space(folder: Path, needed: int, margin: int = DISK_MARGIN_BYTES) -> None:
    """Refuse to start a download the disk cannot hold (needed + margin)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + margin:
        raise InsufficientDiskSpace(
            f"{folder}: not enough disk space: {human_bytes(needed)} to download plus "
            f"{human_bytes(margin)} headroom, {human_bytes(free)} free; free some space or "
            "point model_dir (thresholds.yaml, --llm-model-dir) at a larger disk"
        )


# ---------------------------------------------------------------- the hub's file metadata


@dataclass(frozen=True)
class RemoteFile:
    """One file on the hub at one commit, with the size and hash the download must match."""

    repo: str
    filename: str
    revision: str  # as asked (branch, tag or commit)
    commit: str  # what it resolved to
    size: int
    sha256: str | None  # the LFS hash; None for a plain git file
    url: str  # where to GET it, pinned to ``commit``
    endpoint: str = DEFAULT_ENDPOINT  # the hub that answered


def _explain(exc: BaseException, repo: str, filename: str, endpoint: str) -> str:
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, GatedRepoError):
        return f"{repo} is gated: accept its terms on the hub and set HF_TOKEN ({first})"
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"repository {repo} not found (check repo in models.yaml; private repos need HF_TOKEN)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"revision not found in {repo} (check revision in models.yaml)"
    if isinstance(exc, EntryNotFoundError):
        return f"{repo} has no file {filename} (check files in models.yaml)"
    return f"{type(exc).__name__}: {first} (endpoint {endpoint}; set HF_ENDPOINT for a mirror)"


def remote_file(
    repo: str,
    filename: str,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    timeout: float = METADATA_TIMEOUT,
) -> RemoteFile:
    """Size, commit and sha256 of a hub file (a HEAD request; paths-info when the ETag is no hash)."""
    if is_offline():
        raise HubOffline(f"{repo}/{filename}: HF_HUB_OFFLINE is set, so the hub is not asked")
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    base = hub_endpoint(endpoint)
    revision = revision or "main"
    url = hf_hub_url(repo, filename, revision=revision, endpoint=base)
    try:
        meta = get_hf_file_metadata(url, timeout=timeout)
    except Exception as exc:
        raise HubError(f"{repo}/{filename}: {_explain(exc, repo, filename, base)}") from exc
    if meta.commit_hash is None or meta.size is None:
        raise HubError(
            f"{repo}/{filename}: {base} did not send X-Repo-Commit and a size; is HF_ENDPOINT a hub?"
        )
    etag = (meta.etag or "").lower()
    sha = etag if _SHA256_RE.match(etag) else _lfs_sha256(repo, filename, meta.commit_hash, base)
    pinned = hf_hub_url(repo, filename, revision=meta.commit_hash, endpoint=base)
    location = meta.location if meta.location and meta.location != url else pinned
    return RemoteFile(repo, filename, revision, meta.commit_hash, meta.size, sha, location, base)


def _lfs_sha256(repo: str, filename: str, commit: str, endpoint: str) -> str | None:
    """The LFS sha256 from the paths-info API (a file the HEAD did not tag with its hash)."""
    from huggingface_hub import HfApi

    try:
        infos = HfApi(endpoint=endpoint).get_paths_info(repo, [filename], revision=commit)
    except Exception:  # no hash to check against: the caller records the one it computes
        return None
    for info in infos:
        lfs = getattr(info, "lfs", None)
        if getattr(info, "path", None) == filename and lfs is not None:
            sha = lfs["sha256"] if isinstance(lfs, dict) else lfs.sha256
            return str(sha).lower()
    return None


def card_data(
    repo: str, revision: str | None = None, *, endpoint: str | None = None
) -> dict[str, Any] | None:
    """The model card's YAML front matter as the hub parsed it (None when there is none)."""
    if is_offline():
        return None
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=hub_endpoint(endpoint)).model_info(
            repo, revision=revision, timeout=METADATA_TIMEOUT
        )
    except Exception:  # the card is a nicety: a download never fails for lack of one
        return None
    data = getattr(info, "card_data", None) or getattr(info, "cardData", None)
    if data is None:
        return None
    return dict(data.to_dict() if hasattr(data, "to_dict") else data)


# ---------------------------------------------------------------- progress


class _LineProgress:
    """A tqdm stand-in for logs and CI: a line every 10 % through a callback, not a redrawn bar."""

    emit: Callable[[str], None] = staticmethod(_silent)

    def __init__(
        self, *_args: Any, total: int | None = None, initial: int = 0, desc: str = "", **_kw: Any
    ) -> None:
        self.total, self.n, self.desc = total, initial, desc
        self._started = time.monotonic()
        self._start_n = initial
        self._reported = self._tenth()

    def _tenth(self) -> int:
        return int(self.n * 10 / self.total) if self.total else 0

    def update(self, n: int = 1) -> None:
        self.n += n
        tenth = self._tenth()
        if tenth > self._reported:
            self._reported = tenth
            elapsed = max(time.monotonic() - self._started, 1e-6)
            rate = (self.n - self._start_n) / elapsed
            self.emit(
                f"  {self.desc}: {tenth * 10}% {human_bytes(self.n)} of "
                f"{human_bytes(self.total)} ({human_bytes(int(rate))}/s)"
            )

    def close(self) -> None:
        pass

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _line_progress(emit: Callable[[str], None]) -> type[_LineProgress]:
    return type("LineProgress", (_LineProgress,), {"emit": staticmethod(emit)})


def _http_get(
    remote: RemoteFile,
    fh: BinaryIO,
    resume: int,
    progress: Callable[[str], None],
    show_bar: bool,
) -> None:
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # the size we check is the size on the wire
    if urlsplit(remote.url).hostname != urlsplit(remote.endpoint).hostname:
        headers.pop("authorization", None)  # a signed CDN address: the token stays with the hub
    kwargs: dict[str, Any] = {
        "resume_size": resume,
        "headers": headers,
        "expected_size": remote.size,
        "displayed_filename": remote.filename,
    }
    if not show_bar and "tqdm_class" in inspect.signature(http_get).parameters:
        kwargs["tqdm_class"] = _line_progress(progress)
    http_get(remote.url, fh, **kwargs)


# ---------------------------------------------------------------- fetching into the store


def _as_cell(target: Cell | Model, quant: str | None) -> Cell:
    if isinstance(target, Cell):
        return target
    if quant is None or quant not in target.files:
        known = ", ".join(target.files)
        raise HubError(f"{target.id}: quant {quant!r} is not in models.yaml (known: {known})")
    return Cell(target, quant)


def fetch(
    target: Cell | Model,
    store: ModelStore,
    progress: Callable[[str], None] = _silent,
    *,
    quant: str | None = None,
    endpoint: str | None = None,
    show_bar: bool | None = None,
) -> Path:
    """The cell's hub file in the store: verified if there, else downloaded, verified, recorded.

    ``target`` is a cell, or a model with ``quant``.  A stored file whose size or checksum no
    longer matches is put aside and fetched again.  ``show_bar``: huggingface_hub's tqdm bar
    (default when stderr is a terminal) or lines through ``progress``.  Raises :class:`HubError`
    (a :class:`ModelUnavailable`) or :class:`ChecksumMismatch` with a one-line reason.
    """
    cell = _as_cell(target, quant)
    model, quant = cell.model, cell.quant
    if not from_hub(model, quant) or model.repo is None:
        raise HubError(
            f"{model.id}-{quant}: not a hub file (no repo in models.yaml, or shipped in a "
            "package, or derived with llama-quantize)"
        )
    if show_bar is None:
        show_bar = sys.stderr.isatty()
    final = store.target_path(model, quant)
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f".{final.name}.lock")):
        existing = store.find(model, quant)
        if existing is not None and _still_good(existing, cell, store, endpoint, progress):
            return existing
        remote = remote_file(model.repo, model.files[quant], model.revision, endpoint=endpoint)
        downloaded_at = _now()
        digest = _download(remote, final, progress, show_bar)
        _record_hub_file(
            store,
            model,
            quant,
            remote,
            final,
            digest,
            downloaded_at=downloaded_at,
            card=card_summary(card_data(remote.repo, remote.commit, endpoint=endpoint)),
        )
    return final


def _still_good(
    path: Path,
    cell: Cell,
    store: ModelStore,
    endpoint: str | None,
    progress: Callable[[str], None],
) -> bool:
    """Whether a file already in the store can be used; a bad one is moved out of the way."""
    if store.lookup(path) is not None:
        try:
            verified(store, path)
        except ModelCorrupt as exc:
            progress(f"{exc}; fetching it again")
            store.forget(path)
            path.unlink()
            return False
        return True
    # not recorded (put there by hand): compare with the hub; offline, a run records it once
    # it loads (an unchecked file is never recorded as good)
    model = cell.model
    assert model.repo is not None
    try:
        remote = remote_file(model.repo, model.files[cell.quant], model.revision, endpoint=endpoint)
    except HubError as exc:
        progress(f"{path}: not checked against the hub ({exc}); used as it is, not recorded")
        return True
    digest = sha256_file(path)
    if path.stat().st_size == remote.size and remote.sha256 in (None, digest):
        _record_hub_file(store, model, cell.quant, remote, path, digest)
        return True
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    progress(f"{path}: does not match the hub's size/sha256; kept as {aside.name}, fetching again")
    return False


def _download(
    remote: RemoteFile,
    final: Path,
    progress: Callable[[str], None],
    show_bar: bool,
    retry_fresh: bool = True,
) -> str:
    """Download into a partial file beside ``final`` (resumed when one is there), verify, rename."""
    key = (remote.sha256 or remote.commit)[:16]
    partial = final.with_name(f".{final.name}.{key}.partial")
    for stale in final.parent.glob(f".{final.name}.*.partial"):
        if stale != partial:  # left by a download of another version of the file
            stale.unlink(missing_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    if have > remote.size:
        partial.unlink()
        have = 0
    check_disk_space(final.parent, remote.size - have)
    label = f"{remote.repo}/{remote.filename}@{remote.commit[:8]}"
    resumed = f", resuming at {human_bytes(have)}" if have else ""
    progress(f"downloading {label} ({human_bytes(remote.size)}) into {final.parent}{resumed}")
    started = time.monotonic()
    try:
        with partial.open("ab") as fh:
            _http_get(remote, fh, have, progress, show_bar)
    except Exception as exc:
        kept = partial.stat().st_size if partial.exists() else 0
        raise HubError(
            f"{label}: download failed with {human_bytes(kept)} of {human_bytes(remote.size)} "
            f"kept ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}); "
            "run again to resume"
        ) from exc
    size = partial.stat().st_size
    if size != remote.size:
        partial.unlink()
        raise HubError(f"{label}: got {size} bytes, the hub says {remote.size}; run again")
    digest = sha256_file(partial)
    if remote.sha256 is not None and digest != remote.sha256:
        partial.unlink()
        if have and retry_fresh:  # the part kept from an earlier run may be what is wrong
            progress(
                f"{label}: sha256 mismatch after resuming; downloading it again from the start"
            )
            return _download(remote, final, progress, show_bar, retry_fresh=False)
        raise ChecksumMismatch(
            f"{label}: sha256 {digest[:16]}… differs from the hub's {remote.sha256[:16]}…; "
            "the download was discarded (a proxy or mirror altered it); run again"
        )
    os.replace(partial, final)
    elapsed = time.monotonic() - started
    progress(f"downloaded {final.name} in {elapsed:.1f} s, sha256 verified")
    return digest


def _record_hub_file(
    store: ModelStore,
    model: Model,
    quant: str,
    remote: RemoteFile,
    path: Path,
    digest: str,
    **extra: Any,
) -> None:
    """metadata.json's entry for a verified hub file: where it came from and what it is."""
    store.record(
        new_record(
            store,
            path,
            model,
            quant,
            "hub",
            sha256=digest,
            repo=remote.repo,
            revision=remote.commit,
            **extra,
        )
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------- planning (dry run)


@dataclass(frozen=True)
class PlannedDownload:
    """What ``fetch`` would do for one cell, found without downloading anything."""

    cell: Cell
    target: Path
    present: Path | None  # already in the store
    size_bytes: int | None
    size_source: str  # disk, catalog, hub or unknown
    note: str = ""


def plan(
    cells: Iterable[Cell],
    store: ModelStore,
    *,
    endpoint: str | None = None,
    network: bool | None = None,
) -> list[PlannedDownload]:
    """Sizes from disk, then the catalog's ``file_sizes_gb``, then (when allowed) the hub.

    ``network`` defaults to "not offline"; after the first failed hub request the rest of
    the plan stays off the network, so a machine without one answers at once.
    """
    online = (not is_offline()) if network is None else network
    planned = []
    for cell in cells:
        model, quant = cell.model, cell.quant
        target = store.target_path(model, quant)
        present = store.find(model, quant)
        if present is not None:
            size = present.stat().st_size
            planned.append(PlannedDownload(cell, target, present, size, "disk"))
        elif quant in model.file_sizes_gb:
            size = int(model.file_sizes_gb[quant] * 1e9)
            planned.append(PlannedDownload(cell, target, None, size, "catalog", "approximate"))
        elif online and model.repo is not None:
            try:
                remote = remote_file(
                    model.repo, model.files[quant], model.revision, endpoint=endpoint
                )
            except HubError as exc:
                online = False
                planned.append(PlannedDownload(cell, target, None, None, "unknown", str(exc)))
            else:
                planned.append(PlannedDownload(cell, target, None, remote.size, "hub"))
        else:
            planned.append(PlannedDownload(cell, target, None, None, "unknown", "offline"))
    return planned
