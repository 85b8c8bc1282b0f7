"""Adaptive seeds: a group-sequential design whose verdicts stay valid although the study looks at
its results after every round of seeds (optional stopping would otherwise inflate false positives).

Method (stated in the report): a two-sided group-sequential test of the paired differences
(arm - baseline, one per seed) at the planned looks ``min, min + step, ..., max`` seeds, with
Lan & DeMets (1983) alpha spending ("Discrete sequential boundaries for clinical trials",
Biometrika 70:659-663) - Pocock-type by default (it spends early, where an arm's verdict is obvious:
the benchmark's 8 arms need about half the runs of the fixed design), O'Brien-Fleming-type on
request (fewer false "open" verdicts at ``max``, more runs). The boundaries are
computed for the normal (known-variance) case by the recursive numerical integration of Armitage,
McPherson & Rowe (1969) (Jennison & Turnbull 2000, "Group Sequential Methods with Applications to
Clinical Trials", ch. 19) and carried over to the unknown variance (a t statistic with n - 1 degrees
of freedom at each look) by the *significance level approach* of Jennison & Turnbull (2000, sec.
11.3): look k uses the same nominal significance level as the normal design, on the t scale. With
5-40 seeds that alone is slightly liberal (5.3 % for 5 %), so the design's alpha is calibrated on
simulated null paths to the exact level (:func:`t_levels`).

The decisions read *repeated confidence intervals* (Jennison & Turnbull 1989, JRSS B 51:305-361):
mean ± t-critical * s / sqrt(n) at each look, which cover the true difference at every look at once
with probability >= 1 - alpha, so they may be read at whatever look the study stopped:

- better / worse: the (1 - alpha) interval excludes 0;
- equivalent: the same interval lies inside ±equivalence (it covers the true difference, so a true
  difference outside the margin is declared equivalent with probability <= alpha: the interval
  inclusion test, Schuirmann 1987, at the stricter two-sided level);
- open: neither - the arm gets further seeds, up to ``max``.

Multiplicity across the arms compared with the baseline: an alpha split (Bonferroni), alpha / m per
arm, so the family-wise rate of any false verdict stays <= alpha. The simulations in
``tests/stats/test_sequential.py`` and ``benchmarks/adaptive_seeds.py`` measure it.

Pure NumPy/SciPy functions; the study protocol calls them on its stored results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SeqVerdict = Literal["better", "worse", "equivalent", "open"]
Spending = Literal["obrien-fleming", "pocock"]
GRID = 101  # points of the numerical integration per look (odd: Simpson's rule; 1e-7 from the tables)
PATHS = 200_000  # simulated null paths that calibrate the t boundaries (Monte Carlo error ~4 % of alpha / 8)


def looks(minimum: int, maximum: int, step: int) -> list[int]:
    """The seed counts at which the study decides: min, min + step, ..., and max."""
    out = list(range(minimum, maximum + 1, step))
    if out[-1] != maximum:
        out.append(maximum)
    return out


def spent(t: float, alpha: float, kind: Spending = "pocock") -> float:
    """Lan-DeMets spending function: the type-I error spent by information fraction ``t``."""
    from scipy.stats import norm

    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    if kind == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    # per side, as gsDesign's sfLDOF with the one-sided level alpha / 2 (its published boundaries: the tests)
    return float(2 * (2 - 2 * norm.cdf(norm.isf(alpha / 4) / math.sqrt(t))))


def _simpson(n: int) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4, 2
    return w / 3


@functools.lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float, kind: Spending = "pocock") -> tuple[float, ...]:
    """Two-sided z boundaries at the information ``fractions`` (increasing, last 1) that spend
    ``alpha`` by the Lan-DeMets function ``kind``: the test crosses when |Z_k| >= b_k.
    Computed on the score scale B_k = Z_k sqrt(t_k), whose increments are independent normal."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    out: list[float] = []
    x = w = f = None  # grid, weights and sub-density of B on the continuation region of the last look
    prev_t, prev_spent = 0.0, 0.0
    for t in fractions:
        target = spent(t, alpha, kind) - prev_spent
        if f is None:
            b = float(norm.isf(target / 2)) if target > 0 else 40.0
            c = b * math.sqrt(t)
            x = np.linspace(-c, c, GRID)
            w = _simpson(GRID) * (x[1] - x[0])
            f = norm.pdf(x / math.sqrt(t)) / math.sqrt(t)
        else:
            assert x is not None and w is not None
            sd = math.sqrt(t - prev_t)
            fw = f * w

            def excess(b: float, x: np.ndarray, sd: float, fw: np.ndarray, t: float, target: float) -> float:
                """Probability of first crossing at this look with boundary ``b``, minus the target."""
                c = b * math.sqrt(t)
                return float(fw @ (norm.sf((c - x) / sd) + norm.cdf((-c - x) / sd))) - target

            args = (x, sd, fw, t, target)
            if target <= 1e-15 or excess(40.0, *args) >= 0:
                b = 40.0
            elif excess(1e-6, *args) <= 0:  # more to spend than is left (alpha near 1)
                b = 1e-6
            else:
                b = float(brentq(excess, 1e-6, 40.0, args=args, xtol=1e-10))
            c = b * math.sqrt(t)
            y = np.linspace(-c, c, GRID)
            f = norm.pdf((y[:, None] - x[None, :]) / sd) @ fw / sd
            x, w = y, _simpson(GRID) * (y[1] - y[0])
        out.append(b)
        prev_t, prev_spent = t, spent(t, alpha, kind)
    return tuple(out)


