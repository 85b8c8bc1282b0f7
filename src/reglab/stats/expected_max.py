"""Expected best validation score as a function of the tuning budget (Dodge et al. 2019,
"Show your work"): E[max of n draws with replacement from the N observed trial scores]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def expected_max(scores: Sequence[float], max_n: int | None = None) -> list[dict[str, float]]:
    """For n = 1..max_n: mean and std of the best of n trials drawn from the observed scores.
    With sorted scores v_1 <= ... <= v_N, P(max = v_i) = (i/N)^n - ((i-1)/N)^n."""
    v = np.sort(np.asarray([s for s in scores if np.isfinite(s)], dtype=float))
    n_obs = len(v)
    if n_obs == 0:
        return []
    i = np.arange(1, n_obs + 1)
    out = []
    for n in range(1, (max_n or n_obs) + 1):
        p = (i / n_obs) ** n - ((i - 1) / n_obs) ** n
        mean = float(np.sum(p * v))
        std = float(np.sqrt(max(np.sum(p * (v - mean) ** 2), 0.0)))
        out.append({"n": n, "mean": mean, "std": std})
    return out


def best_so_far(values: Sequence[float | None], maximize: bool = True) -> list[float | None]:
    """Running best over trials in order (None where no trial has finished yet)."""
    best: float | None = None
    out: list[float | None] = []
    for v in values:
        if v is not None and np.isfinite(v) and (best is None or (v > best if maximize else v < best)):
            best = float(v)
        out.append(best)
    return out
