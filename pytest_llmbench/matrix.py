"""The benchmark matrix: which (model, quant[, variant]) cells run, in which order, under which id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_llmbench.config import Catalog, ConfigError, Model

# Q4_K_M is the usual sweet spot, so its row is measured first; then the neighbours that are
# most often chosen instead, and Q8_0 (the heaviest) last.  Other quants follow alphabetically.
QUANT_PRIORITY = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "Q8_0")


@dataclass(frozen=True)
class Cell:
    """One server configuration to benchmark: a model file at one quantization, optionally
    started with one of the model's config variants (``smollm2-135m-Q4_K_M-fa-on``)."""

    model: Model
    quant: str
    variant: str | None = None

    @property
    def id(self) -> str:
        base = f"{self.model.id}-{self.quant}"
        return f"{base}-{self.variant}" if self.variant else base

    @property
    def filename(self) -> str:
        return self.model.files[self.quant]


def quant_rank(quant: str) -> tuple[int, str]:
    if quant in QUANT_PRIORITY:
        return (QUANT_PRIORITY.index(quant), "")
    return (len(QUANT_PRIORITY), quant)


def variant_rank(cell: Cell) -> int:
    """The default server first, then the variants in the order models.yaml lists them."""
    if cell.variant is None:
        return 0
    names = list(cell.model.variants)
    return 1 + (names.index(cell.variant) if cell.variant in names else len(names))


def order_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Quantization level first, then model size, then id, default before variants: a stable,
    clock-free order."""
    return sorted(
        cells,
        key=lambda c: (quant_rank(c.quant), c.model.params_b, c.model.id, variant_rank(c)),
    )


def model_cells(model: Model) -> list[Cell]:
    """Every cell of one model: each quant's default cell, then its variants for that quant."""
    return [
        cell
        for quant in model.files
        for cell in (
            Cell(model, quant),
            *(Cell(model, quant, v.name) for v in model.variants.values() if v.applies_to(quant)),
        )
    ]


def ci_models(catalog: Catalog) -> list[Model]:
    """The catalog's ``ci_suitable`` models, smallest first; none is a configuration error."""
    models = sorted((m for m in catalog.models if m.ci_suitable), key=lambda m: (m.params_b, m.id))
    if not models:
        raise ConfigError(
            catalog.path,
            "models[].ci_suitable",
            False,
            "--llm-ci needs at least one model with ci_suitable: true",
        )
    return models


def select_cells(
    catalog: Catalog,
    mode: str,
    model_ids: Sequence[str] = (),
    quants: Sequence[str] = (),
    ci_only: bool = False,
) -> list[Cell]:
    """Cells for the run: the mode's quants × the chosen models, narrowed by ``quants``.

    ``ci_only`` keeps the catalog's ``ci_suitable`` models, smallest first (explicit ids win).
    """
    if mode not in ("quick", "full"):
        raise ConfigError("--llm-mode", "mode", mode, "expected quick or full")
    if model_ids:
        models: Sequence[Model] = [catalog.model(model_id) for model_id in model_ids]
    elif ci_only:
        models = ci_models(catalog)
    else:
        models = catalog.models
    mode_quants = catalog.quick_mode_quants if mode == "quick" else catalog.full_mode_quants
    known = {q for m in catalog.models for q in m.files}
    for quant in quants:
        if quant not in known:
            raise ConfigError(
                "--llm-quant",
                "quant",
                quant,
                f"no model lists it; known: {', '.join(sorted(known))}",
            )
    wanted = set(quants) if quants else set(mode_quants)
    cells = [cell for m in models for cell in model_cells(m) if cell.quant in wanted]
    return order_cells(cells)
