"""Intervals, the stopping rule, verdicts, ties and changes on samples with known distributions."""

from __future__ import annotations

import random

import pytest

from pytest_llmbench import stats


def test_t_quantiles_match_published_tables():
    for df, expected in ((1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042)):
        assert stats.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)
    assert stats.t_cdf(0.0, 7) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("n", "ranks", "coverage"),
    [(3, (1, 3), 0.75), (5, (1, 5), 0.9375), (6, (1, 6), 0.96875), (9, (2, 8), 0.9609), (20, (6, 15), 0.9586)],
)  # fmt: skip
def test_median_interval_uses_the_order_statistics_of_the_binomial(n, ranks, coverage):
    estimate = stats.median_interval([float(i) for i in range(1, n + 1)])
    assert (estimate.low, estimate.high) == ranks
    assert estimate.coverage == pytest.approx(coverage, abs=1e-4)
    assert estimate.method == "order statistics"


def test_median_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = random.Random(7)
    hits = 0
    trials = 2000
    for _ in range(trials):
        sample = [rng.expovariate(1.0) for _ in range(20)]  # skewed; true median ln 2
        estimate = stats.median_interval(sample)
        hits += estimate.low <= 0.6931 <= estimate.high
    assert 0.93 <= hits / trials <= 0.98


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = random.Random(11)
    covered = 0
    for _ in range(2000):
        estimate = stats.mean_interval([rng.gauss(10, 2) for _ in range(8)])
        covered += estimate.low <= 10 <= estimate.high
    assert 0.93 <= covered / 2000 <= 0.97


def test_stop_rule_stops_when_precise_and_keeps_going_when_noisy():
    rule = stats.StopRule(target_precision_percent=3, minimum=3, maximum=10, time_budget_s=60)
    assert rule.decide([100.0, 100.5], 1.0) is None  # below the minimum
    assert rule.decide([100.0, 100.5, 99.8], 1.0) is None  # 3 runs: only a 75 % interval
    assert rule.decide([100.0, 100.5, 99.8, 100.2, 99.9, 100.1], 1.0) == "precision reached"
    noisy = [100.0, 120.0, 85.0]
    assert rule.decide(noisy, 1.0) is None
    assert rule.decide(noisy * 4, 1.0) == "maximum repetitions"
    assert rule.decide(noisy, 61.0) == "time budget spent"
    assert stats.StopRule(fixed=2).decide([1.0, 50.0], 0.0) == "fixed count of 2"
    assert stats.StopRule(fixed=2).decide([1.0], 1e9) is None  # a fixed count ignores time


def test_stop_rule_on_a_realistic_machine_reaches_three_percent_within_ten_runs():
    rng = random.Random(3)
    rule = stats.StopRule()
    samples: list[float] = []
    while (reason := rule.decide(samples, 0.0)) is None:
        samples.append(rng.gauss(78.0, 1.5))  # ~2 % run-to-run spread
    assert reason == "precision reached" and len(samples) <= 10


def test_verdict_is_decided_by_the_median_and_marked_borderline_across_the_threshold():
    estimate = stats.Estimate(10.0, 9.0, 11.0, 5, 0.94, "order statistics")
    assert stats.verdict(estimate, 5.0, higher_is_better=True) == stats.PASS
    assert stats.verdict(estimate, 9.5, higher_is_better=True) == stats.BORDERLINE_PASS
    assert stats.verdict(estimate, 10.5, higher_is_better=True) == stats.BORDERLINE_FAIL
    assert stats.verdict(estimate, 12.0, higher_is_better=True) == stats.FAIL
    assert stats.verdict(estimate, 10.5, higher_is_better=False) == stats.BORDERLINE_PASS


def test_overlapping_intervals_are_tied():
    a = stats.median_interval([77.0, 78.0, 79.0, 80.0, 78.5])
    b = stats.median_interval([78.5, 79.5, 80.5, 81.0, 79.0])
    c = stats.median_interval([90.0, 91.0, 92.0, 91.5, 90.5])
    assert stats.tied(a, b) and not stats.tied(a, c)
    assert stats.tied(a, None)


def test_welch_change_flags_a_real_slowdown_and_not_noise():
    rng = random.Random(5)
    base = [rng.gauss(100, 3) for _ in range(6)]
    same = [rng.gauss(100, 3) for _ in range(6)]
    slower = [0.8 * v for v in (rng.gauss(100, 3) for _ in range(6))]
    noise = stats.welch_change(base, same)
    assert noise is not None and noise.percent(noise.high) > -5  # not 95 % sure of a 5 % loss
    real = stats.welch_change(base, slower)
    assert real is not None and real.high < 0
    assert real.percent(real.high) < -10  # 95 % sure the slowdown is over 10 %
    assert stats.welch_change([1.0], [2.0, 3.0]) is None


def test_welch_interval_covers_the_true_difference_with_unequal_spreads():
    rng = random.Random(13)
    covered = 0
    for _ in range(2000):
        change = stats.welch_change(
            [rng.gauss(100, 1) for _ in range(5)], [rng.gauss(95, 6) for _ in range(7)]
        )
        covered += change.low <= -5 <= change.high
    assert 0.93 <= covered / 2000 <= 0.97
