"""CSV, standalone HTML, merging, the ``llmbench report`` command and the pytest-html columns.

All but the last test work on synthetic JSON reports; the last runs the real bench modules
against the embedded model with ``--html`` under xdist.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sys
from pathlib import Path

import pytest

from pytest_llmbench.cli import main
from pytest_llmbench.config import Settings
from pytest_llmbench.recommend import enrich_report
from pytest_llmbench.report.csv_report import csv_text
from pytest_llmbench.report.html_report import render_html
from pytest_llmbench.report.merge import ReportError, load_report, merge_reports
from pytest_llmbench.report.outputs import write_report_files
from pytest_llmbench.report.terminal import summary_lines

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_reports import CHART_IDS, HARDWARE, full_report, partial_report


def rows(text: str) -> dict[str, dict[str, str]]:
    return {row["cell_id"]: row for row in csv.DictReader(io.StringIO(text))}


# ------------------------------------------------------------------ CSV


def test_csv_has_one_row_per_cell_with_the_flattened_columns() -> None:
    report = enrich_report(full_report())
    text = csv_text(report["results"], "bench-host")
    header = text.splitlines()[0].split(",")
    for column in (
        "model", "quant", "size_gb", "memory_gb", "interactive_ttft", "interactive_tps",
        "interactive_rating", "long_context_load", "long_context_max", "batch_throughput",
        "quality_math", "quality_overall", "status", "interactive_status", "skip_reason",
        "efficiency_score", "cost_benefit_score",
    ):  # fmt: skip
        assert column in header, column
    table = rows(text)
    assert len(table) == len(report["results"])
    qwen = table["qwen2.5-1.5b-Q4_K_M"]
    assert qwen["hostname"] == "bench-host"
    assert qwen["model"] == "Qwen2.5-1.5B-Instruct"
    assert float(qwen["interactive_tps"]) == 18.0
    assert qwen["interactive_rating"] == "good"
    assert qwen["long_context_max"] == "32768"
    assert float(qwen["batch_throughput"]) == 32.0
    assert float(qwen["quality_math"]) == 85.0
    assert float(qwen["size_gb"]) == 1.1
    assert qwen["interactive_status"] == "passed"
    assert qwen["quality_status"] == "passed"
    skipped = table["llama-3.2-3b-Q4_K_M"]
    assert skipped["status"] == "skipped"
    assert "model file not in the model store" in skipped["skip_reason"]
    assert skipped["interactive_tps"] == ""  # unmeasured is empty, never 0


def test_csv_leaves_unmeasured_profiles_empty() -> None:
    table = rows(csv_text(enrich_report(partial_report())["results"]))
    smol = table["smollm2-135m-Q4_K_M"]
    assert float(smol["interactive_tps"]) == 120.0
    assert smol["batch_throughput"] == smol["quality_math"] == smol["long_context_max"] == ""
    assert smol["cost_benefit_score"] == ""  # needs a quality score


# ------------------------------------------------------------------ HTML


def test_html_is_self_contained_and_escapes_report_values() -> None:
    page = render_html(enrich_report(full_report()))
    assert not re.search(r'(?:src|href)\s*=\s*"(?:https?:)?//', page), "nothing may be fetched"
    assert "<script src" not in page and 'rel="stylesheet"' not in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_puts_recommendations_first_and_draws_every_chart() -> None:
    page = render_html(enrich_report(full_report()))
    order = [page.index(f'id="{s}"') for s in ("summary", "recommendations", "matrix", "charts", "details", "skipped", "appendices")]  # fmt: skip
    assert order == sorted(order)
    assert "Overall best: Qwen2.5-1.5B-Instruct Q4_K_M" in page
    page = render_html(enrich_report(full_report(divergence=True, serving=True, finetune=True)))
    for chart in CHART_IDS:
        svg = re.search(rf'<svg class="chart" data-chart="{chart}"[^>]*>(.*?)</svg>', page, re.S)
        assert svg, chart
        assert 'data-empty="true"' not in svg.group(0), chart
        assert 'class="mark"' in svg.group(1), chart
    # the heat map colours cells by rating; the table rows carry what the filters use
    assert 'class="r-acceptable" title="qwen2.5-1.5b-Q4_K_M: passed' in page
    assert 'data-rating="acceptable" data-status="passed"' in page
    # the real-world reading is the tooltip of a number
    assert 'CI 17.6–18.4, 5 runs; fast reading, feels responsive">18.0 ±0.4<' in page


def test_html_says_not_measured_for_profiles_that_did_not_run() -> None:
    page = render_html(enrich_report(partial_report()))
    assert re.search(r'data-chart="tps-vs-size" role', page)  # measured: drawn
    for chart in ("quality-vs-quant", "context-vs-load", "stress-temperature", "stress-tps"):
        assert re.search(rf'data-chart="{chart}" data-empty="true"', page), chart
    assert "not measured: run the quality profile" in page
    assert "not measured: the batch profile did not run" in page


def test_html_appends_server_logs_only_when_configured(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "smollm2-135m-Q4_K_M.log"
    log.parent.mkdir()
    log.write_text("main: server is listening on http://127.0.0.1:1234 <ok>\n")
    (log.parent / "smollm2-135m-Q4_K_M.long_context.log").write_text("n_ctx = 32768\n")
    report = full_report()
    report["results"][1]["server"]["log"] = str(log)
    report["results"][2]["server"]["log"] = str(tmp_path / "logs" / "gone.log")
    page = render_html(enrich_report(report), tmp_path)
    assert "server is listening on http://127.0.0.1:1234 &lt;ok&gt;" in page
    assert "n_ctx = 32768" in page
    assert "not available on this machine" in page  # inside the directory, but deleted
    assert "outside the report's directory, not read: /nonexistent/logs" in page
    report["metadata"]["config"]["settings"]["output"]["include_logs"] = False
    page = render_html(enrich_report(report), tmp_path)
    assert "server is listening" not in page
    assert "output.include_logs is false" in page


def test_report_files_follow_the_formats_setting(tmp_path: Path) -> None:
    written = write_report_files(full_report(), tmp_path, ("json", "csv", "html"))
    assert [p.name for p in written] == [
        "llmbench-report.json",
        "llmbench-report.csv",
        "llmbench-report.html",
    ]
    data = json.loads(written[0].read_text())
    assert data["recommendations"]["overall_best"]["cell_id"] == "qwen2.5-1.5b-Q4_K_M"
    assert data["results"][0]["derived"]["rating"] in (
        "excellent",
        "good",
        "acceptable",
        "poor",
        "failed",
    )
    assert data["key_findings"]
    only_json = write_report_files(full_report(), tmp_path / "j", ("html",))
    assert [p.name for p in only_json] == ["llmbench-report.json", "llmbench-report.html"]


# ------------------------------------------------------------------ merge and the CLI


def test_merge_keeps_hardware_per_result_and_drops_exact_duplicates() -> None:
    a, b = full_report("host-a"), full_report("host-b")
    b["metadata"]["hardware"] = {**b["metadata"]["hardware"], "cpu": "Other CPU", "ram_gb": 64.0}
    merged = merge_reports([("a.json", a), ("b.json", b), ("a-again.json", a)])
    assert len(merged["results"]) == 2 * len(a["results"])
    by_host = {r["hostname"]: r for r in merged["results"]}
    assert by_host["host-a"]["hardware"]["cpu"] == "Test CPU"
    assert by_host["host-b"]["hardware"]["cpu"] == "Other CPU"
    assert by_host["host-b"]["source"] == "b.json"
    assert by_host["host-b"]["run"]["settings"]["thresholds"]["quality"]["min_math_score"] == 80.0
    meta = merged["metadata"]
    assert meta["hostname"] is None and meta["hardware"] is None  # they differ per source
    assert [s["source"] for s in meta["merged_from"]] == ["a.json", "b.json", "a-again.json"]
    assert meta["duration_seconds"] == 3 * 3725.0
    # merging the merged file again changes nothing about where results came from
    again = merge_reports([("all.json", merged)])
    assert [r["hostname"] for r in again["results"]] == [r["hostname"] for r in merged["results"]]
    assert len(again["metadata"]["merged_from"]) == 3


def test_merged_report_names_the_host_in_recommendations() -> None:
    a, b = full_report("host-a"), full_report("host-b")
    b["results"] = b["results"][:2]
    enriched = enrich_report(merge_reports([("a", a), ("b", b)]))
    labels = [
        line["label"] for case in enriched["recommendations"]["use_cases"] for line in case["lines"]
    ]
    assert any(label.endswith("@ host-b") for label in labels)
    assert "several machines" in render_html(enriched)


def test_cli_merges_then_renders_csv_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.json").write_text(json.dumps(full_report("host-a")))
    (tmp_path / "b.json").write_text(json.dumps(full_report("host-b")))
    out = tmp_path / "all.json"
    assert (
        main(
            ["report", "merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(out)]
        )
        == 0
    )
    assert "2 hosts" in capsys.readouterr().out
    assert main(["report", "render", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "all.csv" in printed and "all.html" in printed
    table = list(csv.DictReader(io.StringIO((tmp_path / "all.csv").read_text())))
    assert {row["hostname"] for row in table} == {"host-a", "host-b"}
    assert "Overall best" in (tmp_path / "all.html").read_text()
    target = tmp_path / "rendered"
    assert main(["report", "render", str(out), "-o", str(target), "-f", "html"]) == 0
    assert [p.name for p in target.iterdir()] == ["all.html"]


def test_cli_render_reads_no_log_outside_the_reports_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report someone sent that names /etc/passwd or ../secret as a log cannot publish them."""
    secret = tmp_path / "secret.txt"
    secret.write_text("ssh-rsa AAAA-private\n")
    own = tmp_path / "run" / "logs" / "own.log"
    own.parent.mkdir(parents=True)
    own.write_text("main: model loaded\n")
    report = full_report()
    report["results"][0]["server"]["log"] = "/etc/passwd"
    report["results"][1]["server"]["log"] = str(own.parent / ".." / ".." / "secret.txt")
    report["results"][3]["server"]["log"] = str(own.parent / "key.log")
    (own.parent / "key.log").symlink_to(secret)
    report["results"][2]["server"]["log"] = "logs/own.log"  # relative: the report's directory
    source = own.parent.parent / "sent.json"
    source.write_text(json.dumps(report))
    for extra in ([], ["-o", str(tmp_path / "elsewhere")]):
        assert main(["report", "render", str(source), "-f", "html", *extra]) == 0
        page = (Path(extra[1]) if extra else source.parent).joinpath("sent.html").read_text()
        assert "root:x:0" not in page and "AAAA-private" not in page
        assert "outside the report's directory, not read: /etc/passwd" in page
        assert "main: model loaded" in page
    merged = tmp_path / "merged.json"
    assert main(["report", "merge", str(source), "-o", str(merged)]) == 0
    assert main(["report", "render", str(merged), "-f", "html"]) == 0
    page = (tmp_path / "merged.html").read_text()
    assert "root:x:0" not in page and "AAAA-private" not in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"metadata": {}}', "not an llmbench JSON report"),
        ('{"schema_version": 99, "results": []}', "newer than this llmbench understands"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["report", "render", str(bad)]) == 4
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and "Traceback" not in err
    assert main(["report", "merge", str(bad), "-o", str(tmp_path / "x.json")]) == 4


