"""Tasks, losses and metrics: what a model's output means and how it is scored.

Three tasks (``data.task``): ``classification`` (K logits, softmax cross-entropy), ``binary`` (one
logit, binary cross-entropy with logits) and ``regression`` (one output per target, mean squared
error on standardized targets). ``LOSSES`` maps a loss name to a factory of ``(outputs, targets) ->
scalar``; ``METRICS`` maps a metric name to its :class:`MetricInfo` (direction, range, unit, the
tasks it applies to and a numpy function computing it, scikit-learn's where it has one, so numbers
equal scikit-learn's). Nothing here imports torch or scikit-learn at import time: the config layer
validates names against these registries and the driver never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from reglab.registry import Registry

TaskName = Literal["classification", "binary", "regression"]
TASK_NAMES: tuple[TaskName, ...] = ("classification", "binary", "regression")


@dataclass(frozen=True)
class MetricInfo:
    """One metric: ``fn(y_true, scores, n_classes)`` where ``scores`` are class probabilities (N, K)
    for classification, the probability of class 1 (N,) for binary, predictions in the target's
    units for regression. ``low``/``high``: its range (confidence intervals are clipped to it)."""

    name: str
    label: str
    higher_is_better: bool
    low: float
    high: float
    tasks: tuple[TaskName, ...]
    fn: str  # "module:function", imported lazily
    percent: bool = False  # shown as a percentage
    citation: str = ""

    def __call__(self, y_true: Any, scores: Any, n_classes: int) -> float:
        import importlib

        mod, name = self.fn.split(":")
        func: Callable[[Any, Any, int], float] = getattr(importlib.import_module(mod), name)
        return float(func(y_true, scores, n_classes))

    def clip(self, value: float | None) -> float | None:
        """``value`` inside the metric's range (None stays None)."""
        if value is None or math.isnan(value):
            return value
        return min(max(value, self.low), self.high)


METRICS: Registry[MetricInfo] = Registry("metric")
_INF = math.inf
_CLS: tuple[TaskName, ...] = ("classification", "binary")
_REG: tuple[TaskName, ...] = ("regression",)
_M = "reglab.tasks.scores"
for _info in (
    MetricInfo("acc", "accuracy", True, 0.0, 1.0, _CLS, f"{_M}:accuracy", percent=True),
    MetricInfo("bacc", "balanced accuracy", True, 0.0, 1.0, _CLS, f"{_M}:balanced_accuracy", percent=True),
    MetricInfo("f1", "macro-F1", True, 0.0, 1.0, _CLS, f"{_M}:macro_f1", percent=True),
    MetricInfo("auc", "ROC AUC", True, 0.0, 1.0, _CLS, f"{_M}:roc_auc", citation="one-vs-rest for K > 2"),
    MetricInfo("logloss", "log-loss", False, 0.0, _INF, _CLS, f"{_M}:log_loss"),
    MetricInfo("rmse", "RMSE", False, 0.0, _INF, _REG, f"{_M}:rmse"),
    MetricInfo("mae", "MAE", False, 0.0, _INF, _REG, f"{_M}:mae"),
    MetricInfo("r2", "R²", True, -_INF, 1.0, _REG, f"{_M}:r2"),
    # the training loss as measured by the engine (not computed from scores); any task
    MetricInfo("loss", "loss", False, -_INF, _INF, TASK_NAMES, f"{_M}:unsupported"),
):
    METRICS.add(_info.name, _info)

DEFAULT_METRIC: dict[str, str] = {"classification": "acc", "binary": "acc", "regression": "rmse"}
SPLITS = ("train", "val", "test")


def split_metric(key: str) -> tuple[str, MetricInfo] | None:
    """``"val_rmse"`` -> ("val", RMSE's info); None when ``key`` is not ``<split>_<metric>``."""
    split, _, name = key.partition("_")
    if split in SPLITS and name in METRICS:
        return split, METRICS.get(name)
    return None


def metric_info(key: str) -> MetricInfo | None:
    """The metric of a key such as ``test_auc`` or ``auc`` (None for other keys, e.g. ``gap``)."""
    if key in METRICS:
        return METRICS.get(key)
    found = split_metric(key)
    return found[1] if found else None


def higher_is_better(key: str) -> bool:
    """Direction of a metric key; unknown keys ending in ``loss`` are lower-is-better, others higher."""
    info = metric_info(key)
    return info.higher_is_better if info is not None else not key.endswith("loss")


def gap(metric: str, train: float, test: float) -> float:
    """How much better a model does on train than on test in ``metric`` (positive: over-fitting),
    as both engines record it in ``final["gap"]``."""
    return train - test if higher_is_better(metric) else test - train


def check_metric(key: str, splits: tuple[str, ...], task: str | None, where: str) -> str:
    """``key`` as ``<split>_<metric>`` with a registered metric that applies to ``task`` (None:
    unknown yet), or a ValueError naming the valid choices."""
    split, _, name = key.partition("_")
    if split not in splits or not name:
        raise ValueError(f"{where}: {key!r} must be {' or '.join(s + '_<metric>' for s in splits)}")
    if name not in METRICS:
        raise ValueError(f"{where}: unknown metric {name!r}; valid: {', '.join(METRICS.names())}")
    info = METRICS.get(name)
    if task is not None and task not in info.tasks:
        fits = [n for n, m in METRICS.items() if task in m.tasks]
        raise ValueError(f"{where}: {name!r} does not apply to a {task} task; valid: {', '.join(fits)}")
    return key


def applicable(task: str) -> list[str]:
    """The metrics computed at the end of every run of ``task`` (the loss excluded)."""
    return [n for n, m in METRICS.items() if task in m.tasks and n != "loss"]


# -- losses -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossInfo:
    """A built-in loss: which tasks it fits and a factory of the torch callable (imported lazily)."""

    name: str
    doc: str
    tasks: tuple[TaskName, ...]
    factory: str  # "module:function" returning (outputs, targets) -> scalar tensor

    def __call__(self) -> Callable[..., Any]:
        import importlib

        mod, fn = self.factory.split(":")
        make: Callable[[], Callable[..., Any]] = getattr(importlib.import_module(mod), fn)
        return make()


LOSSES: Registry[LossInfo] = Registry("loss")
_L = "reglab.tasks.losses"
for _loss in (
    LossInfo("cross_entropy", "softmax cross-entropy over K logits", ("classification",), f"{_L}:cross_entropy"),
    LossInfo("bce", "binary cross-entropy with logits (one output)", ("binary",), f"{_L}:bce"),
    LossInfo("mse", "mean squared error (on standardized targets)", ("regression",), f"{_L}:mse"),
    LossInfo("huber", "Huber loss, delta 1 (on standardized targets; Huber 1964)", ("regression",), f"{_L}:huber"),
):
    LOSSES.add(_loss.name, _loss)

DEFAULT_LOSS: dict[str, str] = {"classification": "cross_entropy", "binary": "bce", "regression": "mse"}


def check_loss(loss: str, task: str, where: str = "train.loss") -> None:
    """A built-in loss that fits ``task`` (``auto`` always does), or a ValueError."""
    if loss == "auto":
        return
    if loss not in LOSSES:
        raise ValueError(f"{where}: {LOSSES.unknown(loss, 'auto', '{class_path: ..., init_args: ...}')}")
    info = LOSSES.get(loss)
    if task not in info.tasks:
        fits = [n for n, i in LOSSES.items() if task in i.tasks]
        raise ValueError(f"{where}: {loss!r} does not fit a {task} task; use auto or {', '.join(fits)}")
