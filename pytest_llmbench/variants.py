"""A cell's effective llama-server options and where each one comes from.

Layers, later winning (``server_options.merge``): the defaults (thresholds.yaml and the CPU
share), the model's config variant (models.yaml, overlaid by ``llmbench variants set`` edits kept
in the registry), then the registry's per-cell ``load_config``.  The plugin and the ``llmbench``
command both go through here, so ``variants export`` prints what a run starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pytest_llmbench import server_options
from pytest_llmbench.config import LlamaCppSettings, Variant, VariantOption
from pytest_llmbench.registry import validate_load_config

if TYPE_CHECKING:
    from pytest_llmbench.matrix import Cell
    from pytest_llmbench.registry import Registry

MODELS_YAML = "models.yaml"
REGISTRY = "registry"
LOAD_CONFIG = "load_config"
_DEFAULT_SOURCES = {"threads": "CPU share", "threads_batch": "CPU share"}


def base_options(
    llama: LlamaCppSettings, threads: int | None, ctx_size: int | None = None
) -> dict[str, Any]:
    """Every server's options before any variant or load_config (thresholds.yaml, CPU share)."""
    return {
        "ctx_size": ctx_size or llama.default_ctx_size,
        "parallel": llama.parallel,
        "n_gpu_layers": llama.gpu_layers,
        "threads": threads,
        "threads_batch": threads,
    }


@dataclass(frozen=True)
class Entry:
    """A variant's option and where it is defined (models.yaml, or the registry's overlay)."""

    option: VariantOption
    source: str


def variant_entries(
    variant: Variant | None, overlay: Mapping[str, VariantOption] = ()
) -> dict[str, Entry]:
    entries = {k: Entry(v, MODELS_YAML) for k, v in (variant.options if variant else {}).items()}
    entries.update({k: Entry(v, REGISTRY) for k, v in dict(overlay).items()})
    return entries


@dataclass(frozen=True)
class CellOptions:
    """What a cell adds to the defaults: its variant's entries and its registry load_config."""

    entries: dict[str, Entry]
    load_config: dict[str, Any]

    @property
    def overrides(self) -> dict[str, Any]:
        """For ``server_options.merge``: override → value, inactive → None (dropped), inherit → ∅."""
        variant = {
            key: entry.option.value if entry.option.mode == "override" else None
            for key, entry in self.entries.items()
            if entry.option.mode != "inherit"
        }
        return server_options.merge(variant, self.load_config)


def cell_options(cell: Cell, registry: Registry | None) -> CellOptions:
    """A cell's variant (with registry edits) and load_config; OptionError if one is invalid."""
    variant = cell.model.variants.get(cell.variant) if cell.variant else None
    overlay = registry.variant_options(cell.model.id, cell.variant) if registry and variant else {}
    record = registry.get(cell.id) if registry else None
    load_config = validate_load_config(record.load_config) if record else {}
    return CellOptions(variant_entries(variant, overlay), load_config)


@dataclass(frozen=True)
class Setting:
    """One effective option: its value (None: not on the command line), state and source."""

    key: str
    value: Any
    state: str  # default | override | inherit | inactive
    source: str
    default: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective(defaults: Mapping[str, Any], options: CellOptions) -> list[Setting]:
    """Every option the defaults, the variant or the load_config name, in that order."""
    keys = list(defaults)
    keys += [k for k in options.entries if k not in keys]
    keys += [k for k in options.load_config if k not in keys]
    settings = []
    for key in keys:
        default = defaults.get(key)
        value, state, source = default, "default", _DEFAULT_SOURCES.get(key, "thresholds.yaml")
        entry = options.entries.get(key)
        if entry is not None:
            state, source = entry.option.mode, entry.source
            value = {"override": entry.option.value, "inactive": None}.get(state, default)
        if key in options.load_config:
            value = options.load_config[key]
            state, source = ("inactive" if value is None else "override"), LOAD_CONFIG
        settings.append(Setting(key, value, state, source, default))
    return settings


def command_args(
    llama: LlamaCppSettings, options: Mapping[str, Any], extra_args: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The server's arguments after ``--model/--host/--port``: options, then raw extra args."""
    return (*server_options.render(options), *llama.extra_args, *extra_args)
