"""L1 penalty in the loss (Tibshirani 1996; for networks e.g. Ng 2004): drives weights to exactly zero."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import PenaltyOptions, Regularizer, RegularizerSpec, TrainContext, TuneRange, register
from reglab.regularizers.base import Members, Stacked

if TYPE_CHECKING:
    from torch import Tensor


class L1Settings(PenaltyOptions):
    l1: float = Field(0.0, ge=0.0, le=10.0, description="L1 penalty strength (lambda * sum|w|)")


class L1(Regularizer):
    """lambda * sum|w| (Tibshirani 1996; for networks e.g. Ng 2004). Produces sparse weights."""

    name = "l1"

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def penalty(self, ctx: TrainContext) -> Tensor:
        from reglab.regularizers import functional as Fn

        return self.strength * Fn.l1_penalty(ctx.penalized)


class StackedL1(Stacked):
    """Each member's lambda * sum|w|: the same kernel, one value per member."""

    def penalty(self, rows: Sequence[Tensor]) -> Tensor:
        from reglab.regularizers import functional as Fn

        return self.at("l1") * Fn.l1_penalty(rows, members=True)

    def penalty_grad_(self, rows: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
        from reglab.regularizers import functional as Fn

        Fn.l1_penalty_grad_(rows, grads, self.at("l1"))
        return True


register(
    RegularizerSpec(
        name="l1",
        settings=L1Settings,
        make=lambda s: L1(s.l1) if s.l1 > 0 else None,
        doc="lambda * sum|w| in the loss: sparse weights",
        citation="Tibshirani 1996; Ng 2004",
        example={"l1": 1e-4},
        tune={"l1": TuneRange(1e-7, 1e-2, log=True)},
        members=Members.stacking(StackedL1, "l1"),
    )
)
