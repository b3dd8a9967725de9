"""A cell's record and the report, typed, with one JSON load and one JSON dump each.

The record is what a run learns about one cell: the file and GGUF facts, the server it ran,
the compatibility entry, each profile's metrics (timed ones with their per-run samples under
``metrics.measurements``), the outcome of every test and, once the run is over, the status the
outcomes add up to.  Profile metrics stay a JSON mapping per profile: their shape is the
workload's, and the metric table (:mod:`pytest_llmbench.metric_table`) says how to read them.

A report holds the run's metadata and one record per cell; enriched, it also holds each cell's
``derived`` judgement, the recommendations and key findings.  Reports of schema version 1 (no
samples) are read and upgraded; other versions are refused in one line naming the version.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from pytest_llmbench.errors import USAGE_ERROR, LlmbenchError

# 3: profiles store no rating (the metric table judges, into each cell's ``derived``); the
#    record is the typed CellRecord;
# 2: timed metrics carry their per-run samples and 95 % intervals (metrics.measurements);
# 1: no samples.  All three are read; report.schema.json describes the shape.
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
FACT_SECTIONS = ("file", "gguf", "model_info", "server", "compat")


class ReportError(LlmbenchError):
    """A report file that cannot be used, worded as one line naming the file."""

    exit_code = USAGE_ERROR


def check_version(version: Any, source: str) -> None:
    """Refuse, in one line naming ``source``, a report of a schema version this code cannot read."""
    if version in READABLE_VERSIONS and not isinstance(version, bool):
        return
    newer = isinstance(version, int) and version > SCHEMA_VERSION
    raise ReportError(
        f"{source}: schema_version {version!r} is "
        + ("newer than this llmbench understands" if newer else "not one this llmbench reads")
        + f" (it reads {', '.join(map(str, READABLE_VERSIONS))})"
        + ("; upgrade pytest-llmbench" if newer else "")
    )


@dataclass
class Outcome:
    profile: str
    outcome: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "outcome": self.outcome, "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> Outcome:
        data = data if isinstance(data, dict) else {}
        return cls(
            str(data.get("profile", "")),
            str(data.get("outcome", "")),
            str(data.get("message") or ""),
        )


@dataclass
class ProfileRecord:
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # set when the run is over (from the tests' outcomes)
    rating: str | None = None  # only in reports written before the metric table judged

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metrics": self.metrics}
        if self.status is not None:
            out["status"] = self.status
        if self.rating is not None:
            out["rating"] = self.rating
        return out

    @classmethod
    def from_json(cls, data: Any) -> ProfileRecord:
        data = data if isinstance(data, dict) else {}
        metrics = data.get("metrics")
        return cls(
            copy.deepcopy(metrics) if isinstance(metrics, dict) else {},
            data.get("status"),
            data.get("rating"),
        )


@dataclass
class CellRecord:
    cell_id: str
    model: str | None = None
    model_name: str | None = None
    size: str | None = None
    params_b: float | None = None
    quant: str | None = None
    variant: str | None = None
    file: dict[str, Any] = field(default_factory=dict)
    gguf: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)  # GGUF snapshot, card, hints
    server: dict[str, Any] = field(default_factory=dict)
    compat: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, ProfileRecord] = field(default_factory=dict)
    tests: dict[str, Outcome] = field(default_factory=dict)
    status: str | None = None  # set when the run is over
    skip_reason: str | None = None
    # what a report adds around the run's own facts (hostname, run, hardware, derived, …),
    # kept as it came so a merged or enriched report round-trips unchanged
    extra: dict[str, Any] = field(default_factory=dict)

    def profile(self, name: str) -> ProfileRecord:
        return self.profiles.setdefault(name, ProfileRecord())

    def finished(self) -> CellRecord:
        """A copy with the statuses the tests' outcomes add up to, per profile and overall."""
        out = copy.deepcopy(self)
        for test in out.tests.values():
            out.profile(test.profile)
        for name, entry in out.profiles.items():
            entry.status = aggregate_status(
                [t.outcome for t in out.tests.values() if t.profile == name]
            )
        out.status = aggregate_status([t.outcome for t in out.tests.values()])
        skipped = [t.message for t in out.tests.values() if t.outcome == "skipped"]
        out.skip_reason = skipped[0] if out.status == "skipped" and skipped else None
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cell_id": self.cell_id,
            "model": self.model,
            "model_name": self.model_name,
            "size": self.size,
            "params_b": self.params_b,
            "quant": self.quant,
            "variant": self.variant,
            **{section: copy.deepcopy(getattr(self, section)) for section in FACT_SECTIONS},
            "profiles": {name: p.to_json() for name, p in self.profiles.items()},
            "tests": {name: t.to_json() for name, t in self.tests.items()},
        }
        if self.status is not None:
            out["status"] = self.status
            out["skip_reason"] = self.skip_reason
        return {**out, **copy.deepcopy(self.extra)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellRecord:
        known = {f.name for f in fields(cls)} - {"extra"}
        profiles = data.get("profiles")
        tests = data.get("tests")
        sections = {s: data.get(s) for s in FACT_SECTIONS}
        return cls(
            cell_id=str(data.get("cell_id", "")),
            model=data.get("model"),
            model_name=data.get("model_name"),
            size=data.get("size"),
            params_b=data.get("params_b"),
            quant=data.get("quant"),
            variant=data.get("variant"),
            **{k: copy.deepcopy(v) if isinstance(v, dict) else {} for k, v in sections.items()},
            profiles={
                str(k): ProfileRecord.from_json(v)
                for k, v in (profiles.items() if isinstance(profiles, dict) else ())
            },
            tests={
                str(k): Outcome.from_json(v)
                for k, v in (tests.items() if isinstance(tests, dict) else ())
            },
            status=data.get("status"),
            skip_reason=data.get("skip_reason"),
            extra={k: copy.deepcopy(v) for k, v in data.items() if k not in known},
        )


@dataclass
class Report:
    """The JSON report: metadata and one record per cell (plus, enriched, what was derived)."""

    metadata: dict[str, Any]
    results: list[CellRecord]
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # recommendations, findings, comparison

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "metadata": copy.deepcopy(self.metadata),
            "results": [r.to_json() for r in self.results],
            **copy.deepcopy(self.extra),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "report") -> Report:
        """A report of a readable schema version (none given: version 1).  An older version is
        upgraded: its records read as they are (stored profile ratings are kept), and what older
        code derived from them is dropped to be judged anew.  Raises ReportError otherwise."""
        version = data.get("schema_version", 1)
        check_version(version, source)
        found = data.get("results")
        results = [
            CellRecord.from_json(r) for r in (found if isinstance(found, list) else [])
            if isinstance(r, dict)
        ]  # fmt: skip
        judged = ("recommendations", "key_findings")
        if version != SCHEMA_VERSION:  # judged by older code: this code judges it anew
            for record in results:
                record.extra.pop("derived", None)
        metadata = data.get("metadata")
        return cls(
            metadata=copy.deepcopy(metadata) if isinstance(metadata, dict) else {},
            results=results,
            schema_version=SCHEMA_VERSION,
            extra={
                k: copy.deepcopy(v)
                for k, v in data.items()
                if k not in ("schema_version", "metadata", "results")
                and (version == SCHEMA_VERSION or k not in judged)
            },
        )


def aggregate_status(outcomes: list[str]) -> str:
    """The termination decision tree's statuses from test outcomes.

    error if anything errored; skipped if nothing ran; passed if all that ran passed; failed if
    all that ran failed; partial when some passed and some failed.
    """
    if not outcomes:
        return "not run"
    if "error" in outcomes:
        return "error"
    ran = [o for o in outcomes if o != "skipped"]
    if not ran:
        return "skipped"
    if all(o == "passed" for o in ran):
        return "passed"
    if all(o == "failed" for o in ran):
        return "failed"
    return "partial"
