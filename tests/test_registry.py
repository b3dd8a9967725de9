"""The compatibility registry and config variants, without a server: schema, concurrency,
status rules, load_config validation, variant parsing and merging."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
import yaml

from pytest_llmbench import server_options
from pytest_llmbench.config import (
    ConfigError,
    LlamaCppSettings,
    Model,
    Variant,
    VariantOption,
    load_catalog,
)
from pytest_llmbench.matrix import Cell, select_cells
from pytest_llmbench.registry import (
    MIGRATIONS,
    SCHEMA_VERSION,
    CellRef,
    LoadConfigError,
    Registry,
    RegistryError,
    parse_load_config,
)
from pytest_llmbench.session import error_excerpt
from pytest_llmbench.variants import (
    CellOptions,
    base_options,
    command_args,
    effective,
    variant_entries,
)

MODEL = Model(
    id="tiny",
    name="Tiny",
    size="1M",
    params_b=0.001,
    files={"Q4_K_M": "tiny.Q4_K_M.gguf", "Q8_0": "tiny.Q8_0.gguf"},
)
CELL = Cell(MODEL, "Q4_K_M")


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "state" / "registry.sqlite3")


# ------------------------------------------------------------------ schema


def test_created_on_first_use_at_the_current_schema(registry: Registry) -> None:
    assert not registry.path.exists()
    assert registry.all() == []
    assert registry.path.is_file()
    assert registry.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(registry.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrates_a_version_1_file_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO compat (cell_id, model_id, quant, status, notes, load_config, updated_at) "
        "VALUES ('tiny-Q4_K_M', 'tiny', 'Q4_K_M', 'incompatible', 'crashed', '{\"ctx_size\": 512}', 'x')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    registry = Registry(path)
    record = registry.get("tiny-Q4_K_M")
    assert record is not None
    assert (record.status, record.status_source, record.notes) == ("incompatible", "run", "crashed")
    assert record.load_config == {"ctx_size": 512}
    assert record.variant is None and record.max_throughput_tps is None
    assert registry.schema_version() == SCHEMA_VERSION
    registry.set_variant_option("tiny", "fa", "flash_attn", VariantOption("override", "on"))
    assert registry.variant_options("tiny", "fa") == {"flash_attn": VariantOption("override", "on")}


def test_a_newer_schema_or_a_foreign_file_is_refused_clearly(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RegistryError, match="newer than this pytest-llmbench understands"):
        Registry(newer).all()
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(RegistryError, match="not a usable registry"):
        Registry(garbage).all()


def _writer(path: str, name: str, rounds: int, start: multiprocessing.synchronize.Barrier) -> None:
    registry = Registry(Path(path))
    shared = CellRef("tiny-Q4_K_M", "tiny", "Q4_K_M")
    start.wait()
    for i in range(rounds):
        registry.record_outcome(shared, "incompatible", f"{name} failure {i}")
        registry.record_outcome(CellRef(f"{name}-{i}", name, "Q4_K_M"), "compatible")
        registry.mark_testing(CellRef(f"{name}-{i}", name, "Q4_K_M"))


def test_two_processes_write_at_once_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"  # both also race to create and migrate it
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(path), n, 25, start)) for n in ("a", "b")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    registry = Registry(path)
    notes = registry.record_for(CELL).notes.splitlines()
    assert len(notes) == 50
    for name in ("a", "b"):
        assert sum(f"{name} failure" in line for line in notes) == 25
        assert registry.record_for(CellRef(f"{name}-24", name, "Q4_K_M")).status == "testing"
    assert len(registry.all()) == 51


# ------------------------------------------------------------------ status rules


def test_testing_never_replaces_a_user_set_status(registry: Registry) -> None:
    registry.set_user(CELL, status="degraded", notes="works after a reboot")
    registry.mark_testing(CELL)
    record = registry.record_for(CELL)
    assert (record.status, record.status_source) == ("degraded", "user")
    assert record.notes == "works after a reboot"
    other = Cell(MODEL, "Q8_0")
    registry.mark_testing(other)
    assert registry.record_for(other).status == "testing"


def test_evidence_may_replace_a_user_status_but_appends_a_note_saying_so(
    registry: Registry,
) -> None:
    registry.set_user(CELL, status="incompatible", notes="crashed on my laptop")
    record = registry.record_outcome(CELL, "compatible")
    assert (record.status, record.status_source) == ("compatible", "run")
    first, second = record.notes.splitlines()
    assert first == "crashed on my laptop"
    assert second.endswith("] run: compatible replaces the user-set status incompatible")
    assert record.last_tested_at is not None


def test_evidence_that_agrees_keeps_the_user_setting(registry: Registry) -> None:
    registry.set_user(CELL, status="incompatible", notes="mine")
    record = registry.record_outcome(CELL, "incompatible", "load failed: boom")
    assert (record.status, record.status_source) == ("incompatible", "user")
    assert record.notes.splitlines()[0] == "mine"
    assert record.notes.splitlines()[1].endswith("] load failed: boom")


def test_runs_append_notes_once_per_new_finding_and_reset_keeps_them(registry: Registry) -> None:
    registry.record_outcome(CELL, "incompatible", "load failed: boom")
    registry.record_outcome(CELL, "incompatible", "load failed:   boom")  # same finding
    assert len(registry.record_for(CELL).notes.splitlines()) == 1
    registry.set_user(CELL, load_config={"ctx_size": 1024})
    record = registry.reset(CELL)
    assert (record.status, record.status_source) == ("unknown", "run")
    assert record.notes.splitlines()[-1].endswith("] reset to unknown (was incompatible)")
    assert record.load_config == {"ctx_size": 1024}
    with pytest.raises(RegistryError, match="'broken' is not a status"):
        registry.set_user(CELL, status="broken")


def test_headline_metrics_keep_what_a_run_did_not_measure(registry: Registry) -> None:
    registry.record_metrics(
        CELL, max_throughput_tps=120.5, ttft_seconds=0.04, quantization="Q4_K_M"
    )
    registry.record_metrics(CELL, quality_scores={"math": 80.0})
    record = registry.record_for(CELL)
    assert (record.max_throughput_tps, record.ttft_seconds) == (120.5, 0.04)
    assert record.quality_scores == {"math": 80.0}
    assert record.quantization == "Q4_K_M"


# ------------------------------------------------------------------ load_config validation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a":', "invalid JSON: Expecting value at line 1 column 6"),
        ("[1]", "expected a JSON object of llama-server options, got list"),
        ('{"flash_attention": true}', "flash_attention: unknown llama-server option; known: "),
        ('{"ctx_size": "big"}', "ctx_size: expected a whole number, got 'big'"),
        ('{"flash_attn": "yes"}', "flash_attn: expected one of on, off, auto, got 'yes'"),
    ],
)
def test_load_config_errors_name_the_key_and_why(text: str, message: str) -> None:
    with pytest.raises(LoadConfigError) as exc:
        parse_load_config(text)
    assert str(exc.value).startswith(message)


def test_load_config_accepts_known_and_passed_through_options() -> None:
    assert parse_load_config("") == {}
    parsed = parse_load_config('{"ctx_size": 4096.0, "--no-warmup": true, "threads_batch": null}')
    assert parsed == {"ctx_size": 4096, "--no-warmup": True, "threads_batch": None}


# ------------------------------------------------------------------ variants


def test_variant_entries_override_inherit_and_drop_the_defaults() -> None:
    variant = Variant(
        "fa-on",
        {
            "flash_attn": VariantOption("override", "on"),
            "ctx_size": VariantOption("inherit", 99),  # value ignored
            "batch_size": VariantOption("inactive", 64),
        },
    )
    overlay = {"ubatch_size": VariantOption("override", 128)}  # from `llmbench variants set`
    options = CellOptions(variant_entries(variant, overlay), load_config={"parallel": 2})
    defaults = {"ctx_size": 2048, "parallel": 1, "batch_size": 512}
    merged = server_options.merge(defaults, options.overrides)
    assert merged == {
        "ctx_size": 2048,
        "parallel": 2,
        "batch_size": None,
        "flash_attn": "on",
        "ubatch_size": 128,
    }
    assert command_args(LlamaCppSettings(extra_args=("--no-warmup",)), merged) == (
        "--ctx-size", "2048", "--parallel", "2", "--flash-attn", "on", "--ubatch-size", "128",
        "--no-warmup",
    )  # fmt: skip
    marked = {s.key: (s.value, s.state, s.source) for s in effective(defaults, options)}
    assert marked == {
        "ctx_size": (2048, "inherit", "models.yaml"),
        "parallel": (2, "override", "load_config"),
        "batch_size": (None, "inactive", "models.yaml"),
        "flash_attn": ("on", "override", "models.yaml"),
        "ubatch_size": (128, "override", "registry"),
    }


def test_registry_variant_edits_overlay_and_can_be_cleared(registry: Registry) -> None:
    registry.set_variant_option("tiny", "kv", "batch_size", VariantOption("inactive"))
    registry.set_variant_option("tiny", "kv", "ctx_size", VariantOption("override", 1024.0))
    assert registry.variant_options("tiny", "kv") == {
        "batch_size": VariantOption("inactive"),
        "ctx_size": VariantOption("override", 1024),
    }
    registry.set_variant_option("tiny", "kv", "ctx_size", None)
    assert list(registry.variant_options("tiny", "kv")) == ["batch_size"]
    with pytest.raises(server_options.OptionError, match=r"^nope: unknown llama-server option"):
        registry.set_variant_option("tiny", "kv", "nope", VariantOption("inactive"))
    with pytest.raises(server_options.OptionError, match=r"^ctx_size: expected a whole number"):
        registry.set_variant_option("tiny", "kv", "ctx_size", VariantOption("override", "x"))


def test_base_options_are_the_threshold_settings_and_cpu_share() -> None:
    assert base_options(LlamaCppSettings(default_ctx_size=1024), threads=3) == {
        "ctx_size": 1024,
        "parallel": 1,
        "n_gpu_layers": 0,
        "threads": 3,
        "threads_batch": 3,
    }


def _catalog(tmp_path: Path, variants: object) -> Path:
    path = tmp_path / "models.yaml"
    model = {
        "id": "tiny",
        "name": "Tiny",
        "size": "1M",
        "params_b": 0.001,
        "files": {"Q4_K_M": "a.gguf", "Q8_0": "b.gguf"},
        "variants": variants,
    }
    catalog = {"full_mode_quants": ["Q8_0", "Q4_K_M"], "models": [model]}
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path


def test_variants_are_a_third_matrix_axis_after_each_default_cell(tmp_path: Path) -> None:
    catalog = load_catalog(
        _catalog(
            tmp_path,
            {
                "kv-q8": {"options": {"cache_type_k": "q8_0", "batch_size": {"mode": "inactive"}}},
                "fa-on": {"quants": ["Q4_K_M"], "options": {"flash_attn": "on"}},
            },
        )
    )
    variant = catalog.models[0].variants["kv-q8"]
    assert variant.options["batch_size"] == VariantOption("inactive")
    ids = [cell.id for cell in select_cells(catalog, "full")]
    assert ids == [
        "tiny-Q4_K_M",
        "tiny-Q4_K_M-kv-q8",
        "tiny-Q4_K_M-fa-on",
        "tiny-Q8_0",
        "tiny-Q8_0-kv-q8",
    ]


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ({"fa on": {"options": {"flash_attn": "on"}}}, "models[0].variants.fa on = 'fa on'"),
        ({"Q8_0": {"options": {"flash_attn": "on"}}}, "not a quant"),
        (
            {"fa": {"options": {"flash_attn": True}}},
            "flash_attn: expected a string, got True (YAML reads on/off/yes/no as true/false",
        ),
        ({"fa": {"options": {"ctx_size": {"mode": "maybe"}}}}, "mode: override|inherit|inactive"),
        ({"fa": {"options": {"nope": 1}}}, "nope: unknown llama-server option"),
        ({"fa": {"quants": ["Q2_K"], "options": {"ctx_size": 1}}}, "not a quant of tiny"),
        ({"fa": {"options": {}}}, "expected a mapping of server options"),
        ({"fa": {"options": {"ctx_size": None}}}, "to drop the option use {mode: inactive}"),
    ],
)
def test_variant_mistakes_name_file_key_and_value(
    tmp_path: Path, variants: object, message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_catalog(_catalog(tmp_path, variants))
    assert str(exc.value).startswith(str(tmp_path / "models.yaml"))
    assert message in str(exc.value)


def test_error_excerpt_keeps_the_cause_above_the_last_line() -> None:
    load_error = (
        "llama-server exit code 1 during startup: srv exiting due to model loading error (log: x)\n"
        "$ /path/test_error0/llama-server --model m\n"
        "0.00.278 E llama_init_from_model: quantized V cache requires flash_attn to be enabled\n"
        "0.00.300 I something harmless\n"
        "srv exiting due to model loading error"
    )
    assert error_excerpt(load_error) == (
        "llama-server exit code 1 during startup: srv exiting due to model loading error (log: x); "
        "0.00.278 E llama_init_from_model: quantized V cache requires flash_attn to be enabled"
    )
