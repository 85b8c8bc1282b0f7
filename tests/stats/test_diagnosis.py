"""Bias/variance diagnosis: every label from crafted accuracies, thresholds from DiagnosisConfig,
and the labels as they appear in a study summary."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reglab.errors import ConfigError
from reglab.stats.diagnosis import RECOMMENDATIONS, diagnose
from reglab.study.outcome import RunOutcome, RunStatus
from reglab.study.spec import DiagnosisConfig, parse_study
from reglab.study.storage import RunRecord

DEFAULT = DiagnosisConfig()


def test_default_thresholds() -> None:
    assert DEFAULT.high_bias_train_error == 0.05
    assert DEFAULT.high_variance_gap == 0.03
    assert DEFAULT.over_reg_train_drop == 0.02
    assert DEFAULT.over_reg_val_gain == 0.002


@pytest.mark.parametrize(
    ("train", "val", "base_train", "base_val", "label"),
    [
        (0.80, 0.78, None, None, "high bias"),  # training error 20 %
        (0.999, 0.90, None, None, "high variance"),  # fits train, 9.9 % gap
        (0.98, 0.97, None, None, "good fit"),
        (0.95, 0.95, 0.99, 0.95, "over-regularized"),  # 4 % train drop, no validation gain
        (0.95, 0.94, 0.99, 0.95, "over-regularized"),  # ... or a validation loss
        (0.975, 0.96, 0.99, 0.95, "good fit"),  # a 1.5 % train drop is within the tolerance
        (0.96, 0.96, 0.999, 0.90, "good fit"),  # big drop but it bought +6 % validation
        (0.80, 0.80, 0.999, 0.70, "high bias"),  # bought validation, yet cannot fit the data
    ],
)
def test_labels_from_crafted_numbers(
    train: float, val: float, base_train: float | None, base_val: float | None, label: str
) -> None:
    d = diagnose(train, val, DEFAULT, base_train, base_val)
    assert d.label == label
    assert d.recommendation == RECOMMENDATIONS[label]
    assert d.reason
    assert d.to_dict() == {"label": label, "reason": d.reason, "recommendation": d.recommendation}


def test_the_baseline_itself_is_never_over_regularized() -> None:
    # the same numbers that are over-regularized next to a better-fitting baseline
    assert diagnose(0.95, 0.95, DEFAULT, 0.99, 0.95).label == "over-regularized"
    assert diagnose(0.95, 0.95, DEFAULT).label == "high bias"
    assert diagnose(0.95, 0.95, DEFAULT, 0.99, None).label == "high bias"


def test_rule_order_over_regularized_before_bias_before_variance() -> None:
    # high bias and high variance at once: bias wins (it cannot even fit the training data)
    assert diagnose(0.90, 0.80, DEFAULT).label == "high bias"
    # over-regularized and high bias at once: over-regularized names the cause
    assert diagnose(0.90, 0.85, DEFAULT, 0.99, 0.85).label == "over-regularized"


def test_thresholds_are_configurable() -> None:
    lenient = DiagnosisConfig(high_bias_train_error=0.25, high_variance_gap=0.10)
    assert diagnose(0.80, 0.78, DEFAULT).label == "high bias"
    assert diagnose(0.80, 0.78, lenient).label == "good fit"
    assert diagnose(0.999, 0.92, DEFAULT).label == "high variance"
    assert diagnose(0.999, 0.92, lenient).label == "good fit"
    assert diagnose(0.999, 0.88, lenient).label == "high variance"

    strict = DiagnosisConfig(high_bias_train_error=0.001, high_variance_gap=0.001)
    assert diagnose(0.98, 0.97, DEFAULT).label == "good fit"
    assert diagnose(0.98, 0.97, strict).label == "high bias"
    assert diagnose(0.9995, 0.997, strict).label == "high variance"

    tolerant = DiagnosisConfig(over_reg_train_drop=0.05)
    assert diagnose(0.96, 0.95, DEFAULT, 0.99, 0.95).label == "over-regularized"
    assert diagnose(0.96, 0.95, tolerant, 0.99, 0.95).label == "good fit"
    greedy = DiagnosisConfig(over_reg_val_gain=0.05)  # a +1 % validation gain is not worth a 4 % train drop
    assert diagnose(0.96, 0.96, DEFAULT, 0.999, 0.95).label == "good fit"
    assert diagnose(0.96, 0.96, greedy, 0.999, 0.95).label == "over-regularized"


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValidationError):
        DiagnosisConfig(high_variance_gap=1.5)
    with pytest.raises(ValidationError):
        DiagnosisConfig(high_bias_train_error=-0.1)
    with pytest.raises(ValidationError):
        DiagnosisConfig(nonsense=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"diagnosis\.high_variance_gap"):
        parse_study({"name": "d", "arms": {"a": {}}, "diagnosis": {"high_variance_gap": 2}})


def _record(arm: str, seed: int, train_acc: float, val_acc: float) -> RunRecord:
    final = {"train_acc": train_acc, "val_acc": val_acc, "test_acc": val_acc - 0.001, "test_loss": 0.3}
    return RunRecord(arm, seed, RunOutcome(status=RunStatus.COMPLETED, final=final), 0)


def test_summary_uses_the_study_thresholds_and_the_baseline_means() -> None:
    from reglab.study.results import summarize

    accs = {  # seed-averaged: none (0.99, 0.95), heavy (0.955, 0.95), wild (0.999, 0.90), fine (0.985, 0.975)
        "none": [(0.985, 0.94), (0.995, 0.96)],
        "heavy": [(0.945, 0.95), (0.965, 0.95)],
        "wild": [(0.999, 0.89), (0.999, 0.91)],
        "fine": [(0.98, 0.97), (0.99, 0.98)],
    }
    records = {(a, s): _record(a, s, *v[s]) for a, v in accs.items() for s in (0, 1)}
    # "heavy" is regularized: only an arm with a regularizer can be over-regularized
    doc = {"name": "diag", "arms": {a: {"l2": 0.1} if a == "heavy" else {} for a in accs}, "seeds": 2}
    summary = summarize(parse_study(doc), records)
    labels = {a: summary.arm(a).diagnosis.label for a in accs}  # type: ignore[union-attr]
    assert labels == {
        "none": "high variance",
        "heavy": "over-regularized",
        "wild": "high variance",
        "fine": "good fit",
    }

    loose = parse_study({**doc, "diagnosis": {"high_variance_gap": 0.2, "over_reg_train_drop": 0.1}})
    labels = {a: v.diagnosis.label for a, v in summarize(loose, records).arms.items()}  # type: ignore[union-attr]
    assert labels == {"none": "good fit", "heavy": "good fit", "wild": "good fit", "fine": "good fit"}


def test_an_arm_without_regularization_is_never_over_regularized() -> None:
    """Issue 12, failure 9: the numbers of an over-regularized arm, for an arm with no regularizer
    (a huge learning rate collapsed it): high bias, and no advice to lower a regularization it lacks."""
    assert diagnose(0.10, 0.10, DEFAULT, 0.99, 0.95).label == "over-regularized"
    d = diagnose(0.10, 0.10, DEFAULT, 0.99, 0.95, regularized=False)
    assert d.label == "high bias"
    assert "regularization strength" not in d.recommendation and "reduce regularization" not in d.recommendation
    r2 = diagnose(0.10, 0.10, DEFAULT, 0.99, 0.95, metric="r2", regularized=False)
    assert r2.label == "high bias" and "reduce regularization" not in r2.recommendation
    assert diagnose(0.98, 0.97, DEFAULT, regularized=False).label == "good fit"
