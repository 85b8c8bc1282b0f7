"""Decoupled weight decay (Loshchilov & Hutter 2019), usable with any optimizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import PenaltyOptions, Regularizer, RegularizerSpec, TrainContext, TuneRange, register
from reglab.regularizers.base import Members, Stacked

if TYPE_CHECKING:
    from torch import Tensor, nn


class WeightDecaySettings(PenaltyOptions):
    weight_decay: float = Field(0.0, ge=0.0, le=10.0, description="decoupled weight decay (as in AdamW)")


class DecoupledWeightDecay(Regularizer):
    """w <- w (1 - lr * decay) each step, outside the gradient, before the optimizer step, for every
    optimizer: this is the only place decoupled decay is applied. It is exactly what torch's AdamW
    does first in its step (``param.mul_(1 - lr * weight_decay)``), so ``optimizer: adamw`` (an
    AdamW given no decay of its own) plus this hook trains bitwise like torch's AdamW with decay,
    restricted to the penalized parameters."""

    name = "weight_decay"

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def before_step(self, model: nn.Module, lr: float, ctx: TrainContext) -> None:
        from reglab.regularizers import functional as Fn

        Fn.decoupled_weight_decay_(ctx.penalized, lr, self.decay)


class StackedWeightDecay(Stacked):
    """Each member's decay with its own learning rate: the same kernel, on stacked tensors."""

    def before_step(self, params: Sequence[Tensor], lr: Tensor) -> None:
        from reglab.regularizers import functional as Fn

        Fn.decoupled_weight_decay_(self.rows(params), lr[self.span], self.at("weight_decay"))


register(
    RegularizerSpec(
        name="weight_decay",
        settings=WeightDecaySettings,
        make=lambda s: DecoupledWeightDecay(s.weight_decay) if s.weight_decay > 0 else None,
        doc="decoupled weight decay as in AdamW, with any optimizer",
        citation="Loshchilov & Hutter 2019",
        example={"weight_decay": 1e-2},
        tune={"weight_decay": TuneRange(1e-5, 1e-1, log=True)},
        members=Members.stacking(StackedWeightDecay, "weight_decay"),
    )
)
