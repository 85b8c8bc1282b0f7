"""Data larger than memory: streamed from disk through a ``DataLoader`` with worker processes
and pinned memory, split by the same rules as in-memory data (:func:`reglab.data.base.split_indices`).

The decision is one comparison: the data's size as float32 tensors against ``data.memory_budget_mb``
(default: a quarter of the machine's RAM, :func:`memory_budget`). Small data keeps the fast path
(whole splits as tensors on the device, :func:`reglab.data.load_data`); :func:`open_data` returns
:class:`StreamSplits` for an image folder over the budget.

Determinism: batch order comes from a seed drawn from the run's generator, and the sampler runs in
the main process, so the batches do not depend on the number of workers. Normalization statistics
come from the train split only (per channel, from at most ``STATS_SAMPLE`` train images chosen by
``split_seed``). The test split sits behind the same counting guard as in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import torch

    from reglab.data.base import DataSplits
    from reglab.data.config import DataConfig
    from reglab.data.images import ImageIndex

STATS_SAMPLE = 10_000  # train images read for the normalization statistics


def memory_budget(cfg: DataConfig) -> int:
    """Bytes of data held in memory as tensors: ``memory_budget_mb``, or a quarter of the RAM."""
    if cfg.memory_budget_mb is not None:
        return int(cfg.memory_budget_mb * 2**20)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        ram = 8 * 2**30
    return int(ram // 4)


def estimated_bytes(cfg: DataConfig) -> int | None:
    """The data's size as float32 tensors when it can be told without loading it (image
    folders: from the headers), else None (then it is loaded into memory)."""
    if cfg.name.startswith("images:"):
        from reglab.data.images import index_folder

        return index_folder(cfg).nbytes()
    return None


def should_stream(cfg: DataConfig) -> bool:
    size = estimated_bytes(cfg)
    return size is not None and size > memory_budget(cfg)


def open_data(cfg: DataConfig) -> DataSplits | StreamSplits:
    """The data of ``cfg``: in memory when it fits the budget, else streamed."""
    if should_stream(cfg):
        return open_image_stream(cfg)
    from reglab.data import load_data

    return load_data(cfg)


class StreamTestSplit:
    """The test split of streamed data, behind a guard: every ``read`` is counted."""

    __test__ = False

    def __init__(self, splits: StreamSplits, idx: np.ndarray) -> None:
        self._splits, self._idx = splits, idx
        self.reads = 0

    def __len__(self) -> int:
        return len(self._idx)

    def read(self, batch_size: int = 1024) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.reads += 1
        return self._splits.batches(self._idx, batch_size)

    def fresh(self) -> StreamTestSplit:
        return StreamTestSplit(self._splits, self._idx)

    @property
    def labels(self) -> torch.Tensor:
        import torch

        return torch.from_numpy(self._splits.dataset.targets[self._idx])


@dataclass
class StreamSplits:
    """Train/validation/test index sets over one lazily read dataset (see the module docstring)."""

    name: str
    dataset: Any  # map-style: dataset[i] -> (normalized x, label); ``targets``: all labels (numpy)
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    n_classes: int
    classes: list[str]
    source: str
    workers: int = 2
    image: bool = True
    target_dtype: str = "int64"
    test: StreamTestSplit = field(init=False)

    def __post_init__(self) -> None:
        self.test = StreamTestSplit(self, self.test_idx)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.dataset[int(self.train_idx[0])][0].shape)

    def to(self, device: torch.device) -> StreamSplits:
        """Batches move to the device one at a time (pinned, non-blocking): nothing to move now."""
        return self

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_idx), "val": len(self.val_idx), "test": len(self.test_idx)}

    @property
    def y_train(self) -> torch.Tensor:
        """The train labels (labels are small: they stay in memory)."""
        import torch

        return torch.from_numpy(self.dataset.targets[self.train_idx])

    @property
    def y_val(self) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.dataset.targets[self.val_idx])

    def loader(self, idx: np.ndarray, batch_size: int, seed: int | None = None) -> Any:
        """A DataLoader over ``idx``: shuffled by ``seed`` (None: in order), ``workers`` processes,
        pinned memory when CUDA is there, workers kept alive between epochs."""
        import torch
        from torch.utils.data import DataLoader, Dataset, Subset

        gen = None if seed is None else torch.Generator().manual_seed(seed)
        return DataLoader(
            Subset(cast("Dataset[Any]", self.dataset), idx.tolist()),
            batch_size=batch_size,
            shuffle=seed is not None,
            generator=gen,
            num_workers=self.workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
        )

    def batches(self, idx: np.ndarray, batch_size: int, seed: int | None = None) -> Iterator[Any]:
        yield from from_workers(self.loader(idx, batch_size, seed))

    def train_batches(self, batch_size: int, gen: torch.Generator) -> Iterator[Any]:
        """One epoch of shuffled training batches; the order is drawn from the run's generator."""
        import torch

        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        return self.batches(self.train_idx, batch_size, seed)

    def val_batches(self, batch_size: int) -> Iterator[Any]:
        return self.batches(self.val_idx, batch_size)


def from_workers(loader: Iterable[Any]) -> Iterator[Any]:
    """The batches of a DataLoader; an exception raised in one of its worker processes comes back
    with its own message only. (torch re-raises it with the worker's whole traceback as the
    message: 18 lines for an unreadable image, where reglab's message is one line naming the file.)"""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as err:
            text = str(err).rstrip()
            if not (text.startswith("Caught ") and "Original Traceback" in text):
                raise
            last = text.splitlines()[-1]  # "reglab.errors.DataError: imgs/a/3.png: cannot read ..."
            kind = type(err)
            for prefix in (f"{kind.__module__}.{kind.__qualname__}: ", f"{kind.__qualname__}: "):
                last = last.removeprefix(prefix)
            try:
                plain = kind(last)
            except Exception:  # an exception type that takes other arguments
                raise RuntimeError(last) from None
            raise plain from None
        yield batch


