"""Norm penalties added to the loss: L1, L2 (coupled) and elastic net."""

from __future__ import annotations

from torch import Tensor

from reglab.regularizers import functional as Fn
from reglab.regularizers.base import Regularizer, TrainContext


class L1(Regularizer):
    """lambda * sum|w| (Tibshirani 1996; for networks e.g. Ng 2004). Produces sparse weights."""

    name = "l1"

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def penalty(self, ctx: TrainContext) -> Tensor:
        return self.strength * Fn.l1_penalty(ctx.penalized)


class L2(Regularizer):
    """lambda * sum w^2 in the loss (Krogh & Hertz 1992). With SGD equals weight decay of
    2*lambda*lr; with adaptive optimizers it does not (Loshchilov & Hutter 2019)."""

    name = "l2"

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def penalty(self, ctx: TrainContext) -> Tensor:
        return self.strength * Fn.l2_penalty(ctx.penalized)


class ElasticNet(Regularizer):
    """lambda * (r sum|w| + (1-r) sum w^2) (Zou & Hastie 2005)."""

    name = "elastic_net"

    def __init__(self, strength: float, l1_ratio: float) -> None:
        self.strength, self.l1_ratio = strength, l1_ratio

    def penalty(self, ctx: TrainContext) -> Tensor:
        return self.strength * Fn.elastic_net_penalty(ctx.penalized, self.l1_ratio)
