"""Load and validate ``models.yaml`` and ``thresholds.yaml`` into frozen dataclasses.

Every mistake becomes one :class:`ConfigError` line naming the file, the key path, the bad
value and what was expected, so a user fixes it without reading a traceback.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from pytest_llmbench import stats
from pytest_llmbench.errors import USAGE_ERROR, LlmbenchError
from pytest_llmbench.server_options import OptionError, check
from pytest_llmbench.workloads.finetune import too_short

# Quantization types llama-quantize knows (its --help list), plus the float formats.
KNOWN_QUANTS = (
    "F32", "F16", "BF16",
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4_MOE",
    "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
    "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M",
    "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0",
)  # fmt: skip

# Also the order of a cell's tests: profiles on the cell's default server first, then those that
# need a server of their own (long context, embeddings); stress runs after every cell.
PROFILES = (
    "load",
    "interactive",
    "batch",
    "quality",
    "long_context",
    "embedding",
    "stress",
    "divergence",
    "serving",
    "finetune",
)


class ConfigError(LlmbenchError):
    """A user's configuration mistake, worded as a single actionable line."""

    exit_code = USAGE_ERROR

    def __init__(self, file: str | Path, key: str, value: Any, expected: str) -> None:
        self.file, self.key, self.value, self.expected = str(file), key, value, expected
        shown = "(missing)" if value is _MISSING else repr(value)
        super().__init__(f"{self.file}: {key} = {shown}: {expected}")


_MISSING = object()


# ---------------------------------------------------------------- thresholds.yaml


@dataclass(frozen=True)
class LlamaCppSettings:
    server_path: str | None = None
    default_ctx_size: int = 8192
    default_threads: int | None = None
    gpu_layers: int = 0
    extra_args: tuple[str, ...] = ()
    startup_timeout: float | None = None  # None: limits.max_load_time
    parallel: int = 1
    load_retries: int = 1  # a failed start is retried; one that then loads is 'degraded'


@dataclass(frozen=True)
class InteractiveThresholds:
    min_tokens_per_sec: float = 2.0
    max_time_to_first_token: float = 30.0
    max_variance: float = 20.0  # CV (%) of tokens/s over 1-second windows
    max_stall_ms: float = 250.0  # a gap longer than this is a pause a reader notices
    max_stalls: float = 1.0  # stalls per run (median over the runs)
    n_predict: int = 500
    repetitions: int | str = "auto"  # "auto": the measurement section's stopping rule


@dataclass(frozen=True)
class LongContextThresholds:
    max_initial_load_time: float = 60.0
    test_sizes: tuple[int, ...] = (4096, 8192, 16384, 32768, 65536)


@dataclass(frozen=True)
class BatchThresholds:
    max_variance: float = 20.0
    num_documents: int = 30
    max_degradation: float = 20.0
    max_memory_growth_mb: float = 256.0


@dataclass(frozen=True)
class QualityThresholds:
    min_math_score: float = 80.0
    min_comprehension_score: float = 75.0
    min_reasoning_score: float = 75.0
    min_format_compliance: float = 90.0
    questions: str | None = None


@dataclass(frozen=True)
class StressThresholds:
    duration: float = 30.0
    max_temperature: float = 85.0
    abort_temperature: float = 90.0
    sample_interval: float = 30.0
    max_tps_drop: float = 20.0


@dataclass(frozen=True)
class EmbeddingThresholds:
    max_latency_ms: float = 50.0
    repetitions: int = 5


@dataclass(frozen=True)
class DivergenceThresholds:
    """Defaults from llama.cpp's published KL-divergence tables (8B-class models): Q8_0 and Q6_K
    stay under 0.01 with ≥ 97 % same top token, Q4_K_M near 0.03–0.05 and ~92 %, Q3_K_M near
    0.1 and ~87 %, Q2_K 0.3 and more with under 80 %.  The limits pass Q3_K_M and up and flag
    the loss of Q2_K-class files; small models lose more at every level."""

    max_kld: float = 0.3  # mean KL divergence from the reference (nats per token)
    min_same_top_percent: float = 75.0  # most likely token the same as the reference's
    max_ppl_increase_percent: float = 30.0  # perplexity above the reference's
    tokens: int = 8192  # text tokens evaluated (chunks of ctx); the second half of each scored
    ctx: int = 512


