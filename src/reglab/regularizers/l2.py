"""L2 penalty in the loss (Tikhonov; Krogh & Hertz 1992), coupled: it enters the gradient."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import PenaltyOptions, Regularizer, RegularizerSpec, TrainContext, TuneRange, register
from reglab.regularizers.base import Members, Stacked

if TYPE_CHECKING:
    from torch import Tensor


class L2Settings(PenaltyOptions):
    l2: float = Field(0.0, ge=0.0, le=10.0, description="L2 penalty strength (lambda * sum w^2), coupled")


class L2(Regularizer):
    """lambda * sum w^2 in the loss (Krogh & Hertz 1992). With SGD equals weight decay of
    2*lambda*lr; with adaptive optimizers it does not (Loshchilov & Hutter 2019)."""

    name = "l2"

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def penalty(self, ctx: TrainContext) -> Tensor:
        from reglab.regularizers import functional as Fn

        return self.strength * Fn.l2_penalty(ctx.penalized)


class StackedL2(Stacked):
    """Each member's lambda * sum w^2: the same kernel, one value per member."""

    def penalty(self, rows: Sequence[Tensor]) -> Tensor:
        from reglab.regularizers import functional as Fn

        return self.at("l2") * Fn.l2_penalty(rows, members=True)

    def penalty_grad_(self, rows: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
        from reglab.regularizers import functional as Fn

        Fn.l2_penalty_grad_(rows, grads, self.at("l2"))
        return True


register(
    RegularizerSpec(
        name="l2",
        settings=L2Settings,
        make=lambda s: L2(s.l2) if s.l2 > 0 else None,
        doc="lambda * sum w^2 in the loss (coupled: with adaptive optimizers it is not weight decay)",
        citation="Krogh & Hertz 1992",
        example={"l2": 1e-3},
        tune={"l2": TuneRange(1e-6, 1e-1, log=True)},
        members=Members.stacking(StackedL2, "l2"),
    )
)
