"""Quality: a fixed question set, answered deterministically and scored automatically.

Questions come from ``bench/data/quality_tests.json`` or the file ``thresholds.quality.questions``
names (JSON: a list or ``{"questions": [...]}``; JSONL: one question per line).  Each is asked
through the chat endpoint, so the server applies the model's own template, with temperature 0
and a fixed seed.  Scorers:

* ``number`` – the last number in the answer equals ``expected`` (± ``tolerance``)
* ``choice`` – the chosen letter ("B", "(B) …", "Answer: B") equals ``expected``
* ``regex``  – ``pattern`` is found (case-insensitive unless ``case_sensitive``)
* ``exact``  – the trimmed answer equals ``expected``
* ``json``   – the answer (code fence allowed) parses and satisfies ``schema`` (a small subset
  of JSON Schema: type, required, properties, additionalProperties, items, enum, min/maxItems)
* ``lines``  – exactly ``count`` non-empty lines, each matching ``pattern`` when given

Scores are percentages per category; each quant is also compared with the highest-precision
quant of the same model measured in the run ("Q2_K keeps 71 % of Q8_0's math score").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmbench import metrics as m
from pytest_llmbench.client import LlamaClient, RequestFailed
from pytest_llmbench.config import ConfigError, Settings
from pytest_llmbench.monitor import ResourceMonitor
from pytest_llmbench.termination import BITS_PER_WEIGHT

if TYPE_CHECKING:
    from pytest_llmbench.matrix import Cell
    from pytest_llmbench.session import BenchSession

CATEGORIES = ("math", "comprehension", "reasoning", "format")
SEED = 42
DEFAULT_MAX_TOKENS = 128
QUESTIONS_FILE = "quality_tests.json"
SCORER_KEYS = {
    "number": ("expected",),
    "choice": ("expected",),
    "regex": ("pattern",),
    "exact": ("expected",),
    "json": ("schema",),
    "lines": ("count",),
}


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    prompt: str
    scorer: dict[str, Any]
    max_tokens: int = DEFAULT_MAX_TOKENS


# ------------------------------------------------------------------ loading


def questions_path(settings: Settings, data_dir: Path) -> Path:
    given = settings.thresholds.quality.questions
    return settings.resolve_path(given) if given else data_dir / QUESTIONS_FILE


def load_questions(path: Path) -> list[Question]:
    """Questions from JSON or JSONL; a mistake raises ConfigError naming file, key and value."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "(file)", str(path), f"cannot be read: {exc.strerror}") from None
    try:
        if path.suffix == ".jsonl":
            raw: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            path, f"line {exc.lineno}", "(JSON)", f"invalid JSON: {exc.msg}"
        ) from None
    if isinstance(raw, Mapping):
        raw = raw.get("questions")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(path, "questions", raw, "expected a non-empty list of questions")
    questions, seen = [], set()
    for i, item in enumerate(raw):
        question = _question(item, path, f"questions[{i}]")
        if question.id in seen:
            raise ConfigError(path, f"questions[{i}].id", question.id, "duplicate id")
        seen.add(question.id)
        questions.append(question)
    return questions


def _question(item: Any, path: Path, key: str) -> Question:
    if not isinstance(item, Mapping):
        raise ConfigError(path, key, item, "expected a mapping with id, category, prompt, scorer")
    for name in ("id", "category", "prompt"):
        if not isinstance(item.get(name), str) or not item[name].strip():
            raise ConfigError(path, f"{key}.{name}", item.get(name), "expected a non-empty string")
    scorer = item.get("scorer")
    kind = scorer.get("type") if isinstance(scorer, Mapping) else None
    if kind not in SCORER_KEYS:
        raise ConfigError(
            path, f"{key}.scorer.type", kind, f"expected one of {', '.join(SCORER_KEYS)}"
        )
    assert isinstance(scorer, Mapping)
    for name in SCORER_KEYS[kind]:
        if name not in scorer:
            raise ConfigError(path, f"{key}.scorer.{name}", None, f"required by a {kind} scorer")
    if kind == "regex":
        try:
            re.compile(scorer["pattern"])
        except (re.error, TypeError) as exc:
            raise ConfigError(
                path, f"{key}.scorer.pattern", scorer["pattern"], f"invalid regex: {exc}"
            ) from None
    max_tokens = item.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(path, f"{key}.max_tokens", max_tokens, "expected a whole number ≥ 1")
    return Question(item["id"], item["category"], item["prompt"], dict(scorer), max_tokens)


