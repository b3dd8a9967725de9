"""The metric table is the one place a metric's threshold, direction and words are said."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pytest_llmbench import config, judge
from pytest_llmbench.metric_table import METRICS, PROFILES, metric
from pytest_llmbench.record import CellRecord, Outcome, ProfileRecord, Report, ReportError

ROOT = Path(__file__).resolve().parent.parent
# threshold fields that set how a profile measures, not a bound on what it measured
PARAMETERS = {
    ("interactive", "max_stall_ms"),  # what counts as a stall; the bound is max_stalls
}


def limit_fields() -> set[tuple[str, str]]:
    """Every (section, field) of the thresholds and limits that bounds a measured number."""
    thresholds = config.Thresholds()
    found = {
        (section.name, f.name)
        for section in dataclasses.fields(thresholds)
        for f in dataclasses.fields(getattr(thresholds, section.name))
        if f.name.startswith(("min_", "max_", "abort_"))
    }
    found |= {
        ("limits", f.name) for f in dataclasses.fields(config.Limits) if f.name != "allow_swap"
    }
    return found - PARAMETERS


def table_fields() -> set[tuple[str, str]]:
    paths = [e.limit.split(".") for e in METRICS if isinstance(e.limit, str)]
    return {(p[-2], p[-1]) for p in paths}


def test_every_limit_in_the_settings_bounds_a_metric_of_the_table_and_no_other() -> None:
    assert table_fields() == limit_fields()


def test_every_table_limit_resolves_in_the_default_settings_and_in_their_json_form() -> None:
    settings = config.Settings()
    plain = dataclasses.asdict(settings)
    for entry in METRICS:
        if isinstance(entry.limit, str) and entry.limit != "limits.max_memory_gb":
            assert entry.threshold(settings) is not None, entry.id
            assert entry.threshold(plain) == entry.threshold(settings), entry.id


def test_names_shown_anywhere_are_unique_and_every_profile_is_listed() -> None:
    for attribute in ("csv", "html", "compare", "id"):
        names = [getattr(e, attribute) for e in METRICS if getattr(e, attribute)]
        assert len(names) == len(set(names)), attribute
    assert set(PROFILES) == set(config.PROFILES)


def test_bench_modules_name_no_threshold_of_the_table() -> None:
    """The bench assertions take their limits from the table (expect.meets), never by name."""
    names = {name for _, name in table_fields()}
    for module in (ROOT / "bench").glob("test_*.py"):
        named = set(re.findall(r"\.(m(?:in|ax)_[a-z_]+)", module.read_text())) & names
        assert not named, f"{module.name} names {sorted(named)}"


def test_a_check_follows_the_entry_direction_and_a_zero_limit_is_off_unless_it_counts() -> None:
    cell = {
        "profiles": {"interactive": {"metrics": {"tokens_per_second": 5.0, "stalls_per_run": 1}}}
    }
    settings = {"thresholds": {"interactive": {"min_tokens_per_sec": 10.0, "max_stalls": 0}}}
    checks = {c.metric: c for c in judge.threshold_checks(cell, settings)}
    assert not checks["tokens_per_second"].met and checks["tokens_per_second"].critical
    assert not checks["stalls_per_run"].met and not checks["stalls_per_run"].rated
    off = {"thresholds": {"interactive": {"min_tokens_per_sec": 0}}}
    assert judge.threshold_checks(cell, off) == []
    assert judge.rating_of(list(checks.values())) == "failed"


def test_swap_is_judged_unless_allowed() -> None:
    swap = metric("stress.swap_growth_mb")
    assert swap.threshold({"limits": {"allow_swap": False}}) == 0.0
    assert swap.threshold({"limits": {"allow_swap": True}}) is None


def test_the_record_round_trips_through_its_json() -> None:
    record = CellRecord(
        "m-Q4_K_M",
        model="m",
        quant="Q4_K_M",
        server={"threads": 2},
        profiles={"interactive": ProfileRecord({"tokens_per_second": 12.5})},
        tests={"t": Outcome("interactive", "passed")},
        extra={"hostname": "box"},
    )
    finished = record.finished()
    assert finished.status == "passed" and finished.profiles["interactive"].status == "passed"
    assert CellRecord.from_json(finished.to_json()) == finished
    report = Report({"hostname": "box"}, [finished], extra={"key_findings": ["x"]})
    assert Report.from_json(report.to_json()) == report


@pytest.mark.parametrize(("version", "words"), [(4, "newer than"), ("2", "not one")])
def test_a_report_of_another_version_is_refused_in_one_line(version: object, words: str) -> None:
    with pytest.raises(ReportError, match=f"r.json: schema_version .* is {words}"):
        Report.from_json({"schema_version": version, "results": []}, "r.json")