def _channel_stats(ds: Any, idx: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over the images ``idx`` (raw pixel values, float64 sums)."""
    from torch.utils.data import DataLoader, Dataset, Subset

    total = sq = None
    count = 0
    loader = DataLoader(Subset(cast("Dataset[Any]", ds), idx.tolist()), batch_size=256, num_workers=workers)
    for xb, _ in from_workers(loader):
        x = xb.double()
        axes = (0, 2, 3) if x.ndim == 4 else (0,)  # per channel (images), else per feature
        s, q = x.sum(dim=axes).numpy(), (x * x).sum(dim=axes).numpy()
        total, sq = (s, q) if total is None else (total + s, sq + q)
        count += x.numel() // s.size
    assert total is not None and sq is not None
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean * mean, 0.0))
    return mean.astype(np.float32), np.where(std < 1e-8, 1.0, std).astype(np.float32)


def open_image_stream(cfg: DataConfig, index: ImageIndex | None = None) -> StreamSplits:
    """An image folder as :class:`StreamSplits` (no pixels read but the statistics' sample)."""
    from reglab.data.base import split_indices, stratified_subset
    from reglab.data.images import ImageFiles, index_folder

    index = index or index_folder(cfg)
    files = index.train + (index.test or [])
    y = np.array([lab for _, lab in index.train], dtype=np.int64)
    tr, va, te = split_indices(y, cfg, official_test=index.test is not None)
    if te is None:
        te = np.arange(len(index.train), len(files))
    raw_ds = ImageFiles(files, index.size, index.mode)
    sample = tr[stratified_subset(y[tr], STATS_SAMPLE, seed=cfg.split_seed + 2)] if len(tr) > STATS_SAMPLE else tr
    mean, std = _channel_stats(raw_ds, sample, cfg.loader_workers)
    ds = ImageFiles(files, index.size, index.mode, mean, std)
    all_y = ds.targets
    n_classes = int(all_y.max()) + 1
    return StreamSplits(
        name=cfg.name,
        dataset=ds,
        train_idx=tr,
        val_idx=va,
        test_idx=te,
        n_classes=n_classes,
        classes=index.classes,
        source=f"images ({index.root}, streamed)",
        workers=cfg.loader_workers,
    )


def dataset_labels(ds: Any) -> np.ndarray:
    """The labels of a map-style dataset, for stratified splitting: its ``targets`` or ``labels``
    attribute (torchvision's convention) when it has one, else by reading every item once."""
    for attr in ("targets", "labels"):
        labels = getattr(ds, attr, None)
        if labels is not None and len(labels) == len(ds):
            return np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).astype(np.int64)
    return np.array([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)


class Normalized:
    """``ds[i]`` as float32, standardized with train statistics (per channel for (C, H, W) items,
    per feature for vectors); ``targets``: the labels. Picklable for DataLoader workers."""

    def __init__(self, ds: Any, targets: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
        self.ds, self.targets, self.mean, self.std = ds, targets, mean, std

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        x = torch.as_tensor(self.ds[i][0], dtype=torch.float32)
        shape = (-1, 1, 1) if x.ndim == 3 else (-1,)
        mean = torch.from_numpy(self.mean).reshape(shape)
        std = torch.from_numpy(self.std).reshape(shape)
        return (x - mean) / std, int(self.targets[i])


class _Raw:
    """``ds[i] -> (float tensor, label)`` without normalization (for the statistics pass)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        x, y = self.ds[i]
        return torch.as_tensor(x, dtype=torch.float32), int(y)


def open_dataset_stream(ds: Any, cfg: DataConfig, name: str = "dataset") -> StreamSplits:
    """Any map-style dataset (``ds[i] -> (x, label)``) as :class:`StreamSplits`: labels from
    :func:`dataset_labels`, split by the same rules as in memory (the test split carved out:
    a dataset has no official one), statistics from the train split."""
    from reglab.data.base import split_indices, stratified_subset

    y = dataset_labels(ds)
    tr, va, te = split_indices(y, cfg, official_test=False)
    assert te is not None
    sample = tr[stratified_subset(y[tr], STATS_SAMPLE, seed=cfg.split_seed + 2)] if len(tr) > STATS_SAMPLE else tr
    mean, std = _channel_stats(_Raw(ds), sample, cfg.loader_workers)
    return StreamSplits(
        name=name,
        dataset=Normalized(ds, y, mean, std),
        train_idx=tr,
        val_idx=va,
        test_idx=te,
        n_classes=int(y.max()) + 1,
        classes=[str(c) for c in range(int(y.max()) + 1)],
        source=f"{type(ds).__name__} (streamed)",
        workers=cfg.loader_workers,
        image=np.asarray(ds[int(tr[0])][0]).ndim == 3,
    )


def dataset_bytes(ds: Any) -> int:
    """A map-style dataset's size as float32 tensors, from its first item."""
    return len(ds) * int(np.asarray(ds[0][0]).size) * 4


def open_python_data(obj: Any, cfg: DataConfig) -> DataSplits | StreamSplits:
    """What ``fit(cfg, data=obj)`` is to train on: a map-style dataset over the memory budget
    streams; everything else is read into memory (:func:`reglab.data.arrays.splits_from_python`)."""
    from reglab.data.arrays import is_dataset, splits_from_python

    if is_dataset(obj) and dataset_bytes(obj) > memory_budget(cfg):
        return open_dataset_stream(obj, cfg, type(obj).__name__)
    return splits_from_python(obj, cfg)
