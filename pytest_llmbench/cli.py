"""The ``llmbench`` command.

Each command group registers itself with :func:`build_parser` through a small ``add_*``
function that sets ``handler`` on its sub-parsers; ``main`` dispatches and is the one place
that reports errors: each of ours (:mod:`pytest_llmbench.errors`) is one line on stderr and its
exit code, 4 for a user's mistake (a missing or malformed file), like the plugin's usage errors,
1 for a failure; argparse's own errors keep its exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmbench import baseline, hub
from pytest_llmbench.binaries import find_tool
from pytest_llmbench.config import (
    Catalog,
    ConfigError,
    Model,
    Settings,
    Variant,
    VariantOption,
    load_catalog,
    load_settings,
)
from pytest_llmbench.errors import LlmbenchError, UsageError
from pytest_llmbench.hub import human_bytes
from pytest_llmbench.matrix import Cell, ci_models, model_cells
from pytest_llmbench.model_info import (
    card_summary,
    compat_hints,
    gguf_snapshot_cached,
    local_card,
    requested_contexts,
)
from pytest_llmbench.models import (
    ESTIMATE_CTX,
    ModelCorrupt,
    ModelStore,
    ModelUnavailable,
    ScanEntry,
    atomic_write_text,
    fix_command,
    from_hub,
    known_file,
    rehash,
    resolve,
    scan,
    sha256_file,
)
from pytest_llmbench.parallel import cpu_share
from pytest_llmbench.recommend import enrich_report
from pytest_llmbench.registry import (
    USER_STATUSES,
    CellRef,
    LoadConfigError,
    Registry,
    RegistryError,
    check_user_status,
    parse_load_config,
    registry_path,
)
from pytest_llmbench.report.benchmark_json import write_benchmark_json
from pytest_llmbench.report.csv_report import write_csv
from pytest_llmbench.report.html_report import write_html
from pytest_llmbench.report.merge import load_report, merge_reports
from pytest_llmbench.server_options import merge
from pytest_llmbench.system import usable_cores
from pytest_llmbench.variants import (
    Setting,
    base_options,
    cell_options,
    command_args,
    effective,
    variant_entries,
)

# ------------------------------------------------------------------ report


def _report_merge(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.resolve() in {p.resolve() for p in args.inputs}:
        raise UsageError(
            f"{output}: the output would overwrite one of the inputs; choose another -o"
        )
    merged = merge_reports([(str(path), load_report(path)) for path in args.inputs])
    enriched = enrich_report(merged)
    atomic_write_text(output, json.dumps(enriched, indent=2, default=str) + "\n")
    hosts = sorted({str(r.get("hostname")) for r in enriched["results"]})
    print(
        f"merged {len(enriched['results'])} results from {len(args.inputs)} reports "
        f"({len(hosts)} host{'s' if len(hosts) != 1 else ''}: {', '.join(hosts)}) into {output}"
    )
    return 0


def _report_render(args: argparse.Namespace) -> int:
    source: Path = args.input
    report = enrich_report(load_report(source))
    directory: Path = args.output_dir or source.parent
    formats = args.formats or ["csv", "html"]
    written = []
    if "json" in formats:
        target = directory / f"{source.stem}.json"
        if target.resolve() == source.resolve():
            raise UsageError(f"{target}: rendering JSON would overwrite the input; pass -o DIR")
        atomic_write_text(target, json.dumps(report, indent=2, default=str) + "\n")
        written.append(target)
    if "csv" in formats:
        written.append(write_csv(report, directory / f"{source.stem}.csv"))
    if "html" in formats:
        written.append(write_html(report, directory / f"{source.stem}.html", source.parent))
    for path in written:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def _report_compare(args: argparse.Namespace) -> int:
    thresholds = baseline.parse_thresholds(args.fail, "--fail")
    comparison = baseline.compare(
        load_report(args.base), load_report(args.current), thresholds, str(args.base)
    )
    print(f"{args.current} compared with {args.base}")
    for line in comparison.lines():
        print(line)
    for message in comparison.regressions:
        print(f"regression: {message}")
    return 1 if comparison.regressions else 0


def _report_export(args: argparse.Namespace) -> int:
    source: Path = args.input
    target: Path = args.output or source.with_name(f"{source.stem}-benchmark.json")
    if target.resolve() == source.resolve():
        raise UsageError(f"{target}: the export would overwrite the input; choose another -o")
    write_benchmark_json(load_report(source), target)
    count = len(json.loads(target.read_text(encoding="utf-8"))["benchmarks"])
    print(f"wrote {target} ({count} benchmarks, pytest-benchmark format)")
    return 0


def add_report_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = commands.add_parser(
        "report",
        help="merge JSON reports and render them as CSV and HTML",
        description=(
            "Work with llmbench JSON reports (llmbench-report.json in the output directory)."
        ),
    )
    sub = report.add_subparsers(dest="report_command", required=True, title="subcommands")
    merge = sub.add_parser(
        "merge",
        help="combine reports from several machines or CI jobs into one JSON report",
        description="Combine reports; every result keeps the hostname and hardware it ran on.",
    )
    merge.add_argument("inputs", nargs="+", type=Path, metavar="REPORT.json")
    merge.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.json")
    merge.set_defaults(handler=_report_merge)
    render = sub.add_parser(
        "render",
        help="write the CSV and the standalone HTML report for a JSON report",
        description="Recompute derived metrics and recommendations, then write the files.",
    )
    render.add_argument("input", type=Path, metavar="REPORT.json")
    render.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where to write (default: beside the input)",
    )
    render.add_argument(
        "-f",
        "--format",
        dest="formats",
        action="append",
        choices=("csv", "html", "json"),
        help="a format to write (repeatable; default: csv and html)",
    )
    render.set_defaults(handler=_report_render)
    compare = sub.add_parser(
        "compare",
        help="compare a report with a baseline report per cell and headline metric",
        description=(
            "Per cell and headline metric: baseline value, current value and change. "
            "Exit status 1 when a --fail limit is exceeded."
        ),
    )
    compare.add_argument("base", type=Path, metavar="BASE.json", help="the baseline report")
    compare.add_argument("current", type=Path, metavar="CURRENT.json", help="the report to judge")
    compare.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="EXPR",
        help="METRIC:N%% (worse by more than N %%) or METRIC:N (by more than N), repeatable; "
        f"metrics: {baseline.metric_names()}",
    )
    compare.set_defaults(handler=_report_compare)
    export = sub.add_parser(
        "export",
        help="write a report in another tool's format (pytest-benchmark's JSON)",
        description=(
            "pytest-benchmark: one benchmark per cell and timed metric, stats over the "
            "per-run samples; read by `pytest-benchmark compare` and github-action-benchmark."
        ),
    )
    export.add_argument("input", type=Path, metavar="REPORT.json")
    export.add_argument(
        "--format", required=True, choices=("pytest-benchmark",), help="the output format"
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT.json",
        help="where to write (default: REPORT-benchmark.json beside the input)",
    )
    export.set_defaults(handler=_report_export)


# ------------------------------------------------------------------ compat and variants


def _catalog_options(thresholds_use: str = "") -> argparse.ArgumentParser:
    """--models and --thresholds, as every command that reads the project's files takes them."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models",
        type=Path,
        default=Path("models.yaml"),
        metavar="PATH",
        help="model catalog (default: ./models.yaml)",
    )
    common.add_argument(
        "--thresholds",
        type=Path,
        metavar="PATH",
        help=f"thresholds.yaml{thresholds_use} (default: the one beside the catalog, if any)",
    )
    return common


