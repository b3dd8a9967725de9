"""The profiles' scoring and statistics functions, without a server: edge cases included
(zero tokens, a single document, a server that fails mid-run, sensors the OS does not expose)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench import judge, monitor, readings, stress_choice
from pytest_llmbench.client import RequestFailed, RequestResult
from pytest_llmbench.config import (
    ConfigError,
    InteractiveThresholds,
    Settings,
    StressThresholds,
    Thresholds,
)
from pytest_llmbench.expect import at_most
from pytest_llmbench.monitor import NOT_AVAILABLE, ResourceMonitor, ResourceSample
from pytest_llmbench.workloads import (
    batch,
    embedding,
    interactive,
    long_context,
    quality,
    stress,
    texts,
)

DATA = Path(__file__).resolve().parent.parent / "bench" / "data"


def checks(profile: str, measured: dict[str, Any], settings: Settings | None = None) -> list:
    """The metric table's checks of one profile's recorded metrics, as the reports judge them."""
    cell = {"profiles": {profile: {"metrics": measured}}}
    found = judge.threshold_checks(cell, settings or Settings())
    return [c for c in found if c.profile == profile]


def rating(profile: str, measured: dict[str, Any], settings: Settings | None = None) -> str:
    return judge.rating_of(checks(profile, measured, settings))


def result(
    text: str = "ok", tokens: int = 4, e2e: float = 1.0, chunks: int | None = None
) -> RequestResult:
    n = tokens if chunks is None else chunks
    times = tuple(0.1 + 0.9 * i / max(n, 1) for i in range(n))
    return RequestResult(
        text=text,
        prompt_tokens=10,
        output_tokens=tokens,
        ttft_s=times[0] if times else e2e,
        e2e_s=e2e,
        token_times_s=times,
        server_timings={"prompt_n": 10, "prompt_ms": 50.0},
    )


class FakeClient:
    """Words are tokens; ``fail_after`` requests succeed, then the server 'dies'."""

    def __init__(self, fail_after: int | None = None, answers: dict[str, str] | None = None):
        self.calls, self.fail_after, self.answers = 0, fail_after, answers or {}

    def _request(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RequestFailed("stream from /completion broke off: connection reset")

    def tokenize(self, text: str) -> list[int]:
        return [len(w) for w in text.split()]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def post_json(self, path: str, payload: dict[str, Any]) -> Any:
        if path == "/detokenize":
            return {"content": " ".join("w" * t for t in payload["tokens"])}
        self._request()
        return {
            "data": [{"index": i, "embedding": [0.6, 0.8]} for i in range(len(payload["input"]))]
        }

    def complete(self, prompt: str, n_predict: int, **_: Any) -> RequestResult:
        self._request()
        return result(tokens=n_predict)

    def chat(self, messages: list[dict[str, str]], max_tokens: int, **_: Any) -> RequestResult:
        self._request()
        return result(self.answers.get(messages[-1]["content"], ""), tokens=max_tokens)


# ------------------------------------------------------------------ monitor


def sample(t: float = 0.0, rss=100.0, swap=0.0, temp=None, freq=None) -> ResourceSample:
    return ResourceSample(t, rss, 8000.0, swap, temp, freq)


def test_summary_says_not_available_instead_of_inventing():
    summary = monitor.summarise([ResourceSample(0.0, None, None, None, None, None)])
    assert summary["max_temperature_c"] == NOT_AVAILABLE
    assert summary["cpu_freq_start_mhz"] == NOT_AVAILABLE
    assert summary["peak_rss_mb"] == NOT_AVAILABLE
    assert summary["swap_growth_mb"] == NOT_AVAILABLE
    assert monitor.swap_growth_mb(summary) is None


def test_summary_of_known_readings():
    summary = monitor.summarise([sample(0, 100, 0, 60, 3000), sample(1, 180, 64, 72, 2500)])
    assert summary["peak_rss_mb"] == 180 and summary["rss_start_mb"] == 100
    assert summary["swap_growth_mb"] == 64
    assert summary["max_temperature_c"] == 72
    assert summary["cpu_freq_min_mhz"] == 2500


def test_cpu_temperature_only_from_cpu_sensors(monkeypatch):
    entry = type("Entry", (), {})
    hot, disk = entry(), entry()
    hot.current, disk.current = 64.0, 48.0
    monkeypatch.setattr(
        monitor.psutil, "sensors_temperatures", lambda: {"nvme": [disk]}, raising=False
    )
    assert monitor.cpu_temperature_c() is None
    monkeypatch.setattr(
        monitor.psutil, "sensors_temperatures", lambda: {"coretemp": [hot, disk]}, raising=False
    )
    assert monitor.cpu_temperature_c() == 64.0


def test_monitor_samples_start_and_stop_and_keeps_callback_errors():
    seen: list[ResourceSample] = []
    with ResourceMonitor(
        None, interval=0.01, on_sample=seen.append, sampler=lambda pid, t: sample(t)
    ):
        pass
    assert len(seen) >= 2  # one at start, one at stop

    def explode(_: ResourceSample) -> None:
        raise RuntimeError("boom")

    mon = ResourceMonitor(None, interval=0.01, on_sample=explode, sampler=lambda pid, t: sample(t))
    with mon:
        pass
    assert isinstance(mon.error, RuntimeError)


# ------------------------------------------------------------------ long context


def test_sizes_are_admitted_by_trained_context_and_server_context():
    assert long_context.beyond_training(8192, 8192) is None
    assert "trained context (8192" in long_context.beyond_training(16384, 8192)
    assert long_context.beyond_training(65536, None) is None
    assert "n_ctx (4096" in long_context.beyond_server(8192, 4096)
    assert long_context.server_ctx_size((4096, 8192, 16384), 8192) == 8192
    assert long_context.server_ctx_size((16384,), 8192) is None
    assert long_context.server_n_ctx({"default_generation_settings": {"n_ctx": 2048}}) == 2048
    assert long_context.server_n_ctx({"error": "x"}) is None


def context_bench(client: FakeClient, trained: int | None = 8192) -> long_context.ContextBench:
    server = type("Server", (), {"pid": None, "url": "http://127.0.0.1:1"})()
    server.get_json = lambda path: {"default_generation_settings": {"n_ctx": 4096}}
    bench = long_context.ContextBench(trained, lambda: server, ["alpha beta gamma delta"] * 3)
    bench.client = client  # as if started: the fake answers instead of a server
    bench.n_ctx = 4096
    return bench


def test_prompt_fills_the_context_to_the_budget():
    bench = context_bench(FakeClient())
    prompt, count = bench.build_prompt(1024)
    budget = 1024 - long_context.ANSWER_TOKENS
    assert count <= budget and budget - count <= long_context.FILL_SLACK_TOKENS
    assert prompt.startswith(long_context.header(1024))
    with pytest.raises(ValueError):
        bench.build_prompt(20)


def test_context_size_measured_then_failed_mid_run():
    bench = context_bench(FakeClient(fail_after=1))
    ok = bench.measure(1024)
    assert ok.generated and ok.prompt_tokens_per_second == 200.0  # 10 tokens in 50 ms
    failed = bench.measure(2048)
    assert not failed.generated and "broke off" in failed.error
    recorded = bench.metrics()
    assert recorded["sizes"]["1024"]["passed"] and not recorded["sizes"]["2048"]["passed"]
    assert recorded["max_context_passed"] == 1024
    assert rating("long_context", recorded) == "poor"  # smaller contexts still serve


def test_context_skip_reasons_are_recorded_and_no_runs_means_no_rating():
    bench = context_bench(FakeClient())
    assert bench.skip_reason(16384) is not None and bench.skip_reason(8192) is not None
    assert set(bench.metrics()["skipped_sizes"]) == {"16384", "8192"}
    assert bench.metrics()["max_context_passed"] is None
    assert checks("long_context", bench.metrics()) == []  # nothing measured, nothing judged


def test_zero_generated_tokens_is_not_a_success():
    run = long_context.ContextRun(4096, 4080, load_seconds=2.0, output_tokens=0)
    assert not run.generated
    assert run.prompt_tokens_per_second == 2040.0  # client-side estimate without server timings


# ------------------------------------------------------------------ batch


def test_documents_are_distinct_and_within_bounds():
    paragraphs = texts.load_paragraphs(DATA / "prose.txt")
    words = FakeClient().count_tokens
    docs = batch.build_documents(paragraphs, 30, words)
    assert len({d.text for d in docs}) == 30
    assert all(batch.MIN_TOKENS <= d.tokens <= batch.MAX_TOKENS for d in docs)


def test_degradation_and_slope_edge_cases():
    assert batch.degradation_percent([]) is None
    assert batch.degradation_percent([2.0]) is None
    assert batch.degradation_percent([1.0, 1.5]) == pytest.approx(50.0)
    assert batch.degradation_percent([1.0] * 10 + [9.0] * 10 + [2.0] * 10) == pytest.approx(100.0)
    assert batch.slope([5.0]) is None
    assert batch.slope([3.0, 3.0, 3.0]) == 0.0
    assert batch.slope([0.0, 2.0, 4.0, 6.0]) == pytest.approx(2.0)


def test_batch_with_a_single_document_has_no_spread_or_trend():
    measured = batch.BatchMeasurement((batch.DocumentResult(0, 300, 64, 2.0, 500.0),), 1)
    assert measured.cv_percent is None and measured.degradation_percent is None
    assert measured.memory_growth_mb is None
    assert measured.docs_per_hour == 1800.0
    assert measured.metrics()["documents"] == 1


def test_batch_server_error_mid_run_is_recorded():
    docs = [batch.Document(i, f"document {i}", 300) for i in range(5)]
    measured = batch.measure(FakeClient(fail_after=3), None, docs)  # warm-up + 2 documents
    assert not measured.complete and len(measured.documents) == 2
    assert "stopped after 2 of 5" in measured.error
    assert measured.metrics()["error"] == measured.error
    assert rating("batch", measured.metrics()) == "failed"


def test_empty_batch_does_not_raise():
    measured = batch.measure(FakeClient(), None, [])
    assert measured.mean_seconds is None and measured.docs_per_hour is None
    assert measured.metrics()["cv_percent"] is None


# ------------------------------------------------------------------ quality


def test_bundled_question_set_covers_the_four_categories():
    questions = quality.load_questions(DATA / "quality_tests.json")
    assert len(questions) >= 15
    by_category = {c: sum(q.category == c for q in questions) for c in quality.CATEGORIES}
    assert all(n >= 3 for n in by_category.values()), by_category


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("180", 180.0),
        ("It costs 1,122 dollars.", 1122.0),
        ("$1122.00", 1122.0),
        ("-3 then 7.5", 7.5),
        ("none", None),
    ],
)
def test_last_number(text, expected):
    assert quality.last_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(C) Carl", "C"),
        ("B. Because the boiler failed", "B"),
        ("I think the answer is D.", "D"),
        ("Answer: A", "A"),
        ("A box contains balls.", None),
        ("", None),
    ],
)
def test_choice_letter(text, expected):
    assert quality.choice_letter(text) == expected


def test_scorers_pass_and_fail():
    assert quality.score({"type": "number", "expected": 1122, "tolerance": 0.01}, "1122.00")
    assert not quality.score({"type": "number", "expected": 5}, "")
    assert quality.score({"type": "choice", "expected": "C", "choices": "ABC"}, "C) Carl")
    assert quality.score({"type": "regex", "pattern": r"^\W*no\b"}, "No, it did not.")
    assert not quality.score({"type": "regex", "pattern": "x", "case_sensitive": True}, "X")
    assert quality.score({"type": "exact", "expected": "1,2,3"}, " `1,2,3`. ")
    assert not quality.score(
        {"type": "exact", "expected": "HELLO", "case_sensitive": True}, "Hello"
    )
    schema = {"type": "object", "required": ["age"], "properties": {"age": {"type": "integer"}}}
    assert quality.score({"type": "json", "schema": schema}, 'Here:\n```json\n{"age": 34}\n```')
    assert not quality.score({"type": "json", "schema": schema}, '{"age": "34"}')
    assert not quality.score({"type": "json", "schema": schema}, "no json at all")
    lines = {"type": "lines", "count": 2, "pattern": "^- "}
    assert quality.score(lines, "- a\n\n- b\n")
    assert not quality.score(lines, "- a\n- b\n- c")


def test_schema_subset():
    assert quality.schema_problems({"type": "integer"}, True)  # a bool is not an integer
    assert quality.schema_problems({"type": "object", "additionalProperties": False}, {"x": 1})
    schema = {"type": "array", "minItems": 2, "items": {"enum": ["a", "b"]}}
    assert quality.schema_problems(schema, ["a"]) and quality.schema_problems(schema, ["a", "c"])
    assert not quality.schema_problems(schema, ["a", "b"])
    assert quality.schema_problems({"type": "tuple"}, [])


def test_user_question_files(tmp_path):
    jsonl = tmp_path / "mine.jsonl"
    rows = [
        {
            "id": "q1",
            "category": "math",
            "prompt": "1+1?",
            "scorer": {"type": "number", "expected": 2},
        }
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert quality.load_questions(jsonl)[0].id == "q1"
    bad = tmp_path / "bad.json"
    for content, key in (
        ("{", "line 1"),
        (json.dumps([{**rows[0], "scorer": {"type": "vibes"}}]), "questions[0].scorer.type"),
        (json.dumps([{**rows[0], "scorer": {"type": "number"}}]), "questions[0].scorer.expected"),
        (json.dumps(rows * 2), "questions[1].id"),
        (json.dumps([]), "questions"),
    ):
        bad.write_text(content)
        with pytest.raises(ConfigError) as info:
            quality.load_questions(bad)
        assert f"bad.json: {key}" in str(info.value)


def test_quality_server_error_mid_run_scores_as_wrong_and_is_reported():
    questions = [
        quality.Question(f"m{i}", "math", f"q{i}", {"type": "number", "expected": 4})
        for i in range(3)
    ]
    client = FakeClient(fail_after=2, answers={"q0": "4", "q1": "five"})
    measured = quality.measure(client, questions)
    assert measured.scores == {"math": pytest.approx(100 / 3)}
    assert len(measured.errors) == 1 and measured.missed("math") == ["m1", "m2"]
    assert rating("quality", measured.metrics()) == "failed"
    assert quality.QualityMeasurement(()).overall is None


def test_relative_scores_use_the_highest_precision_quant():
    reference, relative = quality.relative_scores(
        {"Q2_K": {"math": 50.0, "format": 40.0}, "Q8_0": {"math": 70.0, "format": 0.0}}
    )
    assert reference == "Q8_0"
    assert relative["Q2_K"] == {"math": pytest.approx(71.43, abs=0.01)}  # format: no ratio to 0
    assert quality.degradation_lines(reference, relative) == [
        "Q2_K keeps 71 % of Q8_0's math score"
    ]
    assert quality.relative_scores({}) == (None, {})
    reference, _ = quality.relative_scores({"Q8_0/fa-on": {"math": 1.0}, "Q8_0": {"math": 1.0}})
    assert reference == "Q8_0"  # the default server is the reference, not a variant


# ------------------------------------------------------------------ stress


def test_a_profile_runs_when_listed_or_named_in_the_mark_expression():
    listed = Settings(profiles=("load", "interactive"))
    assert not listed.runs_profile("stress", "")
    assert not Settings(profiles=()).runs_profile("stress", "batch or quality")
    assert Settings(profiles=()).runs_profile("stress", "stress")
    assert Settings(profiles=()).runs_profile("stress", "long_context or stress")
    assert Settings(profiles=("load", "stress")).runs_profile("stress", None)
    assert not listed.runs_profile("embedding", "long_context")
    assert listed.runs_profile("interactive", None) and listed.runs_profile("load", "")
    assert Settings(profiles=("interactive",)).runs_profile("load", None)  # always


def test_stress_duration_and_interval():
    limits = StressThresholds()
    assert stress.duration_seconds(None, limits) == 1800.0
    assert stress.duration_seconds(60, limits) == 60.0
    assert stress.sample_interval(1800.0, 30.0) == 30.0
    assert stress.sample_interval(60.0, 30.0) == 6.0
    assert stress.sample_interval(2.0, 30.0) == 0.5


def record(cell_id: str, **statuses: str) -> dict[str, Any]:
    return {
        "cell_id": cell_id,
        "profiles": {p: {"status": s} for p, s in statuses.items()},
        "tests": {f"t_{p}": {"profile": p} for p in statuses},
    }


def test_stress_chooses_the_last_configuration_that_passed():
    order = ["a", "b", "c"]
    assert stress_choice.choose([], order)[0] == "c"
    records = [
        record("a", load="passed", interactive="passed"),
        record("b", load="passed", interactive="passed", quality="failed"),  # accuracy ignored
        record("c", load="passed", interactive="failed"),
    ]
    assert stress_choice.choose(records, order) == (
        "b",
        "the last configuration that passed the earlier profiles",
    )
    assert stress_choice.choose([record("a", load="failed")], order)[0] is None
    assert (
        stress_choice.choose([record("a", stress="passed")], order)[0] == "c"
    )  # stress alone: not judged


def test_stress_from_a_report_chooses_among_this_runs_cells(tmp_path):
    from types import SimpleNamespace

    report = tmp_path / "earlier.json"
    results = [
        record("a", load="passed", interactive="passed"),
        record("b", load="passed", interactive="passed"),
        record("gone", load="passed", interactive="passed"),  # not selected now
    ]
    report.write_text(json.dumps({"results": results}))
    session = SimpleNamespace(cells=[SimpleNamespace(id=c) for c in ("a", "b", "c")])
    chosen, why = stress_choice.decide(session, stress_choice.StressPlan(from_report=report))
    assert chosen == "b"
    assert why == f"the last configuration that passed the earlier profiles in {report}"
    report.write_text(json.dumps({"results": []}))
    assert stress_choice.decide(session, stress_choice.StressPlan(from_report=report)) == (
        None,
        f"{report} has no measured configuration selected in this run",
    )


def test_token_rates_per_window():
    assert stress.token_arrivals(result(tokens=0, chunks=0), 5.0) == []
    one = stress.token_arrivals(result(tokens=1), 5.0)
    assert one == [(5.1, 1.0)]
    arrivals = stress.token_arrivals(result(tokens=8, chunks=4), 0.0)  # two tokens per chunk
    assert sum(n for _, n in arrivals) == 8
    assert stress.window_rates([0.0, 0.5, 1.0], arrivals) == [None, 8.0, 8.0]
    assert stress.window_rates([], arrivals) == []
    assert stress.window_rates([0.0, 1.0, 1.01], arrivals, min_span=0.5) == [None, 8.0, None]


def test_tps_drop_and_throttling():
    assert stress.tps_drop_percent([None, 10.0, 10.0]) is None
    assert stress.tps_drop_percent([None, 10, 10, 10, 8, 8, 8]) == pytest.approx(20.0)
    assert stress.throttled([None, None]) is None
    assert not stress.throttled([3000, 3000, 2000, 3000, 3000, 3000])  # a blip
    assert stress.throttled([3000, 2900, 2500, 2400, 2400, 2400])
    assert stress.throttled([3000, 2000])  # a two-sample run: the only later sample counts


class FakeServer:
    url, pid, api_key = "http://127.0.0.1:1", None, None

    def __init__(self) -> None:
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


def test_stress_aborts_when_the_server_stops_answering(monkeypatch):
    monkeypatch.setattr(
        stress, "LlamaClient", lambda url, timeout, api_key: FakeClient(fail_after=3)
    )
    server = FakeServer()
    measured = stress.run(server, duration_s=30.0, interval_s=0.05, abort_temperature=90.0)
    assert measured.aborted.startswith("server stopped answering")
    assert server.stopped == 1 and measured.elapsed_s < 30.0
    assert measured.tokens == 2 * stress.N_PREDICT
    assert rating("stress", measured.metrics()) == "failed"


def test_stress_aborts_at_once_above_the_abort_temperature(monkeypatch):
    monkeypatch.setattr(monitor, "cpu_temperature_c", lambda: 95.0)
    server, client = FakeServer(), FakeClient()
    monkeypatch.setattr(stress, "LlamaClient", lambda url, timeout, api_key: client)
    measured = stress.run(server, duration_s=30.0, interval_s=0.05, abort_temperature=90.0)
    assert "95 °C" in measured.aborted and server.stopped == 1
    assert client.calls == 0  # not even the warm-up ran on an overheated machine
    assert measured.metrics()["max_temperature_c"] == 95.0


def test_stress_metrics_without_sensors():
    run = stress.StressRun(10.0, 1.0, 10.0, (sample(0), sample(1)), (None, 12.0), 12.0)
    recorded = run.metrics()
    assert recorded["max_temperature_c"] == NOT_AVAILABLE
    assert recorded["throttling"] == NOT_AVAILABLE
    assert recorded["samples"][1]["tokens_per_second"] == 12.0


# ------------------------------------------------------------------ embedding


def test_vector_checks():
    good = {"a": [0.6, 0.8], "b": [0.8, 0.6], "c": [-0.6, 0.8]}
    assert embedding.l2_norm([3.0, 4.0]) == 5.0
    assert embedding.cosine([1.0, 0.0], [0.0, 0.0]) == 0.0
    assert not embedding.dimension_problems(good, 2)
    assert embedding.dimension_problems(good, 3) and embedding.dimension_problems(good, None)
    assert not embedding.norm_problems(good) and embedding.norm_problems({"x": [1.0, 1.0]})
    assert not embedding.range_problems(good) and embedding.range_problems({"x": [1.5, 0.0]})
    assert not embedding.similarity_problems(good)
    triplets = [embedding.Triplet("a", "b", "c")]
    assert not embedding.misordered_triplets(good, triplets)
    assert embedding.misordered_triplets(good, [embedding.Triplet("a", "c", "b")])
    for check in (embedding.norm_problems, embedding.range_problems, embedding.similarity_problems):
        assert check({}) == embedding.NO_VECTORS  # no vectors never passes


def test_bundled_snippets_and_bad_triplets(tmp_path):
    snippets = embedding.load_snippets(DATA / "embedding_snippets.json")
    assert len(snippets.snippets) >= embedding.BATCH_SIZE and snippets.triplets
    bad = tmp_path / "s.json"
    bad.write_text(
        json.dumps(
            {
                "snippets": {"a": "x"},
                "triplets": [{"anchor": "a", "related": "b", "unrelated": "a"}],
            }
        )
    )
    with pytest.raises(ValueError, match="'b'"):
        embedding.load_snippets(bad)


def test_embedding_server_error_mid_run():
    snippets = embedding.SnippetSet({"a": "x", "b": "y"}, ())
    measured = embedding.measure(FakeClient(fail_after=3), None, snippets, 2, repetitions=3)
    assert measured.error and len(measured.single_ms) == 1 and not measured.batch_ms
    assert rating("embedding", measured.metrics()) == "failed"
    complete = embedding.measure(FakeClient(), None, snippets, 2, repetitions=3)
    assert complete.error is None and len(complete.batch_ms) == 3
    assert complete.metrics()["dimension"] == 2


def test_reading_for_a_missing_value_is_blank():
    assert readings.reading_for(readings.SLOWDOWN_PERCENT, None) == ""
    assert readings.reading_for(readings.SLOWDOWN_PERCENT, -3.0) == "no slowdown over the run"


def stream(times: list[float], tokens: int | None = None) -> RequestResult:
    """A run whose content chunks arrived at ``times`` (seconds after sending)."""
    return RequestResult(
        text="x",
        prompt_tokens=10,
        output_tokens=tokens or len(times),
        ttft_s=times[0],
        e2e_s=times[-1],
        token_times_s=tuple(times),
    )


def test_interactive_steadiness_ignores_jitter_between_single_tokens():
    """Tokens every 20 ms ± 8 ms: the per-gap CV is large, the pace per second is steady."""
    times, t = [], 0.2
    for i in range(500):
        t += 0.020 + (0.008 if i % 2 else -0.008)
        times.append(t)
    measured = interactive.summarise((stream(times), stream(times)), stall_ms=250)
    assert measured.itl_cv > 30
    assert measured.steadiness < 3
    assert measured.stalls_per_run == 0 and not measured.stall_gaps_ms


def test_interactive_stalls_are_counted_per_run_with_the_longest():
    steady = [0.2 + 0.02 * i for i in range(300)]
    stalled = steady[:100] + [t + 0.4 for t in steady[100:200]] + [t + 0.7 for t in steady[200:]]
    measured = interactive.summarise((stream(stalled), stream(stalled), stream(steady)), 250)
    assert measured.stalls_per_run == 2
    assert len(measured.stall_gaps_ms) == 4
    assert max(measured.stall_gaps_ms) == pytest.approx(420, abs=1)
    record = measured.metrics()
    assert record["stalls_total"] == 4 and record["longest_stall_ms"] == pytest.approx(420, abs=1)
    assert record["steadiness_cv_percent"] > 10  # the stalled windows are visibly slower


def test_interactive_short_replies_have_no_pace_and_broken_streams_are_not_measured():
    short = interactive.summarise((result(tokens=10), result(tokens=10)))
    assert short.steadiness is None and short.too_short_for_pace
    assert short.metrics()["steadiness_note"].startswith("n/a")
    broken = interactive.summarise((result(tokens=8, chunks=1), result(tokens=8, chunks=1)))
    assert broken.steadiness is None and not broken.too_short_for_pace
    with pytest.raises(AssertionError, match="not measured"):
        at_most("pace", broken.steadiness, 20, "%", "")


def test_interactive_record_keeps_samples_and_intervals():
    runs = tuple(stream([0.1 + i * (0.01 + k / 1000) for i in range(50)]) for k in range(5))
    record = interactive.summarise(runs, 250, "precision reached", 3.0).metrics()
    speed = record["measurements"]["tokens_per_second"]
    assert len(speed["samples"]) == 5 and speed["count"] == 5
    assert speed["low"] == min(speed["samples"]) and speed["high"] == max(speed["samples"])
    assert speed["low"] <= record["tokens_per_second"] <= speed["high"]
    assert record["precision"]["stopped_because"] == "precision reached"
    assert record["precision"]["reached"] is False  # 5 runs spread over ±20 %
    assert record["noisy"] is True


def test_interactive_rating_is_not_moved_by_steadiness_within_its_limit():
    """Two cells at the same speed rate the same whether their pace CV is 3 % or 18 %; a pace
    over the limit, or stalls, make the profile poor."""
    limits = InteractiveThresholds()
    steady = [0.2 + 0.01 * i for i in range(300)]
    uneven = [t + (0.004 if (i // 50) % 2 else 0.0) * (i % 50) for i, t in enumerate(steady)]
    calm = interactive.summarise((stream(steady), stream(steady)), 250)
    jittery = interactive.summarise((stream(uneven), stream(uneven)), 250)
    assert jittery.steadiness > calm.steadiness
    assert jittery.steadiness < limits.max_variance
    calm_rating = rating("interactive", calm.metrics())
    assert calm_rating == rating("interactive", jittery.metrics()) == "excellent"
    strict = Settings(thresholds=Thresholds(interactive=InteractiveThresholds(max_variance=1e-4)))
    assert rating("interactive", jittery.metrics(), strict) == "poor"
