"""Hub downloads against a local server that speaks the hub's protocol (tests/hub_server.py)."""

from __future__ import annotations

import collections
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmbench import hub, models
from pytest_llmbench.config import Catalog, Model
from pytest_llmbench.matrix import Cell
from pytest_llmbench.models import FileRecord, ModelStore
from tests.hub_server import FakeHub, tiny_gguf

REPO = "org/Tiny-GGUF"
FILE = "tiny-q8_0.gguf"
CARD = {"license": "llama3.2", "tags": ["gguf", "llama"], "base_model": "org/Tiny"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Online by default; 64 KiB chunks so a cut connection leaves bytes on disk to resume from."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False, raising=False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)


@pytest.fixture
def fake(tiny: bytes) -> Iterator[FakeHub]:
    with FakeHub() as server:
        server.add(REPO, FILE, tiny, card=CARD)
        server.add(REPO, "README.md", b"---\nlicense: llama3.2\n---\n# Tiny\n", lfs=False)
        yield server


@pytest.fixture
def model() -> Model:
    return Model(
        id="tiny",
        name="Tiny",
        size="1B",
        params_b=0.001,
        files={"Q8_0": FILE, "Q4_K_M": "tiny-q4_k_m.gguf"},
        repo=REPO,
    )


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def test_fetch_downloads_with_progress_verifies_and_records(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    lines: list[str] = []
    path = hub.fetch(model, store, lines.append, quant="Q8_0", endpoint=fake.url, show_bar=False)

    assert path == store.root / "1B" / FILE
    assert path.read_bytes() == tiny
    assert any("100%" in line for line in lines), lines
    assert any("sha256 verified" in line for line in lines), lines
    record = store.records()[str(path)]
    assert record.sha256 == hashlib.sha256(tiny).hexdigest()
    assert (record.source, record.repo, record.size_class) == ("hub", REPO, "1B")
    assert record.revision == fake.repos[REPO].commit
    assert record.family == "llama" and record.est_ram_bytes and record.est_ram_bytes > len(tiny)
    assert record.downloaded_at and record.card and record.card["license"] == "llama3.2"
    assert not list(path.parent.glob(".*.partial"))

    before = len(fake.requests)  # a verified file is not asked for again
    assert hub.fetch(Cell(model, "Q8_0"), store, endpoint=fake.url) == path
    assert len(fake.requests) == before


def test_dropped_connection_resumes_with_a_range_request(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    fake.drop_once(REPO, FILE)
    path = hub.fetch(model, store, quant="Q8_0", endpoint=fake.url, show_bar=False)

    gets = fake.gets(FILE)
    assert len(gets) == 2
    assert gets[0].range is None
    assert gets[1].range is not None and gets[1].range.startswith("bytes=")
    assert int(gets[1].range.removeprefix("bytes=").rstrip("-")) > 0
    assert path.read_bytes() == tiny


def test_partial_file_from_an_interrupted_run_is_resumed(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    sha = hashlib.sha256(tiny).hexdigest()
    partial = store.root / "1B" / f".{FILE}.{sha[:16]}.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(tiny[:300_000])

    path = hub.fetch(model, store, quant="Q8_0", endpoint=fake.url, show_bar=False)

    assert [g.range for g in fake.gets(FILE)] == ["bytes=300000-"]
    assert path.read_bytes() == tiny and not partial.exists()


def test_corrupt_partial_is_discarded_and_fetched_from_the_start(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    sha = hashlib.sha256(tiny).hexdigest()
    partial = store.root / "1B" / f".{FILE}.{sha[:16]}.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 300_000)

    path = hub.fetch(model, store, quant="Q8_0", endpoint=fake.url, show_bar=False)

    assert [g.range for g in fake.gets(FILE)] == ["bytes=300000-", None]
    assert path.read_bytes() == tiny


def test_bytes_that_do_not_match_the_hub_sha256_are_rejected(
    model: Model, store: ModelStore, tiny: bytes
) -> None:
    flipped = bytearray(tiny)
    flipped[len(flipped) // 2] ^= 0xFF
    with FakeHub() as fake:
        fake.add(REPO, FILE, tiny, served=bytes(flipped))
        with pytest.raises(hub.ChecksumMismatch, match=r"sha256 .* differs from the hub's"):
            hub.fetch(model, store, quant="Q8_0", endpoint=fake.url, show_bar=False)

    folder = store.root / "1B"
    assert not (folder / FILE).exists()
    assert not list(folder.glob(".*.partial"))
    assert store.records() == {}


def test_truncated_stored_file_is_fetched_again_through_resolve(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    path = hub.fetch(model, store, quant="Q8_0", endpoint=fake.url, show_bar=False)
    path.write_bytes(tiny[:1000])  # truncated

    def no_quantize() -> Path:
        raise AssertionError("nothing is derived here")

    def download(cell: Cell) -> Path:
        return hub.fetch(cell, store, endpoint=fake.url, show_bar=False)

    with pytest.raises(models.ModelCorrupt):  # without a downloader the plugin refuses it
        models.resolve(Cell(model, "Q8_0"), store, no_quantize)
    resolved = models.resolve(Cell(model, "Q8_0"), store, no_quantize, download=download)

    assert resolved == path and path.read_bytes() == tiny
    assert len(fake.gets(FILE)) == 2


def test_unrecorded_file_is_checked_against_the_hub(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    target = store.root / "1B" / FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny)  # put there by hand: right bytes, recorded without a download
    assert hub.fetch(model, store, quant="Q8_0", endpoint=fake.url) == target
    assert fake.gets(FILE) == [] and store.records()[str(target)].revision

    store.forget(target)
    target.write_bytes(tiny[::-1])  # wrong bytes: kept aside, fetched again
    assert hub.fetch(model, store, quant="Q8_0", endpoint=fake.url, show_bar=False) == target
    assert target.read_bytes() == tiny
    assert (target.parent / f"{FILE}.corrupt").read_bytes() == tiny[::-1]


def test_unrecorded_file_offline_is_used_but_not_recorded(
    model: Model, store: ModelStore, tiny: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = store.root / "1B" / FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines: list[str] = []
    assert hub.fetch(model, store, lines.append, quant="Q8_0") == target
    assert str(target) not in store.records()  # unchecked: recorded once a server loads it
    assert any("used as it is, not recorded" in line for line in lines), lines


def test_same_size_corruption_of_a_hub_file_is_fetched_again(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    path = hub.fetch(model, store, quant="Q8_0", endpoint=fake.url, show_bar=False)
    stat = path.stat()
    path.write_bytes(tiny[::-1])  # same size, other bytes
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse clocks: a newer mtime
    lines: list[str] = []
    assert hub.fetch(model, store, lines.append, quant="Q8_0", endpoint=fake.url) == path
    assert path.read_bytes() == tiny and len(fake.gets(FILE)) == 2
    assert any("sha256" in line and "fetching it again" in line for line in lines), lines


def test_not_enough_disk_space_fails_before_downloading(
    fake: FakeHub, model: Model, store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(hub.shutil, "disk_usage", lambda _path: usage(10**9, 10**9, 5_000))
    with pytest.raises(hub.InsufficientDiskSpace, match=r"not enough disk space: 1\.05 MB"):
        hub.fetch(model, store, quant="Q8_0", endpoint=fake.url)
    assert fake.gets(FILE) == []


def test_hub_errors_name_the_problem(fake: FakeHub, model: Model, store: ModelStore) -> None:
    with pytest.raises(hub.HubError, match=r"has no file tiny-q4_k_m\.gguf"):
        hub.fetch(model, store, quant="Q4_K_M", endpoint=fake.url)
    other = Model(id="x", name="X", size="1B", params_b=1, files={"Q8_0": FILE}, repo="org/None")
    with pytest.raises(hub.HubError, match="repository org/None not found"):
        hub.fetch(other, store, quant="Q8_0", endpoint=fake.url)
    with pytest.raises(hub.HubError, match=r"quant 'Q2_K' is not in models\.yaml"):
        hub.fetch(model, store, quant="Q2_K", endpoint=fake.url)


def test_offline_fetch_and_dry_run_do_not_touch_the_network(
    fake: FakeHub, model: Model, store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.HubOffline):
        hub.fetch(model, store, quant="Q8_0", endpoint=fake.url)
    declared = Model(**{**model.__dict__, "file_sizes_gb": {"Q8_0": 0.5}})
    planned = hub.plan([Cell(declared, "Q8_0"), Cell(declared, "Q4_K_M")], store, endpoint=fake.url)
    assert [(p.size_bytes, p.size_source) for p in planned] == [
        (500_000_000, "catalog"),
        (None, "unknown"),
    ]
    assert fake.requests == []


def test_dry_run_online_asks_only_for_metadata(
    fake: FakeHub, model: Model, store: ModelStore, tiny: bytes
) -> None:
    (planned,) = hub.plan([Cell(model, "Q8_0")], store, endpoint=fake.url)
    assert (planned.size_bytes, planned.size_source) == (len(tiny), "hub")
    assert {r.method for r in fake.requests} == {"HEAD"}


def test_sha256_from_paths_info_when_the_head_carries_no_hash(tiny: bytes) -> None:
    with FakeHub() as fake:
        entry = fake.add(REPO, FILE, tiny)
        entry.hash_in_head = False  # ETag is the git sha1 of the LFS pointer
        remote = hub.remote_file(REPO, FILE, endpoint=fake.url)
        assert remote.sha256 == hashlib.sha256(tiny).hexdigest()
        assert any("/paths-info/" in r.path for r in fake.requests)
        entry.lfs = False  # a plain git file has no sha256 to check against
        remote = hub.remote_file(REPO, FILE, endpoint=fake.url)
        assert remote.sha256 is None and remote.size == len(tiny)


# ---------------------------------------------------------------- the store


def test_old_metadata_json_still_loads(store: ModelStore) -> None:
    store.root.mkdir(parents=True)
    old = {"path": "/m/a.gguf", "size_bytes": 5, "sha256": "ab", "quant": "Q4_1"}
    old |= {"model_id": "a", "source": "derived", "recorded_at": "2025-01-01T00:00:00Z"}
    store.metadata_path.write_text(json.dumps({"files": {"/m/a.gguf": {**old, "future": 1}}}))
    record = store.records()["/m/a.gguf"]
    assert record == FileRecord(**old) and record.last_tested_at is None
    store.mark_tested(Path("/m/a.gguf"), "2025-02-02T00:00:00Z")
    assert store.records()["/m/a.gguf"].last_tested_at == "2025-02-02T00:00:00Z"
    assert json.loads(store.metadata_path.read_text())["files"]["/m/a.gguf"]["future"] == 1


def test_scan_matches_files_by_size_class(store: ModelStore, model: Model, tiny: bytes) -> None:
    (store.root / "1B").mkdir(parents=True)
    (store.root / "1B" / FILE).write_bytes(tiny)
    (store.root / "7B").mkdir()
    (store.root / "7B" / "tiny-q4_k_m.gguf").write_bytes(b"x")  # the wrong size folder
    (store.root / "7B" / "stray.gguf").write_bytes(b"y")
    (store.root / "1B" / f".{FILE}.abc.partial").write_bytes(b"z")

    result = models.scan(Catalog(models=(model,)), store)

    status = {e.quant: (e.status, e.path) for e in result.entries}
    assert status["Q8_0"] == ("unrecorded", store.root / "1B" / FILE)
    assert status["Q4_K_M"] == ("misplaced", store.root / "7B" / "tiny-q4_k_m.gguf")
    assert result.unknown == (store.root / "7B" / "stray.gguf",)