@functools.lru_cache(maxsize=64)
def t_levels(seeds: tuple[int, ...], alpha: float, kind: Spending = "pocock") -> tuple[float, ...]:
    """The nominal two-sided level of the paired t-test at each look (seed counts ``seeds``) of a
    design with family level ``alpha``. The normal design's levels (the significance-level approach,
    Jennison & Turnbull 2000, sec. 11.3) are slightly liberal with few seeds (5.3 % instead of 5 % at
    5..40 seeds: the looks share one variance estimate), so the design's alpha is lowered to the
    alpha* whose levels give exactly ``alpha`` for the t statistics. That is measured on simulated
    null paths - exact, because under no difference the t statistics' joint law does not depend on
    the unknown variance - with a fixed seed, so the boundaries are deterministic."""
    from scipy.stats import norm, t

    fractions = tuple(n / seeds[-1] for n in seeds)
    rng = np.random.default_rng(20231983)
    total = np.zeros(PATHS)
    squares = np.zeros(PATHS)
    stats = []
    done = 0
    for n in seeds:  # each round's sum and sum of squares, drawn from their exact laws: any max costs the same
        c = n - done
        chunk = rng.normal(0.0, math.sqrt(c), PATHS)  # sum of c standard normals
        within = rng.chisquare(c - 1, PATHS) if c > 1 else np.zeros(PATHS)  # their squares around their mean
        total += chunk
        squares += within + chunk * chunk / c
        done = n
        var = np.maximum(squares - total * total / n, 0) / (n - 1)
        stats.append(np.abs(total / n) / np.sqrt(var / n))
    tstat = np.stack(stats, axis=1)
    dfs = np.array(seeds) - 1

    def levels(a: float) -> np.ndarray:
        return 2 * norm.sf(np.array(boundaries(fractions, a, kind)))

    def size(a: float) -> float:
        crit = t.isf(levels(a) / 2, dfs)
        return float((tstat > crit).any(axis=1).mean())

    # two Monte Carlo standard errors below alpha: the measured size errs on the safe side
    goal = alpha - 2 * math.sqrt(alpha * (1 - alpha) / PATHS)
    lo, hi = math.log(alpha / 4), math.log(alpha)
    if size(alpha) <= goal:
        return tuple(levels(alpha).tolist())
    for _ in range(25):  # the size grows with alpha*: bisection on log alpha*
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if size(math.exp(mid)) <= goal else (lo, mid)
    return tuple(levels(math.exp(lo)).tolist())


@functools.lru_cache(maxsize=64)
def _level_table(seeds: tuple[int, ...], kind: Spending) -> tuple[np.ndarray, np.ndarray]:
    """log alpha on a grid and the nominal level of each look at that alpha (rows): what the
    repeated p-values interpolate."""
    from scipy.stats import norm

    fractions = tuple(n / seeds[-1] for n in seeds)
    log_alpha = np.linspace(math.log(1e-8), math.log(0.999), 80)
    table = np.array([2 * norm.sf(np.array(boundaries(fractions, math.exp(a), kind))) for a in log_alpha])
    return log_alpha, table


