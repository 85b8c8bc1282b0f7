"""The study's reference error: the best error a model can be expected to reach on its data, which
the diagnosis measures bias against (Ng's avoidable bias = training error − optimal error rate,
*Machine Learning Yearning*, 2018; see :mod:`reglab.stats.diagnosis`).

Where it comes from, first that applies:

1. ``diagnosis.reference_error`` in the study file (human-level or Bayes error the user knows);
2. for tabular data, a quick strong classical model on the runs' own splits: scikit-learn's
   ``HistGradientBoosting`` and a linear model (logistic regression; ridge regression with its
   penalty chosen by leave-one-out for regression), each fitted on a seed's training split and
   scored on its validation split (never the test split) in the diagnosis' error (1 − accuracy,
   or 1 − R²); the better mean over seeds wins. The baseline arm's confirmation run of each seed
   computes it in its worker, where that seed's splits are already loaded (the driver imports
   neither torch nor scikit-learn), and stores it with the run (``info["reference"]``): resuming
   or rebuilding the report never refits;
3. otherwise (image data; runs stored before this existed), the lowest training error of any arm,
   said as such: a pessimistic stand-in (at least that arm shows no avoidable bias).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.stats.diagnosis import AttainableError

if TYPE_CHECKING:
    from reglab.study.results.outcome import RunOutcome

MAX_ROWS = 20_000  # training rows the classical models see at most (a seeded sample beyond): it stays cheap
NAMES = {
    "hist_gradient_boosting": "HistGradientBoosting",
    "logistic_regression": "logistic regression",
    "ridge": "ridge regression",
}


def estimate(data: Any) -> dict[str, Any] | None:
    """The classical models' validation errors on one seed's in-memory tabular splits (None for
    image or streamed data): ``{"errors": {model: error}, "seconds", "n_train", "n_val"}``. One
    thread (the worker's share of the machine); a failure is reported in ``"failed"``, never raised
    (the run it rides with must not fail for it)."""
    from reglab.data.base import DataSplits

    if not isinstance(data, DataSplits) or data.image:
        return None
    t0 = time.perf_counter()
    try:
        errors = _fit_and_score(data)
    except Exception as err:  # a classical model that cannot fit this data leaves the fallback
        return {"failed": f"{type(err).__name__}: {err}"[:300]}
    return {
        "errors": errors,
        "seconds": time.perf_counter() - t0,
        "n_train": int(min(len(data.y_train), MAX_ROWS)),
        "n_val": len(data.y_val),
    }


def _fit_and_score(data: Any) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    from reglab.tasks.scores import r2

    x = data.x_train.numpy().reshape(len(data.x_train), -1).astype(np.float64)
    y = data.y_train.numpy()
    xv = data.x_val.numpy().reshape(len(data.x_val), -1).astype(np.float64)
    yv = data.y_val.numpy()
    if len(y) > MAX_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(len(y), MAX_ROWS, replace=False))
        x, y = x[keep], y[keep]
    regression = data.task == "regression"
    errors: dict[str, float] = {}
    with threadpool_limits(1):
        for name, model in _candidates(regression, y.ndim > 1):
            model.fit(x, y)
            pred = model.predict(xv)
            errors[name] = 1.0 - r2(yv, pred, 0) if regression else float(np.mean(pred != yv))
    return errors


def _candidates(regression: bool, multi_output: bool) -> list[tuple[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV

    if regression:
        ridge = ("ridge", RidgeCV(alphas=np.logspace(-3, 3, 13)))
        if multi_output:  # HistGradientBoosting predicts one target
            return [ridge]
        return [("hist_gradient_boosting", HistGradientBoostingRegressor(random_state=0)), ridge]
    return [
        ("hist_gradient_boosting", HistGradientBoostingClassifier(random_state=0)),
        ("logistic_regression", LogisticRegression(max_iter=1000)),
    ]


def attainable_error(
    user: float | None,
    baseline_runs: Iterable[RunOutcome],
    train_errors: Mapping[str, float],
    accuracy: bool,
) -> AttainableError | None:
    """The study's reference error, first that applies: ``user``'s (``diagnosis.reference_error``);
    the classical models stored with the baseline's runs (:func:`estimate`; the better model's mean
    validation error over the seeds that have one); the lowest of ``train_errors`` (arm -> its
    seed-averaged training error); None when there is nothing (no completed run)."""
    unit = "1 − accuracy" if accuracy else "1 − R²"
    if user is not None:
        return AttainableError(value=user, source="user", how=f"diagnosis.reference_error, set in the study ({unit})")
    found = [r for o in baseline_runs if isinstance(r := o.info.get("reference"), dict) and r.get("errors")]
    if found:
        names = [n for n in found[0]["errors"] if all(n in r["errors"] for r in found)]
        means = {n: float(np.mean([r["errors"][n] for r in found])) for n in names}
        if means:
            best = min(means, key=means.__getitem__)
            other = ", ".join(f"{NAMES.get(n, n)} {_fmt(v, accuracy)}" for n, v in means.items() if n != best)
            seeds = f"mean over {len(found)} seeds" if len(found) > 1 else "1 seed"
            return AttainableError(
                value=means[best],
                source="classical model",
                how=(
                    f"validation {unit} of {NAMES.get(best, best)}" + (f", better than {other}" if other else "")
                    + f"; fitted on each seed's training split, {seeds}"
                ),
                models=means,
                seconds=float(sum(r.get("seconds", 0.0) for r in found)),
            )  # fmt: skip
    finite = {a: e for a, e in train_errors.items() if np.isfinite(e)}
    if not finite:
        return None
    arm = min(finite, key=finite.__getitem__)
    return AttainableError(
        value=max(finite[arm], 0.0),
        source="best arm",
        how=(
            f"the lowest training {unit} of any arm ({arm}): no classical estimate for this data; set "
            "diagnosis.reference_error for a better one"
        ),
    )


def _fmt(x: float, accuracy: bool) -> str:
    return f"{x * 100:.1f} %" if accuracy else f"{x:.3f}"
