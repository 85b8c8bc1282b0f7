"""Adaptive seeds: the group-sequential boundaries against published tables, and the proof by
simulation that the verdicts keep their error rates although the study peeks after every round.

The simulations use a fixed NumPy seed, so they are deterministic; each asserted rate also has a
margin of about three binomial standard errors (sqrt(p (1 - p) / reps)) above its target, so a
change of NumPy's generator cannot make them flake. Run with ``-s`` to see the figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reglab.stats.sequential import Design, analyse, boundaries, looks, seeds_for_power, simulate

REPS = 4000
ALPHA = 0.05


def _margin(p: float, reps: int = REPS) -> float:
    return 3 * math.sqrt(p * (1 - p) / reps)


def test_looks() -> None:
    assert looks(5, 40, 5) == [5, 10, 15, 20, 25, 30, 35, 40]
    assert looks(5, 12, 5) == [5, 10, 12]
    assert looks(10, 10, 5) == [10]


def test_boundaries_match_published_tables() -> None:
    """Five equally spaced looks, two-sided alpha 0.05: Lan-DeMets O'Brien-Fleming-type (gsDesign's
    sfLDOF, Jennison & Turnbull 2000 table 7.6) and Pocock-type (ldbounds) boundaries."""
    t = tuple(i / 5 for i in range(1, 6))
    assert boundaries(t, 0.05, "obrien-fleming") == pytest.approx((4.8769, 3.3569, 2.6803, 2.2898, 2.0310), abs=2e-3)
    assert boundaries(t, 0.05, "pocock") == pytest.approx((2.4380, 2.4268, 2.4101, 2.3966, 2.3859), abs=2e-3)
    assert boundaries((1.0,), 0.05) == pytest.approx((1.95996,), abs=1e-4)  # one look: the fixed test


def _normal(rng: np.random.Generator, true: np.ndarray, sd: float, n: int, reps: int = REPS) -> np.ndarray:
    return true[None, :, None] + sd * rng.standard_normal((reps, len(true), n))


def _bounded(rng: np.random.Generator, true: np.ndarray, n: int, reps: int = REPS, test: int = 1000) -> np.ndarray:
    """Test accuracies near 90 % of an arm and the baseline on the same seed: a seed effect
    (split, initialization) shared by both plus binomial test-set noise; differences of counts."""
    seed_effect = 0.01 * rng.standard_normal((reps, 1, n))
    base = rng.binomial(test, np.clip(0.9 + seed_effect, 0, 1)) / test
    arm = (
        rng.binomial(
            test,
            np.clip(0.9 + true[None, :, None] + seed_effect + 0.005 * rng.standard_normal((reps, len(true), n)), 0, 1),
        )
        / test
    )
    return arm - base


def _false(s: object, true: np.ndarray, eq: float | None) -> np.ndarray:
    v = s.verdict  # type: ignore[attr-defined]
    wrong = ((v == 1) & (true <= 0)) | ((v == -1) & (true >= 0))
    if eq:
        wrong |= (v == 2) & (np.abs(true) >= eq)
    return wrong


@pytest.mark.parametrize("kind", ["normal", "bounded"])
def test_no_difference_keeps_the_family_wise_error(kind: str) -> None:
    """Four arms equal to the baseline, decided after 5, 10, ..., 40 seeds: the chance that any arm
    is declared better or worse stays <= 5 %, and the final intervals cover the true 0."""
    rng = np.random.default_rng(2023)
    true = np.zeros(4)
    diffs = _normal(rng, true, 0.01, 40) if kind == "normal" else _bounded(rng, true, 40)
    s = simulate(diffs, Design(tuple(looks(5, 40, 5)), ALPHA, arms=4, equivalence=0.01))
    fwer = float(_false(s, true, 0.01).any(axis=1).mean())
    cover = float(((s.low <= 0) & (s.high >= 0)).mean())
    print(f"\n{kind}: family-wise false verdicts {fwer:.4f} over {REPS} replications, coverage {cover:.4f}")
    assert fwer <= ALPHA + _margin(ALPHA)
    assert cover >= 0.95


def test_peeking_without_the_design_would_inflate_the_error() -> None:
    """The naive alternative the design replaces: a plain t-test after every round, stopping at
    the first p < 0.05, is wrong far more often than 5 % (what the boundaries prevent)."""
    from scipy.stats import t

    rng = np.random.default_rng(7)
    d = rng.standard_normal((REPS, 40))
    hit = np.zeros(REPS, dtype=bool)
    for n in looks(5, 40, 5):
        x = d[:, :n]
        stat = np.abs(x.mean(1)) / (x.std(1, ddof=1) / math.sqrt(n))
        hit |= stat > t.isf(0.025, n - 1)
    print(f"\nnaive peeking: false positives {hit.mean():.4f}")
    assert hit.mean() > 0.1


@pytest.mark.parametrize("kind", ["normal", "bounded"])
def test_intervals_cover_and_equivalence_is_sound(kind: str) -> None:
    """Arms at -2, -1 (on the margin), 0, +0.5 and +1 pp (on the margin) with a 1 pp margin: each
    arm's interval at its stopping look covers its true difference >= 95 % of the time, and the
    family-wise rate of false verdicts (a wrong sign, or "equivalent" when the true difference is
    on or outside the margin) stays <= 5 %."""
    rng = np.random.default_rng(11)
    true = np.array([-0.02, -0.01, 0.0, 0.005, 0.01])
    diffs = _normal(rng, true, 0.01, 40) if kind == "normal" else _bounded(rng, true, 40)
    s = simulate(diffs, Design(tuple(looks(5, 40, 5)), ALPHA, arms=len(true), equivalence=0.01))
    cover = ((s.low <= true) & (true <= s.high)).mean(axis=0)
    fwer = float(_false(s, true, 0.01).any(axis=1).mean())
    print(f"\n{kind}: coverage per arm {np.round(cover, 4).tolist()}, family-wise false verdicts {fwer:.4f}")
    assert cover.min() >= 0.95
    assert fwer <= ALPHA + _margin(ALPHA)


def test_fewer_seeds_than_the_fixed_design_of_the_same_power() -> None:
    """One arm 0.6 standard deviations better than the baseline, max 40 seeds: the adaptive design
    reaches the right verdict ("better") with fewer seeds on average than the fixed design that has
    the same power."""
    rng = np.random.default_rng(5)
    s = simulate(_normal(rng, np.array([0.6]), 1.0, 40), Design(tuple(looks(5, 40, 5)), ALPHA, arms=1))
    power = float((s.verdict[:, 0] == 1).mean())
    fixed = seeds_for_power(1.0, 0.6, ALPHA, power)
    mean_seeds = float(s.seeds.mean())
    print(f"\npower {power:.4f}: adaptive {mean_seeds:.1f} seeds on average, the fixed design {fixed} seeds")
    assert fixed is not None and mean_seeds < fixed


def test_analyse_agrees_with_the_simulation() -> None:
    """The study's per-arm function and the vectorized simulation apply the same rules."""
    rng = np.random.default_rng(3)
    true = np.array([-0.02, 0.0, 0.004, 0.02])
    diffs = _normal(rng, true, 0.01, 20, reps=50)
    design = Design(tuple(looks(5, 20, 5)), ALPHA, arms=4, equivalence=0.01)
    s = simulate(diffs, design)
    code = {"open": 0, "better": 1, "worse": -1, "equivalent": 2}
    for r in range(50):
        for a in range(4):
            out = analyse(diffs[r, a].tolist(), design)
            assert code[out.verdict] == s.verdict[r, a]
            assert out.seeds_used == s.seeds[r, a]
            assert out.intervals[-1].low == pytest.approx(s.low[r, a])