@dataclass(frozen=True)
class Design:
    """The planned sequential design of one study: looks (seed counts), the family-wise ``alpha``
    split over ``arms`` comparisons, the equivalence margin (compare-metric units, None: no
    equivalence verdict) and the spending function."""

    looks: tuple[int, ...]
    alpha: float = 0.05
    arms: int = 1
    equivalence: float | None = None
    spending: Spending = "pocock"

    @property
    def alpha_arm(self) -> float:
        return self.alpha / max(1, self.arms)

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.looks[-1] for n in self.looks)

    @property
    def levels(self) -> tuple[float, ...]:
        """The nominal two-sided level of the t-test at each look (:func:`t_levels`)."""
        return t_levels(self.looks, round(self.alpha_arm, 15), self.spending)

    def t_critical(self, look: int, n: int) -> float:
        """The critical t value at look ``look`` (0-based) with ``n`` pairs (n - 1 degrees of
        freedom; ``n`` is below the look's seeds when runs failed)."""
        from scipy.stats import t

        return math.inf if n < 2 else float(t.isf(self.levels[look] / 2, n - 1))

    @property
    def method(self) -> str:
        """The method in one sentence (the report and the terminal state it)."""
        kind = "O'Brien-Fleming-type" if self.spending == "obrien-fleming" else "Pocock-type"
        eq = f"; equivalent when the interval lies inside ±{self.equivalence:g}" if self.equivalence else ""
        return (
            f"group-sequential paired t-test with Lan-DeMets {kind} alpha spending (Lan & DeMets 1983) at "
            f"{', '.join(map(str, self.looks))} seeds, its nominal levels applied to the t statistics (Jennison & "
            f"Turnbull 2000) and calibrated on simulated null paths to the exact level; repeated "
            f"{1 - self.alpha_arm:.4g} confidence intervals (alpha "
            f"{self.alpha:g} split over {self.arms} arm{'s' * (self.arms != 1)}) cover the true difference at "
            f"every look at once, so each verdict keeps its error rate <= {self.alpha:g} family-wise whenever "
            f"the study stopped{eq}"
        )


@dataclass(frozen=True)
class Look:
    """One look at an arm: ``n`` paired seeds, their mean difference and the repeated interval."""

    seeds: int
    n: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class ArmSequence:
    """One arm's sequential outcome: its verdict, the seed count it was decided at (None: open),
    the intervals at every look so far, and whether it waits for runs of the next look
    (``pending``: the seed count it needs; None when decided or at ``max``)."""

    verdict: SeqVerdict
    decided_at: int | None
    intervals: tuple[Look, ...] = field(default_factory=tuple)
    pending: int | None = None
    p_value: float = 1.0  # the repeated p-value at the last look: the smallest alpha that decides a difference

    @property
    def seeds_used(self) -> int:
        """The seeds this arm ran to: where it was decided, else its last look."""
        if self.decided_at is not None:
            return self.decided_at
        return self.intervals[-1].seeds if self.intervals else 0


def _stats(d: np.ndarray) -> tuple[int, float, float]:
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return 0, math.nan, math.nan
    return n, float(d.mean()), float(d.std(ddof=1)) if n > 1 else math.nan


def _interval(design: Design, look: int, d: np.ndarray) -> tuple[int, float, float, float]:
    n, mean, sd = _stats(d)
    if n < 2 or not math.isfinite(sd):
        return n, mean, -math.inf, math.inf
    half = design.t_critical(look, n) * sd / math.sqrt(n)
    return n, mean, mean - half, mean + half


def analyse(diffs: Mapping[int, float] | Sequence[float], design: Design, higher_is_better: bool = True) -> ArmSequence:
    """The sequential verdict of one arm from its paired differences by seed (arm - baseline;
    NaN or a missing seed: a pair without both values). A pure function of the results: the
    study recomputes it from the stored runs after every round (and on resume). Looks whose
    seeds are not all there yet end the walk with ``pending`` set to the look's seed count."""
    by_seed = dict(enumerate(diffs)) if not isinstance(diffs, Mapping) else dict(diffs)
    have = max(by_seed) + 1 if by_seed else 0
    out: list[Look] = []
    for k, n_seeds in enumerate(design.looks):
        if have < n_seeds:
            return ArmSequence("open", None, tuple(out), pending=n_seeds, p_value=_p_value(design, k - 1, by_seed))
        d = np.array([by_seed.get(s, math.nan) for s in range(n_seeds)], dtype=float)
        n, mean, low, high = _interval(design, k, d)
        out.append(Look(n_seeds, n, mean, low, high))
        verdict: SeqVerdict | None = None
        if low > 0 or high < 0:
            verdict = "better" if (low > 0) == higher_is_better else "worse"
        elif design.equivalence and -design.equivalence < low and high < design.equivalence:
            verdict = "equivalent"
        if verdict is not None:
            return ArmSequence(verdict, n_seeds, tuple(out), p_value=_p_value(design, k, by_seed))
    return ArmSequence("open", None, tuple(out), p_value=_p_value(design, len(design.looks) - 1, by_seed))