def questions_for(settings: Settings, data_dir: Path) -> list[Question]:
    """The run's questions, or a one-line failure naming the user's mistake."""
    try:
        return load_questions(questions_path(settings, data_dir))
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


# ------------------------------------------------------------------ scorers

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def choice_letter(text: str, choices: str = "ABCD") -> str | None:
    """The letter an answer chose: "B", "(B) Ben", "B.", "Answer: B", "The answer is B"."""
    letters = re.escape(choices)
    stripped = text.strip()
    patterns = (
        rf"^[\W_]*([{letters}])[\W_]*$",  # the letter alone
        rf"^[\s*_]*[\(\[]?([{letters}])[\)\]\.:](?:\s|$)",  # "B) Ben", "(B) Ben", "B. Ben"
        rf"(?i:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*[\(\[]?([{letters}])\b",
    )
    for pattern in patterns:
        found = re.search(pattern, stripped, re.MULTILINE)
        if found:
            return found.group(1)
    return None


def _normalise(text: str) -> str:
    return " ".join(text.split()).strip("`\"'*. ")


def extract_json(text: str) -> Any:
    """The JSON value in an answer (inside a code fence or bare); raises ValueError if none."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidate = (fenced.group(1) if fenced else text).strip()
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    starts = [i for i in (candidate.find("{"), candidate.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = candidate.rfind("}" if candidate[start] == "{" else "]")
        if end > start:
            try:
                return json.loads(candidate[start : end + 1])
            except json.JSONDecodeError:
                pass
    raise ValueError("no JSON value found")


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def schema_problems(schema: Mapping[str, Any], value: Any, where: str = "$") -> list[str]:
    """What ``value`` violates in ``schema`` (the JSON Schema subset the question files use)."""
    problems: list[str] = []
    kind = schema.get("type")
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind in _TYPES:
        ok = isinstance(value, _TYPES[kind]) and not (kind != "boolean" and isinstance(value, bool))
    elif kind is not None:
        return [f"{where}: the schema names an unknown type {kind!r}"]
    else:
        ok = True
    if not ok:
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [
            f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value
        ]
        if schema.get("additionalProperties") is False:
            problems += [f"{where}: unexpected {k!r}" for k in value if k not in props]
        for key, sub in props.items():
            if key in value:
                problems += schema_problems(sub, value[key], f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: {len(value)} items, expected at least {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: {len(value)} items, expected at most {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                problems += schema_problems(schema["items"], item, f"{where}[{i}]")
    return problems


def score(scorer: Mapping[str, Any], answer: str) -> bool:
    """Whether ``answer`` passes ``scorer`` (an empty or unparseable answer simply fails)."""
    kind = scorer["type"]
    if kind == "number":
        found = last_number(answer)
        tolerance = float(scorer.get("tolerance", 0.0))
        return found is not None and math.isclose(
            found, float(scorer["expected"]), abs_tol=tolerance
        )
    if kind == "choice":
        return choice_letter(answer, scorer.get("choices", "ABCD")) == scorer["expected"]
    if kind == "regex":
        flags = 0 if scorer.get("case_sensitive") else re.IGNORECASE
        return re.search(scorer["pattern"], answer, flags | re.MULTILINE) is not None
    if kind == "exact":
        got, want = _normalise(answer), _normalise(str(scorer["expected"]))
        return got == want if scorer.get("case_sensitive") else got.casefold() == want.casefold()
    if kind == "json":
        try:
            return not schema_problems(scorer["schema"], extract_json(answer))
        except ValueError:
            return False
    if kind == "lines":
        lines = [ln.strip() for ln in answer.strip().splitlines() if ln.strip()]
        pattern = scorer.get("pattern")
        return len(lines) == scorer["count"] and all(
            pattern is None or re.search(pattern, ln) for ln in lines
        )
    raise ValueError(f"unknown scorer type {kind!r}")


# ------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class Answer:
    question: Question
    text: str
    passed: bool
    error: str | None = None


def percent_by_category(answers: Sequence[Answer]) -> dict[str, float]:
    totals: dict[str, list[bool]] = {}
    for a in answers:
        totals.setdefault(a.question.category, []).append(a.passed)
    return {cat: 100.0 * sum(ok) / len(ok) for cat, ok in totals.items()}


@dataclass(frozen=True)
class QualityMeasurement:
    answers: tuple[Answer, ...]
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def scores(self) -> dict[str, float]:
        return percent_by_category(self.answers)

    @property
    def overall(self) -> float | None:
        if not self.answers:
            return None
        return 100.0 * sum(a.passed for a in self.answers) / len(self.answers)

    @property
    def errors(self) -> list[str]:
        return [f"{a.question.id}: {a.error}" for a in self.answers if a.error]

    def missed(self, category: str) -> list[str]:
        return [
            a.question.id for a in self.answers if a.question.category == category and not a.passed
        ]

    def metrics(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "overall": self.overall,
            "questions": len(self.answers),
            "passed": sum(a.passed for a in self.answers),
            "answers": [
                {
                    "id": a.question.id,
                    "category": a.question.category,
                    "passed": a.passed,
                    "answer": a.text[:300],
                    "error": a.error,
                }
                for a in self.answers
            ],
            "errors": self.errors,
            "seed": SEED,
            "peak_rss_mb": self.resources.get("peak_rss_mb"),
            "resources": self.resources,
        }


def measure(
    client: LlamaClient, questions: Sequence[Question], pid: int | None = None
) -> QualityMeasurement:
    """Ask every question (temperature 0, fixed seed); a failed request scores as wrong and is
    recorded, so one bad answer never hides the others."""
    answers = []
    with ResourceMonitor(pid, interval=1.0) as monitor:
        for q in questions:
            messages = [{"role": "user", "content": q.prompt}]
            try:
                result = client.chat(messages, q.max_tokens, temperature=0.0, seed=SEED)
            except RequestFailed as exc:
                answers.append(Answer(q, "", False, str(exc)))
                continue
            answers.append(Answer(q, result.text, score(q.scorer, result.text)))
    return QualityMeasurement(tuple(answers), monitor.summary())


# ------------------------------------------------------------------ across quantizations


def precision(label: str) -> float:
    """Bits per weight of a label's quant ("Q8_0", or "Q4_K_M/fa-on" for a config variant)."""
    return BITS_PER_WEIGHT.get(label.split("/")[0], 0.0)


