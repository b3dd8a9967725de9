"""llama-server options as data: named keys, their flags, validation, merging and rendering.

Settings from thresholds.yaml, a model's config variant and a registry ``load_config`` are all
mappings of these keys; they are merged in that order and rendered into the argument list the
server is started with.  A key starting with ``--`` is passed through verbatim, for options the
map does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_llmbench.errors import USAGE_ERROR, LlmbenchError

# key -> (flag, type); bool options are flags without a value.
OPTION_MAP: dict[str, tuple[str, type]] = {
    "ctx_size": ("--ctx-size", int),
    "threads": ("--threads", int),
    "threads_batch": ("--threads-batch", int),
    "parallel": ("--parallel", int),
    "n_gpu_layers": ("--n-gpu-layers", int),
    "batch_size": ("--batch-size", int),
    "ubatch_size": ("--ubatch-size", int),
    "flash_attn": ("--flash-attn", str),
    "cache_type_k": ("--cache-type-k", str),
    "cache_type_v": ("--cache-type-v", str),
    "rope_freq_base": ("--rope-freq-base", float),
    "rope_freq_scale": ("--rope-freq-scale", float),
    "keep": ("--keep", int),
    "seed": ("--seed", int),
    "pooling": ("--pooling", str),
    "mlock": ("--mlock", bool),
    "no_mmap": ("--no-mmap", bool),
    "embeddings": ("--embeddings", bool),
    "cont_batching": ("--cont-batching", bool),
    "no_kv_offload": ("--no-kv-offload", bool),
}

CHOICES = {
    "flash_attn": ("on", "off", "auto"),
    "cache_type_k": ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"),
    "cache_type_v": ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"),
    "pooling": ("none", "mean", "cls", "last", "rank"),
}


class OptionError(LlmbenchError, ValueError):
    """An option key or value the server would reject; the message names the key and why."""

    exit_code = USAGE_ERROR


def check(key: str, value: Any) -> Any:
    """Validate one option; returns the value in its canonical type."""
    if key.startswith("--"):
        if value is not None and not isinstance(value, str | int | float | bool):
            raise OptionError(
                f"{key}: a passed-through option takes a string, number, true or null"
            )
        return value
    if key not in OPTION_MAP:
        known = ", ".join(sorted(OPTION_MAP))
        raise OptionError(
            f"{key}: unknown llama-server option; known: {known}, or pass one through as '--flag'"
        )
    _flag, kind = OPTION_MAP[key]
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and not float(value).is_integer())
        ):
            raise OptionError(
                f"{key}: expected {'a whole number' if kind is int else 'a number'}, got {value!r}"
            )
        return kind(value)
    if not isinstance(value, str):
        raise OptionError(f"{key}: expected a string, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise OptionError(f"{key}: expected one of {', '.join(CHOICES[key])}, got {value!r}")
    return value


def validate(options: Any) -> dict[str, Any]:
    """A JSON object of options, every key known (or passed through) and every value typed."""
    if not isinstance(options, Mapping):
        raise OptionError(
            f"expected a JSON object of llama-server options, got {type(options).__name__}"
        )
    return {str(k): check(str(k), v) for k, v in options.items()}


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; a value of None removes the option from the command line."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = value
    return merged


def render(options: Mapping[str, Any]) -> list[str]:
    """The argument list: known keys as their flags, bool flags only when true, None dropped."""
    args: list[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = key if key.startswith("--") else OPTION_MAP[key][0]
        args.append(flag)
        if value is not True:
            args.append(str(value))
    return args
