"""What several command groups share: the options naming the project's files, and the
catalog, settings and registry those files make."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from pytest_llmbench.config import Catalog, Settings, load_catalog, load_settings
from pytest_llmbench.registry import Registry, registry_path


def catalog_options(thresholds_use: str = "") -> argparse.ArgumentParser:
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


def project_options() -> argparse.ArgumentParser:
    """--models / --thresholds / --registry, shared by every compat and variants command."""
    common = catalog_options()
    common.add_argument(
        "--registry",
        type=Path,
        metavar="PATH",
        help="compatibility registry (default: registry in thresholds.yaml, "
        "else .llmbench/registry.sqlite3 beside the catalog)",
    )
    return common


@dataclass(frozen=True)
class Project:
    """What a compat or variants command reads and edits: the project's files, as loaded."""

    catalog: Catalog
    settings: Settings
    registry: Registry


def load_catalog_and_settings(args: argparse.Namespace) -> tuple[Catalog, Settings]:
    """The catalog, and the thresholds.yaml a run from the catalog's directory would read
    (``--thresholds``, else the one beside the catalog, else the defaults)."""
    root = args.models.resolve().parent
    thresholds = args.thresholds or root / "thresholds.yaml"
    catalog = load_catalog(args.models)
    if args.thresholds or thresholds.is_file():
        return catalog, load_settings(thresholds)
    return catalog, Settings(base_dir=root)


def load_project(args: argparse.Namespace) -> Project:
    """The catalog, settings and registry a run from the catalog's directory would use."""
    catalog, settings = load_catalog_and_settings(args)
    root = args.models.resolve().parent
    return Project(catalog, settings, Registry(registry_path(args.registry, settings, root)))
