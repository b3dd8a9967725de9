"""examples/ci/llmbench.yml: the job graph, and every llmbench / pytest command line it runs."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_llmbench.cli import main as llmbench
from tests.conftest import REPO, BenchProject
from tests.synthetic_reports import full_report, partial_report

WORKFLOW = REPO / "examples" / "ci" / "llmbench.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def runs(job: dict[str, Any]) -> list[str]:
    return [" ".join(step["run"].split()) for step in job["steps"] if "run" in step]


def command(job: dict[str, Any], program: str) -> list[str]:
    """The job's one command line that starts ``program`` (a shell line: split like sh)."""
    lines = [line for line in runs(job) if re.search(rf"(^|[/$( ]){re.escape(program)} ", line)]
    assert len(lines) == 1, (program, runs(job))
    line = lines[0]
    start = line.index("$(") + 2 if "$(" in line else 0  # echo "models=$(llmbench …)"
    words = shlex.split(line[start:].split(")")[0] if start else line)
    return words[[os.path.basename(w) for w in words].index(program) :]


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(action + "@")]


def test_job_graph_plan_then_a_bench_job_per_model_then_merge(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    assert set(jobs) == {"plan", "bench", "merge"}
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict), "the workflow has no `on:` triggers"
    assert set(triggers) == {"workflow_dispatch", "pull_request"}
    assert {"models.yaml", "thresholds.yaml"} <= set(triggers["pull_request"]["paths"])

    plan, bench, merge = jobs["plan"], jobs["bench"], jobs["merge"]
    assert "needs" not in plan
    assert plan["outputs"]["models"] == "${{ steps.models.outputs.models }}"

    assert bench["needs"] == "plan"
    assert bench["strategy"]["fail-fast"] is False
    assert bench["strategy"]["matrix"]["model"] == "${{ fromJSON(needs.plan.outputs.models) }}"
    assert bench["env"]["LLMBENCH_MODEL"] == "${{ matrix.model }}"
    model_cache = [s for s in uses(bench, "actions/cache") if "matrix.model" in s["with"]["key"]]
    assert len(model_cache) == 1
    assert model_cache[0]["with"]["path"] == "${{ env.MODEL_DIR }}"
    assert "${{ matrix.model }}" in bench["env"]["MODEL_DIR"]
    assert "make setup" in runs(bench)
    (upload,) = uses(bench, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert upload["with"]["name"] == "llmbench-report-${{ matrix.model }}"
    assert upload["with"]["path"] == "${{ env.OUTPUT_DIR }}/llmbench-report.json"

    assert merge["needs"] == "bench" and merge["if"] == "always()"
    (download,) = uses(merge, "actions/download-artifact")
    assert download["with"]["pattern"] == "llmbench-report-*"
    assert [s["with"]["name"] for s in uses(merge, "actions/upload-artifact")] == [
        "llmbench-report-all"
    ]


def test_plan_command_prints_the_ci_models_as_json(
    workflow: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = command(workflow["jobs"]["plan"], "llmbench")
    assert argv == ["llmbench", "models", "list", "--ci", "--json"]
    monkeypatch.chdir(REPO)  # the repository's own models.yaml, as the job checks it out
    assert llmbench(argv[1:]) == 0
    models = json.loads(capsys.readouterr().out)
    assert models[0] == "smollm2-135m" and len(models) == len(set(models)) >= 1


def test_bench_command_line_is_accepted_and_selects_the_model(
    workflow: dict[str, Any], pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = workflow["jobs"]["bench"]
    argv = command(bench, "pytest")
    assert argv[1] == "bench/" and {"--llm-ci", "--llm-download"} <= set(argv)
    assert argv[argv.index("-m") + 1] == "load or interactive"
    project = BenchProject(pytester, pytester.path / "store")
    project.write(modules=("test_load.py", "test_interactive.py", "test_batch.py"))
    model = "smollm2-135m"
    env = {"MODEL_DIR": f".llmbench-models/{model}", "OUTPUT_DIR": f"results/{model}"}
    args = [re.sub(r"\$(\w+)", lambda m: env[m[1]], a) for a in argv[2:]]
    monkeypatch.setenv("LLMBENCH_MODEL", model)

    result = pytester.runpytest("bench", *args, "--collect-only", "-q")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    collected = [line for line in result.outlines if "::" in line]
    assert collected and all(f"[{model}-" in line for line in collected)
    modules = {line.split("::")[0] for line in collected}
    assert modules == {"bench/test_load.py", "bench/test_interactive.py"}  # not batch


def test_merge_and_render_commands_work_on_downloaded_artifacts(
    workflow: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merge = workflow["jobs"]["merge"]
    monkeypatch.chdir(tmp_path)
    for name, report in (("smollm2-135m", full_report("ci-1")), ("qwen", partial_report())):
        folder = tmp_path / "reports" / f"llmbench-report-{name}"  # download-artifact's layout
        folder.mkdir(parents=True)
        (folder / "llmbench-report.json").write_text(json.dumps(report))
    lines = [line for line in runs(merge) if line.startswith("llmbench ")]
    assert [line.split()[:3] for line in lines] == [
        ["llmbench", "report", "merge"],
        ["llmbench", "report", "render"],
        ["llmbench", "report", "export"],
    ]
    for line in lines:
        words = [w for word in shlex.split(line) for w in (sorted(glob.glob(word)) or [word])]
        assert llmbench(words[1:]) == 0, line
    uploaded = next(iter(uses(merge, "actions/upload-artifact")))["with"]["path"].split()
    assert all((tmp_path / name).is_file() for name in uploaded), uploaded
    merged = json.loads((tmp_path / "all.json").read_text())
    assert len({r["hostname"] for r in merged["results"]}) == 2


def test_history_step_charts_the_exported_pytest_benchmark_json(
    workflow: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merge = workflow["jobs"]["merge"]
    (history,) = uses(merge, "benchmark-action/github-action-benchmark")
    options = history["with"]
    assert options["tool"] == "pytest"
    assert str(options["auto-push"]).startswith("${{") and "pull_request" in options["auto-push"]
    assert merge["permissions"]["contents"] == "write"  # the push to gh-pages
    steps = merge["steps"]
    artifact = next(iter(uses(merge, "actions/upload-artifact")))
    assert steps.index(artifact) < steps.index(history)  # the HTML report is kept either way

    (line,) = [line for line in runs(merge) if line.startswith("llmbench report export")]
    argv = shlex.split(line)
    assert argv[argv.index("--format") + 1] == "pytest-benchmark"
    assert argv[argv.index("-o") + 1] == options["output-file-path"]
    assert options["output-file-path"] in artifact["with"]["path"].split()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "all.json").write_text(json.dumps(full_report("ci-1")))
    assert llmbench(argv[1:]) == 0
    exported = json.loads((tmp_path / options["output-file-path"]).read_text())
    # what the action's `pytest` tool reads of each benchmark
    assert exported["benchmarks"]
    for bench in exported["benchmarks"]:
        assert bench["fullname"] and bench["stats"]["ops"] > 0
        assert {"stddev", "mean", "rounds"} <= set(bench["stats"])
