"""Bias/variance diagnosis: every label from crafted accuracies, thresholds from DiagnosisConfig,
and the labels as they appear in a study summary."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reglab.errors import ConfigError
from reglab.stats.diagnosis import RECOMMENDATIONS, diagnose
from reglab.study.definition.spec import DiagnosisConfig, parse_study
from reglab.study.results.outcome import RunOutcome, RunStatus
from reglab.study.results.storage import RunRecord

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
    from reglab.study.results.results import summarize

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


# -- the reference (attainable) error: Ng's avoidable bias --------------------------------------
# the diabetes example's early-stopping arm, seed-averaged: 1 − R² of 0.423 on train and 0.568 on
# validation, where ridge regression's validation 1 − R² is about 0.6 (the best attainable is far from 0)
DIABETES_TRAIN_R2, DIABETES_VAL_R2, DIABETES_REFERENCE = 0.577, 0.432, 0.596


def test_without_a_reference_the_diabetes_numbers_are_high_bias() -> None:
    """What issue 21 reported: against 0, 1 − R² = 0.42 is "high bias" and the advice is to
    reduce regularization, which no model on this data could follow."""
    d = diagnose(DIABETES_TRAIN_R2, DIABETES_VAL_R2, DEFAULT, metric="r2")
    assert d.label == "high bias" and d.recommendation.startswith("reduce regularization")


def test_against_the_reference_the_diabetes_best_arm_is_not_told_to_reduce_regularization() -> None:
    d = diagnose(DIABETES_TRAIN_R2, DIABETES_VAL_R2, DEFAULT, metric="r2", reference=DIABETES_REFERENCE)
    assert d.label == "good fit"  # its validation error is below the reference: nothing avoidable left
    assert "reduce" not in d.recommendation and "lower" not in d.recommendation
    assert "validation 1 − R² 0.568 ≤ reference 0.596" in d.reason
    # a worse arm (validation 1 − R² 0.69 > the reference) that fits train far better: high variance
    v = diagnose(0.814, 0.312, DEFAULT, metric="r2", reference=DIABETES_REFERENCE)
    assert v.label == "high variance" and v.recommendation.startswith("regularize more")
    assert "avoidable bias -0.410 ≤ 0.050 (1 − train R² 0.186 − reference 0.596)" in v.reason


@pytest.mark.parametrize(
    ("train", "val", "reference", "label"),
    [
        (0.80, 0.79, 0.10, "high bias"),  # avoidable bias 10 pp > 5 pp
        (0.87, 0.86, 0.10, "good fit"),  # 13 % training error, yet only 3 pp above the attainable 10 %
        (0.89, 0.84, 0.10, "high variance"),  # avoidable bias 1 pp, gap 5 pp
        (0.95, 0.93, 0.08, "good fit"),  # 7 % validation error ≤ the 8 % reference: at the attainable error
        (0.80, 0.79, 0.0, "high bias"),  # a reference of 0 is the old rule
    ],
)
def test_high_bias_is_avoidable_bias_above_the_threshold(
    train: float, val: float, reference: float, label: str
) -> None:
    d = diagnose(train, val, DEFAULT, reference=reference)
    assert d.label == label, d.reason
    if label == "high bias":
        assert d.short.startswith("avoidable bias ") and "> 5.0 pp" in d.short
    else:
        assert "avoidable bias" in d.reason or "≤ reference" in d.reason


def test_thresholds_text_names_the_reference_and_how_it_was_obtained() -> None:
    from reglab.stats.diagnosis import AttainableError, thresholds_text

    th = DEFAULT.model_dump(exclude={"reference_error"})
    ref = AttainableError(value=0.0421, source="classical model", how="validation 1 − accuracy of logistic regression")
    text = thresholds_text(th, True, ref)
    assert "high bias when avoidable bias (training error − reference error) > 5 pp" in text
    assert text.endswith("reference error 4.2 % (validation 1 − accuracy of logistic regression)")
    assert "reference error 0.596 (" in thresholds_text(th, False, ref.model_copy(update={"value": 0.596}))
    assert "reference" not in thresholds_text(th, True)  # a summary written before keeps its text


def test_reference_error_is_a_validated_study_setting() -> None:
    from reglab.study.definition.spec import StudySpec

    spec = parse_study({"name": "d", "arms": {"a": {}}, "diagnosis": {"reference_error": 0.02}})
    assert spec.diagnosis.reference_error == 0.02
    assert parse_study({"name": "d", "arms": {"a": {}}}).diagnosis.reference_error is None
    with pytest.raises(ConfigError, match=r"diagnosis\.reference_error: .*less than or equal to 1"):
        parse_study({"name": "d", "arms": {"a": {}}, "diagnosis": {"reference_error": 1.5}})
    with pytest.raises(ConfigError, match=r"diagnosis\.reference_error"):
        parse_study({"name": "d", "arms": {"a": {}}, "diagnosis": {"reference_error": "low"}})
    schema = StudySpec.model_json_schema()
    field = schema["$defs"]["DiagnosisConfig"]["properties"]["reference_error"]
    assert "best attainable error" in field["description"]


def _summary_with(doc_changes: dict[str, object], infos: dict[int, dict[str, object]] | None = None) -> object:
    from reglab.study.results.results import summarize

    accs = {"none": (0.90, 0.86), "l2": (0.88, 0.87)}  # training errors 10 % and 12 %
    records = {}
    for a, (tr, va) in accs.items():
        for s in (0, 1):
            final = {"train_acc": tr, "val_acc": va, "test_acc": va, "test_loss": 0.3}
            info = (infos or {}).get(s, {}) if a == "none" else {}
            records[(a, s)] = RunRecord(a, s, RunOutcome(status=RunStatus.COMPLETED, final=final, info=info), 0)
    doc = {"name": "ref", "arms": {"none": {}, "l2": {"l2": 0.01}}, "seeds": 2, **doc_changes}
    return summarize(parse_study(doc), records)


def test_summary_uses_the_users_reference_error() -> None:
    s: Any = _summary_with({"diagnosis": {"reference_error": 0.09}})
    assert s.reference_error.source == "user" and s.reference_error.value == 0.09
    assert "diagnosis.reference_error" in s.reference_error.how
    assert s.arm("none").diagnosis.label == "high variance"  # 1 pp avoidable bias, 4 pp gap
    assert "reference 9.0 %" in s.arm("none").diagnosis.reason
    assert "reference_error" not in s.diagnosis_thresholds  # the thresholds stay numbers only
    assert s.to_json() and type(s).model_validate_json(s.to_json()) == s  # it round-trips through summary.json


def test_summary_takes_the_better_classical_model_stored_with_the_baseline_runs() -> None:
    infos = {
        0: {"reference": {"errors": {"hist_gradient_boosting": 0.12, "logistic_regression": 0.06}, "seconds": 0.2}},
        1: {"reference": {"errors": {"hist_gradient_boosting": 0.10, "logistic_regression": 0.08}, "seconds": 0.3}},
    }
    s: Any = _summary_with({}, infos)
    ref = s.reference_error
    assert ref.source == "classical model" and ref.value == pytest.approx(0.07)  # logistic: mean 7 % < 11 %
    assert ref.models == pytest.approx({"hist_gradient_boosting": 0.11, "logistic_regression": 0.07})
    assert ref.seconds == pytest.approx(0.5)
    assert "logistic regression" in ref.how and "HistGradientBoosting 11.0 %" in ref.how
    assert s.arm("none").diagnosis.label == "high variance" and "reference 7.0 %" in s.arm("none").diagnosis.reason


def test_summary_falls_back_to_the_best_arms_training_error_and_says_so() -> None:
    s: Any = _summary_with({})
    ref = s.reference_error
    assert ref.source == "best arm" and ref.value == pytest.approx(0.10)  # none's training error
    assert "lowest training 1 − accuracy of any arm (none)" in ref.how and "diagnosis.reference_error" in ref.how
    assert s.arm("l2").diagnosis.label == "good fit"  # 2 pp above the best arm's training error
