"""The serving profile: objectives, capacity and saturation on known requests, the load
generator's prompts, and a real sweep against the embedded model."""

from __future__ import annotations

import random

from pytest_llmbench.client import RequestResult
from pytest_llmbench.config import ServingThresholds
from pytest_llmbench.workloads import serving

SLO = {"ttft_ms": 1000.0, "tpot_ms": 100.0, "e2e_ms": None}


def reply(ttft: float, tokens: int, tpot: float) -> RequestResult:
    times = tuple(ttft + i * tpot for i in range(tokens))
    return RequestResult("x", 50, tokens, ttft, times[-1], times)


def level(users: int, results: list[RequestResult | None], wall: float = 10.0) -> serving.Level:
    outcomes = tuple(
        serving.Outcome(0.0, r, None if r else "RequestFailed: stream broke off") for r in results
    )
    return serving.Level("concurrency", users, outcomes, wall, SLO, 90.0)


def test_a_request_meets_the_objectives_only_when_every_one_holds():
    lv = level(1, [reply(0.5, 20, 0.05), reply(1.5, 20, 0.05), reply(0.5, 20, 0.2), None])
    assert [lv.meets(r) for r in lv.done] == [True, False, False]
    assert lv.share_meeting == 25.0  # the failed request counts against the share
    figures = lv.metrics()
    assert figures["errors"] == 1 and figures["first_error"].startswith("RequestFailed")
    assert figures["goodput_rps"] == 0.1 and figures["requests_per_second"] == 0.3
    assert figures["ttft_ms"]["p50"] == 500.0 and figures["output_tokens_per_second"] == 6.0


def test_capacity_is_the_most_users_within_the_objectives_said_in_words():
    fast, slow = reply(0.3, 30, 0.05), reply(0.3, 30, 0.15)
    sweep = serving.Sweep(
        levels=[level(1, [fast] * 4), level(2, [fast] * 4), level(4, [slow] * 4)],
        min_share=90.0,
        slo=SLO,
    )
    assert sweep.capacity == 2
    assert sweep.capacity_words() == (
        "serves 2 concurrent users with TTFT ≤ 1 s and ≥ 10 t/s each (for 90 % of requests)"
    )
    assert (
        serving.Sweep(levels=[level(1, [slow])], slo=SLO)
        .capacity_words()
        .startswith("serves no user")
    )


def test_the_sweep_stops_when_throughput_stalls_while_latency_grows_or_the_share_collapses():
    one = level(1, [reply(0.2, 40, 0.05)] * 4, wall=8.0)  # 20 t/s
    flat = level(2, [reply(0.2, 40, 0.09)] * 4, wall=7.9)  # same total, slower replies
    assert "saturated" in serving.saturated(one, flat)
    collapse = level(2, [reply(3.0, 40, 0.05)] * 4, wall=4.0)
    assert "fell to 0 %" in serving.saturated(one, collapse)
    better = level(2, [reply(0.2, 40, 0.05)] * 8, wall=8.0)
    assert serving.saturated(one, better) is None


def test_prompts_are_distinct_and_about_the_requested_length():
    settings = ServingThresholds(isl=100, isl_stdev=10, osl=32, osl_stdev=4)
    words = ("the quick brown fox jumps over the lazy dog " * 50).split()
    requests = serving.make_requests(words, 1.25, 40, settings, random.Random(0), "c4")
    assert len({r.prompt for r in requests}) == 40
    lengths = [len(r.prompt.split()) - 3 for r in requests]
    assert 60 <= sum(lengths) / len(lengths) <= 100  # ~100 tokens at 1.25 tokens per word
    assert all(r.output_tokens >= 1 for r in requests)


def test_a_real_sweep_finds_the_capacity_at_loose_objectives(bench_project):
    thresholds = {
        "thresholds": {
            "serving": {
                "concurrency": [1, 2],
                "requests_per_level": 3,
                "isl": 32,
                "isl_stdev": 4,
                "osl": 8,
                "osl_stdev": 1,
                "slo": {"ttft_ms": 120000, "tpot_ms": 60000, "min_share": 50},
            }
        }
    }
    project = bench_project.write(thresholds=thresholds, modules=("test_serving.py",))
    result = project.run("-m", "serving", "-p", "no:xdist")
    result.assert_outcomes(passed=2)
    (cell,) = project.report()["results"]
    swept = cell["profiles"]["serving"]["metrics"]
    assert swept["capacity_users"] == 2
    assert [lv["level"] for lv in swept["levels"]] == [1, 2]
    first = swept["levels"][0]
    assert first["errors"] == 0 and first["requests"] == 3
    assert 20 <= first["prompt_tokens_mean"] <= 60  # the server's count, about isl
    assert cell["server"]["serving_command"][-1] != "1"  # its own server
    assert "--parallel" in cell["server"]["serving_command"]
    command = cell["server"]["serving_command"]
    assert command[command.index("--parallel") + 1] == "2"