@dataclass(frozen=True)
class ServingObjectives:
    """Per-request objectives (any subset; null: not an objective) and the share that must
    meet them all.  Defaults: the first token within 1 s and 10 t/s per user (100 ms per token),
    a pace a reader follows comfortably."""

    ttft_ms: float | None = 1000.0
    tpot_ms: float | None = 100.0
    e2e_ms: float | None = None
    min_share: float = 90.0  # percent of requests


@dataclass(frozen=True)
class ServingThresholds:
    concurrency: tuple[int, ...] = (1, 2, 4, 8)  # closed-loop users per level, ascending
    request_rates: tuple[float, ...] = ()  # open-loop levels (requests/s, Poisson arrivals)
    requests_per_level: int = 16  # measured requests per level (at least one per user)
    duration_s: float | None = None  # or: keep each level busy this long instead
    isl: int = 128  # input tokens per request: mean ...
    isl_stdev: int = 16  # ... and standard deviation
    osl: int = 64  # output tokens per request (ignore_eos): mean ...
    osl_stdev: int = 8
    seed: int = 0
    min_users: int = 1  # the assertion: capacity ≥ this many concurrent users
    slo: ServingObjectives = field(default_factory=ServingObjectives)

    @property
    def slot_ctx(self) -> int:
        """Context one slot needs for the longest plausible request (mean + 4 sd each, + margin)."""
        return self.isl + 4 * self.isl_stdev + self.osl + 4 * self.osl_stdev + 64


@dataclass(frozen=True)
class FinetuneThresholds:
    """A short full fine-tune by llama-finetune (F32 weights, AdamW).  On the embedded
    SmolLM2-135M, 3 epochs over Genesis 36 (~1.35k tokens) at ctx 256 took 83 s on 2 idle
    cores and 9-15 min on 2 busy ones; llama.cpp's default learning rate (1e-5) lowers the training
    loss only ~19 %, 1e-4 lowers it ~50 % (2.46 → 1.63 → 1.22)."""

    epochs: int = 3
    min_improvement_percent: float = 20.0  # training loss, first epoch to last
    max_seconds: float = 1800.0  # wall time of the whole run, model load included
    learning_rate: float = 1e-4
    ctx: int = 256  # tokens per training window, a multiple of 256; windows start every ctx/2
    val_split: float = 0.1  # share of the windows held out for the validation loss
    text: str | None = None  # training text; null: bench/data/finetune-genesis36.txt

    @property
    def watchdog_seconds(self) -> float:
        """When a run that has blown its time limit is stopped: twice the limit, so the
        measured time still says by how much it missed."""
        return 2 * self.max_seconds


@dataclass(frozen=True)
class MeasurementSettings:
    """How often a profile repeats its measured request when ``repetitions`` is ``auto``."""

    target_precision_percent: float = 3.0
    min_repetitions: int = 3
    max_repetitions: int = 10
    time_budget_s: float = 180.0

    def rule(self, repetitions: int | str) -> stats.StopRule:
        fixed = repetitions if isinstance(repetitions, int) else None
        return stats.StopRule(
            self.target_precision_percent,
            self.min_repetitions,
            self.max_repetitions,
            self.time_budget_s,
            fixed,
        )


@dataclass(frozen=True)
class Thresholds:
    interactive: InteractiveThresholds = field(default_factory=InteractiveThresholds)
    long_context: LongContextThresholds = field(default_factory=LongContextThresholds)
    batch: BatchThresholds = field(default_factory=BatchThresholds)
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    stress: StressThresholds = field(default_factory=StressThresholds)
    embedding: EmbeddingThresholds = field(default_factory=EmbeddingThresholds)
    divergence: DivergenceThresholds = field(default_factory=DivergenceThresholds)
    serving: ServingThresholds = field(default_factory=ServingThresholds)
    finetune: FinetuneThresholds = field(default_factory=FinetuneThresholds)


