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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import torch

    from reglab.data.base import DataSplits
    from reglab.data.config import DataConfig
    from reglab.data.images import ImageFiles, ImageIndex

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
    dataset: ImageFiles
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
        return (1 if self.dataset.mode == "L" else 3, *self.dataset.size)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_idx), "val": len(self.val_idx), "test": len(self.test_idx)}

    @property
    def y_train(self) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.dataset.targets[self.train_idx])

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
        yield from self.loader(idx, batch_size, seed)

    def train_batches(self, batch_size: int, gen: torch.Generator) -> Iterator[Any]:
        """One epoch of shuffled training batches; the order is drawn from the run's generator."""
        import torch

        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        return self.batches(self.train_idx, batch_size, seed)

    def val_batches(self, batch_size: int) -> Iterator[Any]:
        return self.batches(self.val_idx, batch_size)


def _channel_stats(ds: ImageFiles, idx: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over the images ``idx`` (raw pixel values, float64 sums)."""
    from torch.utils.data import DataLoader, Dataset, Subset

    total = sq = None
    count = 0
    for xb, _ in DataLoader(Subset(cast("Dataset[Any]", ds), idx.tolist()), batch_size=256, num_workers=workers):
        x = xb.double()
        s, q = x.sum(dim=(0, 2, 3)).numpy(), (x * x).sum(dim=(0, 2, 3)).numpy()
        total, sq = (s, q) if total is None else (total + s, sq + q)
        count += x.shape[0] * x.shape[2] * x.shape[3]
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
