"""GGUF snapshots, model card front matter and the compatibility hints drawn from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmbench.config import Settings
from pytest_llmbench.model_info import (
    compat_hints,
    front_matter,
    gguf_snapshot,
    gguf_snapshot_cached,
    local_card,
    requested_contexts,
)
from pytest_llmbench.models import ModelStore
from tests.hub_server import tiny_gguf


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    tiny_gguf(path, license=None, weight_values=64)
    return path


def test_snapshot_flattens_keys_and_summarises_long_arrays(tiny_path: Path) -> None:
    snapshot = {e["key"]: e for e in gguf_snapshot(tiny_path)}
    assert snapshot["general.architecture"] == {
        "key": "general.architecture",
        "type": "string",
        "value": "llama",
    }
    assert snapshot["llama.context_length"]["value"] == 2048
    assert snapshot["tokenizer.ggml.tokens"]["type"] == "array[300] of string"
    assert snapshot["tokenizer.ggml.tokens"]["value"] == "array[300] of string"


def test_snapshot_is_cached_per_file_version(tiny_path: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    first = gguf_snapshot_cached(store, tiny_path)
    assert (tmp_path / ".gguf-snapshot.json").is_file()
    assert gguf_snapshot_cached(store, tiny_path) == first


def test_front_matter_of_a_model_card(tmp_path: Path) -> None:
    card = "---\nlicense: apache-2.0\nlanguage: [en]\ntags:\n- gguf\n---\n# Model\n---\n"
    assert front_matter(card) == {"license": "apache-2.0", "language": ["en"], "tags": ["gguf"]}
    assert front_matter("# no front matter") is None
    assert front_matter("---\n: [unclosed\n---\n") is None
    (tmp_path / "README.md").write_text(card)
    assert local_card(tmp_path / "model.gguf") == front_matter(card)


def test_hints_for_context_and_licence(tiny_path: Path) -> None:
    snapshot = gguf_snapshot(tiny_path)
    requested = requested_contexts(Settings())  # 8192 default, long_context up to 65536
    hints = compat_hints(snapshot, {"license": "other", "license_name": "acme-1"}, requested)
    assert any("default_ctx_size asks for 8192 tokens" in h for h in hints)
    assert any("test_sizes asks for 65536 tokens" in h for h in hints)
    assert any("licence: acme-1 is not a permissive licence" in h for h in hints)

    assert compat_hints(snapshot, {"license": "apache-2.0"}, {"ctx": 1024}) == []
    assert compat_hints(snapshot, None, {}) == [
        "licence: none declared in the GGUF header or the model card; check it"
    ]
