"""Tasks, losses and metrics (issue 11): the numbers equal scikit-learn's, the task decides the
loss and the outputs, the direction of each metric drives every selection, and intervals stay in
the metric's range. Effects, not plumbing: L2 lowers the weight norm of a regression network."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from reglab.config import RunConfig
from reglab.data import load_data
from reglab.data.config import DataConfig
from reglab.errors import ConfigError, DataError
from reglab.tasks import METRICS, higher_is_better
from reglab.training.engine import fit

CPU = {"device": "cpu"}


def _run(data: dict, train: dict, reg: dict | None = None, keep: bool = False):  # type: ignore[no-untyped-def]
    cfg = RunConfig.model_validate({"data": data, "train": {**CPU, **train}, "regularization": reg or {}})
    splits = load_data(cfg.data)
    return cfg, splits, fit(cfg, splits, keep_model=keep)


@pytest.fixture(scope="module")
def regression():  # type: ignore[no-untyped-def]
    return _run({"name": "diabetes"}, {"optimizer": "adam", "lr": 0.01, "epochs": 15}, keep=True)


@pytest.fixture(scope="module")
def binary():  # type: ignore[no-untyped-def]
    return _run({"name": "breast_cancer"}, {"optimizer": "adam", "lr": 0.003, "epochs": 5, "metrics": ["auc"]})


# -- numbers equal scikit-learn's --------------------------------------------------------------------


def test_rmse_mae_r2_equal_scikit_learn_on_the_models_own_predictions(regression) -> None:  # type: ignore[no-untyped-def]
    _, splits, r = regression
    x_te, y_te = splits.test.read()
    r.model.eval()
    with torch.no_grad():
        out = r.model(x_te)[:, 0].double()
    y_tr = splits.y_train.double()
    pred = (out * y_tr.std(unbiased=False) + y_tr.mean()).numpy()  # the model learns standardized targets
    y = y_te.numpy()
    assert r.final["test_rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, pred)), rel=1e-5)
    assert r.final["test_mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-5)
    assert r.final["test_r2"] == pytest.approx(r2_score(y, pred), rel=1e-4)
    np.testing.assert_allclose(r.test_probs, pred, rtol=1e-5)  # seed ensembles average these predictions
    assert r.final["test_rmse"] < float(y.std()) * 1.05  # it learned something: about the spread of y or better


def test_regression_records_loss_and_rmse_not_accuracy(regression) -> None:  # type: ignore[no-untyped-def]
    _, splits, r = regression
    assert splits.task == "regression" and splits.n_classes == 1
    assert {"train_loss", "val_loss", "val_rmse"} <= set(r.history[0]) and "val_acc" not in r.history[0]
    assert not any(k.endswith("_acc") for k in r.final)
    for split in ("train", "val", "test"):
        assert {f"{split}_{m}" for m in ("loss", "rmse", "mae", "r2")} <= set(r.final)
    # the best epoch is the one with the lowest validation RMSE (lower is better)
    assert r.final["best_epoch"] == min(r.history, key=lambda h: h["val_rmse"])["epoch"]
    assert r.final["gap"] == pytest.approx(r.final["test_rmse"] - r.final["train_rmse"])


def test_binary_auc_equals_roc_auc_score(binary) -> None:  # type: ignore[no-untyped-def]
    _, splits, r = binary
    y = splits.test.labels.numpy()
    p = r.test_probs
    assert p.ndim == 1 and splits.task == "binary"  # one logit: P(class 1)
    assert r.final["test_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert r.final["test_acc"] == pytest.approx(float(((p >= 0.5) == y).mean()), abs=1e-4)
    assert r.final["test_bacc"] == pytest.approx(balanced_accuracy_score(y, p >= 0.5), abs=1e-4)
    assert r.final["test_f1"] == pytest.approx(f1_score(y, p >= 0.5, average="macro"), abs=1e-4)
    # BCE with logits is the log-loss of the probabilities
    assert r.final["test_logloss"] == pytest.approx(log_loss(y, p.astype(np.float64)), rel=1e-3)
    assert r.final["test_loss"] == pytest.approx(r.final["test_logloss"], rel=1e-3)
    assert "val_auc" in r.history[0]


def test_one_vs_rest_auc_on_ten_classes() -> None:
    _, splits, r = _run({"name": "digits", "n_train": 300}, {"epochs": 2, "metrics": ["auc", "logloss"]})
    y, p = splits.test.labels.numpy(), r.test_probs.astype(np.float64)
    p = p / p.sum(1, keepdims=True)
    assert r.final["test_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=1e-6)
    assert r.final["test_logloss"] == pytest.approx(log_loss(y, p, labels=range(10)), rel=1e-4)
    assert r.final["test_logloss"] == pytest.approx(r.final["test_loss"], rel=1e-3)  # CE = log-loss


def test_metric_functions_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = rng.dirichlet(np.ones(3), 200)
    assert METRICS.get("bacc")(y, p, 3) == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert METRICS.get("f1")(y, p, 3) == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert METRICS.get("auc")(y, p, 3) == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    t, q = rng.normal(size=50), rng.normal(size=50)
    assert METRICS.get("rmse")(t, q, 1) == pytest.approx(math.sqrt(mean_squared_error(t, q)))
    assert METRICS.get("r2")(t, q, 1) == pytest.approx(r2_score(t, q))
    assert math.isnan(METRICS.get("auc")(np.zeros(5, dtype=int), np.full(5, 0.3), 2))  # one class: undefined


# -- effects on a regression network -----------------------------------------------------------------


def test_l2_lowers_the_weight_norm_on_the_regression_task() -> None:
    train = {"optimizer": "adam", "lr": 0.01, "epochs": 10}
    _, _, plain = _run({"name": "diabetes"}, train)
    _, _, l2 = _run({"name": "diabetes"}, train, {"l2": 0.05})
    assert l2.final["weight_l2"] < 0.8 * plain.final["weight_l2"]


def test_mixup_mixes_continuous_targets() -> None:
    from reglab.regularizers.mixup import Mixup

    ctx = type("Ctx", (), {"gen": torch.Generator().manual_seed(0), "n_classes": 1})()
    x, y = torch.arange(8.0).reshape(4, 2), torch.tensor([0.0, 10.0, 20.0, 30.0])
    _, ym = Mixup(1.0).transform_batch(x, y, ctx)  # type: ignore[arg-type]
    assert ym.shape == y.shape and ym.dtype == torch.float32
    assert not torch.equal(ym, y) and float(ym.min()) >= 0 and float(ym.max()) <= 30
    _, _, r = _run({"name": "diabetes"}, {"optimizer": "adam", "lr": 0.01, "epochs": 2}, {"mixup": 0.2})
    assert r.status == "completed"


def test_same_seed_same_regression_results() -> None:
    train = {"optimizer": "adam", "lr": 0.01, "epochs": 3}
    a, b = _run({"name": "diabetes"}, train)[2], _run({"name": "diabetes"}, train)[2]
    assert a.final == b.final and [h["val_rmse"] for h in a.history] == [h["val_rmse"] for h in b.history]


# -- tasks, losses, refusals ---------------------------------------------------------------------------


def test_label_smoothing_refuses_a_regression_task() -> None:
    with pytest.raises(ConfigError, match="label_smoothing: needs classes"):
        RunConfig().override({"task": "regression", "label_smoothing": 0.1})
    with pytest.raises(ConfigError, match="label_smoothing: needs classes"):  # auto, found at run time
        _run({"name": "diabetes"}, {"epochs": 1}, {"label_smoothing": 0.1})


def test_label_smoothing_refused_in_a_study_when_it_is_validated() -> None:
    from reglab.study import parse_study

    doc = {"name": "t", "data": {"name": "diabetes"}, "arms": {"none": {}, "ls": {"label_smoothing": 0.1}}}
    with pytest.raises(ConfigError, match=r"arms\.ls: regularization\.label_smoothing: needs classes"):
        parse_study(doc)


def test_losses_fit_the_task() -> None:
    with pytest.raises(ConfigError, match="'bce' does not fit a regression task"):
        RunConfig().override({"task": "regression", "loss": "bce"})
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        RunConfig().override({"loss": "hinge"})
    _, _, huber = _run({"name": "diabetes"}, {"optimizer": "adam", "lr": 0.01, "epochs": 2, "loss": "huber"})
    assert huber.status == "completed" and huber.final["test_rmse"] > 0


def test_loss_by_class_path() -> None:
    cfg = {"class_path": "torch.nn:SmoothL1Loss", "init_args": {"beta": 0.5}}
    _, _, r = _run({"name": "diabetes"}, {"optimizer": "adam", "lr": 0.01, "epochs": 2, "loss": cfg})
    assert r.status == "completed"
    with pytest.raises(ConfigError, match="cannot import 'no_such_pkg'"):
        _run({"name": "diabetes"}, {"epochs": 1, "loss": {"class_path": "no_such_pkg:Loss"}})


def test_metric_must_apply_to_the_task() -> None:
    from reglab.study import parse_study

    with pytest.raises(ConfigError, match="'rmse' does not apply to a classification task"):
        parse_study({"name": "t", "arms": {"a": {}}, "metric": {"select": "val_rmse"}})
    with pytest.raises(ConfigError, match="unknown metric 'prauc'"):
        parse_study({"name": "t", "arms": {"a": {}}, "metric": {"compare": "test_prauc"}})
    spec = parse_study({"name": "t", "data": {"name": "diabetes"}, "arms": {"a": {}}})
    assert (spec.metric.select, spec.metric.compare) == ("val_rmse", "test_rmse")  # the task's default
    assert not spec.metric.maximize and spec.arm("a").config.train.metrics == ("rmse",)
    assert spec.arm("a").config.data.task == "regression"


def test_directions() -> None:
    for key in ("val_loss", "test_rmse", "val_mae", "test_logloss"):
        assert not higher_is_better(key)
    for key in ("val_acc", "test_auc", "val_r2", "test_bacc", "val_f1"):
        assert higher_is_better(key)


def _csv(tmp_path: Path, y: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(y), 3))
    p = tmp_path / "t.csv"
    p.write_text("a,b,c,target\n" + "\n".join(f"{r[0]},{r[1]},{r[2]},{t}" for r, t in zip(x, y, strict=True)))
    return f"csv:{p}"


def test_integer_target_with_many_values_asks_for_the_task(tmp_path: Path) -> None:
    y = np.random.default_rng(1).integers(25, 350, 400)  # like diabetes: a quantity in whole units
    name = _csv(tmp_path, y)
    with pytest.raises(DataError, match=r"distinct integer values.*set data\.task: regression"):
        load_data(DataConfig(name=name))
    splits = load_data(DataConfig(name=name, task="regression"))
    assert splits.task == "regression" and splits.y_train.dtype == torch.float32
    with pytest.raises(ConfigError, match="distinct integer values"):  # the study says so before running
        from reglab.study import parse_study

        parse_study({"name": "t", "data": {"name": name}, "arms": {"a": {}}})


def test_fractional_csv_target_is_regression_and_split_covers_its_range(tmp_path: Path) -> None:
    y = np.round(np.random.default_rng(2).normal(50, 10, 300), 3)
    splits = load_data(DataConfig(name=_csv(tmp_path, y)))
    assert splits.task == "regression"
    parts = [splits.y_train.numpy(), splits.y_val.numpy(), splits.test.labels.numpy()]
    assert sum(map(len, parts)) == 300
    for part in parts:  # stratified on quantile bins: every split spans the target's range
        assert part.min() < np.quantile(y, 0.15) and part.max() > np.quantile(y, 0.85)


def test_binary_task_needs_two_classes() -> None:
    with pytest.raises(DataError, match=r"binary but the labels are 0\.\.9"):
        load_data(DataConfig(name="digits", task="binary"))
