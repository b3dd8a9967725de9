"""``llmbench compat``: read and edit the compatibility registry, one cell at a time."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pytest_llmbench.cli.common import Project, load_project, project_options
from pytest_llmbench.errors import UsageError
from pytest_llmbench.matrix import Cell, model_cells
from pytest_llmbench.registry import (
    USER_STATUSES,
    CellRef,
    LoadConfigError,
    RegistryError,
    check_user_status,
    parse_load_config,
)


def _catalog_cells(project: Project) -> list[Cell]:
    return [cell for model in project.catalog.models for cell in model_cells(model)]


def _cell_ref(project: Project, cell_id: str) -> CellRef:
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
    project = load_project(args)
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
    project = load_project(args)
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
    project = load_project(args)
    r = project.registry.set_user(
        _cell_ref(project, args.id), status=status, notes=args.notes, load_config=load_config
    )
    print(
        f"{r.cell_id}: {r.status} (set by {r.status_source}), load_config {json.dumps(r.load_config)}"
    )
    return 0


def _compat_reset(args: argparse.Namespace) -> int:
    project = load_project(args)
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
    common = project_options()
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