def test_cli_refuses_to_overwrite_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = tmp_path / "a.json"
    a.write_text(json.dumps(full_report()))
    assert main(["report", "merge", str(a), "-o", str(a)]) == 4
    assert "overwrite" in capsys.readouterr().err
    assert json.loads(a.read_text())["metadata"]["hostname"] == "bench-host"


def test_cli_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "report" in capsys.readouterr().err


# ------------------------------------------------------------------ a real run


def test_real_run_writes_all_reports_and_fills_pytest_html_under_xdist(bench_project) -> None:  # type: ignore[no-untyped-def]
    bench_project.write()
    result = bench_project.run(
        "--html=report.html",
        "--self-contained-html",
        "-n",
        "1",
        "--llm-benchmark-json=history/bench.json",
        subprocess=True,
    )
    result.assert_outcomes(passed=6)
    output = result.stdout.str()
    assert "RECOMMENDED CONFIGURATIONS" in output
    # workers print nothing; the controller one line per finished cell, a line of its own
    (finished,) = [line for line in result.outlines if "[llmbench]" in line]
    assert re.fullmatch(
        r"\[llmbench\] smollm2-135m-Q4_1 finished on gw0: 6 passed; .* t/s.*", finished
    )
    assert (
        "Interactive storytelling:" in output
        and "Overall best: SmolLM2-135M-Instruct Q4_1" in output
    )
    results = bench_project.path / "results"
    for name in ("llmbench-report.json", "llmbench-report.csv", "llmbench-report.html"):
        assert (results / name).stat().st_size > 0, name
    (row,) = csv.DictReader(io.StringIO((results / "llmbench-report.csv").read_text()))
    assert row["quant"] == "Q4_1" and float(row["interactive_tps"]) > 0

    page = (bench_project.path / "report.html").read_text()
    for title in ("Model", "Quant", "Headline metric", "Rating"):
        assert f">{title}</th>" in page, title
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob
    tests = json.loads(html.unescape(blob.group(1)))["tests"]
    speed = next(v[0] for k, v in tests.items() if "test_streaming_speed" in k)
    row_html = "".join(speed["resultsTableRow"])
    assert '<td class="col-llmmodel">SmolLM2-135M-Instruct</td>' in row_html
    assert '<td class="col-llmquant">Q4_1</td>' in row_html
    assert re.search(r'<td class="col-llmheadline">[\d.]+ t/s, [\d.]+ s TTFT</td>', row_html)
    assert re.search(r'<td class="col-llmrating">(excellent|good|acceptable|poor)</td>', row_html)
    kinds = {extra["format_type"]: extra for extra in speed["extras"]}
    assert (
        "tokens_per_second" in kinds["html"]["content"] and "threshold" in kinds["html"]["content"]
    )
    assert kinds["url"]["content"] == "results/logs/smollm2-135m-Q4_1.log"
    assert (bench_project.path / kinds["url"]["content"]).is_file()

    # the controller wrote pytest-benchmark's JSON with the run's per-repetition samples
    exported = json.loads((bench_project.path / "history" / "bench.json").read_text())
    benches = {b["name"]: b for b in exported["benchmarks"]}
    decode = benches["decode_time_per_token[smollm2-135m-Q4_1]"]
    assert decode["stats"]["rounds"] == 2 and decode["extra_info"]["samples"] == "per repetition"
    assert decode["stats"]["ops"] > 0 and decode["params"]["quant"] == "Q4_1"
    assert benches["ttft[smollm2-135m-Q4_1]"]["stats"]["rounds"] == 2
    assert benches["end_to_end[smollm2-135m-Q4_1]"]["stats"]["rounds"] == 2


