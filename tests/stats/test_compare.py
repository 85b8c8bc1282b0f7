"""Statistics of arm comparisons checked against hand computations, scipy and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from reglab.stats.compare import (
    MIN_SEEDS,
    describe,
    describe_in_range,
    holm,
    paired_compare,
    probability_of_improvement,
)

ARM = [0.912, 0.925, 0.907, 0.931, 0.918, 0.922, 0.915, 0.929]
BASE = [0.905, 0.921, 0.910, 0.920, 0.911, 0.919, 0.903, 0.924]


# -- describe ---------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.95, 0.90, 0.99])
def test_describe_ci_is_the_student_t_interval(confidence: float) -> None:
    values = [0.91, 0.93, 0.90, 0.94, 0.92, 0.935]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(1 - (1 - confidence) / 2, df=n - 1) * sd / math.sqrt(n)

    s = describe(values, confidence)
    assert s.n == n
    assert s.mean == pytest.approx(mean, abs=1e-15)
    assert s.std == pytest.approx(sd, rel=1e-12)
    assert s.ci_low == pytest.approx(mean - half, rel=1e-12)
    assert s.ci_high == pytest.approx(mean + half, rel=1e-12)
    # and it is the interval scipy itself gives
    lo, hi = stats.t.interval(confidence, n - 1, loc=mean, scale=stats.sem(values))
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi), rel=1e-12)


def test_describe_small_samples() -> None:
    empty = describe([])
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.ci_low)
    one = describe([0.5])
    assert one.n == 1 and one.mean == 0.5
    assert math.isnan(one.std) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    same = describe([0.7, 0.7, 0.7])
    assert same.std == pytest.approx(0.0, abs=1e-12)
    assert same.ci_low == pytest.approx(0.7) and same.ci_high == pytest.approx(0.7)
    assert set(describe([1.0, 2.0]).to_dict()) == {"n", "mean", "std", "ci_low", "ci_high"}


# -- paired comparison -----------------------------------------------------------------------


def test_paired_compare_matches_scipy() -> None:
    c = paired_compare(ARM, BASE)
    d = np.subtract(ARM, BASE)
    assert c.n == len(ARM)
    assert c.mean_diff == pytest.approx(d.mean(), rel=1e-12)
    assert c.t_pvalue == pytest.approx(stats.ttest_rel(ARM, BASE).pvalue, rel=1e-12)
    assert c.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-12)
    # the interval is the t-interval of the per-seed differences (paired, not two-sample)
    s = describe(d)
    assert (c.ci_low, c.ci_high) == pytest.approx((s.ci_low, s.ci_high), rel=1e-12)
    assert c.ci_low < c.mean_diff < c.ci_high
    wins = np.mean((d > 0) + 0.5 * (d == 0))
    assert c.prob_improvement == pytest.approx(wins)
    assert not c.underpowered


def test_paired_compare_is_directional_and_symmetric() -> None:
    ab, ba = paired_compare(ARM, BASE), paired_compare(BASE, ARM)
    assert ab.mean_diff == pytest.approx(-ba.mean_diff)
    assert ab.t_pvalue == pytest.approx(ba.t_pvalue)
    assert ab.prob_improvement == pytest.approx(1 - ba.prob_improvement)


def test_paired_design_removes_between_seed_variance() -> None:
    # seeds differ a lot, but the arm is better by ~0.01 on every one of them
    base = [0.80, 0.95, 0.70, 0.90, 0.85, 0.75]
    arm = [b + 0.01 + 0.001 * i for i, b in enumerate(base)]
    paired = paired_compare(arm, base)
    unpaired = stats.ttest_ind(arm, base).pvalue
    assert paired.t_pvalue < 1e-4 < 0.5 < unpaired
    assert paired.prob_improvement == 1.0


def test_paired_compare_degenerate_cases() -> None:
    same = paired_compare([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert same.mean_diff == 0.0 and same.t_pvalue == 1.0 and same.wilcoxon_pvalue == 1.0
    assert same.prob_improvement == 0.5
    constant = paired_compare([0.91, 0.81, 0.71], [0.9, 0.8, 0.7])  # identical non-zero differences
    assert constant.t_pvalue == 0.0 and constant.prob_improvement == 1.0
    single = paired_compare([0.9], [0.8])
    assert single.n == 1 and single.t_pvalue == 1.0 and math.isnan(single.ci_low)
    with pytest.raises(ValueError, match="same length"):
        paired_compare([0.1, 0.2], [0.1])


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_underpowered_below_five_seeds(n: int) -> None:
    c = paired_compare(ARM[:n], BASE[:n])
    assert MIN_SEEDS == 5
    assert c.underpowered is (n < 5)
    assert c.to_dict()["underpowered"] is (n < 5)


# -- Holm ---------------------------------------------------------------------------------------


def test_holm_textbook_example() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_properties() -> None:
    assert holm([]) == []
    assert holm([0.02]) == pytest.approx([0.02])
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 8))
        adj = np.array(holm(p.tolist()))
        assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
        assert np.all(adj <= np.minimum(1.0, p * len(p)) + 1e-15)  # never worse than Bonferroni
        order = np.argsort(p)
        assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in the raw p-values


def test_holm_caps_at_one() -> None:
    adj = holm([0.5, 0.6, 0.9])
    assert adj == pytest.approx([1.0, 1.0, 1.0])


# -- probability of improvement ----------------------------------------------------------------


def test_probability_of_improvement_counts_ties_as_half() -> None:
    p, lo, hi = probability_of_improvement([0.01, -0.02, 0.0, 0.0])
    assert p == pytest.approx(0.5)
    assert 0.0 <= lo <= p <= hi <= 1.0
    assert probability_of_improvement([0.0, 0.0, 0.0])[0] == 0.5
    assert probability_of_improvement([0.0, 0.1, 0.2, 0.3])[0] == pytest.approx(0.875)
    assert probability_of_improvement([1.0, 2.0]) == (1.0, 1.0, 1.0)
    assert probability_of_improvement([-1.0, -2.0]) == (0.0, 0.0, 0.0)
    assert all(math.isnan(v) for v in probability_of_improvement([]))


def test_probability_of_improvement_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        d = np.round(rng.normal(0.005, 0.01, size=rng.integers(3, 12)), 3)  # rounding makes ties
        p, lo, hi = probability_of_improvement(d.tolist())
        assert 0.0 <= lo <= p <= hi <= 1.0
    # deterministic for a given seed, and a wider interval at lower confidence is impossible
    d = [0.01, -0.01, 0.02, 0.0, 0.03, -0.005, 0.01]
    assert probability_of_improvement(d) == probability_of_improvement(d)
    _, lo95, hi95 = probability_of_improvement(d, confidence=0.95)
    _, lo80, hi80 = probability_of_improvement(d, confidence=0.80)
    assert lo95 <= lo80 <= hi80 <= hi95


# -- calibration by simulation -------------------------------------------------------------------


def test_ci_of_mean_difference_has_nominal_coverage() -> None:
    """2000 studies of 10 paired seeds with a known true improvement: the 95 % CI of the mean
    difference covers it in 93-97 % of them; with no true difference it excludes 0 in ~5 %."""
    rng = np.random.default_rng(12345)
    reps, n, true_diff = 2000, 10, 0.004
    covered = false_alarm = 0
    for r in range(reps):
        seed_effect = rng.normal(0.9, 0.02, size=n)  # shared by both arms of a seed (pairing)
        base = seed_effect + rng.normal(0, 0.005, size=n)
        arm = seed_effect + true_diff + rng.normal(0, 0.005, size=n)
        null = seed_effect + rng.normal(0, 0.005, size=n)
        # describe() of the differences is paired_compare's interval (checked exactly on a sample;
        # paired_compare also bootstraps and runs Wilcoxon, too slow for all 2000)
        s, s0 = describe(arm - base), describe(null - base)
        if r % 100 == 0:
            c = paired_compare(arm, base)
            assert (c.ci_low, c.ci_high) == (s.ci_low, s.ci_high)
            assert (paired_compare(null, base).t_pvalue < 0.05) == (not s0.ci_low <= 0 <= s0.ci_high)
        covered += s.ci_low <= true_diff <= s.ci_high
        false_alarm += not s0.ci_low <= 0.0 <= s0.ci_high
    assert 0.93 <= covered / reps <= 0.97
    assert 0.03 <= false_alarm / reps <= 0.07


# -- intervals of bounded metrics (issue 15) -------------------------------------------------------

_FRACTIONS = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=12)


@settings(max_examples=300, deadline=None)
@given(_FRACTIONS, st.sampled_from([0.9, 0.95, 0.99]))
@example([1.0] * 5, 0.95)  # every seed at 100 %
@example([0.0] * 5, 0.95)
@example([1.0, 1.0, 1.0, 1.0, 0.0], 0.95)
@example([0.8767, 1.0, 0.92], 0.95)  # a t-interval of these passes 100 %
@example([1e-12, 0.0, 0.0], 0.99)
def test_accuracy_intervals_stay_in_0_1_and_contain_the_mean(values: list[float], confidence: float) -> None:
    s = describe_in_range(values, 0.0, 1.0, confidence)
    t = describe(values, confidence)
    assert s.mean == t.mean and s.std == t.std and s.n == t.n  # only the interval differs
    assert 0.0 <= s.ci_low <= s.mean <= s.ci_high <= 1.0
    if t.std == 0:
        assert s.ci_low == s.ci_high == s.mean


def test_the_transformed_interval_matches_the_t_interval_far_from_the_bounds() -> None:
    values = [0.50, 0.52, 0.49, 0.51, 0.50]
    s, t = describe_in_range(values, 0.0, 1.0), describe(values)
    assert (s.ci_low, s.ci_high) == pytest.approx((t.ci_low, t.ci_high), abs=2e-4)


def test_near_a_bound_the_interval_is_asymmetric_and_inside() -> None:
    values = [1.0, 0.97, 1.0]  # mean 0.99: the t-interval's upper end passes 100 %
    t = describe(values)
    assert t.ci_high > 1.0
    s = describe_in_range(values, 0.0, 1.0)
    assert s.ci_high < 1.0 and s.mean - s.ci_low > s.ci_high - s.mean
    rmse = describe_in_range([0.01, 0.6, 0.02], 0.0, math.inf)  # a t-interval would go below 0
    assert describe([0.01, 0.6, 0.02]).ci_low < 0 < rmse.ci_low < rmse.mean < rmse.ci_high
    r2 = describe_in_range([0.99, 0.5, 0.98], -math.inf, 1.0)  # R²: bounded above only
    assert r2.ci_low < r2.mean < r2.ci_high < 1.0
    free = describe_in_range([1.0, 2.0, 4.0])  # no bound: the t-interval itself
    assert (free.ci_low, free.ci_high) == (describe([1.0, 2.0, 4.0]).ci_low, describe([1.0, 2.0, 4.0]).ci_high)