@dataclass(frozen=True)
class Limits:
    max_memory_gb: float | None = None
    max_load_time: float = 300.0
    allow_swap: bool = False


@dataclass(frozen=True)
class OutputSettings:
    dir: str = "results"
    formats: tuple[str, ...] = ("json", "csv", "html")
    include_logs: bool = True


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    file: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything thresholds.yaml says; ``base_dir`` anchors its relative paths."""

    llama_cpp: LlamaCppSettings = field(default_factory=LlamaCppSettings)
    test_mode: str = "full"
    profiles: tuple[str, ...] = (
        "load",
        "interactive",
        "long_context",
        "batch",
        "quality",
        "divergence",
    )
    thresholds: Thresholds = field(default_factory=Thresholds)
    measurement: MeasurementSettings = field(default_factory=MeasurementSettings)
    limits: Limits = field(default_factory=Limits)
    model_dir: str = "models"
    output: OutputSettings = field(default_factory=OutputSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    registry: str | None = None  # compatibility registry (SQLite); relative to this file
    base_dir: Path = field(default=Path("."), compare=False)

    def runs_profile(self, profile: str, markexpr: str | None) -> bool:
        """A profile runs when ``profiles`` lists it or ``-m`` names it; ``load`` always runs
        (it is where a cell that cannot start fails, once)."""
        named = re.search(rf"\b{re.escape(profile)}\b", markexpr or "") is not None
        return profile == "load" or profile in self.profiles or named

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def health_timeout(self) -> float:
        """Seconds a server may take to answer /health: ``llama_cpp.startup_timeout`` when set,
        else ``limits.max_load_time`` (a load slower than the limit is a load failure)."""
        timeout = self.llama_cpp.startup_timeout
        return self.limits.max_load_time if timeout is None else timeout


# ---------------------------------------------------------------- models.yaml


@dataclass(frozen=True)
class PackageSource:
    """A model file shipped inside an installed Python distribution."""

    package: str
    path: str
    quant: str


@dataclass(frozen=True)
class Derivation:
    """Quants produced locally with llama-quantize from the ``base`` quant's file."""

    base: str
    quants: tuple[str, ...]


# Size categories a catalog entry may carry, smallest first (CI picks the small end).
CATEGORIES = ("tiny", "small", "medium", "large")

VARIANT_MODES = ("override", "inherit", "inactive")


@dataclass(frozen=True)
class VariantOption:
    """One server option of a variant: override it, keep the default, or drop it."""

    mode: str  # one of VARIANT_MODES
    value: Any = None  # the override; ignored (but kept) for inherit and inactive


@dataclass(frozen=True)
class Variant:
    """A named bundle of llama-server option overrides, benchmarked as a cell of its own."""

    name: str
    options: dict[str, VariantOption] = field(default_factory=dict)
    quants: tuple[str, ...] = ()  # empty: every quant of the model
    description: str = ""

    def applies_to(self, quant: str) -> bool:
        return not self.quants or quant in self.quants


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    size: str
    params_b: float
    files: dict[str, str]
    repo: str | None = None
    revision: str | None = None
    source: PackageSource | None = None
    derive: Derivation | None = None
    ci_suitable: bool = False
    file_sizes_gb: dict[str, float] = field(default_factory=dict)
    category: str | None = None  # tiny, small, medium or large: picks CI subsets
    variants: dict[str, Variant] = field(default_factory=dict)  # parsed by _load_variants
    reference: str | None = None  # the quant the divergence profile compares against

    @property
    def quants(self) -> tuple[str, ...]:
        return tuple(self.files)

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(frozen=True)
class Catalog:
    models: tuple[Model, ...]
    quick_mode_quants: tuple[str, ...] = ("Q4_K_M", "Q5_K_M")
    full_mode_quants: tuple[str, ...] = ("Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")
    path: Path = field(default=Path("models.yaml"), compare=False)

    def model(self, model_id: str) -> Model:
        for model in self.models:
            if model.id == model_id:
                return model
        known = ", ".join(m.id for m in self.models)
        raise ConfigError(self.path, "models[].id", model_id, f"one of: {known}")


