"""``llmbench report``: merge JSON reports, render them as CSV and HTML, compare one with a
baseline, export one in pytest-benchmark's format."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pytest_llmbench import baseline
from pytest_llmbench.errors import UsageError
from pytest_llmbench.models import atomic_write_text
from pytest_llmbench.recommend import enrich_report
from pytest_llmbench.report.benchmark_json import write_benchmark_json
from pytest_llmbench.report.csv_report import write_csv
from pytest_llmbench.report.html_report import write_html
from pytest_llmbench.report.merge import load_report, merge_reports


def _report_merge(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.resolve() in {p.resolve() for p in args.inputs}:
        raise UsageError(
            f"{output}: the output would overwrite one of the inputs; choose another -o"
        )
    merged = merge_reports([(str(path), load_report(path)) for path in args.inputs])
    enriched = enrich_report(merged)
    atomic_write_text(output, json.dumps(enriched, indent=2, default=str) + "\n")
    hosts = sorted({str(r.get("hostname")) for r in enriched["results"]})
    print(
        f"merged {len(enriched['results'])} results from {len(args.inputs)} reports "
        f"({len(hosts)} host{'s' if len(hosts) != 1 else ''}: {', '.join(hosts)}) into {output}"
    )
    return 0


def _report_render(args: argparse.Namespace) -> int:
    source: Path = args.input
    report = enrich_report(load_report(source))
    directory: Path = args.output_dir or source.parent
    formats = args.formats or ["csv", "html"]
    written = []
    if "json" in formats:
        target = directory / f"{source.stem}.json"
        if target.resolve() == source.resolve():
            raise UsageError(f"{target}: rendering JSON would overwrite the input; pass -o DIR")
        atomic_write_text(target, json.dumps(report, indent=2, default=str) + "\n")
        written.append(target)
    if "csv" in formats:
        written.append(write_csv(report, directory / f"{source.stem}.csv"))
    if "html" in formats:
        written.append(write_html(report, directory / f"{source.stem}.html", source.parent))
    for path in written:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def _report_compare(args: argparse.Namespace) -> int:
    thresholds = baseline.parse_thresholds(args.fail, "--fail")
    comparison = baseline.compare(
        load_report(args.base), load_report(args.current), thresholds, str(args.base)
    )
    print(f"{args.current} compared with {args.base}")
    for line in comparison.lines():
        print(line)
    for message in comparison.regressions:
        print(f"regression: {message}")
    return 1 if comparison.regressions else 0


def _report_export(args: argparse.Namespace) -> int:
    source: Path = args.input
    target: Path = args.output or source.with_name(f"{source.stem}-benchmark.json")
    if target.resolve() == source.resolve():
        raise UsageError(f"{target}: the export would overwrite the input; choose another -o")
    write_benchmark_json(load_report(source), target)
    count = len(json.loads(target.read_text(encoding="utf-8"))["benchmarks"])
    print(f"wrote {target} ({count} benchmarks, pytest-benchmark format)")
    return 0


def add_report_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = commands.add_parser(
        "report",
        help="merge JSON reports and render them as CSV and HTML",
        description=(
            "Work with llmbench JSON reports (llmbench-report.json in the output directory)."
        ),
    )
    sub = report.add_subparsers(dest="report_command", required=True, title="subcommands")
    merge = sub.add_parser(
        "merge",
        help="combine reports from several machines or CI jobs into one JSON report",
        description="Combine reports; every result keeps the hostname and hardware it ran on.",
    )
    merge.add_argument("inputs", nargs="+", type=Path, metavar="REPORT.json")
    merge.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.json")
    merge.set_defaults(handler=_report_merge)
    render = sub.add_parser(
        "render",
        help="write the CSV and the standalone HTML report for a JSON report",
        description="Recompute derived metrics and recommendations, then write the files.",
    )
    render.add_argument("input", type=Path, metavar="REPORT.json")
    render.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where to write (default: beside the input)",
    )
    render.add_argument(
        "-f",
        "--format",
        dest="formats",
        action="append",
        choices=("csv", "html", "json"),
        help="a format to write (repeatable; default: csv and html)",
    )
    render.set_defaults(handler=_report_render)
    compare = sub.add_parser(
        "compare",
        help="compare a report with a baseline report per cell and headline metric",
        description=(
            "Per cell and headline metric: baseline value, current value and change. "
            "Exit status 1 when a --fail limit is exceeded."
        ),
    )
    compare.add_argument("base", type=Path, metavar="BASE.json", help="the baseline report")
    compare.add_argument("current", type=Path, metavar="CURRENT.json", help="the report to judge")
    compare.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="EXPR",
        help="METRIC:N%% (worse by more than N %%) or METRIC:N (by more than N), repeatable; "
        f"metrics: {baseline.metric_names()}",
    )
    compare.set_defaults(handler=_report_compare)
    export = sub.add_parser(
        "export",
        help="write a report in another tool's format (pytest-benchmark's JSON)",
        description=(
            "pytest-benchmark: one benchmark per cell and timed metric, stats over the "
            "per-run samples; read by `pytest-benchmark compare` and github-action-benchmark."
        ),
    )
    export.add_argument("input", type=Path, metavar="REPORT.json")
    export.add_argument(
        "--format", required=True, choices=("pytest-benchmark",), help="the output format"
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT.json",
        help="where to write (default: REPORT-benchmark.json beside the input)",
    )
    export.set_defaults(handler=_report_export)
