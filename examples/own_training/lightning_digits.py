"""Your own PyTorch Lightning code under reglab: a ``LightningModule`` + ``Trainer`` trained inside
``run(settings, ctx)`` on the digits split reglab hands it (``ctx.data()``), with weight decay and
dropout as the settings the arms change.

How it meets the contract:

- ``ReglabReport`` (a Lightning ``Callback``) calls ``ctx.report`` at each validation epoch end, so
  reglab's pruner, time budget and curves see every epoch. When reglab wants the run to stop,
  ``ctx.report`` raises ``StopRun`` (a ``BaseException``): Lightning's ``Trainer.fit`` tears down
  (``on_exception`` hooks, loggers) and re-raises it unchanged, so it reaches reglab.
- The validation loop evaluates two loaders, the training set and the validation set, both in eval
  mode (dropout off): the ``train_acc`` next to ``val_acc`` that reglab's bias/variance diagnosis needs.
- Determinism: reglab seeds torch before the run; the batch order comes from a ``torch.Generator``
  seeded with ``ctx.seed``, no loader workers, and ``Trainer(deterministic=True)``.

Install: ``pip install 'reglab[lightning]'``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# Lightning's banner ("GPU available: ...") and its hint to use loader workers (in-memory tensors
# need none) would repeat in every run's output; so would a deprecation inside Lightning under torch 2.13.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*number of training batches.*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


@dataclass
class Settings:
    """What ``run`` reads; reglab checks every arm of the study against it (``reglab validate``)."""

    lr: float = 0.05
    momentum: float = 0.9
    epochs: int = 10
    hidden: int = 64
    batch_size: int = 32
    weight_decay: float = 0.0
    dropout: float = 0.0


class DigitsMLP(L.LightningModule):
    """An MLP classifier; validation dataloader 0 is the training set, 1 the validation set."""

    SPLITS = ("train", "val")

    def __init__(self, n_in: int, n_classes: int, s: Settings) -> None:
        super().__init__()
        self.s = s
        self.net = nn.Sequential(
            nn.Linear(n_in, s.hidden), nn.ReLU(), nn.Dropout(s.dropout), nn.Linear(s.hidden, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        x, y = batch
        out = self(x)
        split = self.SPLITS[dataloader_idx]
        # epoch means weighted by batch size: the whole split's loss and accuracy
        kw: dict[str, Any] = {"on_epoch": True, "batch_size": len(y), "add_dataloader_idx": False}
        self.log(f"{split}_loss", nn.functional.cross_entropy(out, y), **kw)
        self.log(f"{split}_acc", (out.argmax(1) == y).float().mean(), **kw)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        s = self.s
        return torch.optim.SGD(self.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)


class ReglabReport(L.Callback):
    """Reports each validation epoch's metrics to reglab (pruning, time budget, curves). A
    ``StopRun`` raised by ``ctx.report`` propagates out of ``Trainer.fit``."""

    KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.last: dict[str, float] = {}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:  # not an epoch of training
            return
        m = trainer.callback_metrics
        self.last = {k: float(m[k]) for k in self.KEYS if k in m}
        self.ctx.report(trainer.current_epoch + 1, **self.last)


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int | None = None) -> DataLoader[Any]:
    shuffle = seed is not None
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)


def _tensors(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(x, dtype=torch.float32).flatten(1), torch.as_tensor(y, dtype=torch.long)


def run(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    s = Settings(**settings)
    data = ctx.data()  # reglab's split of the study's data: the same for every arm at a seed
    train, val = _tensors(data.x_train, data.y_train), _tensors(data.x_val, data.y_val)
    model = DigitsMLP(train[0].shape[1], data.n_classes, s)
    report = ReglabReport(ctx)
    trainer = L.Trainer(
        max_epochs=s.epochs,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        num_sanity_val_steps=0,
        callbacks=[report],
    )
    evaluate = [_loader(*train, batch_size=512), _loader(*val, batch_size=512)]
    trainer.fit(model, train_dataloaders=_loader(*train, s.batch_size, seed=ctx.seed), val_dataloaders=evaluate)

    out = dict(report.last)  # the last epoch's train/val metrics
    if ctx.may_use_test:  # confirmation runs only: the test split is locked while tuning
        x_test, y_test = _tensors(data.x_test, data.y_test)
        model.eval()
        with torch.no_grad():
            logits = model(x_test)
        out["test_loss"] = float(nn.functional.cross_entropy(logits, y_test))
        out["test_acc"] = float((logits.argmax(1) == y_test).float().mean())
    return out
