"""Elastic net: a mix of the L1 and L2 penalties (Zou & Hastie 2005)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import PenaltyOptions, Regularizer, RegularizerSpec, TrainContext, TuneRange, register
from reglab.regularizers.base import Members, Stacked

if TYPE_CHECKING:
    from torch import Tensor


class ElasticNetSettings(PenaltyOptions):
    elastic_net: float = Field(0.0, ge=0.0, le=10.0, description="elastic-net strength")
    l1_ratio: float = Field(0.5, ge=0.0, le=1.0, description="elastic-net share of L1")


class ElasticNet(Regularizer):
    """lambda * (r sum|w| + (1-r) sum w^2) (Zou & Hastie 2005)."""

    name = "elastic_net"

    def __init__(self, strength: float, l1_ratio: float) -> None:
        self.strength, self.l1_ratio = strength, l1_ratio

    def penalty(self, ctx: TrainContext) -> Tensor:
        from reglab.regularizers import functional as Fn

        return self.strength * Fn.elastic_net_penalty(ctx.penalized, self.l1_ratio)


class StackedElasticNet(Stacked):
    """Each member's lambda * (r sum|w| + (1-r) sum w^2), its own r: the same kernel."""

    def penalty(self, rows: Sequence[Tensor]) -> Tensor:
        from reglab.regularizers import functional as Fn

        return self.at("elastic_net") * Fn.elastic_net_penalty(rows, self.at("l1_ratio"), members=True)

    def penalty_grad_(self, rows: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
        from reglab.regularizers import functional as Fn

        strength, ratio = self.at("elastic_net"), self.at("l1_ratio")
        Fn.l1_penalty_grad_(rows, grads, strength * ratio)
        Fn.l2_penalty_grad_(rows, grads, strength * (1.0 - ratio))
        return True


register(
    RegularizerSpec(
        name="elastic_net",
        settings=ElasticNetSettings,
        make=lambda s: ElasticNet(s.elastic_net, s.l1_ratio) if s.elastic_net > 0 else None,
        doc="lambda * (r sum|w| + (1-r) sum w^2), r = l1_ratio",
        citation="Zou & Hastie 2005",
        example={"elastic_net": 1e-4, "l1_ratio": 0.5},
        tune={"elastic_net": TuneRange(1e-7, 1e-2, log=True), "l1_ratio": TuneRange(0.0, 1.0)},
        members=Members.stacking(StackedElasticNet, "elastic_net", "l1_ratio"),
    )
)
