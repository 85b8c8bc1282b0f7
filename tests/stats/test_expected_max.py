"""Expected best score of n trials (Dodge et al. 2019) against hand computations and brute-force
enumeration of every draw with replacement; the running best over trials."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from reglab.stats.expected_max import best_so_far, expected_max

SCORES = [0.91, 0.87, 0.95, 0.90, 0.93, 0.88]


def brute_force(scores: list[float], n: int) -> tuple[float, float]:
    """Mean and std of max over all len(scores)**n equally likely draws with replacement."""
    maxima = [max(draw) for draw in itertools.product(scores, repeat=n)]
    return float(np.mean(maxima)), float(np.std(maxima))


def test_n1_is_the_mean_of_the_scores() -> None:
    first = expected_max(SCORES)[0]
    assert first["n"] == 1
    assert first["mean"] == pytest.approx(np.mean(SCORES), abs=1e-15)
    assert first["std"] == pytest.approx(np.std(SCORES), abs=1e-15)  # population std of one draw


def test_large_n_tends_to_the_max() -> None:
    curve = expected_max(SCORES, max_n=300)
    assert len(curve) == 300
    assert curve[-1]["mean"] == pytest.approx(max(SCORES), abs=1e-12)
    assert curve[-1]["std"] == pytest.approx(0.0, abs=1e-6)
    # the gap to the max shrinks geometrically: (5/6)^n of the way at most
    for row in curve[::25]:
        assert max(SCORES) - row["mean"] <= (max(SCORES) - min(SCORES)) * (5 / 6) ** row["n"] + 1e-15


def test_monotone_non_decreasing_and_bounded() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.normal(0.9, 0.03, size=int(rng.integers(1, 15))).tolist()
        means = [r["mean"] for r in expected_max(scores, max_n=40)]
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(means))
        assert min(scores) - 1e-12 <= means[0] and means[-1] <= max(scores) + 1e-12


def test_small_example_by_hand() -> None:
    # scores 1, 2, 3; best of 2 draws: P(max=1) = 1/9, P(max=2) = 3/9, P(max=3) = 5/9
    curve = expected_max([3.0, 1.0, 2.0])
    assert [r["n"] for r in curve] == [1, 2, 3]  # max_n defaults to the number of scores
    assert curve[0]["mean"] == pytest.approx(2.0)
    assert curve[1]["mean"] == pytest.approx(22 / 9)
    assert curve[1]["std"] == pytest.approx(math.sqrt(38) / 9)  # E[X^2] = 58/9
    # best of 3: P(max=1) = 1/27, P(max=2) = 7/27, P(max=3) = 19/27
    assert curve[2]["mean"] == pytest.approx((1 + 14 + 57) / 27)


@pytest.mark.parametrize("scores", [[0.5, 0.7, 0.6, 0.9], [0.8, 0.8, 0.6, 0.8, 0.7], [0.4]])
def test_matches_brute_force_enumeration(scores: list[float]) -> None:
    """Ties included: the formula over sorted values still gives P(max = v) correctly."""
    for row in expected_max(scores, max_n=4):
        mean, std = brute_force(scores, row["n"])
        assert row["mean"] == pytest.approx(mean, abs=1e-12)
        assert row["std"] == pytest.approx(std, abs=1e-9)


def test_non_finite_scores_are_ignored_and_empty_gives_nothing() -> None:
    assert expected_max([]) == []
    assert expected_max([float("nan"), float("inf")]) == []
    assert expected_max([0.5, float("nan"), 0.7]) == expected_max([0.5, 0.7])


def test_best_so_far() -> None:
    values = [None, 0.5, 0.3, 0.7, None, float("nan"), 0.6, 0.9]
    assert best_so_far(values) == [None, 0.5, 0.5, 0.7, 0.7, 0.7, 0.7, 0.9]
    assert best_so_far(values, maximize=False) == [None, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    assert best_so_far([]) == []
    assert best_so_far([None, None]) == [None, None]
    out = best_so_far([1, 2])
    assert out == [1.0, 2.0] and all(isinstance(v, float) for v in out)
