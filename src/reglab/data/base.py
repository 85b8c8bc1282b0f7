"""In-memory datasets: raw arrays from a loader -> stratified splits -> normalized tensors.

Every dataset goes through :func:`make_splits`, so splitting and normalization are identical for
all of them: the official test split where there is one (else a stratified one), validation carved
from train with its own ``split_seed`` (or the given validation split), statistics and the encoding
of text columns from the train split only. Targets are checked here once for every source: class
labels must be integers 0..K-1 with at least two classes; fractional targets are kept as floats
only for ``task="regression"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from reglab.errors import DataError

if TYPE_CHECKING:
    import torch

    from reglab.data.config import DataConfig


@dataclass
class RawData:
    """What a dataset loader returns: numpy arrays, images as (N, C, H, W), tabular as (N, F).

    ``cat_*``: text columns of a table, (N, C) strings, encoded by :func:`make_splits` with
    categories from the train split only (``cat_names`` names them). ``x_val``/``y_val``: a given
    validation split (else it is carved from train). ``target_dtype``: the target's dtype as the
    user gave it (e.g. ``int64``, ``float64``, ``object`` for text labels), for task inference."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    image: bool = False
    classes: list[str] | None = None
    source: str = ""
    task: str | None = None  # what the dataset is for (None: inferred from y_train, see data.targets)
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    cat_train: np.ndarray | None = None
    cat_test: np.ndarray | None = None
    cat_val: np.ndarray | None = None
    cat_names: list[str] = field(default_factory=list)
    target_name: str = "target"
    target_dtype: str = ""

    def __post_init__(self) -> None:
        if not self.target_dtype:
            self.target_dtype = str(self.y_train.dtype)


