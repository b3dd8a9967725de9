"""Baselines and regressions: save a run's JSON report under a name, compare later runs with it.

``--llm-save-baseline NAME`` stores the final (merged, under xdist) report as
``<baseline dir>/NAME.json``; ``--llm-compare NAME|PATH`` compares the run with it per cell and
headline metric (:data:`METRICS`); ``--llm-compare-fail tokens_per_sec:10%`` (or an absolute
``ttft:0.05``) turns a regression beyond the limit into a failed session.

A change counts only when it is real: where both runs kept per-repetition samples, the 95 %
interval of the difference (Welch, :func:`pytest_llmbench.stats.welch_change`) must lie wholly
beyond the limit; a change whose interval holds zero reads "within noise".  Reports without
samples (older ones, single-shot metrics) are compared by their values, with a note.
``llmbench report compare BASE.json CURRENT.json`` does the same for two report files.

pytest-benchmark is not used: its storage and comparison hold per-test timing statistics of its
own ``benchmark`` fixture, which it disables under xdist, while these baselines are per-cell
metrics from the merged llmbench report that ``-n`` runs must produce as well.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmbench import stats
from pytest_llmbench.errors import USAGE_ERROR, LlmbenchError
from pytest_llmbench.judge import derive_results
from pytest_llmbench.metric_table import COMPARED, Metric
from pytest_llmbench.models import atomic_write_text
from pytest_llmbench.recommend import enrich_report, settings_of
from pytest_llmbench.report.merge import ReportError, load_report

DEFAULT_DIR = Path(".llmbench") / "baselines"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EXPR = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*"
)
_EPSILON = 1e-9  # a change exactly at the limit passes, whatever the float rounding


class BaselineError(LlmbenchError):
    """A bad baseline name, path or --llm-compare-fail expression, worded as one line."""

    exit_code = USAGE_ERROR


# the headline metrics (the metric table's ``compare`` names): the profiles' figures first, then
# the cell's load time and memory
METRICS: tuple[Metric, ...] = tuple(sorted(COMPARED.values(), key=lambda e: e.profile == "load"))
BY_NAME: dict[str, Metric] = {str(metric.compare): metric for metric in METRICS}


# ------------------------------------------------------------------ thresholds


@dataclass(frozen=True)
class Threshold:
    """``METRIC:N%`` (worse by more than N % of the baseline) or ``METRIC:N`` (by more than N)."""

    metric: Metric
    amount: float
    percent: bool

    @property
    def text(self) -> str:
        return f"{self.metric.compare}:{self.amount:g}{'%' if self.percent else ''}"

    def limit(self) -> str:
        """The limit as a signed change, e.g. ``-10 %`` for a speed, ``+0.05`` for TTFT."""
        sign = "-" if self.metric.higher_is_better else "+"
        return f"{sign}{self.amount:g}{' %' if self.percent else ''}"

    def exceeded(self, baseline: float, current: float, change: stats.Change | None = None) -> bool:
        """Worse than the limit; with samples, even the most favourable end of the change's
        interval must be (so noise alone never trips it)."""
        if not self._beyond(baseline, current - baseline):
            return False
        if change is None:
            return True
        favourable = change.high if self.metric.higher_is_better else change.low
        return self._beyond(change.baseline_mean, favourable)

    def _beyond(self, reference: float, difference: float) -> bool:
        worse = -difference if self.metric.higher_is_better else difference
        if self.percent:
            if reference == 0:
                return False  # no relative change from zero; use the absolute form
            return worse / abs(reference) * 100 > self.amount + _EPSILON
        return worse > self.amount + _EPSILON


def metric_names() -> str:
    return ", ".join(BY_NAME)


def parse_threshold(text: str, option: str = "--llm-compare-fail") -> Threshold:
    match = _EXPR.fullmatch(text)
    if match is None:
        raise BaselineError(
            f"{option} {text!r}: expected METRIC:N% or METRIC:N (e.g. "
            f"tokens_per_sec:10% or ttft:0.05); metrics: {metric_names()}"
        )
    name, amount, percent = match.groups()
    metric = BY_NAME.get(name)
    if metric is None:
        raise BaselineError(
            f"{option} {text!r}: unknown metric {name!r}; metrics: {metric_names()}"
        )
    value = float(amount)
    if not math.isfinite(value):
        raise BaselineError(f"{option} {text!r}: the limit must be a finite number")
    return Threshold(metric, value, bool(percent))


def parse_thresholds(
    texts: Sequence[str], option: str = "--llm-compare-fail"
) -> tuple[Threshold, ...]:
    return tuple(parse_threshold(text, option) for text in texts)


# ------------------------------------------------------------------ storage


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise BaselineError(
            f"baseline name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return name


def baseline_dir(option: str | None, ini: str | None, rootdir: Path, cwd: Path) -> Path:
    """--llm-baseline-dir (relative to the working directory), the ini key (relative to the
    rootdir), else ``<rootdir>/.llmbench/baselines``."""
    if option:
        return cwd / Path(option).expanduser()
    if ini:
        return rootdir / Path(ini).expanduser()
    return rootdir / DEFAULT_DIR


def is_path(reference: str) -> bool:
    return reference.endswith(".json") or "/" in reference or "\\" in reference


def saved_names(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []


def resolve(reference: str, directory: Path, cwd: Path) -> tuple[str, Path]:
    """``(display name, file)`` for a baseline name in ``directory`` or a path to a JSON report."""
    if is_path(reference):
        path = cwd / Path(reference).expanduser()
        if not path.is_file():
            raise BaselineError(f"--llm-compare {reference}: no such file")
        return reference, path
    path = directory / f"{validate_name(reference)}.json"
    if not path.is_file():
        saved = saved_names(directory)
        known = f"saved: {', '.join(saved)}" if saved else "none saved yet"
        raise BaselineError(
            f"--llm-compare {reference}: no baseline {path} ({known}; create one with "
            f"--llm-save-baseline {reference})"
        )
    return reference, path


def load(path: Path) -> dict[str, Any]:
    try:
        return load_report(path)
    except ReportError as exc:
        raise BaselineError(str(exc)) from None


def save(report: Mapping[str, Any], directory: Path, name: str) -> Path:
    """The enriched report, without its own comparison, as ``directory/NAME.json`` (atomic)."""
    path = directory / f"{validate_name(name)}.json"
    data = {k: v for k, v in enrich_report(report).items() if k != "comparison"}
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path


# ------------------------------------------------------------------ comparing


@dataclass(frozen=True)
class Row:
    cell_id: str
    metric: Metric
    baseline: float
    current: float
    exceeded: tuple[Threshold, ...] = ()
    interval: stats.Change | None = None  # None: a run without samples for this metric

    @property
    def change_percent(self) -> float | None:
        if self.baseline == 0:
            return None
        return (self.current - self.baseline) / abs(self.baseline) * 100

    @property
    def within_noise(self) -> bool:
        return self.interval is not None and self.interval.contains_zero

    def change(self) -> str:
        """ "-20.0 %, 95 % CI -23.1 to -16.9 %", "+1.2 %, within noise", or "-3.0 %" without
        samples: the change of the medians, with the interval of the change of the means."""
        change = self.change_percent
        if change is None:
            return "n/a"
        text = f"{change:+.1f} %"
        if self.interval is None:
            return text
        if self.within_noise:
            return f"{text}, within noise"
        low, high = (
            self.interval.percent(self.interval.low),
            self.interval.percent(self.interval.high),
        )
        if low is None or high is None:
            return text
        return f"{text}, 95 % CI {low:+.1f} to {high:+.1f} %"

    def messages(self) -> list[str]:
        values = f"{self.metric.show(self.baseline)} → {self.metric.show(self.current)}"
        return [
            f"{self.cell_id} {self.metric.label} {values} ({self.change()}, limit {t.limit()})"
            for t in self.exceeded
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell_id": self.cell_id,
            "metric": self.metric.compare,
            "label": self.metric.label,
            "higher_is_better": self.metric.higher_is_better,
            "baseline": self.baseline,
            "current": self.current,
            "change_percent": self.change_percent,
            "change_low": self.interval.low if self.interval else None,
            "change_high": self.interval.high if self.interval else None,
            "within_noise": self.within_noise,
            "samples": self.interval is not None,
            "regression": bool(self.exceeded),
            "exceeded": [t.text for t in self.exceeded],
        }


@dataclass(frozen=True)
class Comparison:
    name: str
    source: str
    baseline_run: dict[str, Any]
    thresholds: tuple[Threshold, ...]
    rows: tuple[Row, ...]
    only_in_baseline: tuple[str, ...] = ()
    only_in_current: tuple[str, ...] = ()
    unmatched_limits: tuple[str, ...] = field(default=())  # limits with nothing to compare

    @property
    def regressions(self) -> list[str]:
        return [message for row in self.rows for message in row.messages()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline": {"name": self.name, "source": self.source, **self.baseline_run},
            "thresholds": [t.text for t in self.thresholds],
            "rows": [row.as_dict() for row in self.rows],
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_current": list(self.only_in_current),
            "unmatched_limits": list(self.unmatched_limits),
            "regressions": self.regressions,
        }

    def lines(self) -> list[str]:
        """The terminal section: one row per cell and metric, then what could not be compared."""
        run = self.baseline_run
        where = f"{self.source} " if self.source and self.source != self.name else ""
        lines = [
            f"baseline {self.name}: {where}"
            f"(run {run.get('timestamp') or '?'} on {run.get('hostname') or '?'})"
        ]
        if self.rows:
            table = [("cell", "metric", "baseline", "current", "change", "")]
            for row in self.rows:
                mark = f"REGRESSION (limit {', '.join(t.limit() for t in row.exceeded)})"
                table.append(
                    (
                        row.cell_id,
                        row.metric.label,
                        row.metric.show(row.baseline),
                        row.metric.show(row.current),
                        row.change(),
                        mark if row.exceeded else "",
                    )
                )
            widths = [max(len(r[i]) for r in table) for i in range(5)]
            for r in table:
                cells = [
                    v.ljust(w) if i < 2 else v.rjust(w)
                    for i, (v, w) in enumerate(zip(r, widths, strict=False))
                ]
                lines.append(("  ".join(cells) + "  " + r[5]).rstrip())
        else:
            lines.append("no cell has a headline metric measured in both runs")
        if self.only_in_baseline:
            lines.append(
                f"only in the baseline (not measured now): {', '.join(self.only_in_baseline)}"
            )
        if self.only_in_current:
            lines.append(
                f"only in this run (not in the baseline): {', '.join(self.only_in_current)}"
            )
        for text in self.unmatched_limits:
            lines.append(f"limit {text}: no cell has this metric in both runs")
        if any(row.interval is None for row in self.rows):
            lines.append(
                "changes without an interval were compared by value alone: one of the runs has "
                "no per-repetition samples for them (an older report, or a single-shot metric)"
            )
        return lines


def _results(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each cell's record by id (the first, in a merged report), with its derived metrics."""
    results = [r for r in report.get("results") or [] if isinstance(r, Mapping)]
    if any("derived" not in r for r in results):
        results = derive_results(results, settings_of(report))
    by_id: dict[str, dict[str, Any]] = {}
    for result in results:
        by_id.setdefault(str(result.get("cell_id")), dict(result))
    return by_id


