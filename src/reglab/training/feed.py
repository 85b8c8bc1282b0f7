"""Where a run's batches come from, so the engine sees only ``(x, y)`` batches:

- :class:`TensorFeed` (the fast path): whole splits held as tensors on the device; training
  batches are slices of a per-epoch permutation drawn from the run's generator.
- :class:`StreamFeed`: data larger than the memory budget (:class:`reglab.data.streaming.StreamSplits`),
  read through a ``DataLoader`` with worker processes and pinned memory; the batch order is drawn
  from the same generator, the splits and the test-split guard are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from reglab.data.base import DataSplits, TestSplit
    from reglab.data.streaming import StreamSplits, StreamTestSplit

Batch = tuple[Tensor, Tensor]


class TensorFeed:
    def __init__(self, data: DataSplits, device: torch.device) -> None:
        self.data, self.device = data, device
        self.n_train = len(data.y_train)

    def example(self) -> Tensor:
        """Two training inputs on the CPU (a user model's output is checked on them)."""
        return self.data.x_train[:2].cpu()

    def train(self, batch_size: int, gen: torch.Generator) -> Iterator[Batch]:
        perm = torch.randperm(self.n_train, generator=gen).to(self.device)
        x, y = self.data.x_train, self.data.y_train
        for i in range(0, self.n_train, batch_size):
            idx = perm[i : i + batch_size]
            yield x[idx], y[idx]

    def split(self, name: str, batch_size: int) -> Iterable[Batch]:
        """The ``train`` or ``val`` split in order."""
        x, y = (self.data.x_train, self.data.y_train) if name == "train" else (self.data.x_val, self.data.y_val)
        return _slices(x, y, batch_size)

    def inputs(self, batch_size: int) -> Iterable[Tensor]:
        """The training inputs in order (batch-norm statistics after weight averaging)."""
        return (x for x, _ in self.split("train", batch_size))

    def test(self, test: TestSplit, batch_size: int) -> tuple[Iterable[Batch], Tensor]:
        """The test batches and labels; the one read of the test split."""
        x, y = test.read()
        x, y = x.to(self.device), y.to(self.device)
        return _slices(x, y, batch_size), y


def _slices(x: Tensor, y: Tensor, batch_size: int) -> Iterator[Batch]:
    for i in range(0, len(y), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


class StreamFeed:
    def __init__(self, data: StreamSplits, device: torch.device) -> None:
        self.data, self.device = data, device
        self.n_train = len(data.train_idx)

    def _moved(self, batches: Iterable[Any]) -> Iterator[Batch]:
        for x, y in batches:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def example(self) -> Tensor:
        return torch.stack([torch.as_tensor(self.data.dataset[int(i)][0]) for i in self.data.train_idx[:2]])

    def train(self, batch_size: int, gen: torch.Generator) -> Iterator[Batch]:
        return self._moved(self.data.train_batches(batch_size, gen))

    def split(self, name: str, batch_size: int) -> Iterable[Batch]:
        idx = self.data.train_idx if name == "train" else self.data.val_idx
        return self._moved(self.data.batches(idx, batch_size))

    def inputs(self, batch_size: int) -> Iterable[Tensor]:
        return (x for x, _ in self.split("train", batch_size))

    def test(self, test: StreamTestSplit, batch_size: int) -> tuple[Iterable[Batch], Tensor]:
        return self._moved(test.read(batch_size)), test.labels.to(self.device)


Feed = TensorFeed | StreamFeed


def make_feed(data: Any, device: torch.device) -> Feed:
    from reglab.data.streaming import StreamSplits

    return StreamFeed(data, device) if isinstance(data, StreamSplits) else TensorFeed(data, device)
