"""``llmbench models``: the model store, as models.yaml names its files and model_dir holds them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_llmbench import hub
from pytest_llmbench.binaries import find_tool
from pytest_llmbench.cli.common import catalog_options, load_catalog_and_settings
from pytest_llmbench.config import Catalog, ConfigError, Settings
from pytest_llmbench.hub import human_bytes
from pytest_llmbench.matrix import Cell, ci_models
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
    fix_command,
    from_hub,
    known_file,
    rehash,
    resolve,
    scan,
    sha256_file,
)


def _say(message: str) -> None:
    """Progress goes to stderr, so stdout stays the command's answer."""
    print(message, file=sys.stderr, flush=True)


def _models_options() -> argparse.ArgumentParser:
    common = catalog_options(", for model_dir and the contexts a run asks for")
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
    if not args.models.is_file():
        raise ConfigError(args.models, "(file)", str(args.models), "not found; pass --models PATH")
    catalog, settings = load_catalog_and_settings(args)
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