class TestSplit:
    """The test split, behind a guard: reading it is counted, so tests can assert that it is
    touched only by the final evaluation of a run (never for any selection)."""

    __test__ = False  # not a pytest class

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._x, self._y = x, y
        self.reads = 0

    def __len__(self) -> int:
        return len(self._y)

    def read(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.reads += 1
        return self._x, self._y

    def to(self, device: torch.device) -> TestSplit:
        return TestSplit(self._x.to(device), self._y.to(device))

    def fresh(self) -> TestSplit:
        """The same tensors behind a new guard (reads = 0): one per run when data is cached."""
        return TestSplit(self._x, self._y)

    @property
    def labels(self) -> torch.Tensor:
        """The test labels, for packing a finished run's predictions (not counted as a read)."""
        return self._y


@dataclass
class DataSplits:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    test: TestSplit
    n_classes: int
    image: bool
    classes: list[str] = field(default_factory=list)
    source: str = ""
    task: str = "classification"  # n_classes: classes, or target columns for regression
    target_dtype: str = ""  # the raw target's dtype (RawData.target_dtype)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device) -> DataSplits:
        return DataSplits(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_val.to(device),
            self.y_val.to(device),
            self.test.to(device),
            self.n_classes,
            self.image,
            self.classes,
            self.source,
            self.task,
            self.target_dtype,
        )

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.test)}


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of every class held out (at least one per class
    when the class has two or more examples)."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = round(len(idx) * fraction)
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified subset of exactly ``n`` examples (class shares preserved; the
    places left after rounding down go to the largest remainders)."""
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / len(y)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(take - quota, kind="stable")[: n - int(take.sum())]] += 1
    picks = []
    for c, k in zip(classes, take, strict=True):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        picks.append(idx[:k])
    return np.sort(np.concatenate(picks))


def _fractional(y: np.ndarray) -> bool:
    return bool(np.issubdtype(y.dtype, np.floating) and not np.all(np.mod(y, 1) == 0))


def check_raw(raw: RawData, task: str | None = None) -> bool:
    """Check ``raw`` before anything is trained or stored; returns True when the targets are
    continuous (``task="regression"``). Raises :class:`DataError` naming the source and the fix:
    mismatched lengths, NaN or infinite features, fractional, negative or single-class labels."""
    where = raw.source or "data"
    splits: list[tuple[str, np.ndarray | None, np.ndarray | None, np.ndarray | None]]
    splits = [("train", raw.x_train, raw.y_train, raw.cat_train)]
    if raw.x_test is not None or raw.y_test is not None:
        splits.append(("test", raw.x_test, raw.y_test, raw.cat_test))
    if raw.x_val is not None or raw.y_val is not None:
        splits.append(("val", raw.x_val, raw.y_val, raw.cat_val))
    for split, x, y, cat in splits:
        if x is None or y is None:
            raise DataError(f"{where}: the {split} split has {'no labels' if y is None else 'no features'}")
        if len(x) != len(y):
            raise DataError(
                f"{where}: {split} features have {len(x)} rows but the targets have {len(y)}; "
                "give one target per example"
            )
        if cat is not None and len(cat) != len(y):
            raise DataError(f"{where}: {split} text columns have {len(cat)} rows, the targets {len(y)}")
        if len(y) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0]
            raise DataError(
                f"{where}: NaN or infinite feature values in the {split} split (first at row {bad[0]}, "
                f"feature {bad[1]}); remove or impute them"
            )
        if not np.issubdtype(y.dtype, np.number) and y.dtype != np.bool_:
            raise DataError(f"{where}: {split} targets must be numbers, not {y.dtype}; encode text labels as 0..K-1")
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise DataError(f"{where}: NaN or infinite {raw.target_name!r} values in the {split} split")
    ys = [y for _, _, y, _ in splits if y is not None]
    if task == "regression":
        from reglab.data.targets import check_target_range

        for (split, _, _, _), y in zip(splits, ys, strict=True):
            check_target_range(y, f"{where}: {raw.target_name!r} in the {split} split")
        return True
    if any(_fractional(y) for y in ys):
        raise DataError(
            f"{where}: {raw.target_name!r} has fractional values; classification needs integer class labels "
            "0..K-1 (a continuous target is a regression task)"
        )
    if any(y.ndim != 1 for y in ys):
        raise DataError(f"{where}: class labels must be one label per example (1-D), got shape {ys[0].shape}")
    low = min(int(y.min()) for y in ys)
    if low < 0:
        raise DataError(f"{where}: class labels out of range (smallest is {low}); use labels 0..K-1")
    if len(np.unique(raw.y_train)) < 2:
        raise DataError(f"{where}: the training data has a single class ({raw.y_train[0]!r}); need at least 2")
    return False


def encode_categories(train: np.ndarray, others: list[np.ndarray], how: str) -> list[np.ndarray]:
    """Encode text columns with categories fitted on ``train`` only: one-hot (a category unseen
    in train is all zeros) or ordinal (codes 0..K-1 in sorted order, unseen = -1)."""
    out: list[list[np.ndarray]] = [[] for _ in range(1 + len(others))]
    for j in range(train.shape[1]):
        cats = np.unique(train[:, j].astype(str))
        for k, a in enumerate([train, *others]):
            col = a[:, j].astype(str)
            pos = np.searchsorted(cats, col)
            known = (pos < len(cats)) & (cats[np.minimum(pos, len(cats) - 1)] == col)
            if how == "ordinal":
                out[k].append(np.where(known, pos, -1).astype(np.float32)[:, None])
            else:
                onehot = np.zeros((len(col), len(cats)), np.float32)
                onehot[np.flatnonzero(known), pos[known]] = 1.0
                out[k].append(onehot)
    return [np.concatenate(parts, axis=1) for parts in out]


def split_indices(
    y: np.ndarray, cfg: DataConfig, official_test: bool, task: str = "classification"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(train, val, test) indices into ``y`` by the split rules: the test split carved out first
    with a fixed seed unless there is an official one (then None), validation from the rest by
    ``split_seed`` (or CV fold ``cv_fold``), then ``n_train`` examples; stratified on the labels,
    or on quantile bins of a regression target (``data.targets.strata``). In-memory and streamed
    data share it, so they split identically."""
    from reglab.data.targets import strata

    idx, te = np.arange(len(y)), None
    if not official_test:
        idx, te = stratified_split(strata(y, task), cfg.test_fraction, seed=10_007)  # fixed: never moves
    key = strata(y[idx], task)
    if cfg.cv_folds is not None:
        from sklearn.model_selection import StratifiedKFold

        folds = StratifiedKFold(n_splits=cfg.cv_folds, shuffle=True, random_state=cfg.split_seed)
        tr, va = list(folds.split(np.zeros(len(key)), key))[cfg.cv_fold]
    else:
        tr, va = stratified_split(key, cfg.val_fraction, seed=cfg.split_seed)
    if cfg.n_train is not None:
        tr = tr[stratified_subset(key[tr], cfg.n_train, seed=cfg.split_seed + 1)]
    return idx[tr], idx[va], te


def check_split_sizes(where: str, y_train: np.ndarray, y_val: np.ndarray, y_test: np.ndarray, task: str) -> None:
    """Refuse splits that cannot support a study: an empty train, validation or test split, or
    (classification) a class of the validation or test split that the train split never shows."""
    sizes = f"{len(y_train)} train, {len(y_val)} validation and {len(y_test)} test examples"
    if min(len(y_train), len(y_val), len(y_test)) == 0:
        raise DataError(
            f"{where}: the data splits into {sizes}; every split needs at least one example "
            "(use more data, or change data.val_fraction / data.test_fraction / data.n_train)"
        )
    if task != "regression" and y_train.ndim == 1:
        missing = np.setdiff1d(np.unique(np.concatenate([y_val, y_test])), np.unique(y_train))
        if len(missing):
            labels = ", ".join(str(c) for c in missing[:5].tolist()) + (", ..." if len(missing) > 5 else "")
            raise DataError(
                f"{where}: the data splits into {sizes}, and the train split has no example of class "
                f"{labels} ({len(np.unique(y_train))} of {len(np.unique(y_train)) + len(missing)} classes); "
                "use more data or a larger data.n_train"
            )