# ---------------------------------------------------------------- generic validation

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._]*(?:-[A-Za-z0-9._]+)*$")
_NON_NEGATIVE = "a number ≥ 0"


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in args) + " (or null)"
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(tp: Any, value: Any, file: Path, key: str) -> Any:
    """Convert one YAML value to the annotated type, or raise a ConfigError naming it."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for arg in args[:-1]:  # e.g. int | str: a number, else a word such as "auto"
            try:
                return _convert(arg, value, file, key)
            except ConfigError:
                pass
        return _convert(args[-1], value, file, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, file, key)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(file, key, value, f"expected {_describe(tp)}")
        return tuple(_convert(item_tp, v, file, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _key_tp, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(file, key, value, "expected a mapping")
        return {str(k): _convert(val_tp, v, file, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(file, key, value, "expected true or false")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(file, key, value, f"expected {_describe(tp)}")
        if tp is int and not float(value).is_integer():
            raise ConfigError(file, key, value, "expected a whole number")
        if value < 0:
            raise ConfigError(file, key, value, f"expected {_NON_NEGATIVE}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(file, key, value, "expected a string")
        return str(value)
    if tp is Path:
        return Path(value)
    raise TypeError(f"unsupported config type {tp!r}")  # a bug in the schema, not user input


def _build(cls: type, data: Any, file: Path, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    where = prefix or "(top level)"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, where, data, "expected a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    # fields with compare=False (base_dir, path) are filled in by the loader, not by the user
    fields = {f.name: f for f in dataclasses.fields(cls) if f.compare}
    for key in data:
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            raise ConfigError(
                file, _join(prefix, str(key)), data[key], f"unknown key; allowed: {allowed}"
            )
    kwargs = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], file, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(file, key, _MISSING, f"required: {_describe(hints[name])}")
    return cls(**kwargs)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "(file)", str(path), f"cannot be read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, where, "(YAML syntax)", f"invalid YAML: {problem}") from None


def _check_quant(file: Path, key: str, quant: str) -> None:
    if quant not in KNOWN_QUANTS:
        raise ConfigError(
            file, key, quant, f"unknown quantization; known: {', '.join(KNOWN_QUANTS)}"
        )


# ---------------------------------------------------------------- public loaders


def load_settings(path: Path | None) -> Settings:
    """Read thresholds.yaml (or return the defaults when there is none)."""
    if path is None:
        return Settings()
    data = _read_yaml(path)
    settings = _build(Settings, data, path, "")
    _validate_settings(settings, path)
    return dataclasses.replace(settings, base_dir=path.resolve().parent)


def _validate_settings(s: Settings, path: Path) -> None:
    if s.test_mode not in ("quick", "full"):
        raise ConfigError(path, "test_mode", s.test_mode, "expected quick or full")
    for i, profile in enumerate(s.profiles):
        if profile not in PROFILES:
            raise ConfigError(
                path, f"profiles[{i}]", profile, f"expected one of {', '.join(PROFILES)}"
            )
    if s.llama_cpp.default_ctx_size < 256:
        raise ConfigError(
            path,
            "llama_cpp.default_ctx_size",
            s.llama_cpp.default_ctx_size,
            "expected ≥ 256 tokens",
        )
    if s.llama_cpp.parallel < 1:
        raise ConfigError(path, "llama_cpp.parallel", s.llama_cpp.parallel, "expected ≥ 1")
    reps = s.thresholds.interactive.repetitions
    if reps != "auto" and not (isinstance(reps, int) and reps >= 1):
        raise ConfigError(
            path, "thresholds.interactive.repetitions", reps, "expected auto or a count ≥ 1"
        )
    m = s.measurement
    if m.min_repetitions < 1 or m.max_repetitions < m.min_repetitions:
        raise ConfigError(
            path,
            "measurement.max_repetitions",
            m.max_repetitions,
            f"expected min_repetitions ≥ 1 and max_repetitions ≥ min_repetitions ({m.min_repetitions})",
        )
    if m.target_precision_percent <= 0:
        raise ConfigError(
            path,
            "measurement.target_precision_percent",
            m.target_precision_percent,
            "expected a percentage > 0",
        )
    serving = s.thresholds.serving
    levels = serving.concurrency
    if not levels or min(levels) < 1 or list(levels) != sorted(set(levels)):
        raise ConfigError(
            path,
            "thresholds.serving.concurrency",
            list(levels),
            "expected users per level, ascending, each ≥ 1 (e.g. [1, 2, 4, 8])",
        )
    if any(rate <= 0 for rate in serving.request_rates):
        raise ConfigError(
            path,
            "thresholds.serving.request_rates",
            list(serving.request_rates),
            "expected requests per second > 0",
        )
    if serving.isl < 1 or serving.osl < 2 or serving.requests_per_level < 1:
        raise ConfigError(
            path,
            "thresholds.serving.osl",
            serving.osl,
            "expected isl ≥ 1, osl ≥ 2 and requests_per_level ≥ 1",
        )
    if not 0 < serving.slo.min_share <= 100:
        raise ConfigError(
            path,
            "thresholds.serving.slo.min_share",
            serving.slo.min_share,
            "expected a percentage above 0 and at most 100",
        )
    div = s.thresholds.divergence
    if div.ctx < 16 or div.tokens < div.ctx:
        raise ConfigError(
            path,
            "thresholds.divergence.tokens",
            div.tokens,
            f"expected ctx ≥ 16 and tokens ≥ ctx ({div.ctx})",
        )
    _validate_finetune(s.thresholds.finetune, path)
    if s.thresholds.interactive.n_predict < 2:
        n = s.thresholds.interactive.n_predict
        raise ConfigError(path, "thresholds.interactive.n_predict", n, "expected ≥ 2 tokens")
    for i, fmt in enumerate(s.output.formats):
        if fmt not in ("json", "csv", "html"):
            raise ConfigError(path, f"output.formats[{i}]", fmt, "expected json, csv or html")
    level = s.logging.level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(
            path, "logging.level", s.logging.level, "expected DEBUG, INFO, WARNING or ERROR"
        )


def _validate_finetune(ft: FinetuneThresholds, path: Path) -> None:
    """Settings llama-finetune would crash on or train nothing with, caught before any cell."""
    key = "thresholds.finetune"
    if ft.epochs < 1:
        raise ConfigError(path, f"{key}.epochs", ft.epochs, "expected at least 1 epoch")
    if ft.ctx < 256 or ft.ctx % 256:
        raise ConfigError(
            path,
            f"{key}.ctx",
            ft.ctx,
            "expected a multiple of 256 (llama.cpp pads the context to one), e.g. 256 or 512",
        )
    if ft.learning_rate <= 0:
        raise ConfigError(
            path,
            f"{key}.learning_rate",
            ft.learning_rate,
            "expected > 0 (llama-finetune's AdamW aborts at 0), e.g. 1.0e-4",
        )
    if not 0 <= ft.val_split < 1:
        raise ConfigError(path, f"{key}.val_split", ft.val_split, "expected a fraction in [0, 1)")
    if ft.text is None:
        return
    text = Path(ft.text).expanduser()
    text = text if text.is_absolute() else path.resolve().parent / text
    if not text.is_file():
        raise ConfigError(path, f"{key}.text", ft.text, f"no such file ({text})")
    reason = too_short(text, ft.ctx)
    if reason:
        raise ConfigError(path, f"{key}.text", ft.text, f"too short for one batch: {reason}")


def load_catalog(path: Path) -> Catalog:
    """Read models.yaml; every model needs an id, a size and at least one file."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", data, "expected a mapping with a 'models' list")
    allowed = {"models", "quick_mode_quants", "full_mode_quants"}
    for key in data:
        if key not in allowed:
            raise ConfigError(
                path, str(key), data[key], f"unknown key; allowed: {', '.join(sorted(allowed))}"
            )
    raw_models = data.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise ConfigError(path, "models", raw_models, "expected a non-empty list of models")
    models = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_models):
        raw_variants = None
        if isinstance(raw, dict) and "variants" in raw:  # free-form option values: parsed apart
            raw = dict(raw)
            raw_variants = raw.pop("variants")
        model = _build(Model, _normalise_model(raw, path, i), path, f"models[{i}]")
        _validate_model(model, path, f"models[{i}]")
        if raw_variants is not None:
            variants = _load_variants(raw_variants, model, path, f"models[{i}].variants")
            model = dataclasses.replace(model, variants=variants)
        if model.id in seen:
            raise ConfigError(path, f"models[{i}].id", model.id, "duplicate id; ids must be unique")
        seen.add(model.id)
        models.append(model)
    kwargs: dict[str, Any] = {}
    for key in ("quick_mode_quants", "full_mode_quants"):
        if key in data:
            quants = _convert(tuple[str, ...], data[key], path, key)
            for j, quant in enumerate(quants):
                _check_quant(path, f"{key}[{j}]", quant)
            kwargs[key] = quants
    return Catalog(models=tuple(models), path=path, **kwargs)


