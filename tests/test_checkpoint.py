"""The checkpoint module on its own: the configuration hash, reading, writing, progress."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pytest_llmbench import checkpoint as cp
from pytest_llmbench.config import Model, Settings
from pytest_llmbench.matrix import Cell
from pytest_llmbench.results import ResultStore

MODEL = Model(id="m", name="M", size="1B", params_b=1.0, files={"Q4_1": "a.gguf", "Q8_0": "b.gguf"})
CELLS = [Cell(MODEL, "Q8_0"), Cell(MODEL, "Q4_1")]


def fingerprint(settings: Settings | None = None, **kwargs: object) -> dict:
    options = {"threads": 2, "early_stop": True, "selection": {"markexpr": "interactive"}}
    options.update(kwargs)
    return cp.fingerprint(settings or Settings(), options.pop("cells", CELLS), **options)  # type: ignore[arg-type]


def test_hash_is_stable_and_ignores_where_files_go():
    base = fingerprint()
    assert cp.config_hash(base) == cp.config_hash(fingerprint())
    moved = Settings(output=dataclasses.replace(Settings().output, dir="elsewhere"), model_dir="x")
    assert cp.config_hash(fingerprint(moved)) == cp.config_hash(base)
    assert "output" not in base["settings"] and "model_dir" not in base["settings"]
    assert base["cells"] == ["m-Q8_0", "m-Q4_1"]
    assert base["models"]["m"]["files"] == {"Q4_1": "a.gguf", "Q8_0": "b.gguf"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"threads": 1}, "threads (2 → 1)"),
        ({"cells": CELLS[:1]}, "cells ("),
        ({"selection": {"markexpr": "load"}}, 'selection.markexpr ("interactive" → "load")'),
        ({"early_stop": False}, "early_stop (true → false)"),
    ],
)
def test_every_result_relevant_change_alters_the_hash(change, expected):
    old, new = fingerprint(), fingerprint(**change)
    assert cp.config_hash(old) != cp.config_hash(new)
    assert any(d.startswith(expected) for d in cp.differences(old, new)), cp.differences(old, new)


def test_threshold_change_is_named_in_the_error(tmp_path):
    stricter = dataclasses.replace(
        Settings().thresholds,
        interactive=dataclasses.replace(Settings().thresholds.interactive, n_predict=64),
    )
    old = cp.Checkpoint(config=fingerprint(), run="2026-01-01T00:00:00Z")
    path = cp.write(tmp_path / cp.FILENAME, old)
    loaded = cp.read(path)
    cp.check_config(path, loaded, fingerprint())  # same configuration: accepted
    with pytest.raises(cp.CheckpointError) as info:
        cp.check_config(path, loaded, fingerprint(Settings(thresholds=stricter)))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "different configuration" in message
    assert "settings.thresholds.interactive.n_predict (500 → 64)" in message
    assert "delete the file or drop --llm-resume" in message


def test_write_then_read_round_trips(tmp_path):
    record = {"cell_id": "m-Q8_0", "profiles": {"interactive": {"metrics": {"ttft_seconds": 0.1}}}}
    written = cp.Checkpoint(
        config=fingerprint(),
        run="2026-01-01T00:00:00Z",
        completed={"m-Q8_0": {"run": "2026-01-01T00:00:00Z", "record": record}},
        remaining=["m-Q4_1"],
    )
    path = cp.write(tmp_path / "sub" / cp.FILENAME, written)
    data = json.loads(path.read_text())
    assert data["format"] == cp.FORMAT and data["version"] == cp.VERSION
    assert data["config_hash"] == cp.config_hash(fingerprint())
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was renamed, not left behind
    loaded = cp.read(path)
    assert loaded.completed == written.completed
    assert loaded.remaining == ["m-Q4_1"] and loaded.complete is False


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not a checkpoint"),
        ('{"format": "llmbench-checkpoint", "version": 99}', "version 99"),
        (
            '{"format": "llmbench-checkpoint", "version": 1, "config": {}, "run": "t", '
            '"completed": [], "remaining": [], "observations": [], "complete": false, '
            '"config_hash": ""}',
            "key 'completed' is [], expected a dict",
        ),
    ],
)
def test_a_bad_checkpoint_is_one_line_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / cp.FILENAME
    path.write_text(content)
    with pytest.raises(cp.CheckpointError) as info:
        cp.read(path)
    assert str(path) in str(info.value) and fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_an_edited_checkpoint_is_refused(tmp_path):
    path = cp.write(tmp_path / cp.FILENAME, cp.Checkpoint(config=fingerprint(), run="t"))
    data = json.loads(path.read_text())
    data["config"]["threads"] = 64
    path.write_text(json.dumps(data))
    with pytest.raises(cp.CheckpointError, match="the file was edited"):
        cp.read(path)


def test_resume_path_default_directory_and_missing(tmp_path):
    assert cp.resolve_path("", tmp_path) == tmp_path / cp.FILENAME
    bench = tmp_path / "bench"
    bench.mkdir()
    with pytest.raises(cp.CheckpointError, match="put --llm-resume after the test paths"):
        cp.resolve_path(str(bench), tmp_path)
    (bench / cp.FILENAME).write_text("{}")
    assert cp.resolve_path(str(bench), tmp_path) == bench / cp.FILENAME
    with pytest.raises(cp.CheckpointError, match="no checkpoint at"):
        cp.read(tmp_path / "missing.json")


def test_progress_completes_a_cell_only_when_all_its_tests_are_torn_down(tmp_path):
    progress = cp.Progress(tmp_path / cp.FILENAME, fingerprint(), "2026-01-02T00:00:00Z")
    for cell in CELLS:
        progress.collected(cell.id, f"bench/test_a.py::test_x[{cell.id}]")
        progress.collected(cell.id, f"bench/test_b.py::test_y[{cell.id}]")
    order = [c.id for c in CELLS]
    assert not progress.torn_down("m-Q8_0", "bench/test_a.py::test_x[m-Q8_0]")
    assert progress.torn_down("m-Q8_0", "bench/test_b.py::test_y[m-Q8_0]")
    progress.complete_cell("m-Q8_0", {"cell_id": "m-Q8_0", "resumed": True})
    assert not progress.torn_down("m-Q8_0", "bench/test_b.py::test_y[m-Q8_0]")  # once only
    snapshot = progress.checkpoint(order)
    assert list(snapshot.completed) == ["m-Q8_0"]
    assert snapshot.completed["m-Q8_0"]["record"] == {"cell_id": "m-Q8_0"}  # marks stripped
    assert snapshot.remaining == ["m-Q4_1"] and not snapshot.complete


def test_resumed_cells_are_carried_into_the_store_and_skip_their_tests(tmp_path):
    record = ResultStore()
    record.outcome(CELLS[0], "interactive", "test_x", "passed")
    carried = cp.Checkpoint(
        config=fingerprint(),
        run="2026-01-01T00:00:00Z",
        completed={"m-Q8_0": {"run": "2026-01-01T00:00:00Z", "record": record.to_json()["m-Q8_0"]}},
        remaining=["m-Q4_1"],
    )
    progress = cp.Progress(tmp_path / cp.FILENAME, fingerprint(), "2026-01-02T00:00:00Z", carried)
    assert progress.resumed() == {
        "m-Q8_0": "resumed: completed in the checkpointed run of 2026-01-01T00:00:00Z"
    }
    store = ResultStore()
    progress.carry_into(store)
    (cell,) = store.cells()
    assert cell["resumed"] is True and cell["resumed_from"] == "2026-01-01T00:00:00Z"
    assert cell["status"] == "passed"
    progress.collected("m-Q4_1", "t[m-Q4_1]")
    assert progress.remaining(["m-Q8_0", "m-Q4_1"]) == ["m-Q4_1"]
    assert progress.checkpoint(["m-Q8_0", "m-Q4_1"]).completed["m-Q8_0"]["run"] == carried.run


def test_selection_paths_are_relative_to_the_rootdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one = cp.selection_of("", "", ["bench/", "bench/test_load.py::test_x"], tmp_path)
    two = cp.selection_of("", "", [str(tmp_path / "bench"), "bench/test_load.py::test_x"], tmp_path)
    assert one == two
    assert one["paths"] == ["bench", "bench/test_load.py::test_x"]


def test_only_the_selected_models_count():
    other = Model(id="other", name="O", size="7B", params_b=7.0, files={"Q4_1": "o.gguf"})
    assert list(fingerprint()["models"]) == ["m"]
    assert sorted(fingerprint(cells=[*CELLS, Cell(other, "Q4_1")])["models"]) == ["m", "other"]


def test_session_end_lists_unreached_cells_as_not_run_and_remaining(tmp_path):
    from pytest_llmbench.session import BenchSession

    bench = BenchSession(
        settings=Settings(), catalog=None, cells=CELLS, output_dir=tmp_path, model_dir=tmp_path
    )
    progress = cp.start(bench, {"markexpr": ""}, None)
    for cell in CELLS:
        progress.collected(cell.id, f"t[{cell.id}]")
    assert cp.finish_run(bench, progress) is None  # nothing ran: an older checkpoint stays
    bench.store.outcome(CELLS[0], "interactive", "t", "passed")
    assert progress.torn_down("m-Q8_0", "t[m-Q8_0]")
    cp.cell_done(bench, progress, "m-Q8_0")
    path = cp.finish_run(bench, progress)  # Ctrl+C before the second cell began
    assert path == tmp_path / cp.FILENAME
    statuses = {c["cell_id"]: c["status"] for c in bench.store.cells()}
    assert statuses == {"m-Q8_0": "passed", "m-Q4_1": "not run"}
    data = cp.read(path)
    assert list(data.completed) == ["m-Q8_0"] and data.remaining == ["m-Q4_1"]
    assert data.completed["m-Q8_0"]["record"]["tests"]["t"]["outcome"] == "passed"
