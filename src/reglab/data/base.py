"""In-memory datasets: raw arrays from a loader -> stratified splits -> normalized tensors.

Every dataset goes through :func:`make_splits`, so splitting and normalization are identical for
all of them: the official test split where there is one (else a stratified one), validation carved
from train with its own ``split_seed``, statistics from the train split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from reglab.data.config import DataConfig


@dataclass
class RawData:
    """What a dataset loader returns: numpy arrays, images as (N, C, H, W), tabular as (N, F)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    image: bool = False
    classes: list[str] | None = None
    source: str = ""
    task: str | None = None  # what the dataset is for (None: inferred from y_train, see data.targets)


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


def make_splits(raw: RawData, cfg: DataConfig, name: str) -> DataSplits:
    import torch

    from reglab.data.targets import resolve_task, strata, target_array

    task = resolve_task(getattr(cfg, "task", "auto"), raw.task, raw.y_train, name)
    x, y = raw.x_train, target_array(raw.y_train, task, name)
    if raw.x_test is None or raw.y_test is None:
        tr, te = stratified_split(strata(y, task), cfg.test_fraction, seed=10_007)  # fixed: the test set never moves
        x_test, y_test = x[te], y[te]
        x, y = x[tr], y[tr]
    else:
        x_test, y_test = raw.x_test, target_array(raw.y_test, task, name)
    if cfg.cv_folds is not None:
        from sklearn.model_selection import StratifiedKFold

        folds = StratifiedKFold(n_splits=cfg.cv_folds, shuffle=True, random_state=cfg.split_seed)
        tr, va = list(folds.split(np.zeros(len(y)), strata(y, task)))[cfg.cv_fold]
    else:
        tr, va = stratified_split(strata(y, task), cfg.val_fraction, seed=cfg.split_seed)
    if cfg.n_train is not None:
        tr = tr[stratified_subset(strata(y[tr], task), cfg.n_train, seed=cfg.split_seed + 1)]
    x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]

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
            from reglab.errors import DataError

            raise DataError(f"{name}: data.task is binary but the labels are 0..{n_classes - 1}")
    return DataSplits(
        name=name,
        x_train=norm(x_tr),
        y_train=torch.from_numpy(y_tr),
        x_val=norm(x_va),
        y_val=torch.from_numpy(y_va),
        test=TestSplit(norm(x_test), torch.from_numpy(y_test)),
        n_classes=n_classes,
        image=raw.image,
        classes=[] if task == "regression" else raw.classes or [str(c) for c in range(n_classes)],
        source=raw.source,
        task=task,
    )