def _normalise_model(raw: Any, path: Path, index: int) -> Any:
    """Turn the YAML spelling of ``derive`` ({from: Q4_1, quants: [...]}) into field names."""
    if isinstance(raw, dict) and isinstance(raw.get("derive"), dict):
        derive = dict(raw["derive"])
        if "from" in derive:
            derive["base"] = derive.pop("from")
        raw = {**raw, "derive": derive}
    return raw


def _validate_model(model: Model, path: Path, key: str) -> None:
    if not _ID_RE.match(model.id):
        raise ConfigError(
            path, f"{key}.id", model.id, "expected letters, digits, '.', '_' and single '-' only"
        )
    derived = model.derive.quants if model.derive else ()
    if not model.files and not derived:
        raise ConfigError(path, f"{key}.files", model.files, "a model needs at least one file")
    _check_inside(path, f"{key}.size", model.size)
    for quant, filename in model.files.items():
        _check_quant(path, f"{key}.files.{quant}", quant)
        _check_inside(path, f"{key}.files.{quant}", filename)
    for quant in model.file_sizes_gb:
        _check_quant(path, f"{key}.file_sizes_gb.{quant}", quant)
    if model.category is not None and model.category not in CATEGORIES:
        raise ConfigError(
            path, f"{key}.category", model.category, f"expected {', '.join(CATEGORIES)}"
        )
    if model.source is not None:
        _check_quant(path, f"{key}.source.quant", model.source.quant)
        _check_inside(path, f"{key}.source.path", model.source.path, "the package")
        if model.source.quant not in model.files:
            raise ConfigError(
                path, f"{key}.source.quant", model.source.quant, "must also be listed under files"
            )
    if model.reference is not None and model.reference not in model.files:
        raise ConfigError(
            path, f"{key}.reference", model.reference, "must be one of the model's files"
        )
    if model.derive is not None:
        _check_quant(path, f"{key}.derive.from", model.derive.base)
        if model.derive.base not in model.files:
            raise ConfigError(
                path, f"{key}.derive.from", model.derive.base, "must be listed under files"
            )
        for j, quant in enumerate(model.derive.quants):
            _check_quant(path, f"{key}.derive.quants[{j}]", quant)
            if quant not in model.files:
                raise ConfigError(
                    path, f"{key}.derive.quants[{j}]", quant, "add a filename for it under files"
                )


