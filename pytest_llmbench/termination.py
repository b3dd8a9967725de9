"""Early termination: which cells cannot succeed, decided from what is known and what was measured.

Pure functions over plain data.  The plugin records one :class:`Observation` per finished cell
(shared between xdist workers) and asks :func:`skip_reason` before a cell's server starts.  Each
rule returns a sentence a person can check, naming the numbers and the cell that taught it.

Rules (all on unless ``--llm-no-early-stop``):

1. pre-flight memory: file size × 1.2 + KV cache for the context > available RAM or the limit
   (for fine-tuning: the F32 weights × the training factor);
2. load failure: an out-of-memory load marks the model too large, so its larger quants are skipped;
3. performance: a cell that misses the TTFT or decode-speed threshold skips larger models at the
   same quant (its own other profiles still run);
4. quantization path: Q4_K_M, Q5_K_M and Q6_K all failed for a size class → skip its Q8_0;
5. memory trend: from two or more measured cells, a linear fit of RSS against file size predicts
   which cells exceed the limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pytest_llmbench.metric_table import for_key

if TYPE_CHECKING:
    from pytest_llmbench.judge import Check

GB = 1e9

# Approximate bits per weight of llama.cpp quantization types, to rank a model's files by size
# before they are on disk.
BITS_PER_WEIGHT = {
    "Q2_K": 2.96, "Q2_K_S": 2.6, "Q3_K_S": 3.5, "Q3_K_M": 3.91, "Q3_K_L": 4.27,
    "Q4_0": 4.55, "Q4_1": 5.0, "Q4_K_S": 4.58, "Q4_K_M": 4.89, "Q5_0": 5.54, "Q5_1": 6.0,
    "Q5_K_S": 5.54, "Q5_K_M": 5.7, "Q6_K": 6.59, "Q8_0": 8.5, "F16": 16.0, "BF16": 16.0, "F32": 32.0,
    "IQ1_S": 1.56, "IQ1_M": 1.75, "IQ2_XXS": 2.06, "IQ2_XS": 2.31, "IQ2_S": 2.5, "IQ2_M": 2.7,
    "IQ3_XXS": 3.06, "IQ3_XS": 3.3, "IQ3_S": 3.44, "IQ3_M": 3.66, "IQ4_NL": 4.5, "IQ4_XS": 4.25,
    "TQ1_0": 1.69, "TQ2_0": 2.06, "MXFP4_MOE": 4.25,
}  # fmt: skip

OOM_MARKERS = (
    "out of memory",
    "failed to allocate",
    "cannot allocate memory",
    "std::bad_alloc",
    "unable to allocate",
    "killed by sigkill",
)

PATH_QUANTS = ("Q4_K_M", "Q5_K_M", "Q6_K")

# Bytes per cached K or V value for llama-server's --cache-type-k/v (block formats: bytes per
# block / values per block, as ggml stores them).
KV_BYTES_PER_VALUE = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}


def kv_bytes_per_value(cache_type_k: str | None, cache_type_v: str | None) -> float:
    """Mean bytes per cached value of K and V (f16, llama-server's default, when unset)."""
    sizes = [KV_BYTES_PER_VALUE.get(t or "f16", 2.0) for t in (cache_type_k, cache_type_v)]
    return sum(sizes) / 2


@dataclass(frozen=True)
class CellFacts:
    """What is known about a cell before its server starts."""

    cell_id: str
    model_id: str
    size_class: str
    params_b: float
    quant: str
    file_bytes: int | None = None  # on disk, or declared in the catalog
    n_layers: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    ctx_size: int = 8192
    kv_bytes_per_value: float = 2.0  # f16 cache; see kv_bytes_per_value()

    @property
    def bits(self) -> float:
        return BITS_PER_WEIGHT.get(self.quant, 8.0)


@dataclass(frozen=True)
class Observation:
    """What a finished cell taught us (JSON-safe; shared between workers)."""

    cell_id: str
    model_id: str
    size_class: str
    params_b: float
    quant: str
    file_bytes: int | None = None
    rss_bytes: int | None = None
    load_failed: bool = False
    out_of_memory: bool = False
    perf_failed: bool = False
    perf_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Memory:
    available_bytes: int
    limit_bytes: int | None = None  # limits.max_memory_gb

    @property
    def budget_bytes(self) -> int:
        return (
            min(self.available_bytes, self.limit_bytes)
            if self.limit_bytes
            else self.available_bytes
        )

    def describe(self) -> str:
        text = f"{self.available_bytes / GB:.1f} GB available"
        if self.limit_bytes and self.limit_bytes < self.available_bytes:
            text = f"limit {self.limit_bytes / GB:.1f} GB (max_memory_gb), {text}"
        return text


# ------------------------------------------------------------------ estimates


def kv_cache_bytes(facts: CellFacts) -> int | None:
    """K and V for every layer and context position (None when the metadata is unknown)."""
    if not (facts.n_layers and facts.n_kv_heads and facts.head_dim):
        return None
    values = 2 * facts.n_layers * facts.ctx_size * facts.n_kv_heads * facts.head_dim
    return int(values * facts.kv_bytes_per_value)


def estimate_bytes(facts: CellFacts) -> int | None:
    if facts.file_bytes is None:
        return None
    return int(facts.file_bytes * 1.2) + (kv_cache_bytes(facts) or 0)


# ------------------------------------------------------------------ rules


def preflight(facts: CellFacts, memory: Memory) -> str | None:
    """Rule 1: the cell would not fit in memory."""
    need = estimate_bytes(facts)
    if need is None or need <= memory.budget_bytes:
        return None
    kv = kv_cache_bytes(facts)
    parts = f"{facts.file_bytes / GB:.1f} GB file × 1.2"
    cache = "" if facts.kv_bytes_per_value == 2.0 else f" ({facts.kv_bytes_per_value:.2f} B/value)"
    parts += (
        f" + {kv / GB:.1f} GB KV cache at {facts.ctx_size} tokens{cache}"
        if kv
        else " (KV cache unknown: no metadata yet)"
    )
    return f"pre-flight memory check: needs ~{need / GB:.1f} GB ({parts}), {memory.describe()}"


def training_bytes(facts: CellFacts, factor: float) -> int | None:
    """Memory to fine-tune the cell's model: its F32 weights (file size scaled from the quant's
    bits per weight to 32) × ``factor`` (weights, gradients, two optimizer moments, activations)."""
    if facts.file_bytes is None:
        return None
    return int(facts.file_bytes * 32.0 / facts.bits * factor)


def training_preflight(facts: CellFacts, memory: Memory, factor: float) -> str | None:
    """Rule 1 for fine-tuning: F32 training would not fit in memory."""
    need = training_bytes(facts, factor)
    if need is None or need <= memory.budget_bytes:
        return None
    f32 = facts.file_bytes * 32.0 / facts.bits if facts.file_bytes else 0
    return (
        f"pre-flight memory check: F32 fine-tuning needs ~{need / GB:.1f} GB ({f32 / GB:.1f} GB "
        f"of F32 weights × {factor:g} for gradients, optimizer state and activations), "
        f"{memory.describe()}"
    )


def is_out_of_memory(load_error: str) -> bool:
    text = load_error.lower()
    return any(marker in text for marker in OOM_MARKERS)


def too_large(facts: CellFacts, observations: Iterable[Observation]) -> str | None:
    """Rule 2: a smaller or equal quant of the same model ran out of memory while loading."""
    for obs in observations:
        if (
            obs.model_id == facts.model_id
            and obs.out_of_memory
            and BITS_PER_WEIGHT.get(obs.quant, 8.0) <= facts.bits
        ):
            return (
                f"model too large for this machine: {obs.cell_id} ran out of memory while loading"
            )
    return None


def larger_model_failed(facts: CellFacts, observations: Iterable[Observation]) -> str | None:
    """Rule 3: a smaller model at the same quant already missed the performance thresholds."""
    for obs in observations:
        if obs.quant == facts.quant and obs.perf_failed and obs.params_b < facts.params_b:
            return f"a smaller model failed at this quantization: {obs.cell_id} {obs.perf_reason}"
    return None


def quant_path_exhausted(facts: CellFacts, observations: Sequence[Observation]) -> str | None:
    """Rule 4: Q4_K_M, Q5_K_M and Q6_K all failed for this size class, so Q8_0 will too."""
    if facts.quant != "Q8_0":
        return None
    failed = {
        o.quant: o
        for o in observations
        if o.size_class == facts.size_class and (o.perf_failed or o.load_failed)
    }
    if all(q in failed for q in PATH_QUANTS):
        cells = ", ".join(failed[q].cell_id for q in PATH_QUANTS)
        return f"quantization path exhausted for {facts.size_class}: {cells} all failed"
    return None


@dataclass(frozen=True)
class MemoryFit:
    slope: float  # RSS bytes per file byte
    intercept: float  # bytes
    points: int

    def predict(self, file_bytes: int) -> float:
        return self.slope * file_bytes + self.intercept

    def describe(self) -> str:
        return (
            f"RSS ≈ {self.slope:.2f} × file + {self.intercept / GB:.2f} GB over {self.points} cells"
        )


def fit_memory(observations: Iterable[Observation]) -> MemoryFit | None:
    """Least-squares line of measured RSS against file size; None until two distinct sizes."""
    points = [(o.file_bytes, o.rss_bytes) for o in observations if o.file_bytes and o.rss_bytes]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return MemoryFit(slope=slope, intercept=mean_y - slope * mean_x, points=n)


def predicted_too_big(
    facts: CellFacts, observations: Sequence[Observation], memory: Memory
) -> str | None:
    """Rule 5: the memory trend of measured cells says this one will not fit."""
    fit = fit_memory(observations)
    if fit is None or facts.file_bytes is None:
        return None
    predicted = fit.predict(facts.file_bytes)
    if predicted <= memory.budget_bytes:
        return None
    return f"memory trend predicts ~{predicted / GB:.1f} GB ({fit.describe()}), {memory.describe()}"


def skip_reason(
    facts: CellFacts, observations: Sequence[Observation], memory: Memory
) -> str | None:
    """The first rule that rules the cell out, or None to run it."""
    return (
        preflight(facts, memory)
        or too_large(facts, observations)
        or larger_model_failed(facts, observations)
        or quant_path_exhausted(facts, observations)
        or predicted_too_big(facts, observations, memory)
    )


def performance_failure(checks: Sequence[Check]) -> str:
    """Rule 3's verdict from a cell's threshold checks: '' when it met every critical threshold
    of the interactive profile (decode speed and TTFT)."""
    missed = [c for c in checks if c.profile == "interactive" and c.critical and not c.met]
    problems = []
    for check in missed:
        entry = for_key(check.profile, check.metric)
        words, unit = (entry.words, entry.unit) if entry else (check.metric, "")
        sign = "<" if check.higher_is_better else ">"
        problems.append(f"{words} {check.value:.1f} {unit} {sign} {check.threshold:g} {unit}")
    return f"failed at {', '.join(problems)}" if problems else ""