def test_chart_axes_cover_the_data_even_for_a_single_point() -> None:
    from pytest_llmbench.report.svg_charts import Point, Series, bar_chart, nice_ticks, xy_chart

    assert nice_ticks(0.08, 0.16) == [0.08, 0.1, 0.12, 0.14, 0.16]
    assert nice_ticks(5, 5)[0] <= 5 < nice_ticks(5, 5)[-1]
    single = xy_chart("one", "t", "x", "y", [Series("s", (Point(1.0, 0.0, "tip <b>"),))])
    assert single.count('class="mark"') == 1 and "tip &lt;b&gt;" in single
    tall = bar_chart("bar", "t", "y", ["Q4"], [("m", [(120.0, "over 100")])], y_max=100.0)
    ticks = [float(t) for t in re.findall(r'class="tick"[^>]*>([\d.]+)<', tall)]
    assert max(ticks) >= 120  # the axis grows past y_max rather than clip the bar
    assert 'data-empty="true"' in xy_chart("none", "t", "x", "y", [], empty_message="nothing")


def test_html_table_takes_the_servers_load_time_and_filters_not_run_cells() -> None:
    """Under -m interactive the load profile does not run, but the server was loaded and
    timed; a cell the run never reached is 'not run', and the status filter offers it."""
    report = full_report()
    for result in report["results"]:
        result["profiles"].pop("load", None)
    report["results"][0]["server"]["load_seconds"] = 1.234
    report["results"][-1]["status"] = "not run"
    page = render_html(enrich_report(report))
    table = page[page.index('id="results-table"') :]
    body = table[table.index("<tbody>") :]
    first = body[: body.index("</tr>")]
    assert '<td class="num" data-sort="1.234"' in first and ">1.23</td>" in first
    assert '<option value="not run">not run</option>' in page
    assert 'data-status="not run"' in table
    row = next(csv.DictReader(io.StringIO(csv_text(enrich_report(report)["results"], "h"))))
    assert float(row["load_seconds"]) == 1.234


