"""The user function of ``benchmarks/own_function.py``: the 20-trial digits search of
``benchmarks/peers.py`` written as a user would write it - a plain PyTorch slice loop over
in-memory tensors, the default MLP 64-256-128-10 (ReLU, dropout after each hidden layer), plain
SGD, L2 as reglab applies it (``l2 * sum w^2`` over the weight matrices, added to the loss),
validation accuracy after every epoch. It reads only ``settings`` and ``ctx``, so reglab and a
plain Optuna script run the same code."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def run(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    d = ctx.data()
    x, y = torch.as_tensor(d.x_train).flatten(1), torch.as_tensor(d.y_train).long()
    xv, yv = torch.as_tensor(d.x_val).flatten(1), torch.as_tensor(d.y_val).long()
    p = float(settings["dropout"])
    model = nn.Sequential(
        nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Dropout(p), nn.Linear(256, 128), nn.ReLU(), nn.Dropout(p),
        nn.Linear(128, d.n_classes),
    )  # fmt: skip
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    opt = torch.optim.SGD(model.parameters(), lr=float(settings["lr"]))
    l2, bs = float(settings["l2"]), int(settings["batch_size"])
    order = torch.Generator().manual_seed(ctx.seed)
    val_acc = 0.0
    for epoch in range(1, int(settings["epochs"]) + 1):
        model.train()
        perm = torch.randperm(len(y), generator=order)
        for i in range(0, len(y), bs):
            idx = perm[i : i + bs]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx]) + l2 * sum((w * w).sum() for w in weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_acc = _accuracy(model, xv, yv)
        ctx.report(epoch, val_acc=val_acc)
    out = {"train_acc": _accuracy(model, x, y), "val_acc": val_acc}
    if ctx.may_use_test:
        out["test_acc"] = _accuracy(model, torch.as_tensor(d.x_test).flatten(1), torch.as_tensor(d.y_test).long())
    return out