def _p_value(design: Design, look: int, by_seed: Mapping[int, float]) -> float:
    """The repeated p-value at ``look`` (Jennison & Turnbull 2000, sec. 9.5): the smallest level
    at which the repeated interval there excludes 0 - valid at any stopping time - for the whole
    family (the per-arm level times the number of arms, capped at 1). Interpolated on a grid of
    levels of the normal design, scaled as :func:`t_levels` scales the design's own level."""
    from scipy.stats import t

    if look < 0:
        return 1.0
    n, mean, sd = _stats(np.array([by_seed.get(s, math.nan) for s in range(design.looks[look])], dtype=float))
    if n < 2 or not math.isfinite(sd) or sd == 0:
        return 1.0 if n < 2 or mean == 0 or not math.isfinite(sd) else 0.0
    nominal = 2 * float(t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))  # the level at which it just crosses
    log_alpha, table = _level_table(design.looks, design.spending)
    column = np.log(np.maximum(table[:, look], 1e-300))
    # calibration: the design's level alpha_arm is run as alpha*; a level a maps to a * alpha* / alpha_arm
    normal = _normal_levels(design)[look]
    scale = design.levels[look] / normal if normal > 0 else 1.0
    log_a = float(np.interp(math.log(nominal / scale), column, log_alpha))  # levels rise with alpha
    return min(1.0, math.exp(log_a) * design.arms)


def _normal_levels(design: Design) -> np.ndarray:
    """The normal design's nominal level at each look, at the arm's own alpha (uncalibrated)."""
    from scipy.stats import norm

    return 2 * norm.sf(np.array(boundaries(design.fractions, round(design.alpha_arm, 15), design.spending)))


# -- planning ---------------------------------------------------------------------------------------


def seeds_for_power(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8, most: int = 10_000) -> int | None:
    """Seeds a fixed paired design needs to detect a mean difference ``delta`` with ``power``,
    two-sided t-test at level ``alpha``, when the seed-to-seed standard deviation of the difference
    is ``sd`` (noncentral t; Cohen 1988). None when ``most`` seeds are not enough."""
    from scipy.stats import nct, t

    if sd <= 0:
        return 2
    effect = abs(delta) / sd
    for n in range(2, most + 1):
        crit = t.isf(alpha / 2, n - 1)
        nc = effect * math.sqrt(n)
        if float(nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc)) >= power:
            return n
    return None


@dataclass(frozen=True)
class PlanRow:
    """``reglab plan`` for one arm: the pilot's paired seeds, the standard deviation of their
    differences, and the seeds a fixed paired design needs for the power (None: more than 10,000)."""

    arm: str
    n_pilot: int
    mean: float
    sd: float
    seeds: int | None


def plan_seeds(
    diffs: Mapping[str, Sequence[float]], delta: float, alpha: float = 0.05, power: float = 0.8
) -> list[PlanRow]:
    """Per arm, from a pilot study's paired differences: the seeds needed to detect a difference of
    ``delta`` with ``power`` by the paired t-test at ``alpha`` split over the arms (Bonferroni, as
    the adaptive design splits it; Holm's strictest step), two-sided."""
    m = max(1, len(diffs))
    out = []
    for arm, d in diffs.items():
        x = np.asarray([v for v in d if math.isfinite(v)], dtype=float)
        sd = float(x.std(ddof=1)) if len(x) > 1 else math.nan
        n = seeds_for_power(sd, delta, alpha / m, power) if math.isfinite(sd) else None
        out.append(PlanRow(arm, len(x), float(x.mean()) if len(x) else math.nan, sd, n))
    return out


# -- simulation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Simulated:
    """Replications of a sequential study: per replication and arm, the verdict code
    (0 open, 1 higher, -1 lower, 2 equivalent), the seeds it ran, and its last interval."""

    verdict: np.ndarray  # (reps, arms) int
    seeds: np.ndarray  # (reps, arms) int
    low: np.ndarray  # (reps, arms) the interval at its decision (or last) look
    high: np.ndarray


def simulate(diffs: np.ndarray, design: Design) -> Simulated:
    """Run the design on simulated paired differences ``diffs`` (reps, arms, max seeds), all
    replications at once (NumPy): the same rules as :func:`analyse`, vectorized."""
    reps, arms, _ = diffs.shape
    verdict = np.zeros((reps, arms), dtype=int)
    seeds = np.full((reps, arms), design.looks[-1])
    low = np.full((reps, arms), -np.inf)
    high = np.full((reps, arms), np.inf)
    active = np.ones((reps, arms), dtype=bool)
    for k, n in enumerate(design.looks):
        d = diffs[:, :, :n]
        mean, se = d.mean(axis=2), d.std(axis=2, ddof=1) / math.sqrt(n)
        crit = design.t_critical(k, n)
        lo, hi = mean - crit * se, mean + crit * se
        low = np.where(active, lo, low)
        high = np.where(active, hi, high)
        diff = active & ((lo > 0) | (hi < 0))
        verdict[diff] = np.where(lo[diff] > 0, 1, -1)
        if design.equivalence:
            eq = active & ~diff & (lo > -design.equivalence) & (hi < design.equivalence)
            verdict[eq] = 2
            diff |= eq
        seeds[diff] = n
        active &= ~diff
    return Simulated(verdict, seeds, low, high)
