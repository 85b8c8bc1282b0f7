"""Max-norm constraint, projected after every optimizer step."""

from __future__ import annotations

from torch import Tensor, nn

from reglab.regularizers import functional as Fn
from reglab.regularizers.base import Regularizer, TrainContext, constrained_weights


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
        for w in self._weights:
            Fn.max_norm_(w, self.max_norm)
