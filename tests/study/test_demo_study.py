"""The built-in demo (issue 15) is a regime where over-fitting is real: a small training subset, a
wide network trained long, an unregularized baseline and the sources' comparisons - and it says so."""

from __future__ import annotations

from reglab.regularizers.registry import build_regularizers
from reglab.report.format import regime
from reglab.study.definition.spec import demo_study


def test_the_demo_is_an_over_fitting_regime() -> None:
    spec = demo_study()
    base = spec.arm(spec.baseline_arm).config
    assert spec.baseline_arm == "none" and not build_regularizers(base)  # the baseline has no regularizer
    assert base.data.name == "digits" and base.data.n_train is not None and base.data.n_train <= 300
    weights = 64 * base.model.hidden[0] + sum(
        a * b for a, b in zip(base.model.hidden[:-1], base.model.hidden[1:], strict=True)
    )
    assert weights >= 1000 * base.data.n_train  # far more weights than examples
    assert base.train.epochs >= 100  # long enough to reach 100 % training accuracy and memorize
    assert len(spec.seed_list) >= 10  # power for paired tests across several arms
    # the sources' comparisons: none vs L2 vs dropout vs both, L1, early stopping, augmentation
    assert {"none", "l1", "l2", "dropout", "l2+dropout", "early_stop", "augment"} <= set(spec.arms)
    both = spec.arm("l2+dropout").config.regularization
    assert both.l2 > 0 and both.dropout > 0
    assert all(build_regularizers(spec.arm(a).config) for a in spec.arms if a != "none")


def test_the_demo_says_what_its_regime_is() -> None:
    spec = demo_study()
    text = regime(spec.arm("none").config.model_dump(mode="json"))
    assert text == "100 training examples of digits, a 512-512-unit MLP, 150 epochs of Adam (lr 0.001, batch 32)"
