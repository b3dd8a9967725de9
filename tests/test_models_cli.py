"""``llmbench models``: list, download (and its dry run), verify, info, and the user's mistakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pytest_llmbench.cli import main
from tests.hub_server import FakeHub, tiny_gguf

REPO = "org/Tiny-GGUF"
FILE = "tiny-q8_0.gguf"
CARD = {"license": "llama3.2", "tags": ["gguf"], "base_model": "org/Tiny"}
CATALOG = {
    "models": [
        {
            "id": "tiny",
            "name": "Tiny",
            "size": "1B",
            "params_b": 0.001,
            "repo": REPO,
            "category": "tiny",
            "files": {"Q8_0": FILE, "Q4_K_M": "tiny-q4_k_m.gguf"},
            "file_sizes_gb": {"Q8_0": 0.5},  # declared: a dry run needs no network for it
        }
    ]
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    (tmp_path / "models.yaml").write_text(yaml.safe_dump(CATALOG))
    (tmp_path / "thresholds.yaml").write_text(
        yaml.safe_dump({"model_dir": "store", "profiles": ["interactive"]})
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False, raising=False)
    return tmp_path


@pytest.fixture
def fake(tiny: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as server:
        server.add(REPO, FILE, tiny, card=CARD)
        server.add(REPO, "tiny-q4_k_m.gguf", tiny[: len(tiny) // 2])
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_catalog_against_disk(
    project: Path, tiny: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "store" / "1B").mkdir(parents=True)
    (project / "store" / "1B" / FILE).write_bytes(tiny)
    (project / "store" / "stray.gguf").write_bytes(b"x")

    code, out, _ = run(capsys, "list")

    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("tiny-")}
    assert "unrecorded" in lines["tiny-Q8_0"] and "1.05 MB" in lines["tiny-Q8_0"]
    assert "downloadable" in lines["tiny-Q4_K_M"] and REPO in lines["tiny-Q4_K_M"]
    assert f"not in the catalog: {project / 'store' / 'stray.gguf'}" in out


def test_dry_run_offline_uses_declared_sizes_and_no_network(
    project: Path,
    fake: FakeHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, _ = run(capsys, "download", "--dry-run")
    assert code == 0
    assert "would fetch tiny-Q8_0" in out and "500.00 MB" in out
    assert "tiny-Q4_K_M" in out and "size unknown" in out
    assert "2 to download: 500.00 MB + 1 of unknown size" in out
    assert fake.requests == []
    assert not (project / "store" / "1B").exists()


def test_dry_run_online_asks_the_hub_for_undeclared_sizes(
    project: Path, fake: FakeHub, tiny: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "download", "tiny", "--quant", "Q4_K_M", "--dry-run")
    assert code == 0
    assert f"would fetch tiny-Q4_K_M: {REPO}/tiny-q4_k_m.gguf" in out and "526.61 kB" in out
    assert {r.method for r in fake.requests} == {"HEAD"}


def test_download_then_verify_finds_a_flipped_byte(
    project: Path, fake: FakeHub, tiny: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "download", "tiny", "--quant", "Q8_0")
    stored = project / "store" / "1B" / FILE
    assert code == 0, err
    assert f"ok     tiny-Q8_0: {stored}" in out and "sha256 verified" in err
    assert stored.read_bytes() == tiny

    code, out, _ = run(capsys, "verify")
    assert code == 0 and "1 recorded files checked, 0 with problems" in out

    data = bytearray(stored.read_bytes())
    data[len(data) // 3] ^= 0x01
    stored.write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify")
    assert code == 1
    assert f"MISMATCH  tiny-Q8_0: {stored}: sha256" in out


def test_info_shows_metadata_card_and_hints(
    project: Path, fake: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "download", "tiny", "--quant", "Q8_0")[0] == 0

    code, out, _ = run(capsys, "info", "tiny")
    assert code == 0
    assert "tiny-Q8_0  Tiny  [ok]" in out
    assert f"repo: {REPO}" in out and "family: llama" in out
    assert "license: llama3.2" in out and "base_model: org/Tiny" in out
    assert "licence: llama3.2 is not a permissive licence" in out
    assert "llama_cpp.default_ctx_size asks for 8192 tokens, above" in out
    assert "context_length 2048" in out
    tokens = next(line for line in out.splitlines() if "tokenizer.ggml.tokens" in line)
    assert "array[300] of string" in tokens and "tok1" not in tokens

    code, out, _ = run(capsys, "info", "tiny", "--quant", "Q8_0", "--json")
    info = json.loads(out)
    assert info["record"]["revision"] == fake.repos[REPO].commit
    entry = next(e for e in info["gguf"] if e["key"] == "llama.context_length")
    assert entry == {"key": "llama.context_length", "type": "uint32", "value": 2048}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("download", "nope", "--dry-run"), "models[].id = 'nope': one of: tiny"),
        (("info", "nope"), "models[].id = 'nope'"),
        (("download", "tiny", "--quant", "Q2_K", "--dry-run"), "quant = 'Q2_K'"),
        (("info", "tiny", "--quant", "Q2_K"), "quant = 'Q2_K'"),
        (("list", "--models", "missing.yaml"), "missing.yaml: (file)"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_4(
    project: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 4
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_invalid_category_is_a_config_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"models": [{**CATALOG["models"][0], "category": "huge"}]}
    (project / "models.yaml").write_text(yaml.safe_dump(bad))
    code, _, err = run(capsys, "list")
    assert code == 4 and "models[0].category = 'huge': expected tiny, small, medium, large" in err


def test_info_on_a_missing_file_says_how_to_get_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "info", "tiny", "--quant", "Q4_K_M")
    assert code == 1
    assert "get it with: llmbench models download tiny --quant Q4_K_M" in err


def _ci_catalog(project: Path, ci: dict[str, bool]) -> None:
    base = CATALOG["models"][0]
    sizes = {"big": 7.0, "tiny": 0.001, "mid": 1.5, "also-tiny": 0.001}
    models = [
        {**base, "id": name, "params_b": sizes[name], "ci_suitable": flag}
        for name, flag in ci.items()
    ]
    (project / "models.yaml").write_text(yaml.safe_dump({"models": models}))


def test_list_ci_json_prints_the_ci_models_smallest_first(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ci_catalog(project, {"big": True, "tiny": True, "mid": True, "also-tiny": True})
    code, out, _ = run(capsys, "list", "--ci", "--json")
    assert code == 0
    assert json.loads(out) == ["also-tiny", "tiny", "mid", "big"]  # equal sizes: by id

    _ci_catalog(project, {"big": True, "tiny": False, "mid": True})
    code, out, _ = run(capsys, "list", "--ci", "--json")
    assert (code, json.loads(out)) == (0, ["mid", "big"])
    code, out, _ = run(capsys, "list", "--json")
    assert (code, json.loads(out)) == (0, ["big", "tiny", "mid"])  # catalog order

    code, out, _ = run(capsys, "list", "--ci")  # the table, narrowed to the CI models
    assert code == 0
    cells = {line.split()[0] for line in out.splitlines() if line.startswith(("big-", "mid-"))}
    assert cells == {"big-Q8_0", "big-Q4_K_M", "mid-Q8_0", "mid-Q4_K_M"}
    assert "tiny-" not in out and "4 files of the CI models" in out


def test_list_ci_without_ci_models_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ci_catalog(project, {"big": False})
    code, out, err = run(capsys, "list", "--ci", "--json")
    assert (code, out) == (4, "")
    assert len(err.strip().splitlines()) == 1 and "ci_suitable" in err


def test_list_shows_the_declared_size_of_a_file_not_yet_downloaded(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("tiny-")}
    assert lines["tiny-Q8_0"][1:4] == ["downloadable", "~500.00", "MB"]  # file_sizes_gb
    assert lines["tiny-Q4_K_M"][1:3] == ["downloadable", "-"]  # no size declared


def test_rehash_accepts_a_replaced_file_and_forget_drops_its_record(
    project: Path, tiny: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_llmbench.models import ModelStore, record_local

    store = ModelStore((project / "store").resolve())
    target = store.root / "1B" / FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny)
    record_local(store, target, load_catalog_model(project), "Q8_0")
    replaced = tiny_gguf(project / "other.gguf", n_tokens=301)
    target.write_bytes(replaced)  # another (whole) file under the same name

    code, out, _ = run(capsys, "verify")
    assert code == 1
    assert f"llmbench models rehash {target} --model-dir {store.root}" in out

    code, out, _ = run(capsys, "rehash", "tiny-Q8_0")
    assert code == 0 and f"recorded  {target}" in out
    assert store.records()[str(target)].size_bytes == len(replaced)
    assert run(capsys, "verify")[0] == 0

    target.write_bytes(replaced[: len(replaced) // 2])  # truncated: refused, record kept
    code, out, _ = run(capsys, "rehash", str(target))
    assert code == 1 and "REFUSED" in out and "not a loadable GGUF file" in out
    assert store.records()[str(target)].size_bytes == len(replaced)

    code, out, _ = run(capsys, "forget", str(target))
    assert code == 0 and f"forgotten     {target}" in out
    assert str(target) not in store.records()
    assert run(capsys, "forget", str(target))[1].startswith("not recorded")


def test_forget_of_an_unknown_name_is_one_line_exit_4(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "forget", "no-such-model")
    assert code == 4 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no-such-model" in err


def load_catalog_model(project: Path):
    from pytest_llmbench.config import load_catalog

    return load_catalog(project / "models.yaml").model("tiny")