def _check_inside(path: Path, key: str, value: str, inside: str = "model_dir") -> None:
    """``size`` and file names are joined to ``model_dir`` (a package's file to its folder): a
    ``..`` or absolute path would make the store checksum, record and serve a file outside it
    (``/etc/hostname`` as a model)."""
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if not value or value.startswith(("/", "\\", "~")) or ".." in parts:
        raise ConfigError(
            path, key, value, f"a relative name inside {inside}, without '..', '~' or a leading '/'"
        )


def _load_variants(raw: Any, model: Model, path: Path, key: str) -> dict[str, Variant]:
    """``variants: {name: {quants: [...], options: {key: value | {mode: ..., value: ...}}}}``."""
    if not isinstance(raw, dict):
        raise ConfigError(path, key, raw, "expected a mapping of variant names to settings")
    variants: dict[str, Variant] = {}
    for name, body in raw.items():
        where = f"{key}.{name}"
        name = str(name)
        if not _ID_RE.match(name) or name in KNOWN_QUANTS:
            raise ConfigError(
                path,
                where,
                name,
                "a variant name is letters, digits, '.', '_' and single '-', not a quant",
            )
        if not isinstance(body, dict):
            raise ConfigError(path, where, body, "expected a mapping with options (and quants)")
        for k in body:
            if k not in ("options", "quants", "description"):
                raise ConfigError(
                    path,
                    f"{where}.{k}",
                    body[k],
                    "unknown key; allowed: description, options, quants",
                )
        quants = _convert(tuple[str, ...], body.get("quants", []), path, f"{where}.quants")
        for j, quant in enumerate(quants):
            if quant not in model.files:
                raise ConfigError(
                    path,
                    f"{where}.quants[{j}]",
                    quant,
                    f"not a quant of {model.id}: {', '.join(model.files)}",
                )
        raw_options = body.get("options")
        if not isinstance(raw_options, dict) or not raw_options:
            raise ConfigError(
                path, f"{where}.options", raw_options, "expected a mapping of server options"
            )
        options = {
            str(k): _variant_option(str(k), v, path, f"{where}.options.{k}")
            for k, v in raw_options.items()
        }
        description = _convert(str, body.get("description", ""), path, f"{where}.description")
        variants[name] = Variant(name, options, quants, description)
    return variants


