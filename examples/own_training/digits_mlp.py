"""Your own training code, as reglab runs it: a plain PyTorch loop (no reglab engine) that trains
an MLP on the digits split reglab hands it (``ctx.data()``), with weight decay and dropout.

The contract: ``run(settings, ctx) -> dict[str, float]``. ``settings`` holds the study's
``settings:``, the arm's overrides and the tuned values; ``ctx.report`` once per epoch feeds
reglab's pruner, time budget and curves; the test split is read only when ``ctx.may_use_test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Settings:
    """What ``run`` reads; reglab checks every arm of the study against it (``reglab validate``)."""

    lr: float = 0.05
    momentum: float = 0.9
    epochs: int = 20
    hidden: int = 128
    batch_size: int = 32
    weight_decay: float = 0.0
    dropout: float = 0.0


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
        return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def run(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    s = Settings(**settings)
    data = ctx.data()  # reglab's split of the study's data: the same for every arm at a seed
    x_train = torch.as_tensor(data.x_train, dtype=torch.float32).flatten(1)
    y_train = torch.as_tensor(data.y_train, dtype=torch.long)
    x_val = torch.as_tensor(data.x_val, dtype=torch.float32).flatten(1)
    y_val = torch.as_tensor(data.y_val, dtype=torch.long)

    model = nn.Sequential(
        nn.Linear(x_train.shape[1], s.hidden),
        nn.ReLU(),
        nn.Dropout(s.dropout),
        nn.Linear(s.hidden, data.n_classes),
    )
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    order = torch.Generator().manual_seed(ctx.seed)  # reglab seeded everything; own generator for the batches
    n = len(y_train)
    for epoch in range(1, s.epochs + 1):
        model.train()
        for idx in torch.randperm(n, generator=order).split(s.batch_size):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
        train_loss, train_acc = _evaluate(model, x_train, y_train)
        val_loss, val_acc = _evaluate(model, x_val, y_val)
        # per-epoch metrics: pruning, the time budget's stop and the report's curves
        ctx.report(epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc)

    out = {"train_acc": train_acc, "train_loss": train_loss, "val_acc": val_acc, "val_loss": val_loss}
    if ctx.may_use_test:  # confirmation runs only: the test split is locked while tuning
        x_test = torch.as_tensor(data.x_test, dtype=torch.float32).flatten(1)
        out["test_loss"], out["test_acc"] = _evaluate(model, x_test, torch.as_tensor(data.y_test, dtype=torch.long))
    return out
