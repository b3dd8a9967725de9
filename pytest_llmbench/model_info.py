"""What a model file says about itself, and what that means for a benchmark run.

Two sources: the GGUF header (a flat snapshot of every key/value, with the tokenizer's long
arrays summarised, not dumped) and the model card's YAML front matter (licence, tags, base
model, languages) recorded at download time or read from a ``README.md`` beside the file.
From them come compatibility hints a person should see before trusting or publishing numbers:
a context the run asks for beyond what the model was trained on, a profile the architecture
cannot serve as the run asks, a licence that is not permissive.  :func:`report_entry` bundles
all three for a cell's record in the JSON and HTML reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pytest_llmbench.config import Settings
from pytest_llmbench.models import ModelStore, cached_per_file, gguf_reader

# The profiles that generate text; an encoder-only model (BERT and kin) cannot serve them.
GENERATION_PROFILES = ("interactive", "batch", "quality", "long_context", "stress")

# Arrays longer than this are summarised as "array[N] of TYPE" (tokenizer vocabularies, merges).
MAX_ARRAY_ITEMS = 16

CARD_KEYS = (
    "license",
    "license_name",
    "license_link",
    "base_model",
    "language",
    "languages",
    "tags",
    "pipeline_tag",
)

# SPDX-style ids as the hub spells them; anything else (llama3.x, gemma, cc-by-nc-*, openrail,
# other) carries use restrictions or conditions a person should read.
PERMISSIVE_LICENSES = frozenset(
    {
        "apache-2.0",
        "mit",
        "bsd",
        "bsd-2-clause",
        "bsd-3-clause",
        "bsl-1.0",
        "cc0-1.0",
        "cc-by-4.0",
        "cc-by-3.0",
        "isc",
        "unlicense",
        "zlib",
        "postgresql",
    }
)


# ---------------------------------------------------------------- GGUF snapshot


def gguf_snapshot(path: Path, max_items: int = MAX_ARRAY_ITEMS) -> list[dict[str, Any]]:
    """Every header key as ``{"key", "type", "value"}``, in file order; an array longer than
    ``max_items`` has its type as its value (``"array[49152] of string"``), not its items."""
    reader = gguf_reader(path)
    snapshot = []
    for key, field in reader.fields.items():
        types = [t.name.lower() for t in field.types]
        if types and types[0] == "array":
            item = types[1] if len(types) > 1 else "unknown"
            kind = f"array[{len(field.data)}] of {item}"
            value: Any = _plain(field.contents()) if len(field.data) <= max_items else kind
        else:
            kind = types[0] if types else "unknown"
            value = _plain(field.contents())
        snapshot.append({"key": key, "type": kind, "value": value})
    return snapshot


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars and bytes become numbers and text."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "item"):
        return value.item()
    return value


def gguf_snapshot_cached(store: ModelStore, path: Path) -> list[dict[str, Any]]:
    """The snapshot, cached in the store (parsing a 150k-token vocabulary takes seconds)."""
    return list(cached_per_file(store, ".gguf-snapshot.json", path, gguf_snapshot))


def snapshot_value(snapshot: list[dict[str, Any]], key: str) -> Any:
    return next((e["value"] for e in snapshot if e["key"] == key), None)


# ---------------------------------------------------------------- model card


def front_matter(text: str) -> dict[str, Any] | None:
    """The YAML block between the leading ``---`` lines of a model card (None if absent/bad)."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        return None
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def card_summary(card: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The card keys a benchmark cares about."""
    if not card:
        return None
    return {k: card[k] for k in CARD_KEYS if card.get(k) not in (None, "", [])}


def local_card(model_path: Path) -> dict[str, Any] | None:
    """A ``README.md`` beside the model file (as ``hf download`` of the whole repo leaves it)."""
    readme = model_path.parent / "README.md"
    if not readme.is_file():
        return None
    return front_matter(readme.read_text(encoding="utf-8", errors="replace"))


# ---------------------------------------------------------------- hints


def requested_contexts(settings: Settings) -> dict[str, int]:
    """The contexts a run with these settings asks a server for, by where they are set."""
    wanted = {"llama_cpp.default_ctx_size": settings.llama_cpp.default_ctx_size}
    sizes = settings.thresholds.long_context.test_sizes
    if "long_context" in settings.profiles and sizes:
        wanted["thresholds.long_context.test_sizes"] = max(sizes)
    return wanted


def license_of(snapshot: list[dict[str, Any]], card: Mapping[str, Any] | None) -> str | None:
    card = card or {}
    value = card.get("license")
    if value == "other" and card.get("license_name"):
        value = card["license_name"]
    return str(value) if value else snapshot_value(snapshot, "general.license")


def compat_hints(
    snapshot: list[dict[str, Any]],
    card: Mapping[str, Any] | None,
    requested: Mapping[str, int],
    profiles: Sequence[str] = (),
) -> list[str]:
    """Sentences a person should read before running or publishing this model's numbers.

    ``profiles``: the profiles the run asks for, checked against what the architecture does.
    """
    hints = []
    arch = snapshot_value(snapshot, "general.architecture")
    trained = snapshot_value(snapshot, f"{arch}.context_length") if arch else None
    if isinstance(trained, int):
        for where, tokens in requested.items():
            if tokens > trained:
                hints.append(
                    f"context: {where} asks for {tokens} tokens, above the model's context_length "
                    f"{trained}; expect degraded output or a refused request beyond {trained}"
                )
    hints += profile_hints(snapshot, profiles)
    licence = license_of(snapshot, card)
    if not licence:
        hints.append("licence: none declared in the GGUF header or the model card; check it")
    elif licence.lower() not in PERMISSIVE_LICENSES:
        link = (card or {}).get("license_link")
        where = f" ({link})" if link else ""
        hints.append(
            f"licence: {licence} is not a permissive licence; read its terms{where} before "
            "commercial use or redistribution"
        )
    return hints


def profile_hints(snapshot: list[dict[str, Any]], profiles: Sequence[str]) -> list[str]:
    """Profiles the architecture cannot serve as asked, from the header keys llama.cpp reads:
    ``attention.causal`` false marks an encoder (no text generation), and ``pooling_type`` is
    the pooling the model was trained with, which the embedding profile's ``--pooling`` overrides.
    """
    arch = snapshot_value(snapshot, "general.architecture")
    if not arch:
        return []
    hints = []
    generating = [p for p in profiles if p in GENERATION_PROFILES]
    if generating and snapshot_value(snapshot, f"{arch}.attention.causal") is False:
        hints.append(
            f"architecture: {arch} is an encoder ({arch}.attention.causal is false); it embeds "
            f"text but does not generate it, so {', '.join(generating)} will fail; select "
            "-m 'load or embedding' for it"
        )
    declared = _pooling_name(snapshot_value(snapshot, f"{arch}.pooling_type"))
    wanted = embedding_pooling()
    if "embedding" in profiles and declared not in (None, "none", wanted):
        hints.append(
            f"embedding: the profile pools with --pooling {wanted}, the model declares "
            f"{arch}.pooling_type {declared}; its vectors are not the ones it was trained to give"
        )
    return hints


def _pooling_name(value: Any) -> str | None:
    """llama.cpp's pooling enum (0 none, 1 mean, 2 cls, ...) by name; None when absent/unknown."""
    import gguf

    try:
        return gguf.PoolingType(value).name.lower() if isinstance(value, int) else None
    except ValueError:
        return None


def embedding_pooling() -> str:
    """The ``--pooling`` the embedding profile starts its server with."""
    from pytest_llmbench.workloads.embedding import SERVER_ARGS

    return SERVER_ARGS[SERVER_ARGS.index("--pooling") + 1]


# ---------------------------------------------------------------- for the reports


def report_entry(store: ModelStore, path: Path, settings: Settings) -> dict[str, Any]:
    """A cell's ``model_info`` in the JSON report: the GGUF snapshot, the model card's front
    matter (recorded at download, or a README.md beside the file) and the hints for this run."""
    snapshot = gguf_snapshot_cached(store, path)
    card = (store.lookup(path) or {}).get("card") or card_summary(local_card(path))
    requested = requested_contexts(settings)
    hints = compat_hints(snapshot, card, requested, settings.profiles)
    return {"gguf_snapshot": snapshot, "card": card, "hints": hints}