@pytest.mark.parametrize("count", [1, 3, 12])
def test_chart_legends_stay_inside_the_svg(count: int) -> None:
    """Every legend entry ends before the right edge and its row above the bottom edge, however
    many and however long the names (a name too long for any row is cut, with a tooltip)."""
    from pytest_llmbench.report.svg_charts import RIGHT, WIDTH, Point, Series, bar_chart, xy_chart

    names = [f"Qwen2.5-Coder-{i}B-Instruct Q4_K_M @ build-host-{i}" for i in range(count)]
    names[-1] = "An-absurdly-long-model-name-" * 4 + "Q8_0"
    series = [Series(n, (Point(1.0 + i, 2.0, "tip"),)) for i, n in enumerate(names)]
    charts = [
        xy_chart("xy", "t", "x", "y", series),
        bar_chart("bar", "t", "y", ["Q4"], [(n, [(1.0, "tip")]) for n in names]),
    ]
    for svg in charts:
        height = float(re.search(r'viewBox="0 0 \d+ (\d+)"', svg).group(1))
        items = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" data-width="([\d.]+)">', svg)
        assert len(items) == count
        for x, y, width in items:
            assert float(x) + float(width) <= WIDTH - RIGHT
            assert float(y) + 4 <= height  # the descenders of the row's text too
        assert f"<title>{names[-1]}</title>" in svg and "…</text>" in svg
        label = float(re.findall(r'class="axis-label" x="[\d.]+" y="([\d.]+)"', svg)[0])
        assert all(float(y) - 11 > label for _, y, _ in items)  # under the x-axis label