def _measured(result: Mapping[str, Any]) -> bool:
    return any(metric.value(result) is not None for metric in METRICS)


def compare(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    thresholds: Sequence[Threshold] = (),
    name: str = "baseline",
    source: str = "",
) -> Comparison:
    """The current report against the baseline, per cell (matched by id) and headline metric."""
    base, now = _results(baseline), _results(current)
    rows: list[Row] = []
    for cell_id, result in now.items():
        before = base.get(cell_id)
        if before is None:
            continue
        for metric in METRICS:
            old, new = metric.value(before), metric.value(result)
            if old is None or new is None:
                continue
            change = stats.welch_change(metric.samples(before), metric.samples(result))
            exceeded = tuple(
                t for t in thresholds if t.metric is metric and t.exceeded(old, new, change)
            )
            rows.append(Row(cell_id, metric, old, new, exceeded, change))
    compared = {row.metric.compare for row in rows}
    metadata = baseline.get("metadata") or {}
    return Comparison(
        name=name,
        source=source,
        baseline_run={
            "timestamp": metadata.get("timestamp"),
            "hostname": metadata.get("hostname"),
        },
        thresholds=tuple(thresholds),
        rows=tuple(rows),
        only_in_baseline=tuple(
            c for c, r in base.items() if _measured(r) and not _measured(now.get(c) or {})
        ),
        only_in_current=tuple(
            c for c, r in now.items() if _measured(r) and not _measured(base.get(c) or {})
        ),
        unmatched_limits=tuple(t.text for t in thresholds if t.metric.compare not in compared),
    )


