"""The model store's checksums: a changed file is re-hashed and refused, an unchanged one is not
hashed again, and a file put in ``model_dir`` by hand is recorded once it proved good (a server
loaded it), never before."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from pytest_llmbench import models
from pytest_llmbench.config import Model
from pytest_llmbench.matrix import Cell
from pytest_llmbench.models import ModelCorrupt, ModelStore
from tests.hub_server import tiny_gguf

FILE = "tiny-q8_0.gguf"
MODEL = Model(id="tiny", name="Tiny", size="1B", params_b=0.001, files={"Q8_0": FILE})
CELL = Cell(MODEL, "Q8_0")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", weight_values=4096)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


@pytest.fixture
def placed(store: ModelStore, tiny: bytes) -> Path:
    """The catalog file, put in the store by hand (not recorded yet)."""
    path = store.target_path(MODEL, "Q8_0")
    path.parent.mkdir(parents=True)
    path.write_bytes(tiny)
    return path


def no_quantize() -> Path:
    raise AssertionError("nothing is derived here")


class CountingHasher:
    """sha256_file, counting its calls: the test sees whether a file was hashed."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.calls.append(path)
        return models.sha256_file(path)


def touch_later(path: Path, seconds: int = 5) -> None:
    """Move the mtime forward, as an editor or a copy would, whatever the clock's resolution."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def test_resolve_leaves_a_file_put_in_model_dir_by_hand_unrecorded(
    store: ModelStore, placed: Path
) -> None:
    assert models.resolve(CELL, store, no_quantize) == placed
    assert store.lookup(placed) is None  # recorded only after a server loaded it


def test_record_local_records_size_sha256_and_gguf_facts(
    store: ModelStore, placed: Path, tiny: bytes
) -> None:
    models.record_local(store, placed, MODEL, "Q8_0")

    record = store.records()[str(placed)]
    assert record.source == "local"
    assert record.sha256 == hashlib.sha256(tiny).hexdigest()
    assert (record.size_bytes, record.mtime_ns) == (len(tiny), placed.stat().st_mtime_ns)
    assert (record.model_id, record.quant, record.size_class) == ("tiny", "Q8_0", "1B")
    assert record.family == "llama" and record.recorded_at


def test_a_flipped_byte_of_the_same_size_is_refused(store: ModelStore, placed: Path) -> None:
    models.record_local(store, placed, MODEL, "Q8_0")
    recorded = store.records()[str(placed)].sha256
    data = bytearray(placed.read_bytes())
    data[len(data) // 2] ^= 0x01
    placed.write_bytes(bytes(data))
    touch_later(placed)

    with pytest.raises(ModelCorrupt) as caught:
        models.resolve(CELL, store, no_quantize)

    message = str(caught.value)
    assert "\n" not in message
    assert str(placed) in message and recorded in message
    assert hashlib.sha256(data).hexdigest() in message
    assert f"llmbench models rehash {placed} --model-dir {store.root}" in message
    assert f"llmbench models forget {placed} --model-dir {store.root}" in message
    assert store.records()[str(placed)].sha256 == recorded  # the good checksum is kept


def test_an_unchanged_file_is_not_hashed_again(store: ModelStore, placed: Path) -> None:
    models.record_local(store, placed, MODEL, "Q8_0")
    hasher = CountingHasher()

    assert models.verified(store, placed, hasher) == placed
    assert hasher.calls == []  # same size, same mtime as recorded

    touch_later(placed)  # same bytes, new mtime: hashed once, and the new mtime recorded
    models.verified(store, placed, hasher)
    models.verified(store, placed, hasher)
    assert hasher.calls == [placed]
    assert store.records()[str(placed)].mtime_ns == placed.stat().st_mtime_ns


def test_a_record_without_mtime_from_an_older_version_gets_one(
    store: ModelStore, placed: Path
) -> None:
    models.record_local(store, placed, MODEL, "Q8_0")
    data = json.loads(store.metadata_path.read_text())
    del data["files"][str(placed)]["mtime_ns"]
    store.metadata_path.write_text(json.dumps(data))
    hasher = CountingHasher()

    models.verified(store, placed, hasher)
    models.verified(store, placed, hasher)

    assert hasher.calls == [placed]
    assert store.records()[str(placed)].mtime_ns == placed.stat().st_mtime_ns


def test_a_gguf_file_is_parsed_once_for_its_facts_and_its_snapshot(
    store: ModelStore, placed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf

    from pytest_llmbench import model_info

    parsed: list[str] = []
    real = gguf.GGUFReader

    def counting(path: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        parsed.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", counting)
    models.gguf_info_cached(store, placed)
    model_info.gguf_snapshot_cached(store, placed)
    models.read_gguf_info(placed)
    assert parsed == [str(placed)]


def test_a_truncated_file_is_unloadable_quietly(
    store: ModelStore, placed: Path, tiny: bytes, recwarn: pytest.WarningsRecorder
) -> None:
    placed.write_bytes(tiny[: len(tiny) // 2])
    with pytest.raises(models.ModelUnloadable, match=f"ends at byte {len(tiny) // 2}"):
        models.read_gguf_info(placed)
    assert not recwarn.list  # numpy's complaints stay inside the reader call

    placed.write_bytes(b"XXXX" + tiny[4:])
    with pytest.raises(models.ModelUnloadable, match="magic"):
        models.read_gguf_info(placed)


def test_deterministic_load_errors_are_recognised_in_a_server_log() -> None:
    log = "llama_model_load: error loading model: tensor 'x' data is not within the file bounds"
    assert models.damage_in(log) and models.deterministic_load_error(log)
    assert models.deterministic_load_error("llama_model_load: unknown model architecture: 'foo'")
    assert not models.damage_in("llama_model_load: unknown model architecture: 'foo'")
    assert not models.deterministic_load_error("llama-server exit code 1 during startup: bind")
