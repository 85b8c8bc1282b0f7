"""Decoupled weight decay (Loshchilov & Hutter 2019), usable with any optimizer."""

from __future__ import annotations

from torch import nn

from reglab.regularizers import functional as Fn
from reglab.regularizers.base import Regularizer, TrainContext


class DecoupledWeightDecay(Regularizer):
    """w <- w (1 - lr * decay) each step, outside the gradient. With ``optimizer: adamw`` the
    optimizer applies it itself (torch's AdamW on the penalized parameters), so this hook does not."""

    name = "weight_decay"

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def before_step(self, model: nn.Module, lr: float, ctx: TrainContext) -> None:
        if ctx.optimizer_name != "adamw":
            Fn.decoupled_weight_decay_(ctx.penalized, lr, self.decay)