# ------------------------------------------------------------------ model metadata, external server


def test_html_cell_details_show_the_model_metadata_collapsed() -> None:
    report = full_report()
    report["results"][0]["model_info"] = {
        "gguf_snapshot": [
            {"key": "general.architecture", "type": "string", "value": "llama"},
            {"key": "tokenizer.ggml.tokens", "type": "array[49152] of string", "value": "array[49152] of string"},
            {"key": "tokenizer.chat_template", "type": "string", "value": "{% for m in messages %}" * 40},
            {"key": "general.tags", "type": "array[2] of string", "value": ["<b>", "text"]},
        ],
        "card": {"license": "apache-2.0", "base_model": "HuggingFaceTB/SmolLM2-135M"},
        "hints": ["context: llama_cpp.default_ctx_size asks for 16384 tokens, above 8192 <x>"],
    }  # fmt: skip
    page = render_html(enrich_report(report))

    block = re.search(r'<details class="model-info">(.*?)</details>', page, re.S)
    assert block and page.count('<details class="model-info">') == 1  # only where recorded
    shown = block.group(1)
    assert "<summary>Model metadata: 1 hints, 4 GGUF keys, model card</summary>" in shown
    assert "<li>context: llama_cpp.default_ctx_size asks for 16384 tokens, above 8192 &lt;x&gt;</li>" in shown  # fmt: skip
    assert "<td>base_model</td><td>HuggingFaceTB/SmolLM2-135M</td>" in shown
    assert "<td>general.architecture</td><td>string</td><td>llama</td>" in shown
    assert "<td>tokenizer.ggml.tokens</td><td>array[49152] of string</td><td>(not shown)</td>" in shown  # fmt: skip
    assert "<td>&lt;b&gt;, text</td>" in shown
    assert "… (920 chars)</td>" in shown
    assert block.start() > page.index('id="cell-smollm2-135m-Q2_K"')


def _external(report: dict, url: str = "http://gpu-box:8080") -> dict:
    """A report as a --llm-server-url run writes it: no load time, no server RSS."""
    identity = {"url": url, "model_path": "/srv/m.gguf", "quant": "Q4_K_M"}
    report["metadata"]["config"]["external_server"] = identity
    for result in report["results"]:
        result["server"] = {"external": True, **identity, "load_seconds": None}
    return report


def test_html_and_terminal_say_the_server_was_external() -> None:
    page = render_html(enrich_report(_external(full_report())))
    summary = page[page.index('id="summary"') : page.index('id="recommendations"')]
    assert (
        '<p class="external" id="external-server">External llama-server at http://gpu-box:8080 '
        "(--llm-server-url), started outside this run: load time and server memory were not "
        "measured.</p>"
    ) in summary
    assert "<tr><th>server load s</th><td>not measured (external server)</td></tr>" in page
    assert "<td>external, http://gpu-box:8080 (--llm-server-url)</td>" in page

    cells = enrich_report(_external(full_report()))["results"]
    lines = summary_lines(cells, Settings(), HARDWARE)
    notes = [line for line in lines if "external llama-server" in line]
    assert notes == [
        "note: external llama-server at http://gpu-box:8080 (--llm-server-url), started outside "
        "this run: load time and server memory were not measured"
    ]


