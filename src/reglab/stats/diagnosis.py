"""Bias/variance diagnosis of an arm from its (seed-averaged) final accuracies.

Bias is measured against the best attainable error, not against zero, as in Ng's "avoidable bias"
(*Machine Learning Yearning*, 2018, "Comparing to the optimal error rate"; deeplearning.ai,
"Structuring Machine Learning Projects"): avoidable bias = training error − reference error,
variance = validation error − training error. The reference (:class:`AttainableError`) is the
user's ``diagnosis.reference_error``, else a quick classical model's validation error on the same
splits (tabular data), else the lowest training error of any arm. On data where no model gets near
0 % error (the diabetes regression: 1 − R² ≈ 0.5 at best) a fixed "training error above 5 %" rule
called every arm under-fitted and told it to reduce regularization.

Rules, in order (thresholds in :class:`reglab.study.definition.spec.DiagnosisConfig`, accuracy units; for
regression R² takes accuracy's place, so "training error" is the relative squared error 1 - R²):
1. over-regularized: train accuracy more than ``over_reg_train_drop`` below the baseline's and
   validation accuracy not more than ``over_reg_val_gain`` above it (not for the baseline itself,
   nor for an arm without regularization: it has none to lower);
2. high bias: avoidable bias (training error − reference; the training error itself without a
   reference) above ``high_bias_train_error`` (the model cannot fit what is learnable);
3. high variance: train - validation accuracy above ``high_variance_gap`` (it fits noise), unless
   the validation error is already at or below the reference (nothing avoidable is left, Ng's
   "done" case: that arm is a good fit);
4. otherwise good fit.
Each reason shows its numbers beside these thresholds (differences of accuracies in percentage
points, "pp") and says when a number is near its threshold, where the label is fragile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DiagnosisLabel = Literal["over-regularized", "high bias", "high variance", "good fit"]
RECOMMENDATIONS: dict[str, str] = {
    "over-regularized": "lower the regularization strength (e.g. lambda or dropout rate) or drop one regularizer",
    "high bias": "reduce regularization, train longer or with a larger model / learning rate",
    "high variance": "regularize more: stronger L2 or dropout, data augmentation, or early stopping; more data",
    "good fit": "keep it; compare seeds' spread before adding more regularization",
}
# an arm without regularization has none to reduce (its poor fit is the optimization's or the
# model's) and none to make stronger
UNREGULARIZED_HIGH_BIAS = (
    "it has no regularization to reduce: check the optimization (a smaller learning rate if the loss "
    "diverged or stalled, more epochs) or use a larger model"
)
UNREGULARIZED: dict[str, str] = {
    "high bias": UNREGULARIZED_HIGH_BIAS,
    "high variance": "add regularization: L2 or dropout, data augmentation, or early stopping; more data",
    "good fit": "keep it; compare seeds' spread before adding regularization",
}


ReferenceSource = Literal["user", "classical model", "best arm"]


class AttainableError(BaseModel):
    """The study's reference error: the best error a model can be expected to reach on this data
    (Ng's optimal error rate: human-level or Bayes error), in the diagnosis' units (1 − accuracy,
    or 1 − R² for regression). ``source``: set by the user (``diagnosis.reference_error``), a
    classical model's validation error on the runs' own splits, or the lowest training error of any
    arm; ``how`` says which, in words. ``models``: a classical reference's candidates and their
    mean validation errors; ``seconds``: what fitting them took, over all seeds."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    value: float
    source: ReferenceSource
    how: str
    models: dict[str, float] = {}
    seconds: float | None = None

    def text(self, accuracy: bool = True) -> str:
        """``reference error 4.2 % (how)``, in the diagnosis' units."""
        value = f"{self.value * 100:.1f} %" if accuracy else f"{self.value:.3f}"
        return f"reference error {value} ({self.how})"


class Diagnosis(BaseModel):
    """An arm's label, why it got it and what to try (as stored in ``summary.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    label: DiagnosisLabel
    reason: str
    recommendation: str

    def to_dict(self) -> dict[str, str]:
        return self.model_dump()

    @property
    def short(self) -> str:
        """The deciding comparison alone, for one table cell: the reason's first clause, as
        :func:`_diagnose` writes it ("train − validation gap 9.1 pp > 3.0 pp (training error ...)"
        -> "gap 9.1 pp > 3.0 pp"), with "near threshold" kept when the label could flip."""
        head = self.reason.split(" (")[0].split("; ")[0].split(", ")[0]
        head = head.replace("train − validation ", "").replace("training error", "train error")
        return f"{head} · near threshold" if NEAR_NOTE in self.reason else head


NEAR = 0.2  # a deciding number within 20 % of its threshold is called "near the threshold"
NEAR_NOTE = "near the threshold: other seeds could flip this label"


def diagnose(
    train_acc: float,
    val_acc: float,
    thresholds: Any,
    baseline_train_acc: float | None = None,
    baseline_val_acc: float | None = None,
    metric: str = "acc",
    regularized: bool = True,
    reference: float | None = None,
) -> Diagnosis:
    """Label an arm from train and validation accuracy (``metric="r2"``: R², for regression).
    The reason states every number the label was decided on next to its threshold (and says so
    when one is within 20 % of it, where other seeds could flip the label).
    ``regularized=False``: the arm uses no regularizer, so it is never "over-regularized" and is
    never told to reduce regularization (or to make one stronger).
    ``reference``: the attainable error (:class:`AttainableError`'s value, in the same units as
    ``1 - train_acc``); high bias is then avoidable bias, the training error above it."""
    d = _diagnose(train_acc, val_acc, thresholds, baseline_train_acc, baseline_val_acc, metric, regularized, reference)
    if not regularized and d.label in UNREGULARIZED:
        return d.model_copy(update={"recommendation": UNREGULARIZED[d.label]})
    return d


def _near(value: float, threshold: float) -> bool:
    return abs(value - threshold) <= NEAR * abs(threshold)


def _diagnose(
    train: float,
    val: float,
    t: Any,
    base_train: float | None,
    base_val: float | None,
    metric: str,
    regularized: bool,
    reference: float | None = None,
) -> Diagnosis:
    """The rules, once: error = 1 - train (accuracy's error rate, or R²'s relative squared error),
    bias = error - reference (the error itself without one), gap = train - validation; only the
    wording differs (accuracy in %/pp, R² as numbers)."""
    if not regularized:
        base_train = base_val = None  # nothing to have over-done
    err, gap = 1 - train, train - val
    limit = t.high_bias_train_error
    bias_value = err if reference is None else err - reference
    if metric == "r2":
        if reference is None:
            bias = f"training relative error 1 − R² = {err:.3f} {_cmp(err, limit)} {limit:.3f}"
        else:
            bias = (
                f"avoidable bias {bias_value:.3f} {_cmp(bias_value, limit)} {limit:.3f} (1 − train R² {err:.3f} "
                f"− reference {reference:.3f})"
            )
        variance = f"train − validation R² gap {gap:.3f} {_cmp(gap, t.high_variance_gap)} {t.high_variance_gap:.3f}"
    else:
        if reference is None:
            bias = f"training error {_pc(err)} {_cmp(err, limit)} {_pc(limit)}"
        else:
            bias = (
                f"avoidable bias {_pp(bias_value)} {_cmp(bias_value, limit)} {_pp(limit)} (training error "
                f"{_pc(err)} − reference {_pc(reference)})"
            )
        variance = f"train − validation gap {_pp(gap)} {_cmp(gap, t.high_variance_gap)} {_pp(t.high_variance_gap)}"
    if base_train is not None and base_val is not None:
        drop, gain = base_train - train, val - base_val
        if drop > t.over_reg_train_drop and gain <= t.over_reg_val_gain:
            if metric == "r2":
                why = (
                    f"train R² {drop:.3f} below the baseline's (> {t.over_reg_train_drop:.3f}) for a validation "
                    f"change of {gain:+.3f} (≤ {t.over_reg_val_gain:+.3f})"
                )
            else:
                why = (
                    f"train accuracy {_pp(drop)} below the baseline's (> {_pp(t.over_reg_train_drop)}) for a "
                    f"validation change of {_pp(gain, True)} (≤ {_pp(t.over_reg_val_gain, True)})"
                )
            return _d("over-regularized", why, _near(drop, t.over_reg_train_drop) or _near(gain, t.over_reg_val_gain))
    if bias_value > limit:
        return _d("high bias", bias, _near(bias_value, limit))
    if reference is not None and 1 - val <= reference and gap > t.high_variance_gap:
        # nothing avoidable is left: the gap is noise that the reference does not avoid either
        at = (
            f"{1 - val:.3f} ≤ reference {reference:.3f}"
            if metric == "r2"
            else f"{_pc(1 - val)} ≤ reference {_pc(reference)}"
        )
        unit = "1 − R²" if metric == "r2" else "error"
        return _d("good fit", f"validation {unit} {at} (it reaches the attainable error; {variance})")
    if gap > t.high_variance_gap:
        why = f"{variance} ({bias})" if reference is None else f"{variance}; {bias}"  # no nested parentheses
        return _d("high variance", why, _near(gap, t.high_variance_gap))
    return _d("good fit", f"{bias}, {variance}", _near(bias_value, limit) or _near(gap, t.high_variance_gap))


def _cmp(value: float, threshold: float) -> str:
    return ">" if value > threshold else "≤"


def _pc(x: float) -> str:
    return f"{x * 100:.1f} %"


def _pp(x: float, signed: bool = False) -> str:
    """A difference of accuracies in percentage points."""
    return f"{x * 100:+.1f} pp" if signed else f"{x * 100:.1f} pp"


def _d(label: DiagnosisLabel, reason: str, near: bool = False) -> Diagnosis:
    if near:
        reason = f"{reason}; {NEAR_NOTE}"
    return Diagnosis(label=label, reason=reason, recommendation=RECOMMENDATIONS[label])


def thresholds_text(
    th: Mapping[str, float | None], accuracy: bool = True, reference: AttainableError | None = None
) -> str:
    """The diagnosis rules with the study's thresholds, in the units of the diagnosis metric, and
    the reference error that bias is measured against (with how it was obtained)."""

    def pc(x: float) -> str:
        return f"{x * 100:g} %" if accuracy else f"{x:g}"

    def pp(x: float) -> str:
        return f"{x * 100:g} pp" if accuracy else f"{x:g}"

    def num(key: str) -> float:
        value = th[key]
        assert value is not None
        return value

    err = "training error" if accuracy else "1 − train R²"
    gap = "train − validation gap" if accuracy else "train − validation R² gap"
    bias = (
        f"high bias when {err} > {pc(num('high_bias_train_error'))}"
        if reference is None
        else f"high bias when avoidable bias ({err} − reference error) > {pp(num('high_bias_train_error'))}"
    )
    text = (
        f"{bias}; high variance when {gap} > "
        f"{pp(num('high_variance_gap'))}; over-regularized when train {'accuracy' if accuracy else 'R²'} falls more "
        f"than {pp(num('over_reg_train_drop'))} below the baseline's for at most {pp(num('over_reg_val_gain'))} "
        "validation gain (regularized arms only)"
    )
    return text if reference is None else f"{text}; {reference.text(accuracy)}"
