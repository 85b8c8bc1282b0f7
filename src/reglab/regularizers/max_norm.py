"""Max-norm constraint, projected after every optimizer step (Srebro & Shraibman 2005)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.base import Members, Stacked, constrained_weights

if TYPE_CHECKING:
    from torch import Tensor, nn


class MaxNormSettings(Settings):
    max_norm: float | None = Field(None, gt=0.0, description="max L2 norm of each unit's incoming weights")


class MaxNorm(Regularizer):
    """||w_unit||_2 <= c for each unit's incoming weights (Srebro & Shraibman 2005;
    Srivastava et al. 2014 pair it with dropout and large learning rates)."""

    name = "max_norm"

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm
        self._weights: list[Tensor] = []

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        self._weights = list(constrained_weights(model))
        self.after_step(model, ctx)  # the constraint holds from the start

    def after_step(self, model: nn.Module, ctx: TrainContext) -> None:
        from reglab.regularizers import functional as Fn

        for w in self._weights:
            Fn.max_norm_(w, self.max_norm)


class StackedMaxNorm(Stacked):
    """Each member's bound (inf: none), projected as in single runs, from the start."""

    def setup(self, weights: Sequence[tuple[Tensor, tuple[int, ...]]]) -> None:
        self.after_step(weights)

    def after_step(self, weights: Sequence[tuple[Tensor, tuple[int, ...]]]) -> None:
        from reglab.regularizers import functional as Fn

        for w, dims in weights:
            Fn.max_norm_(w[self.span], self.at("max_norm"), dims)


register(
    RegularizerSpec(
        name="max_norm",
        settings=MaxNormSettings,
        make=lambda s: MaxNorm(s.max_norm) if s.max_norm else None,
        doc="bound each unit's incoming weight vector (L2), projected after every step",
        citation="Srebro & Shraibman 2005; Srivastava et al. 2014",
        example={"max_norm": 2.0},
        tune={"max_norm": TuneRange(0.5, 5.0, log=True)},
        members=Members.stacking(StackedMaxNorm, "max_norm", off=math.inf),
    )
)
