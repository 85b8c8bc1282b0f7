"""Bias/variance diagnosis of an arm from its (seed-averaged) final accuracies.

Rules, in order (thresholds in :class:`reglab.study.spec.DiagnosisConfig`, accuracy units; for
regression R² takes accuracy's place, so "training error" is the relative squared error 1 - R²):
1. over-regularized: train accuracy more than ``over_reg_train_drop`` below the baseline's and
   validation accuracy not more than ``over_reg_val_gain`` above it (not for the baseline itself,
   nor for an arm without regularization: it has none to lower);
2. high bias: training error above ``high_bias_train_error`` (the model cannot fit the data);
3. high variance: train - validation accuracy above ``high_variance_gap`` (it fits noise);
4. otherwise good fit.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DiagnosisLabel = Literal["over-regularized", "high bias", "high variance", "good fit"]
RECOMMENDATIONS: dict[str, str] = {
    "over-regularized": "lower the regularization strength (e.g. lambda or dropout rate) or drop one regularizer",
    "high bias": "reduce regularization, train longer or with a larger model / learning rate",
    "high variance": "regularize more: stronger L2 or dropout, data augmentation, or early stopping; more data",
    "good fit": "keep it; compare seeds' spread before adding more regularization",
}
# an arm without regularization has none to reduce: its poor fit is the optimization's or the model's
UNREGULARIZED_HIGH_BIAS = (
    "it has no regularization to reduce: check the optimization (a smaller learning rate if the loss "
    "diverged or stalled, more epochs) or use a larger model"
)


class Diagnosis(BaseModel):
    """An arm's label, why it got it and what to try (as stored in ``summary.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    label: DiagnosisLabel
    reason: str
    recommendation: str

    def to_dict(self) -> dict[str, str]:
        return self.model_dump()


def diagnose(
    train_acc: float,
    val_acc: float,
    thresholds: Any,
    baseline_train_acc: float | None = None,
    baseline_val_acc: float | None = None,
    metric: str = "acc",
    regularized: bool = True,
) -> Diagnosis:
    """Label an arm from train and validation accuracy (``metric="r2"``: R², for regression).
    ``regularized=False``: the arm uses no regularizer, so it is never "over-regularized" and is
    never told to reduce regularization."""
    d = _diagnose(train_acc, val_acc, thresholds, baseline_train_acc, baseline_val_acc, metric, regularized)
    if not regularized and d.label == "high bias":
        return d.model_copy(update={"recommendation": UNREGULARIZED_HIGH_BIAS})
    return d


def _diagnose(
    train_acc: float,
    val_acc: float,
    t: Any,
    baseline_train_acc: float | None,
    baseline_val_acc: float | None,
    metric: str,
    regularized: bool,
) -> Diagnosis:
    if not regularized:
        baseline_train_acc = baseline_val_acc = None  # nothing to have over-done
    if metric == "r2":
        return _diagnose_r2(train_acc, val_acc, t, baseline_train_acc, baseline_val_acc)
    gap = train_acc - val_acc
    if baseline_train_acc is not None and baseline_val_acc is not None:
        drop = baseline_train_acc - train_acc
        gain = val_acc - baseline_val_acc
        if drop > t.over_reg_train_drop and gain <= t.over_reg_val_gain:
            return _d(
                "over-regularized",
                f"train accuracy {drop:.1%} below the baseline's with validation change {gain:+.1%}",
            )
    if 1 - train_acc > t.high_bias_train_error:
        return _d("high bias", f"training error {1 - train_acc:.1%} > {t.high_bias_train_error:.1%}")
    if gap > t.high_variance_gap:
        return _d("high variance", f"train - validation gap {gap:.1%} > {t.high_variance_gap:.1%}")
    return _d("good fit", f"training error {1 - train_acc:.1%}, train - validation gap {gap:.1%}")


def _diagnose_r2(train: float, val: float, t: Any, base_train: float | None, base_val: float | None) -> Diagnosis:
    """The same rules on R²: error = 1 - R² (relative squared error), gap = train R² - val R²."""
    if base_train is not None and base_val is not None:
        drop, gain = base_train - train, val - base_val
        if drop > t.over_reg_train_drop and gain <= t.over_reg_val_gain:
            return _d(
                "over-regularized", f"train R² {drop:.3f} below the baseline's with validation change {gain:+.3f}"
            )
    if 1 - train > t.high_bias_train_error:
        return _d("high bias", f"training relative error 1 - R² = {1 - train:.3f} > {t.high_bias_train_error:.3f}")
    if train - val > t.high_variance_gap:
        return _d("high variance", f"train - validation R² gap {train - val:.3f} > {t.high_variance_gap:.3f}")
    return _d("good fit", f"training relative error {1 - train:.3f}, train - validation R² gap {train - val:.3f}")


def _d(label: DiagnosisLabel, reason: str) -> Diagnosis:
    return Diagnosis(label=label, reason=reason, recommendation=RECOMMENDATIONS[label])
