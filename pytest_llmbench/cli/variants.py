"""``llmbench variants``: a model's config variants, their effective llama-server options and
the registry edits that overlay models.yaml."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pytest_llmbench.cli.common import Project, load_project, project_options
from pytest_llmbench.config import ConfigError, Model, Variant, VariantOption
from pytest_llmbench.errors import UsageError
from pytest_llmbench.matrix import Cell
from pytest_llmbench.parallel import cpu_share
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


def _variant(project: Project, model_id: str, name: str | None) -> tuple[Model, Variant | None]:
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


def _variant_cell(project: Project, model: Model, variant: Variant, quant: str | None) -> Cell:
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


def _threads(project: Project, threads: int | None) -> int:
    """A serial run's threads per server (xdist workers each get a smaller share)."""
    return cpu_share(
        usable_cores(), 1, 0, threads or project.settings.llama_cpp.default_threads
    ).threads


def _effective(
    project: Project, cell: Cell, threads: int | None
) -> tuple[list[Setting], dict[str, Any]]:
    defaults = base_options(project.settings.llama_cpp, _threads(project, threads))
    options = cell_options(cell, project.registry)
    return effective(defaults, options), merge(defaults, options.overrides)


def _variants_list(args: argparse.Namespace) -> int:
    project = load_project(args)
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
    project = load_project(args)
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
    project = load_project(args)
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
    project = load_project(args)
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
    common = project_options()
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