def check_splits(raw: RawData, cfg: DataConfig, name: str, task: str | None = None) -> None:
    """Refuse data a study cannot use: what :func:`check_raw` refuses, and splits (as
    :func:`make_splits` makes them, sizes only) that :func:`check_split_sizes` refuses. Studies call
    it before anything is stored; :func:`make_splits` itself stays permissive (single runs, tests)."""
    from reglab.data.targets import resolve_task

    task = task or resolve_task(getattr(cfg, "task", "auto"), raw.task, raw.y_train, name)
    _, y, _, tr, va, _, y_test, _ = _split(raw, cfg, name, task)
    check_split_sizes(raw.source or name, y[tr], y[va], y_test, task)


def _split(
    raw: RawData, cfg: DataConfig, name: str, task: str
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None
]:
    """(x, y, text columns, train and validation indices into them, test x, y and text columns)."""
    from reglab.data.targets import strata, target_array

    check_raw(raw, task)
    official = raw.x_test is not None and raw.y_test is not None
    te: np.ndarray | None
    if raw.x_val is not None and raw.y_val is not None:  # a given validation split: appended after train
        n0 = len(raw.y_train)
        x = np.concatenate([raw.x_train, raw.x_val])
        y = np.concatenate([target_array(raw.y_train, task, name), target_array(raw.y_val, task, name)])
        both = raw.cat_train is not None and raw.cat_val is not None
        cat = np.concatenate([raw.cat_train, raw.cat_val]) if both else None
        tr, te = np.arange(n0), None
        if not official:
            tr, te = stratified_split(strata(y[:n0], task), cfg.test_fraction, seed=10_007)
        va = np.arange(n0, len(y))
        if cfg.n_train is not None:
            tr = tr[stratified_subset(strata(y[tr], task), cfg.n_train, seed=cfg.split_seed + 1)]
    else:
        x, y, cat = raw.x_train, target_array(raw.y_train, task, name), raw.cat_train
        tr, va, te = split_indices(y, cfg, official, task)
    if te is None:
        assert raw.x_test is not None and raw.y_test is not None
        x_test, y_test, cat_test = raw.x_test, target_array(raw.y_test, task, name), raw.cat_test
    else:
        x_test, y_test, cat_test = x[te], y[te], None if cat is None else cat[te]
    return x, y, cat, tr, va, x_test, y_test, cat_test


def make_splits(raw: RawData, cfg: DataConfig, name: str, task: str | None = None) -> DataSplits:
    """Split, encode and normalize ``raw`` (see the module docstring). The task is ``task``, else
    ``data.task``, else the dataset's own, else inferred from the target (``data.targets``)."""
    import torch

    from reglab.data.targets import resolve_task

    task = task or resolve_task(getattr(cfg, "task", "auto"), raw.task, raw.y_train, name)
    x, y, cat, tr, va, x_test, y_test, cat_test = _split(raw, cfg, name, task)
    x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    if cat is not None:  # text columns: categories from the train split only
        assert cat_test is not None
        c_tr, c_va, c_te = encode_categories(cat[tr], [cat[va], cat_test], cfg.categorical)
        x_tr, x_va = np.concatenate([x_tr, c_tr], axis=1), np.concatenate([x_va, c_va], axis=1)
        x_test = np.concatenate([x_test, c_te], axis=1)

    x_tr = x_tr.astype(np.float32)
    if raw.image:
        axes = (0, 2, 3)  # per-channel statistics
        mean = x_tr.mean(axis=axes, keepdims=True)
        std = x_tr.std(axis=axes, keepdims=True)
    else:
        mean = x_tr.mean(axis=0, keepdims=True)
        std = x_tr.std(axis=0, keepdims=True)
    std = np.where(std < 1e-8, 1.0, std).astype(np.float32)

    def norm(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray((a.astype(np.float32) - mean) / std))

    if task == "regression":
        n_classes = int(np.prod(y.shape[1:]))  # target columns
    else:
        n_classes = int(max(y.max(), y_test.max())) + 1 if len(y_test) else int(y.max()) + 1
        if task == "binary" and n_classes != 2:
            raise DataError(f"{name}: data.task is binary but the labels are 0..{n_classes - 1}")
    return DataSplits(
        name=name,
        x_train=norm(x_tr),
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr)),
        x_val=norm(x_va),
        y_val=torch.from_numpy(np.ascontiguousarray(y_va)),
        test=TestSplit(norm(x_test), torch.from_numpy(np.ascontiguousarray(y_test))),
        n_classes=n_classes,
        image=raw.image,
        classes=[] if task == "regression" else raw.classes or [str(c) for c in range(n_classes)],
        source=raw.source,
        task=task,
        target_dtype=raw.target_dtype,
    )