# ------------------------------------------------------------------ a pytest run


@dataclass(frozen=True)
class Plan:
    """What a run does with baselines, from --llm-save-baseline / --llm-compare(-fail)."""

    directory: Path
    save_name: str | None = None
    compare_name: str | None = None
    compare_path: Path | None = None
    baseline: dict[str, Any] | None = None  # loaded on the controller only
    thresholds: tuple[Threshold, ...] = ()

    @classmethod
    def from_options(
        cls,
        directory: Path,
        save_name: str | None,
        compare: str | None,
        fail: Sequence[str],
        cwd: Path,
        load_baseline: bool = True,
    ) -> Plan | None:
        thresholds = parse_thresholds(fail)
        if thresholds and not compare:
            raise BaselineError(
                "--llm-compare-fail needs a baseline to compare with: add --llm-compare NAME"
            )
        if save_name is not None:
            validate_name(save_name)
        if not save_name and not compare:
            return None
        name = path = report = None
        if compare and load_baseline:
            name, path = resolve(compare, directory, cwd)
            report = load(path)
        return cls(directory, save_name, name or compare, path, report, thresholds)

    def compare(self, report: Mapping[str, Any]) -> Comparison | None:
        if self.baseline is None:
            return None
        return compare(
            self.baseline,
            report,
            self.thresholds,
            self.compare_name or "baseline",
            str(self.compare_path or ""),
        )

    def finish(
        self, report: Mapping[str, Any], comparison: Comparison | None, interrupted: bool
    ) -> Outcome:
        """Save the finished run's report as the baseline, unless the run was cut short."""
        if not self.save_name:
            return Outcome(comparison)
        if interrupted:
            note = f"baseline {self.save_name} not saved: the run was interrupted"
            return Outcome(comparison, note=note)
        try:
            return Outcome(comparison, saved=save(report, self.directory, self.save_name))
        except OSError as exc:
            note = f"baseline {self.save_name} not saved in {self.directory}: {exc}"
            return Outcome(comparison, note=note)


@dataclass(frozen=True)
class Outcome:
    """What the end of a run did: its comparison, the baseline it saved, or why it did not."""

    comparison: Comparison | None = None
    saved: Path | None = None
    note: str | None = None
