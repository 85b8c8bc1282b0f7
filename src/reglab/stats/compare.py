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
from scipy import stats

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
    std = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


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
    if len(d) >= 2 and np.ptp(d) > 0:
        t_p = float(stats.ttest_rel(a, b).pvalue)
    else:
        t_p = 1.0 if len(d) < 2 or np.all(d == 0) else 0.0
    w_p = float(stats.wilcoxon(d).pvalue) if len(d) >= 2 and np.any(d != 0) else 1.0
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