def relative_scores(
    by_label: Mapping[str, Mapping[str, float]],
) -> tuple[str | None, dict[str, dict[str, float]]]:
    """Each configuration's scores as a percentage of the highest-precision quant's (the
    reference; a default server before a variant); a category the reference scored 0 in has
    no ratio."""
    if not by_label:
        return None, {}
    reference = max(by_label, key=lambda q: (precision(q), "/" not in q, q))
    base = by_label[reference]
    out = {
        label: {cat: 100.0 * value / base[cat] for cat, value in scores.items() if base.get(cat)}
        for label, scores in by_label.items()
    }
    return reference, out


def degradation_lines(reference: str, relative: Mapping[str, Mapping[str, float]]) -> list[str]:
    return [
        f"{label} keeps {pct:.0f} % of {reference}'s {cat} score"
        for label, scores in relative.items()
        if label != reference
        for cat, pct in scores.items()
    ]


def label(cell: Cell) -> str:
    variant = getattr(cell, "variant", None)
    return f"{cell.quant}/{variant}" if variant else cell.quant


def record_relative(session: BenchSession, model_id: str) -> None:
    """Compare every measured quant of ``model_id`` with its highest-precision quant so far;
    re-run after each cell, so the last cell of the model leaves the final comparison."""
    cells = {c.id: c for c in session.cells if c.model.id == model_id}
    by_label = {}
    for record in session.store.cells():
        cell = cells.get(record["cell_id"])
        measured = m.profile_metrics(record, "quality")
        scores = m.quality_scores(measured)
        overall = m.quality_overall(measured)
        if cell is not None and scores and overall is not None:
            by_label[label(cell)] = {**scores, "overall": overall}
    reference, relative = relative_scores(by_label)
    if reference is None:
        return
    for cell in cells.values():
        mine = relative.get(label(cell))
        if mine is not None:
            session.store.record(
                cell,
                "quality",
                {
                    "reference_quant": reference,
                    "relative_to_reference": mine,
                    "degradation": degradation_lines(reference, {label(cell): mine}),
                },
            )