def test_a_run_with_its_own_server_has_no_external_note() -> None:
    page = render_html(enrich_report(full_report()))
    assert 'id="external-server"' not in page and "not measured (external server)" not in page
    cells = enrich_report(full_report())["results"]
    assert not any("external" in line for line in summary_lines(cells, Settings(), HARDWARE))


def test_html_names_an_external_server_that_never_answered() -> None:
    report = full_report()
    report["metadata"]["config"]["external_server"] = {"url": "http://gpu-box:8080"}
    page = render_html(enrich_report(report))
    assert "External llama-server at http://gpu-box:8080 (--llm-server-url)" in page


def test_a_config_variant_is_a_row_and_a_label_of_its_own() -> None:
    """A variant shares model and quant with its base cell: it must not overwrite it anywhere."""
    report = full_report()
    base = next(r for r in report["results"] if r["cell_id"] == "smollm2-135m-Q4_K_M")
    variant = json.loads(json.dumps(base))
    variant.update(cell_id="smollm2-135m-Q4_K_M-fa-on", variant="fa-on")
    variant["profiles"]["interactive"]["metrics"]["tokens_per_second"] = 77.7
    report["results"].append(variant)
    page = render_html(enrich_report(report))
    assert "<th>SmolLM2-135M-Instruct [fa-on]</th>" in page and "77.7 t/s" in page
    assert "<th>SmolLM2-135M-Instruct</th>" in page
    lines = "\n".join(summary_lines(enrich_report(report)["results"], Settings()))
    assert "SmolLM2-135M-Instruct Q4_K_M [fa-on] - Excellent (77.7 t/s" in lines


def test_csv_has_each_timed_metric_with_its_interval_columns() -> None:
    from pytest_llmbench.recommend import enrich_report
    from pytest_llmbench.report.csv_report import csv_text

    results = enrich_report(full_report())["results"]
    rows = list(csv.DictReader(io.StringIO(csv_text(results))))
    row = next(r for r in rows if r["cell_id"] == "smollm2-135m-Q4_K_M")
    assert (row["interactive_tps"], row["interactive_tps_lo"], row["interactive_tps_hi"]) == (
        "120",
        "117.6",
        "122.4",
    )
    assert row["interactive_ttft_lo"] and row["interactive_ttft_hi"]
    assert row["interactive_e2e"] == ""  # not measured in this report: empty, never zero
    assert row["interactive_steadiness_cv"] == "8"


def test_noise_floor_warns_about_a_busy_machine_and_noise_wider_than_the_target() -> None:
    from pytest_llmbench import noise

    cells = full_report()["results"]
    quiet = noise.noise_floor({"load_average_1m": 0.2, "cores": 2}, cells, 3.0)
    assert quiet["warnings"] == [] and quiet["first_cell"]["runs"] == 5
    busy = noise.noise_floor({"load_average_1m": 5.0, "cores": 2}, cells, 1.0)
    assert len(busy["warnings"]) == 2
    assert "load average 5.0 on 2 cores" in busy["warnings"][0]
    assert "wider than the requested precision (1 %)" in busy["warnings"][1]
    state = noise.machine_state()
    assert state["cores"] >= 1 and "load_average_1m" in state


def test_divergence_decides_the_accuracy_use_case_and_reaches_csv_and_html() -> None:
    from pytest_llmbench.recommend import enrich_report
    from pytest_llmbench.report.csv_report import csv_text

    report = enrich_report(full_report(divergence=True))
    case = next(c for c in report["recommendations"]["use_cases"] if c["key"] == "accuracy")
    assert case["profile"] == "divergence" and "loss against the reference" in case["title"]
    by_cell = {line["cell_id"]: line for line in case["lines"]}
    assert by_cell["smollm2-135m-Q2_K"]["mark"] == "⚠"  # KLD over the limit, same top within
    assert "the reference (Q8_0)" in by_cell["qwen2.5-1.5b-Q8_0"]["summary"]
    assert "same top token as Q8_0 92.5" in by_cell["qwen2.5-1.5b-Q4_K_M"]["summary"]
    rows = list(csv.DictReader(io.StringIO(csv_text(report["results"]))))
    q2 = next(r for r in rows if r["cell_id"] == "smollm2-135m-Q2_K")
    assert (q2["divergence_kld"], q2["divergence_same_top"], q2["divergence_reference"]) == (
        "0.42",
        "77",
        "Q8_0",
    )
    page = render_html(report)
    assert "KLD 0.42 vs Q8_0, same top token 77.0 %" in page  # the heat map's tooltip


