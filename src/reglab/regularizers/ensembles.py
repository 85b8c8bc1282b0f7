"""Ensembles from one training run: stochastic weight averaging and snapshot ensembles."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from reglab.config import SnapshotConfig, SWAConfig
from reglab.regularizers.base import Regularizer, TrainContext


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, x: Tensor, batch_size: int) -> None:
    """Re-estimate batch-norm running statistics with a cumulative average over ``x``
    (needed after weight averaging; as torch.optim.swa_utils.update_bn, without a DataLoader)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    model.train(was_training)
    for m, mom in saved:
        m.momentum = mom


class SWA(Regularizer):
    """Average the weights of the last epochs (Izmailov et al. 2018): wider optima, better
    generalization, one model's inference cost."""

    name = "swa"

    def __init__(self, cfg: SWAConfig) -> None:
        self.cfg = cfg
        self.averaged: torch.optim.swa_utils.AveragedModel | None = None
        self.n_averaged = 0

    def _start_epoch(self, ctx: TrainContext) -> int:
        return min(ctx.epochs - 1, max(0, math.ceil(self.cfg.start * ctx.epochs) - 1))

    def adjust_lr(self, epoch: int, lr: float, ctx: TrainContext) -> float:
        if self.cfg.lr is not None and epoch >= self._start_epoch(ctx):
            return self.cfg.lr
        return lr

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        if int(record["epoch"]) - 1 >= self._start_epoch(ctx):
            if self.averaged is None:
                self.averaged = torch.optim.swa_utils.AveragedModel(model)
            # also for the first model: AveragedModel only counts what update_parameters saw
            self.averaged.update_parameters(model)
            self.n_averaged += 1
        return False

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        if self.averaged is None:
            return model
        avg = self.averaged.module
        recompute_batch_norm(avg, ctx.x_train, max(ctx.batch_size, 256))
        avg.eval()
        return avg

    def summary(self) -> dict[str, Any]:
        return {"swa_epochs_averaged": self.n_averaged}


class SoftmaxEnsemble(nn.Module):
    """Averages the members' softmax; returns log-probabilities so losses and argmax still work."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        probs = torch.stack([m(x).softmax(-1) for m in self.members]).mean(0)
        return probs.clamp_min(1e-12).log()


class Snapshot(Regularizer):
    """Cyclic cosine learning rate; a snapshot at the end of each cycle; predictions average the
    snapshots (Huang et al. 2017, "Train 1, get M for free")."""

    name = "snapshot"

    def __init__(self, cfg: SnapshotConfig) -> None:
        self.cfg = cfg
        self.snapshots: list[dict[str, Any]] = []

    def _bounds(self, ctx: TrainContext) -> list[int]:
        """Epoch counts at which each cycle ends (cycles as equal as the epochs allow)."""
        cycles = min(self.cfg.cycles, ctx.epochs)
        return [round((i + 1) * ctx.epochs / cycles) for i in range(cycles)]

    def adjust_lr(self, epoch: int, lr: float, ctx: TrainContext) -> float:
        start = 0
        for end in self._bounds(ctx):
            if epoch < end:
                return lr * 0.5 * (1 + math.cos(math.pi * (epoch - start) / (end - start)))
            start = end
        return lr

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        if int(record["epoch"]) in self._bounds(ctx):  # the end of a cycle: lowest learning rate
            self.snapshots.append(copy.deepcopy(model.state_dict()))
        return False

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        if len(self.snapshots) < 2:
            return model
        members = []
        for state in self.snapshots[-self.cfg.cycles :]:
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            m.eval()
            members.append(m)
        return SoftmaxEnsemble(members)

    def summary(self) -> dict[str, Any]:
        return {"snapshots": min(len(self.snapshots), self.cfg.cycles)}
