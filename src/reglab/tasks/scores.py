"""The metrics as numpy functions ``(y_true, scores, n_classes) -> float`` (see ``METRICS``).

scikit-learn computes every one it has, so reglab's numbers are scikit-learn's. ``scores``:
probabilities (N, K) for classification, P(class 1) (N,) for binary, predictions for regression.
A metric that is undefined on the given labels (ROC AUC with one class present) is NaN.
"""

from __future__ import annotations

import math

import numpy as np


def _labels(scores: np.ndarray) -> np.ndarray:
    return (scores >= 0.5).astype(np.int64) if scores.ndim == 1 else scores.argmax(1)


def accuracy(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    return float((_labels(scores) == y).mean()) if len(y) else math.nan


def balanced_accuracy(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, _labels(scores)))


def macro_f1(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, _labels(scores), average="macro", labels=np.arange(max(n_classes, 2)), zero_division=0))


def roc_auc(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    """Binary ROC AUC, or one-vs-rest macro average over the classes present (Hand & Till 2001's
    alternative is ``ovo``; scikit-learn's ``ovr`` is the common default)."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return math.nan
    if scores.ndim == 1:
        return float(roc_auc_score(y, scores))
    if len(present) == 2 and scores.shape[1] == 2:
        return float(roc_auc_score(y, scores[:, 1]))
    if len(present) < scores.shape[1]:  # classes absent from y: one-vs-rest over those present
        return float(np.mean([roc_auc_score(y == c, scores[:, c]) for c in present]))
    p = scores / scores.sum(1, keepdims=True)  # float32 softmax rows may miss 1 by an ulp
    return float(roc_auc_score(y, p, multi_class="ovr"))


def log_loss(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import log_loss as _log_loss

    if scores.ndim == 1:
        return float(_log_loss(y, scores.astype(np.float64), labels=[0, 1]))
    p = scores.astype(np.float64)
    return float(_log_loss(y, p / p.sum(1, keepdims=True), labels=np.arange(scores.shape[1])))


def _flat(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return y.reshape(len(y), -1).astype(np.float64), pred.reshape(len(pred), -1).astype(np.float64)


def rmse(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import mean_squared_error

    return math.sqrt(float(mean_squared_error(*_flat(y, pred))))


def mae(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(*_flat(y, pred)))


def r2(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import r2_score

    if len(y) < 2:
        return math.nan
    return float(r2_score(*_flat(y, pred)))


def unsupported(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    raise ValueError("the loss is measured by the engine, not computed from scores")
