"""The matrix: ordering, test ids, selection options, and skips for files that are not there."""

from __future__ import annotations

import pytest

from pytest_llmbench.config import Catalog, ConfigError, Model
from pytest_llmbench.matrix import order_cells, select_cells


def model(model_id: str, params_b: float, quants: tuple[str, ...]) -> Model:
    return Model(
        id=model_id,
        name=model_id,
        size=f"{params_b:g}B",
        params_b=params_b,
        files={q: f"{model_id}-{q}.gguf" for q in quants},
    )


ALL = ("Q8_0", "Q2_K", "Q4_1", "Q6_K", "Q4_K_M", "Q3_K_M", "Q5_K_M")
CATALOG = Catalog(
    models=(model("big", 7, ALL), model("small", 1, ALL)),
    quick_mode_quants=("Q4_K_M", "Q5_K_M"),
    full_mode_quants=ALL,
)


def test_order_is_quant_level_first_then_size():
    ids = [c.id for c in select_cells(CATALOG, "full")]
    assert ids == [
        "small-Q4_K_M", "big-Q4_K_M",
        "small-Q5_K_M", "big-Q5_K_M",
        "small-Q6_K", "big-Q6_K",
        "small-Q3_K_M", "big-Q3_K_M",
        "small-Q2_K", "big-Q2_K",
        "small-Q8_0", "big-Q8_0",
        "small-Q4_1", "big-Q4_1",
    ]  # fmt: skip


def test_order_does_not_depend_on_input_order():
    cells = select_cells(CATALOG, "full")
    assert order_cells(reversed(cells)) == cells


def test_quick_mode_and_filters():
    assert [c.id for c in select_cells(CATALOG, "quick")] == [
        "small-Q4_K_M",
        "big-Q4_K_M",
        "small-Q5_K_M",
        "big-Q5_K_M",
    ]
    assert [c.id for c in select_cells(CATALOG, "full", ["big"], ["Q8_0", "Q2_K"])] == [
        "big-Q2_K",
        "big-Q8_0",
    ]


def test_unknown_model_and_quant_are_config_errors():
    with pytest.raises(ConfigError, match=r"models\[\]\.id = 'huge': one of: big, small"):
        select_cells(CATALOG, "full", ["huge"])
    with pytest.raises(ConfigError, match="quant = 'Q9_0': no model lists it"):
        select_cells(CATALOG, "full", [], ["Q9_0"])


CATALOG_YAML = """
quick_mode_quants: [Q4_K_M]
full_mode_quants: [Q8_0, Q4_K_M, Q6_K]
models:
  - id: remote-3b
    name: Remote 3B
    size: 3B
    params_b: 3
    repo: example/Remote-3B-GGUF
    files: {Q4_K_M: remote-3b-q4_k_m.gguf, Q8_0: remote-3b-q8_0.gguf, Q6_K: remote-3b-q6_k.gguf}
  - id: local-1b
    name: Local 1B
    size: 1B
    params_b: 1
    files: {Q4_K_M: local-1b-q4_k_m.gguf, Q8_0: local-1b-q8_0.gguf}
"""

TEST_MODULE = """
import pytest

@pytest.mark.interactive
def test_a(llm_server):
    pass

@pytest.mark.load
def test_b(llm_run):
    pass
"""


@pytest.fixture
def catalog_project(pytester):
    pytester.makefile(".yaml", models=CATALOG_YAML)
    pytester.makefile(".yaml", thresholds=f"model_dir: {pytester.path / 'store'}\n")
    pytester.makepyfile(test_bench=TEST_MODULE)
    return pytester


def collected(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.outlines if "::" in line]


def test_ids_and_order_in_collection(catalog_project):
    result = catalog_project.runpytest("--collect-only", "-q")
    assert collected(result) == [
        "test_bench.py::test_b[local-1b-Q4_K_M]",
        "test_bench.py::test_a[local-1b-Q4_K_M]",
        "test_bench.py::test_b[remote-3b-Q4_K_M]",
        "test_bench.py::test_a[remote-3b-Q4_K_M]",
        "test_bench.py::test_b[remote-3b-Q6_K]",
        "test_bench.py::test_a[remote-3b-Q6_K]",
        "test_bench.py::test_b[local-1b-Q8_0]",
        "test_bench.py::test_a[local-1b-Q8_0]",
        "test_bench.py::test_b[remote-3b-Q8_0]",
        "test_bench.py::test_a[remote-3b-Q8_0]",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-k", "Q8_0"], {"local-1b-Q8_0", "remote-3b-Q8_0"}),
        (["--llm-mode", "quick"], {"local-1b-Q4_K_M", "remote-3b-Q4_K_M"}),
        (["--llm-model", "remote-3b", "--llm-quant", "Q6_K"], {"remote-3b-Q6_K"}),
        (["-m", "load", "--llm-quant", "Q4_K_M", "--llm-quant", "Q8_0", "--llm-model", "local-1b"], {"local-1b-Q4_K_M", "local-1b-Q8_0"}),
    ],
)  # fmt: skip
def test_selection(catalog_project, args, expected):
    result = catalog_project.runpytest("--collect-only", "-q", *args)
    ids = {line.split("[", 1)[1].rstrip("]") for line in collected(result)}
    assert ids == expected


def test_llmbench_model_env_selects(catalog_project, monkeypatch):
    monkeypatch.setenv("LLMBENCH_MODEL", "local-1b")
    result = catalog_project.runpytest("--collect-only", "-q")
    assert {line.split("[", 1)[1].split("-Q")[0] for line in collected(result)} == {"local-1b"}


def test_unknown_model_option_is_usage_error(catalog_project):
    result = catalog_project.runpytest_subprocess("--llm-model", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'nope': one of: remote-3b, local-1b" in result.stderr.str()


def test_absent_files_are_skipped_with_how_to_get_them(catalog_project):
    result = catalog_project.runpytest("-rs", "--llm-output", str(catalog_project.path / "out"))
    result.assert_outcomes(skipped=10)
    result.stdout.fnmatch_lines(
        [
            "*local-1b-Q4_K_M: model file not found; put the file at */store/1B/local-1b-q4_k_m.gguf",
            "*remote-3b-Q4_K_M: model file not found; example/Remote-3B-GGUF/remote-3b-q4_k_m.gguf is not"
            " in */store/3B/; fetch it with `llmbench models download remote-3b --quant Q4_K_M"
            " --model-dir */store` or run again with --llm-download",
        ]
    )


def test_strict_markers_know_the_profiles(pytester):
    pytester.makepyfile(
        test_m="""
        import pytest
        @pytest.mark.long_context
        @pytest.mark.embedding
        @pytest.mark.stress
        @pytest.mark.batch
        @pytest.mark.quality
        def test_x(): pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)