def _variant_option(option: str, raw: Any, path: Path, key: str) -> VariantOption:
    """A scalar overrides; a mapping names its ``mode`` (override, inherit, inactive)."""
    if isinstance(raw, dict):
        unknown = set(raw) - {"mode", "value"}
        if unknown or raw.get("mode") not in VARIANT_MODES:
            raise ConfigError(
                path, key, raw, "expected a value or {mode: override|inherit|inactive, value: ...}"
            )
        mode, value = raw["mode"], raw.get("value")
    else:
        mode, value = "override", raw
    if mode != "override":
        return VariantOption(mode, value)
    if value is None:
        raise ConfigError(
            path, key, raw, "an override needs a value; to drop the option use {mode: inactive}"
        )
    try:
        return VariantOption(mode, check(option, value))
    except OptionError as exc:
        hint = (
            " (YAML reads on/off/yes/no as true/false: quote it)" if isinstance(value, bool) else ""
        )
        raise ConfigError(path, key, value, f"{exc}{hint}") from None


def find_config_file(
    explicit: str | None, ini_value: str | None, rootdir: Path, name: str
) -> Path | None:
    """The option wins, then the ini key, then ``<rootdir>/<name>``; None when nothing exists."""
    for candidate, origin in ((explicit, "option"), (ini_value, "ini")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_absolute():
                path = (Path.cwd() if origin == "option" else rootdir) / path
            if not path.is_file():
                raise ConfigError(path, "(file)", str(path), "file not found; check the path")
            return path
    default = rootdir / name
    return default if default.is_file() else None
