"""Ensembles from one training run (shared by ``swa`` and ``snapshot``): a softmax-averaging
ensemble module and the batch-norm statistics recomputation needed after weight averaging."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, x: Tensor | Iterable[Tensor], batch_size: int) -> None:
    """Re-estimate batch-norm running statistics with a cumulative average over ``x`` (a tensor,
    taken in batches of ``batch_size``, or the batches themselves: streamed data) - needed after
    weight averaging; as torch.optim.swa_utils.update_bn."""
    batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size)) if isinstance(x, Tensor) else x
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    for xb in batches:
        model(xb)
    model.train(was_training)
    for m, mom in saved:
        m.momentum = mom


class SoftmaxEnsemble(nn.Module):
    """Averages the members' softmax; returns log-probabilities so losses and argmax still work."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        probs = torch.stack([m(x).softmax(-1) for m in self.members]).mean(0)
        return probs.clamp_min(1e-12).log()
