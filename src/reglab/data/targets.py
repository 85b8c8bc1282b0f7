"""The target column: which task it is, and its encoding (numpy only; the driver reads it too).

``data.task: auto`` takes the task a dataset declares, else infers it from the values: fractional
numbers are a regression target; integers (or text) are class labels, unless there are so many
distinct integers that they are more likely a quantity (a count, a price in whole units): then the
user must say which (``data.task``) instead of getting a silent 214-class classification.
"""

from __future__ import annotations

import warnings

import numpy as np

from reglab.errors import DataError

MANY_CLASSES = 50  # more distinct integer values than this (and few examples per value): ambiguous
WARN_CLASSES = 20  # more than this: classification, with a warning
REGRESSION_BINS = 10  # quantile bins a regression target is stratified on
MAX_TARGET = 1e15  # larger regression targets overflow float32 when standardized (squared deviations)


def infer_task(y: np.ndarray, where: str) -> str:
    """``classification`` or ``regression`` from the target values (never ``binary``: two classes
    stay softmax classification unless ``data.task: binary`` says otherwise)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return "regression"
    if y.dtype.kind in "OUSb":
        return "classification"
    if y.dtype.kind == "f" and not np.all(np.mod(y[np.isfinite(y)], 1) == 0):
        return "regression"
    k = len(np.unique(y))
    if k > MANY_CLASSES and k > len(y) / 10:
        raise DataError(
            f"{where}: the target has {k} distinct integer values in {len(y)} rows - a quantity or {k} classes? "
            "set data.task: regression or data.task: classification"
        )
    if k > WARN_CLASSES:
        warnings.warn(
            f"{where}: treating the integer target as {k} classes; set data.task: regression if it is a quantity",
            stacklevel=2,
        )
    return "classification"


def resolve_task(requested: str, declared: str | None, y: np.ndarray | None, where: str) -> str:
    """The task of a run: ``requested`` unless ``auto``, else the dataset's, else inferred."""
    if requested != "auto":
        return requested
    if declared is not None:
        return declared
    if y is None:
        return "classification"
    return infer_task(y, where)


def encode_target(values: np.ndarray, task: str, where: str) -> tuple[np.ndarray, list[str] | None]:
    """Class labels 0..K-1 with their names (classification, binary), or float targets (regression).
    A single class, a binary task with other than two classes, and non-numeric or non-finite
    regression targets are refused."""
    values = np.asarray(values)
    if task == "regression":
        if values.dtype.kind not in "iufb":
            raise DataError(f"{where}: a regression target must be numeric (got {values.dtype})")
        check_target_range(values, where)
        return values.astype(np.float32), None
    if values.dtype.kind == "f":
        if not np.all(np.mod(values, 1) == 0):
            raise DataError(f"{where}: the target has fractional values; set data.task: regression for a quantity")
        values = values.astype(np.int64)
    if values.dtype.kind in "OU":
        values = values.astype(str)
    uniq, codes = np.unique(values, return_inverse=True)
    if len(uniq) < 2:
        raise DataError(f"{where}: the target has a single class ({uniq[0]!r}); need at least 2")
    if task == "binary" and len(uniq) != 2:
        raise DataError(f"{where}: data.task is binary but the target has {len(uniq)} classes")
    return codes.astype(np.int64), [str(u) for u in uniq]


def check_target_range(y: np.ndarray, where: str) -> None:
    """Refuse a regression target with NaN or infinite values, or with values so large (above
    :data:`MAX_TARGET` in magnitude) that training, which standardizes the target in float32,
    would overflow to infinity: 1e300 turned into inf with only a RuntimeWarning, 1e30 into an
    infinite RMSE."""
    v = np.asarray(y, dtype=np.float64)
    if not np.isfinite(v).all():
        raise DataError(f"{where}: the regression target has NaN or infinite values; remove or impute them")
    big = np.abs(v.reshape(len(v), -1)) > MAX_TARGET
    if big.any():
        row = int(np.flatnonzero(big.any(axis=1))[0])
        raise DataError(
            f"{where}: target values up to {float(np.abs(v).max()):.3g} in magnitude (first at row {row}) are too "
            f"large to standardize in float32 (limit {MAX_TARGET:.0e}); rescale the target, e.g. to other units "
            "or its logarithm"
        )


def strata(y: np.ndarray, task: str) -> np.ndarray:
    """What splits are stratified on: the labels, or for regression the quantile bin of the
    (first) target, so every split covers the target's range."""
    if task != "regression":
        return y
    v = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
    bins = max(1, min(REGRESSION_BINS, len(v) // 10))
    edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, v, side="right").astype(np.int64)


def target_array(y: np.ndarray, task: str, where: str) -> np.ndarray:
    """Labels as int64 (classification, binary) or targets as float32 (regression)."""
    y = np.asarray(y)
    if task == "regression":
        return y.astype(np.float32)
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise DataError(f"{where}: the target has fractional values; set data.task: regression for a quantity")
    return y.astype(np.int64)
