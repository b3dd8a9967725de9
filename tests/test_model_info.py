"""GGUF snapshots, model card front matter and the compatibility hints drawn from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmbench.config import Settings
from pytest_llmbench.model_info import (
    compat_hints,
    front_matter,
    gguf_snapshot,
    gguf_snapshot_cached,
    local_card,
    report_entry,
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


def _encoder_snapshot(pooling: int) -> list[dict[str, object]]:
    """The header keys an embedding model converted by llama.cpp carries (BERT: 2 = cls)."""
    return [
        {"key": "general.architecture", "type": "string", "value": "bert"},
        {"key": "general.license", "type": "string", "value": "mit"},
        {"key": "bert.attention.causal", "type": "bool", "value": False},
        {"key": "bert.pooling_type", "type": "uint32", "value": pooling},
    ]


def test_hints_for_profiles_the_architecture_cannot_serve() -> None:
    snapshot = _encoder_snapshot(pooling=2)
    hints = compat_hints(snapshot, None, {}, ("load", "interactive", "embedding"))
    assert hints == [
        "architecture: bert is an encoder (bert.attention.causal is false); it embeds text but "
        "does not generate it, so interactive will fail; select -m 'load or embedding' for it",
        "embedding: the profile pools with --pooling mean, the model declares bert.pooling_type "
        "cls; its vectors are not the ones it was trained to give",
    ]
    assert compat_hints(snapshot, None, {}, ("load", "embedding"))[0].startswith("embedding:")
    assert compat_hints(_encoder_snapshot(pooling=1), None, {}, ("embedding",)) == []
    assert compat_hints(_encoder_snapshot(pooling=2), None, {}, ()) == []


def test_report_entry_bundles_snapshot_card_and_hints(tiny_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(tiny_path.read_bytes())
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\ntags: [gguf]\n---\n")

    entry = report_entry(ModelStore(tmp_path), model, Settings())

    assert entry["card"] == {"license": "apache-2.0", "tags": ["gguf"]}
    assert {"key": "llama.context_length", "type": "uint32", "value": 2048} in entry[
        "gguf_snapshot"
    ]
    assert any(h.startswith("context: llama_cpp.default_ctx_size") for h in entry["hints"])
    assert not any(h.startswith("licence") for h in entry["hints"])
    json.dumps(entry)  # goes into the JSON report as it is