def test_analyse_waits_for_the_next_look_and_respects_the_direction() -> None:
    design = Design((5, 10, 15), ALPHA, arms=1, equivalence=0.01)
    out = analyse([0.01, 0.012, 0.008, 0.011, 0.009, 0.01, 0.01], design)  # decided at 5, 7 seeds stored
    assert (out.verdict, out.decided_at, out.seeds_used) == ("better", 5, 5)
    assert analyse([0.01, 0.012, 0.008, 0.011, 0.009], design, higher_is_better=False).verdict == "worse"
    open_ = analyse([0.01, -0.01, 0.02, -0.02, 0.0, 0.01], design)
    assert (open_.verdict, open_.pending, len(open_.intervals)) == ("open", 10, 1)
    assert analyse({0: 0.01, 2: 0.0}, design).pending == 5  # seeds missing: waits
    assert 0 < out.p_value < 0.05 < open_.p_value


def test_seeds_for_power() -> None:
    """A textbook value: a standardized difference of 0.5 needs 34 pairs for power 0.8 (paired
    t-test, two-sided 0.05)."""
    assert seeds_for_power(1.0, 0.5) == 34
    assert seeds_for_power(1.0, 0.0001, most=50) is None


def test_the_repeated_p_value_agrees_with_the_verdict() -> None:
    """p < alpha exactly when the arm was declared better or worse (at the look it stopped)."""
    rng = np.random.default_rng(0)
    design = Design((5, 10, 15), ALPHA, arms=2)
    for _ in range(150):
        out = analyse((0.5 * rng.standard_normal(15) + 0.3).tolist(), design)
        assert (out.verdict in ("better", "worse")) == (out.p_value < ALPHA), out
