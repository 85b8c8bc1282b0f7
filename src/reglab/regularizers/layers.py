"""Modules of the structural and weight-masking regularizers: thin wrappers of
:mod:`reglab.regularizers.functional` (like timm's ``DropPath`` around ``drop_path``), active in
training only. Imported where they are built (this module imports torch)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reglab.regularizers import functional as Fn


class DropPath(nn.Module):
    """Drops a residual branch per example with probability ``p`` in training (stochastic depth,
    Huang et al. 2016); the identity in evaluation. ``gen``: draw from this generator instead of
    torch's global RNG (which the engine seeds per run, as for dropout)."""

    def __init__(self, p: float, gen: torch.Generator | None = None) -> None:
        super().__init__()
        self.p, self.gen = p, gen

    def forward(self, x: Tensor) -> Tensor:
        return Fn.drop_path(x, self.p, self.gen) if self.training else x

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class DropConnectWeight(nn.Module):
    """A weight with each entry dropped with probability ``p`` and the rest scaled by 1 / (1 - p),
    a fresh mask each call, in training (DropConnect, Wan et al. 2013); the plain weight in
    evaluation. Used as a ``torch.nn.utils.parametrize`` parametrization of linear and conv weights,
    and on the LSTM's hidden-to-hidden weights (weight drop, Merity et al. 2018)."""

    def __init__(self, p: float, gen: torch.Generator | None = None) -> None:
        super().__init__()
        self.p, self.gen = p, gen

    def forward(self, weight: Tensor) -> Tensor:
        return Fn.dropconnect(weight, self.p, self.gen) if self.training else weight

    def extra_repr(self) -> str:
        return f"p={self.p:g}"
