"""Per-arm summaries and paired arm-vs-baseline comparisons (scipy.stats underneath).

Seeds pair the runs: seed i gives every arm the same split, initialization and batch order, so
differences are taken per seed (a paired design removes the between-seed variance).
Probability of improvement follows Bouthillier et al. (2021), "Accounting for variance in
machine learning benchmarks": P(A > B) over paired seeds, ties counted as 1/2, with a
percentile-bootstrap interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

MIN_SEEDS = 5  # below this a comparison is reported as underpowered, never as a winner


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def describe(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample std and a Student-t confidence interval of the mean."""
    a = np.asarray(values, dtype=float)
    n = len(a)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(a.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    from scipy import stats  # imported when used (0.6 s): not by a tuning driver, nor for one seed

    std = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def interval_method(low: float = -math.inf, high: float = math.inf, short: bool = False) -> str:
    """How :func:`describe_in_range` builds the interval of the mean of a metric with range
    [``low``, ``high``], in words (the report and, ``short``, the terminal name it under their
    tables): the logit scale for a range bounded on both sides (accuracy), the log of the distance
    to the one bound (RMSE's log(x), R²'s log(1 − x)), the plain t-interval without a bound."""
    if math.isfinite(low) and math.isfinite(high):
        scale, keeps = "the logit scale", "never outside the range" if short else "it never leaves the metric's range"
    elif math.isfinite(low) or math.isfinite(high):
        bound = low if math.isfinite(low) else high
        x = ("x" if low == 0 else f"x − {low:g}") if math.isfinite(low) else f"{high:g} − x"
        side = "below" if math.isfinite(low) else "above"
        scale, keeps = (
            f"the log scale, log({x})",
            f"never {side} {bound:g}" if short else f"it never goes {side} {bound:g}",
        )
    else:
        return "Student-t over seeds" if short else "Student-t interval of the mean over seeds"
    if short:
        return f"Student-t over seeds on {scale}, mapped back ({keeps})"
    return f"Student-t interval of the mean over seeds on {scale} (delta method), mapped back: {keeps}"


def describe_in_range(
    values: Sequence[float], low: float = -math.inf, high: float = math.inf, confidence: float = 0.95
) -> Summary:
    """:func:`describe` for a metric with a range (an accuracy's [0, 1], an RMSE's [0, inf)): the
    t-interval is taken on a scale where the range is unbounded - logit((x - low) / (high - low)),
    or log of the distance to the one finite bound - with the delta-method standard error
    se * |g'(mean)|, and mapped back. It contains the mean, stays inside the range (a t-interval
    of [0.90, 0.99, 1.0] passes 100 %), is asymmetric near a bound and matches the
    t-interval far from it. No spread (all seeds equal, e.g. all 100 %) gives [mean, mean]; values
    outside the range (or no finite bound) get the plain t-interval, clipped to the range."""
    s = describe(values, confidence)
    if s.n < 2 or not (math.isfinite(s.mean) and math.isfinite(s.std)):
        return s
    from scipy import stats  # imported when used: a tuning driver never needs it

    a = np.asarray(values, dtype=float)
    finite_low, finite_high = math.isfinite(low), math.isfinite(high)
    if not (finite_low or finite_high) or a.min() < low or a.max() > high:
        return Summary(s.n, s.mean, s.std, max(s.ci_low, low), min(s.ci_high, high))
    if s.std == 0.0 or s.mean in (low, high):
        return Summary(s.n, s.mean, s.std, s.mean, s.mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, s.n - 1)) * s.std / math.sqrt(s.n)
    m = s.mean
    if finite_low and finite_high:
        width = high - low
        p = (m - low) / width
        centre, spread = math.log(p / (1 - p)), half / (width * p * (1 - p))

        def back(z: float) -> float:
            return low + width * _expit(z)

        lo, hi = back(centre - spread), back(centre + spread)
    elif finite_low:
        centre, spread = math.log(m - low), half / (m - low)
        lo, hi = low + math.exp(centre - spread), low + math.exp(centre + spread)
    else:
        centre, spread = math.log(high - m), half / (high - m)
        lo, hi = high - math.exp(centre + spread), high - math.exp(centre - spread)
    return Summary(s.n, s.mean, s.std, min(lo, m), max(hi, m))


def _expit(z: float) -> float:
    """1 / (1 + exp(-z)) without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def probability_of_improvement(
    diffs: Sequence[float], n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """P(arm > baseline) from paired differences (ties = 1/2) with a percentile-bootstrap CI."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0:
        return math.nan, math.nan, math.nan
    wins = (d > 0).astype(float) + 0.5 * (d == 0)
    p = float(wins.mean())
    rng = np.random.default_rng(seed)
    boots = wins[rng.integers(0, len(wins), size=(n_boot, len(wins)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return p, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


@dataclass(frozen=True)
class PairedComparison:
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    t_pvalue: float
    wilcoxon_pvalue: float
    prob_improvement: float
    prob_ci_low: float
    prob_ci_high: float
    underpowered: bool
    p_holm: float = math.nan
    significant: bool = False

    def to_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def paired_compare(
    arm: Sequence[float], baseline: Sequence[float], confidence: float = 0.95, higher_is_better: bool = True
) -> PairedComparison:
    """Compare paired samples (same seeds, same order): mean difference with a t-interval, paired
    t-test, Wilcoxon signed-rank test and probability of improvement (of a larger value, or of a
    smaller one when lower is better: loss, RMSE)."""
    a, b = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired samples must have the same length")
    d = a - b
    s = describe(d, confidence)
    t_p = w_p = 1.0  # one pair (or none): nothing to test
    if len(d) >= 2:
        from scipy import stats  # imported when used: a tuning driver never needs it

        t_p = float(stats.ttest_rel(a, b).pvalue) if np.ptp(d) > 0 else (1.0 if np.all(d == 0) else 0.0)
        w_p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    p, lo, hi = probability_of_improvement(d if higher_is_better else -d, confidence=confidence)
    return PairedComparison(
        n=len(d),
        mean_diff=s.mean,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        t_pvalue=t_p,
        wilcoxon_pvalue=w_p,
        prob_improvement=p,
        prob_ci_low=lo,
        prob_ci_high=hi,
        underpowered=len(d) < MIN_SEEDS,
    )


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values (family-wise error control across arms)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