def test_serving_capacity_reaches_the_use_case_csv_terminal_and_html() -> None:
    from pytest_llmbench.recommend import enrich_report
    from pytest_llmbench.report.csv_report import csv_text
    from pytest_llmbench.report.terminal import summary_lines

    report = enrich_report(full_report(serving=True))
    case = next(c for c in report["recommendations"]["use_cases"] if c["key"] == "serving")
    assert case["lines"][0]["cell_id"] == "smollm2-135m-Q2_K"  # the fastest serves the most
    assert case["lines"][0]["summary"].startswith("serves 8 concurrent users")
    rows = list(csv.DictReader(io.StringIO(csv_text(report["results"]))))
    assert {r["serving_capacity_users"] for r in rows if r["cell_id"] == "smollm2-135m-Q2_K"} == {
        "8"
    }
    lines = summary_lines(report["results"])
    assert any(line.startswith("serving: smollm2-135m-Q2_K serves 8") for line in lines)
    page = render_html(report)
    assert "Within objectives %" in page and 'data-chart="serving-curve"' in page
    assert "no serving use case" not in page
    plain = enrich_report(full_report())
    assert "serving" not in {c["key"] for c in plain["recommendations"]["use_cases"]}


def test_a_version_1_report_still_renders_and_other_versions_are_refused(tmp_path) -> None:
    """Version 1 (no per-run samples) is read as it is; a version this llmbench does not know
    is one line naming it."""
    old = full_report()
    for result in old["results"]:
        for profile in result["profiles"].values():
            profile.get("metrics", {}).pop("measurements", None)
    source = tmp_path / "old.json"
    source.write_text(json.dumps(old))
    assert main(["report", "render", str(source), "-o", str(tmp_path)]) == 0
    assert "Overall best" in (tmp_path / "old.html").read_text()
    for version, words in ((4, "newer than this llmbench understands"), (0, "not one this")):
        source.write_text(json.dumps({**old, "schema_version": version}))
        with pytest.raises(ReportError, match=f"schema_version {version} is {words}"):
            load_report(source)


def test_a_stored_version_1_report_renders_compares_and_merges_with_the_new_code(tmp_path) -> None:
    """tests/data/report-v1.json was written by a real run of the last version-1 release
    (``pytest bench/ -m "interactive or load" -k Q4_K_M`` on a busy machine): its stored profile
    ratings are kept, and every report reads it."""
    stored = Path(__file__).parent / "data" / "report-v1.json"
    assert json.loads(stored.read_text())["schema_version"] == 1
    upgraded = load_report(stored)
    assert upgraded["schema_version"] == 3
    assert main(["report", "render", str(stored), "-o", str(tmp_path)]) == 0
    html = (tmp_path / "report-v1.html").read_text()
    assert "smollm2-135m-Q4_K_M" in html and "5.2" in html  # its decode speed, 5.24 t/s
    rows = list(csv.DictReader((tmp_path / "report-v1.csv").open()))
    first = next(r for r in rows if r["cell_id"] == "smollm2-135m-Q4_K_M")
    assert first["interactive_rating"] == "poor" and first["interactive_tps"].startswith("5.24")
    assert main(["report", "compare", str(stored), str(stored)]) == 0
    merged = tmp_path / "merged.json"
    assert main(["report", "merge", str(stored), str(stored), "-o", str(merged)]) == 0
    assert json.loads(merged.read_text())["schema_version"] == 3


def test_the_schema_rejects_a_measurement_without_samples() -> None:
    from tests.conftest import REPORT_VALIDATOR

    report = full_report()
    report["schema_version"] = 3
    assert not list(REPORT_VALIDATOR.iter_errors(report))
    metrics = report["results"][0]["profiles"]["interactive"]["metrics"]
    del metrics["measurements"]["tokens_per_second"]["samples"]
    assert any("samples" in e.message for e in REPORT_VALIDATOR.iter_errors(report))