def _project_options() -> argparse.ArgumentParser:
    """--models / --thresholds / --registry, shared by every compat and variants command."""
    common = _catalog_options()
    common.add_argument(
        "--registry",
        type=Path,
        metavar="PATH",
        help="compatibility registry (default: registry in thresholds.yaml, "
        "else .llmbench/registry.sqlite3 beside the catalog)",
    )
    return common


@dataclass(frozen=True)
class _Project:
    catalog: Catalog
    settings: Settings
    registry: Registry


def _project(args: argparse.Namespace) -> _Project:
    """The catalog, settings and registry a run from the catalog's directory would use."""
    root = args.models.resolve().parent
    thresholds = args.thresholds or root / "thresholds.yaml"
    catalog = load_catalog(args.models)
    if args.thresholds or thresholds.is_file():
        settings = load_settings(thresholds)
    else:
        settings = Settings(base_dir=root)
    return _Project(catalog, settings, Registry(registry_path(args.registry, settings, root)))


def _catalog_cells(project: _Project) -> list[Cell]:
    return [cell for model in project.catalog.models for cell in model_cells(model)]


def _cell_ref(project: _Project, cell_id: str) -> CellRef:
    """A catalog cell, or one only the registry still knows; else a usage error."""
    for cell in _catalog_cells(project):
        if cell.id == cell_id:
            return CellRef.of(cell)
    record = project.registry.get(cell_id)
    if record is not None:
        return CellRef(record.cell_id, record.model_id, record.quant, record.variant)
    example = _catalog_cells(project)[0].id
    raise UsageError(
        f"unknown cell id {cell_id!r}: expected MODEL-QUANT[-VARIANT] from "
        f"{project.catalog.path} (e.g. {example}); list them with: llmbench compat list --all"
    )


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def _compat_list(args: argparse.Namespace) -> int:
    project = _project(args)
    records = {r.cell_id: r for r in project.registry.all()}
    if args.all:
        for cell in _catalog_cells(project):
            records.setdefault(cell.id, project.registry.record_for(cell))
    if args.json:
        print(json.dumps([r.as_dict() for r in records.values()], indent=2))
        return 0
    if not records:
        print(f"no cell recorded in {project.registry.path} yet (--all lists the catalog's cells)")
        return 0
    rows = [("cell", "status", "set by", "last tested", "t/s", "TTFT s", "notes")]
    for r in records.values():
        notes = r.one_line_notes()
        rows.append(
            (
                r.cell_id,
                r.status,
                r.status_source,
                r.last_tested_at or "-",
                _num(r.max_throughput_tps, ".1f"),
                _num(r.ttft_seconds, ".3f"),
                notes if len(notes) <= 60 else notes[:59] + "…",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _compat_show(args: argparse.Namespace) -> int:
    project = _project(args)
    r = project.registry.record_for(_cell_ref(project, args.id))
    if args.json:
        print(json.dumps(r.as_dict(), indent=2))
        return 0
    quality = ", ".join(f"{k} {v:.0f}%" for k, v in r.quality_scores.items()) or "-"
    print(f"cell:         {r.cell_id}")
    print(f"model:        {r.model_id}  quant {r.quant}  variant {r.variant or '(default)'}")
    print(f"status:       {r.status} (set by {r.status_source})")
    print(f"last tested:  {r.last_tested_at or 'never'}")
    print(f"load_config:  {json.dumps(r.load_config)}")
    print(
        f"metrics:      {_num(r.max_throughput_tps, '.1f')} t/s, TTFT {_num(r.ttft_seconds, '.3f')} s, "
        f"quality {quality}, quantization {r.quantization or '-'}"
    )
    print("notes:" + ("".join(f"\n  {line}" for line in r.notes.splitlines()) or "        -"))
    return 0


def _compat_set(args: argparse.Namespace) -> int:
    if args.status is None and args.notes is None and args.load_config is None:
        raise UsageError("nothing to set: pass --status, --notes and/or --load-config")
    try:
        status = check_user_status(args.status) if args.status is not None else None
    except RegistryError as exc:
        raise UsageError(f"--status {exc}") from None
    try:
        load_config = parse_load_config(args.load_config) if args.load_config is not None else None
    except LoadConfigError as exc:
        raise UsageError(f"--load-config {args.load_config!r}: {exc}") from None
    project = _project(args)
    r = project.registry.set_user(
        _cell_ref(project, args.id), status=status, notes=args.notes, load_config=load_config
    )
    print(
        f"{r.cell_id}: {r.status} (set by {r.status_source}), load_config {json.dumps(r.load_config)}"
    )
    return 0


def _compat_reset(args: argparse.Namespace) -> int:
    project = _project(args)
    ref = _cell_ref(project, args.id)
    before = project.registry.record_for(ref).status
    project.registry.reset(ref)
    print(f"{ref.cell_id}: unknown (was {before}); the next run tries it again")
    return 0


def add_compat_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    compat = commands.add_parser(
        "compat",
        help="the compatibility registry: status, notes and load config per cell",
        description="Cells are MODEL-QUANT or MODEL-QUANT-VARIANT (the test ids). Runs record "
        "compatible, incompatible (skipped next time) or degraded; your own status is kept.",
    )
    sub = compat.add_subparsers(dest="compat_command", required=True, title="subcommands")
    common = _project_options()
    listing = sub.add_parser("list", parents=[common], help="every recorded cell and its status")
    listing.add_argument("--all", action="store_true", help="also the catalog's untested cells")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(handler=_compat_list)
    show = sub.add_parser("show", parents=[common], help="one cell's full record")
    show.add_argument("id", metavar="CELL")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
    show.set_defaults(handler=_compat_show)
    set_ = sub.add_parser(
        "set", parents=[common], help="set a cell's status, notes or custom load config"
    )
    set_.add_argument("id", metavar="CELL")
    set_.add_argument("--status", metavar="STATUS", help=f"one of {', '.join(USER_STATUSES)}")
    set_.add_argument("--notes", metavar="TEXT", help="replace the cell's notes")
    set_.add_argument(
        "--load-config",
        metavar="JSON",
        help='llama-server option overrides, e.g. \'{"ctx_size": 4096, "flash_attn": "on"}\' '
        "('{}' clears)",
    )
    set_.set_defaults(handler=_compat_set)
    reset = sub.add_parser(
        "reset", parents=[common], help="back to unknown, so the next run tries the cell again"
    )
    reset.add_argument("id", metavar="CELL")
    reset.set_defaults(handler=_compat_reset)


def _variant(project: _Project, model_id: str, name: str | None) -> tuple[Model, Variant | None]:
    try:
        model = project.catalog.model(model_id)
    except ConfigError as exc:
        raise UsageError(f"unknown model id {model_id!r}: {exc.expected}") from None
    if name is None:
        return model, None
    if name not in model.variants:
        known = ", ".join(model.variants) or "none"
        raise UsageError(
            f"{model_id} has no variant {name!r} (known: {known}); "
            f"define it under the model's variants in {project.catalog.path}"
        )
    return model, model.variants[name]


def _variant_cell(project: _Project, model: Model, variant: Variant, quant: str | None) -> Cell:
    """The cell whose load_config applies: --quant's, or the variant's only one; else a stand-in
    without load_config (refused when one of the variant's cells has its own)."""
    quants = [q for q in model.files if variant.applies_to(q)]
    if quant is not None and quant not in quants:
        raise UsageError(f"--quant {quant}: {variant.name} runs at {', '.join(quants)}")
    if quant is None and len(quants) == 1:
        quant = quants[0]
    if quant is not None:
        return Cell(model, quant, variant.name)
    cells = [Cell(model, q, variant.name) for q in quants]
    with_config = [c.id for c in cells if project.registry.record_for(c).load_config]
    if with_config:
        raise UsageError(
            f"{', '.join(with_config)} have their own load_config: pass --quant to pick the cell"
        )
    return cells[0]


def _threads(project: _Project, threads: int | None) -> int:
    """A serial run's threads per server (xdist workers each get a smaller share)."""
    return cpu_share(
        usable_cores(), 1, 0, threads or project.settings.llama_cpp.default_threads
    ).threads


def _effective(
    project: _Project, cell: Cell, threads: int | None
) -> tuple[list[Setting], dict[str, Any]]:
    defaults = base_options(project.settings.llama_cpp, _threads(project, threads))
    options = cell_options(cell, project.registry)
    return effective(defaults, options), merge(defaults, options.overrides)


def _variants_list(args: argparse.Namespace) -> int:
    project = _project(args)
    model, _ = _variant(project, args.id, None)
    if not model.variants:
        print(
            f"{model.id} has no variants; define them under its variants in {project.catalog.path}"
        )
        return 0
    for variant in model.variants.values():
        entries = variant_entries(variant, project.registry.variant_options(model.id, variant.name))
        options = " ".join(
            f"{k}={e.option.value}" if e.option.mode == "override" else f"{k}:{e.option.mode}"
            for k, e in entries.items()
        )
        quants = ", ".join(variant.quants) or "every quant"
        print(f"{variant.name}  ({quants})  {options}  {variant.description}".rstrip())
        for quant in (q for q in model.files if variant.applies_to(q)):
            r = project.registry.record_for(Cell(model, quant, variant.name))
            print(f"    {r.cell_id}: {r.status}, last tested {r.last_tested_at or 'never'}")
    return 0


def _variants_show(args: argparse.Namespace) -> int:
    project = _project(args)
    model, variant = _variant(project, args.id, args.variant)
    assert variant is not None
    cell = _variant_cell(project, model, variant, args.quant)
    settings, _ = _effective(project, cell, args.threads)
    record = project.registry.record_for(cell)
    print(f"{model.id} / {variant.name}: {variant.description or '(no description)'}")
    print(f"cell {cell.id}: {record.status}, last tested {record.last_tested_at or 'never'}")
    if record.notes:
        print(f"notes: {record.one_line_notes()}")
    rows = [("option", "value", "state", "source")]
    for s in settings:
        value = "(dropped)" if s.value is None else str(s.value)
        if s.state in ("override", "inactive") and s.default is not None:
            value += f"  (default {s.default})"
        rows.append((s.key, value, s.state, s.source))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[3])
    if project.settings.llama_cpp.extra_args:
        print(f"extra args (thresholds.yaml): {' '.join(project.settings.llama_cpp.extra_args)}")
    return 0


def _variants_set(args: argparse.Namespace) -> int:
    project = _project(args)
    model, variant = _variant(project, args.id, args.variant)
    assert variant is not None
    if args.clear:
        option = None
    elif args.inherit or args.inactive:
        option = VariantOption("inherit" if args.inherit else "inactive")
    else:
        option = VariantOption("override", _cli_value(args.value))
    project.registry.set_variant_option(model.id, variant.name, args.key, option)
    entry = variant_entries(variant, project.registry.variant_options(model.id, variant.name))
    current = entry.get(args.key)
    if current is None:
        print(f"{model.id}/{variant.name}: {args.key} is back to its default")
    else:
        value = f" = {current.option.value}" if current.option.mode == "override" else ""
        print(
            f"{model.id}/{variant.name}: {args.key} {current.option.mode}{value} ({current.source})"
        )
    return 0


def _cli_value(text: str) -> Any:
    """``512`` → 512, ``true`` → True, ``on`` → "on": JSON scalars are typed, the rest is text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def _variants_export(args: argparse.Namespace) -> int:
    project = _project(args)
    model, variant = _variant(project, args.id, args.variant)
    assert variant is not None
    cell = _variant_cell(project, model, variant, args.quant)
    _, options = _effective(project, cell, args.threads)
    print(json.dumps(list(command_args(project.settings.llama_cpp, options))))
    return 0


def add_variants_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    variants = commands.add_parser(
        "variants",
        help="config variants: named bundles of llama-server options per model",
        description="Variants are defined in models.yaml; 'variants set' stores edits in the "
        "registry, which overlay that definition. Each variant runs as its own cell "
        "(MODEL-QUANT-VARIANT).",
    )
    sub = variants.add_subparsers(dest="variants_command", required=True, title="subcommands")
    common = _project_options()
    listing = sub.add_parser("list", parents=[common], help="a model's variants and their status")
    listing.add_argument("id", metavar="MODEL")
    listing.set_defaults(handler=_variants_list)
    cell_options_ = argparse.ArgumentParser(add_help=False)
    cell_options_.add_argument("id", metavar="MODEL")
    cell_options_.add_argument("variant", metavar="VARIANT")
    cell_options_.add_argument(
        "--quant",
        metavar="QUANT",
        help="the cell whose load_config applies (default: the only one)",
    )
    cell_options_.add_argument(
        "--threads", type=int, metavar="N", help="as --llm-threads (default: a serial run's share)"
    )
    show = sub.add_parser(
        "show",
        parents=[common, cell_options_],
        help="effective settings, each marked default / override / inherit / inactive",
    )
    show.set_defaults(handler=_variants_show)
    set_ = sub.add_parser("set", parents=[common], help="override, inherit or drop one option")
    set_.add_argument("id", metavar="MODEL")
    set_.add_argument("variant", metavar="VARIANT")
    set_.add_argument("--key", required=True, metavar="KEY", help="option key, e.g. batch_size")
    how = set_.add_mutually_exclusive_group(required=True)
    how.add_argument("--value", metavar="VALUE", help="override with this value")
    how.add_argument("--inherit", action="store_true", help="use the default (value ignored)")
    how.add_argument("--inactive", action="store_true", help="drop it from the command line")
    how.add_argument("--clear", action="store_true", help="forget the edit: models.yaml applies")
    set_.set_defaults(handler=_variants_set)
    export = sub.add_parser(
        "export",
        parents=[common, cell_options_],
        help="the effective llama-server arguments as JSON (after --model/--host/--port)",
    )
    export.set_defaults(handler=_variants_export)


# ------------------------------------------------------------------ models


def _say(message: str) -> None:
    """Progress goes to stderr, so stdout stays the command's answer."""
    print(message, file=sys.stderr, flush=True)


def _models_options() -> argparse.ArgumentParser:
    common = _catalog_options(", for model_dir and the contexts a run asks for")
    common.add_argument(
        "--model-dir",
        type=Path,
        metavar="DIR",
        help="the model store (default: model_dir in thresholds.yaml, else ./models)",
    )
    return common


@dataclass(frozen=True)
class _Store:
    catalog: Catalog
    settings: Settings
    store: ModelStore


def _model_store(args: argparse.Namespace) -> _Store:
    root = args.models.resolve().parent
    thresholds = args.thresholds or root / "thresholds.yaml"
    if not args.models.is_file():
        raise ConfigError(args.models, "(file)", str(args.models), "not found; pass --models PATH")
    catalog = load_catalog(args.models)
    settings = load_settings(thresholds) if args.thresholds or thresholds.is_file() else None
    settings = settings or Settings(base_dir=root)
    model_dir = args.model_dir or settings.resolve_path(settings.model_dir)
    return _Store(catalog, settings, ModelStore(model_dir.resolve()))


def _chosen_cells(catalog: Catalog, ids: Sequence[str], quants: Sequence[str]) -> list[Cell]:
    """The named models (all when none) × the named quants (all when none); bad names raise."""
    chosen = [catalog.model(i) for i in ids] if ids else list(catalog.models)
    for quant in quants:
        if not any(quant in m.files for m in chosen):
            known = sorted({q for m in chosen for q in m.files})
            raise ConfigError("--quant", "quant", quant, f"not a quant of these models: {known}")
    return [Cell(m, q) for m in chosen for q in m.files if not quants or q in quants]


def _gb(size: int | None) -> str:
    return "-" if size is None else human_bytes(size)


def _listed_size(entry: ScanEntry) -> str:
    """The size on disk, else the catalog's declared size (marked ~: not checked yet)."""
    if entry.size_bytes is not None:
        return _gb(entry.size_bytes)
    declared = entry.model.file_sizes_gb.get(entry.quant)
    return f"~{_gb(int(declared * 1e9))}" if declared else "-"


def _models_list(args: argparse.Namespace) -> int:
    ctx = _model_store(args)
    chosen = ci_models(ctx.catalog) if args.ci else list(ctx.catalog.models)
    if args.json:
        print(json.dumps([m.id for m in chosen]))
        return 0
    result = scan(ctx.catalog, ctx.store)
    wanted = {m.id for m in chosen}
    entries = [e for e in result.entries if e.model.id in wanted]
    rows = [("CELL", "STATUS", "SIZE", "WHERE")]
    for e in entries:
        where = str(e.path) if e.path else e.detail
        if e.path and e.detail:
            where = f"{e.path} ({e.detail})"
        rows.append((f"{e.model.id}-{e.quant}", e.status, _listed_size(e), where))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.status] = counts.get(e.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    scope = "of the CI models" if args.ci else "in the catalog"
    print(f"\n{len(entries)} files {scope}: {summary}; store: {ctx.store.root}")
    for path in result.unknown:
        print(f"not in the catalog: {path} ({_gb(path.stat().st_size)})")
    return 0


def _not_from_hub(cell: Cell) -> str:
    model = cell.model
    if model.source is not None and model.source.quant == cell.quant:
        return f"shipped in the {model.source.package} package"
    if model.derive is not None and cell.quant in model.derive.quants:
        return f"derived from {model.derive.base}: llmbench models derive {model.id}"
    return "no repo in models.yaml: put the file in the store by hand"


def _models_download(args: argparse.Namespace) -> int:
    ctx = _model_store(args)
    cells = _chosen_cells(ctx.catalog, args.ids, args.quant or ())
    wanted = [c for c in cells if from_hub(c.model, c.quant)]
    if args.ids or args.quant:
        for cell in cells:
            if cell not in wanted:
                print(f"skip   {cell.id}: {_not_from_hub(cell)}")
    planned = hub.plan(wanted, ctx.store, network=False if hub.is_offline() else None)
    missing = [p for p in planned if p.present is None]
    for p in planned:
        source = f"{p.cell.model.repo}/{p.cell.filename}"
        if p.present is not None:
            print(f"have   {p.cell.id}: {p.present} ({_gb(p.size_bytes)})")
        else:
            note = f", {p.note}" if p.note and p.size_bytes is not None else ""
            size = _gb(p.size_bytes) if p.size_bytes is not None else "size unknown"
            verb = "would fetch" if args.dry_run else "fetch"
            print(f"{verb:<6} {p.cell.id}: {source} -> {p.target.parent}/ ({size}{note})")
    known = sum(p.size_bytes or 0 for p in missing)
    unknown = sum(1 for p in missing if p.size_bytes is None)
    extra = f" + {unknown} of unknown size" if unknown else ""
    print(f"{len(missing)} to download: {human_bytes(known) if known else '0 B'}{extra}")
    if args.dry_run or not missing:
        return 0
    hub.check_disk_space(ctx.store.root, known)
    failures = 0
    for p in missing:
        try:
            path = hub.fetch(p.cell, ctx.store, _say)
        except (ModelUnavailable, ModelCorrupt) as exc:
            failures += 1
            print(f"llmbench: error: {p.cell.id}: {exc}", file=sys.stderr)
        else:
            print(f"ok     {p.cell.id}: {path}")
    return 1 if failures else 0


def _models_verify(args: argparse.Namespace) -> int:
    ctx = _model_store(args)
    records = ctx.store.records()
    problems = 0
    for key, record in sorted(records.items()):
        path = Path(key)
        if not path.is_file():
            problem = "missing"
        elif path.stat().st_size != record.size_bytes:
            problem = f"size {path.stat().st_size}, recorded {record.size_bytes}"
        elif (digest := sha256_file(path)) != record.sha256:
            problem = f"sha256 {digest[:16]}…, recorded {record.sha256[:16]}…"
        else:
            ctx.store.update(path, mtime_ns=path.stat().st_mtime_ns)
            print(f"ok        {record.model_id}-{record.quant}: {path}")
            continue
        problems += 1
        fix = f"`{fix_command('rehash', path, ctx.store)}` or `{fix_command('forget', path, ctx.store)}`"
        print(f"MISMATCH  {record.model_id}-{record.quant}: {path}: {problem} (fix: {fix})")
    for entry in scan(ctx.catalog, ctx.store).entries:
        if entry.status == "unrecorded":
            print(
                f"note: {entry.path} is not in metadata.json (never checksummed): a run records "
                f"it once it loads, or now: `{fix_command('rehash', entry.path, ctx.store)}`"
            )
    print(f"{len(records)} recorded files checked, {problems} with problems")
    return 1 if problems else 0


def _store_files(ctx: _Store, ref: str | None) -> list[tuple[Path, Cell | None]]:
    """The files ``ref`` names: a path, a cell id (model-QUANT) or a model id; with no ``ref``
    every recorded file.  Each comes with its catalog cell when it has one."""
    cells = {e.path: Cell(e.model, e.quant) for e in scan(ctx.catalog, ctx.store).entries if e.path}
    recorded = [Path(key) for key in sorted(ctx.store.records())]
    if ref is None:
        return [(path, cells.get(path)) for path in recorded]
    path = Path(ref).expanduser().absolute()
    if path.is_file() or path in recorded:
        return [(path, cells.get(path))]
    named = [
        Cell(m, q) for m in ctx.catalog.models for q in m.files if ref in (m.id, f"{m.id}-{q}")
    ]
    found = [(p, c) for c in named if (p := known_file(c, ctx.store)[0]) is not None]
    if not found:
        problem = "on this machine" if named else "a recorded file, a model id or a cell id"
        raise ConfigError("ID|PATH", "argument", ref, f"not {problem}")
    return found


def _models_forget(args: argparse.Namespace) -> int:
    ctx = _model_store(args)
    for path, _cell in _store_files(ctx, args.target):
        if ctx.store.lookup(path) is None:
            print(f"not recorded  {path}")
            continue
        ctx.store.forget(path)
        print(f"forgotten     {path} (a run records it again once a server loaded it)")
    return 0


def _models_rehash(args: argparse.Namespace) -> int:
    ctx = _model_store(args)
    problems = 0
    for path, cell in _store_files(ctx, args.target):
        if not path.is_file():
            problems += 1
            print(f"MISSING   {path} (drop its record: `{fix_command('forget', path, ctx.store)}`)")
            continue
        try:
            record = rehash(ctx.store, path, *((cell.model, cell.quant) if cell else ()))
        except (ModelCorrupt, ModelUnavailable) as exc:
            problems += 1
            print(f"REFUSED   {exc}")
            continue
        print(f"recorded  {path}: {_gb(record.size_bytes)}, sha256 {record.sha256[:16]}…")
    return 1 if problems else 0


def _models_derive(args: argparse.Namespace) -> int:
    ctx = _model_store(args)
    cells = _chosen_cells(ctx.catalog, args.ids, args.quant or ())
    cells = [c for c in cells if c.model.derive and c.quant in c.model.derive.quants]
    if not cells:
        print("nothing to derive: no chosen model has derive: quants in models.yaml")
        return 0
    server = ctx.settings.llama_cpp.server_path

    def quantize() -> Path:
        return find_tool("llama-quantize", server)

    for cell in cells:
        path = resolve(cell, ctx.store, quantize, _say)
        print(f"ok     {cell.id}: {path} ({_gb(path.stat().st_size)})")
    return 0


def _models_info(args: argparse.Namespace) -> int:
    ctx = _model_store(args)
    model = ctx.catalog.model(args.id)
    entries = [e for e in scan(ctx.catalog, ctx.store).entries if e.model.id == model.id]
    if args.quant is not None and args.quant not in model.files:
        raise ConfigError(
            "--quant", "quant", args.quant, f"{model.id} has {', '.join(model.files)}"
        )
    usable = [e for e in entries if e.path is not None]
    chosen = [e for e in entries if e.quant == args.quant] if args.quant else usable[:1]
    if not chosen or chosen[0].path is None:
        entry = chosen[0] if chosen else entries[0]
        how = {
            "derivable": f"make it with: llmbench models derive {model.id} --quant {entry.quant}",
            "downloadable": f"get it with: llmbench models download {model.id} --quant {entry.quant}",
        }.get(entry.status, entry.detail)
        raise ModelUnavailable(f"{model.id}-{entry.quant}: no file on this machine; {how}")
    entry = chosen[0]
    assert entry.path is not None
    record = ctx.store.lookup(entry.path)
    snapshot = gguf_snapshot_cached(ctx.store, entry.path)
    card = (record or {}).get("card") or card_summary(local_card(entry.path))
    if card is None and args.hub and model.repo:
        card = card_summary(hub.card_data(model.repo, (record or {}).get("revision")))
    hints = compat_hints(snapshot, card, requested_contexts(ctx.settings), ctx.settings.profiles)
    if args.json:
        info = {
            "cell": f"{model.id}-{entry.quant}",
            "status": entry.status,
            "path": str(entry.path),
            "record": record,
            "card": card,
            "hints": hints,
            "gguf": snapshot,
        }
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{model.id}-{entry.quant}  {model.name}  [{entry.status}]")
    print(f"  path: {entry.path} ({_gb(entry.size_bytes)})")
    for key in ("sha256", "source", "repo", "revision", "package", "derived_from", "family"):
        if record and record.get(key):
            print(f"  {key}: {record[key]}")
    if record and record.get("est_ram_bytes"):
        print(f"  estimated RAM: {_gb(record['est_ram_bytes'])} (at {ESTIMATE_CTX} tokens)")
    for key in ("downloaded_at", "recorded_at", "last_tested_at"):
        if record and record.get(key):
            print(f"  {key.removesuffix('_at').replace('_', ' ')}: {record[key]}")
    print("  model card:" + ("" if card else " none found"))
    for key, value in (card or {}).items():
        print(f"    {key}: {value}")
    print("  hints:" + ("" if hints else " none"))
    for hint in hints:
        print(f"    - {hint}")
    print(f"  GGUF metadata ({len(snapshot)} keys):")
    width = max((len(e["key"]) for e in snapshot), default=0)
    for e in snapshot:
        value = "(not shown)" if e["value"] == e["type"] else " ".join(str(e["value"]).split())
        value = value if len(value) <= 80 else f"{value[:77]}… ({len(str(e['value']))} chars)"
        print(f"    {e['key'].ljust(width)}  {e['type']:<22} {value}")
    return 0


def add_models_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = commands.add_parser(
        "models",
        help="the model store: list, download, verify, forget, rehash, derive, info",
        description="Model files as models.yaml names them, in model_dir (organised by size "
        "class) with checksums in model_dir/metadata.json.",
    )
    sub = models.add_subparsers(dest="models_command", required=True, title="subcommands")
    common = _models_options()
    listing = sub.add_parser(
        "list",
        parents=[common],
        help="the catalog against what is on disk, with each file's status",
    )
    listing.add_argument(
        "--ci",
        action="store_true",
        help="only the ci_suitable models, smallest first (the models --llm-ci runs)",
    )
    listing.add_argument(
        "--json",
        action="store_true",
        help="print just the model ids as one JSON array (a CI job matrix) instead of the table",
    )
    listing.set_defaults(handler=_models_list)
    download = sub.add_parser(
        "download",
        parents=[common],
        help="fetch hub files into the store (sha256-verified, resumable)",
        description="Without IDS, every model; without --quant, every quant its repo provides. "
        "Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE.",
    )
    download.add_argument("ids", nargs="*", metavar="ID", help="model ids from models.yaml")
    download.add_argument("--quant", action="append", metavar="Q", help="a quant (repeatable)")
    download.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be fetched and its size; downloads nothing (sizes from "
        "file_sizes_gb, else the hub's metadata unless offline)",
    )
    download.set_defaults(handler=_models_download)
    verify = sub.add_parser(
        "verify",
        parents=[common],
        help="re-hash every file in metadata.json; exit 1 on any mismatch",
    )
    verify.set_defaults(handler=_models_verify)
    forget = sub.add_parser(
        "forget",
        parents=[common],
        help="drop a file's record from metadata.json (the next run checks it afresh)",
    )
    forget.add_argument("target", metavar="ID|PATH", help="a file, a cell id or a model id")
    forget.set_defaults(handler=_models_forget)
    rehash_ = sub.add_parser(
        "rehash",
        parents=[common],
        help="accept a file as it is now: check it reads as GGUF, record its size and sha256",
    )
    rehash_.add_argument(
        "target", nargs="?", metavar="ID|PATH", help="default: every recorded file"
    )
    rehash_.set_defaults(handler=_models_rehash)
    derive = sub.add_parser(
        "derive",
        parents=[common],
        help="make the catalog's derive: quants now with llama-quantize",
    )
    derive.add_argument("ids", nargs="*", metavar="ID", help="model ids (default: all)")
    derive.add_argument("--quant", action="append", metavar="Q", help="a quant (repeatable)")
    derive.set_defaults(handler=_models_derive)
    info = sub.add_parser(
        "info",
        parents=[common],
        help="a file's GGUF metadata, model card and compatibility hints",
    )
    info.add_argument("id", metavar="ID", help="a model id from models.yaml")
    info.add_argument("--quant", metavar="Q", help="default: the first quant on disk")
    info.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    info.add_argument(
        "--hub", action="store_true", help="ask the hub for the model card when none is recorded"
    )
    info.set_defaults(handler=_models_info)


# ------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmbench", description="pytest-llmbench: LLM inference benchmark reports and tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, title="commands")
    add_report_commands(commands)
    add_compat_commands(commands)
    add_variants_commands(commands)
    add_models_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except LlmbenchError as exc:
        print(f"llmbench: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
