"""Stochastic weight averaging (Izmailov et al. 2018): average the weights of the last epochs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, register
from reglab.regularizers.base import section_switch

if TYPE_CHECKING:
    from torch import nn
    from torch.optim.swa_utils import AveragedModel


class SWAConfig(Settings):
    """Stochastic weight averaging (Izmailov et al. 2018)."""

    start: float = Field(0.75, gt=0.0, le=1.0, description="fraction of epochs after which averaging starts")
    lr: float | None = Field(None, gt=0.0, description="constant SWA learning rate (default: keep schedule)")


class SWASettings(Settings):
    swa: SWAConfig | None = None

    @field_validator("swa", mode="before")
    @classmethod
    def _swa_switch(cls, v: Any) -> Any:
        return section_switch(v)


class SWA(Regularizer):
    """Average the weights of the last epochs (Izmailov et al. 2018): wider optima, better
    generalization, one model's inference cost."""

    name = "swa"

    def __init__(self, cfg: SWAConfig) -> None:
        self.cfg = cfg
        self.averaged: AveragedModel | None = None
        self.n_averaged = 0

    def _start_epoch(self, ctx: TrainContext) -> int:
        return min(ctx.epochs - 1, max(0, math.ceil(self.cfg.start * ctx.epochs) - 1))

    def adjust_lr(self, epoch: int, lr: float, ctx: TrainContext) -> float:
        if self.cfg.lr is not None and epoch >= self._start_epoch(ctx):
            return self.cfg.lr
        return lr

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        if int(record["epoch"]) - 1 >= self._start_epoch(ctx):
            if self.averaged is None:
                from torch.optim.swa_utils import AveragedModel

                self.averaged = AveragedModel(model)
            # also for the first model: AveragedModel only counts what update_parameters saw
            self.averaged.update_parameters(model)
            self.n_averaged += 1
        return False

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        if self.averaged is None:
            return model
        from reglab.regularizers.ensembles import recompute_batch_norm

        avg = self.averaged.module
        recompute_batch_norm(avg, ctx.input_batches(max(ctx.batch_size, 256)), max(ctx.batch_size, 256))
        avg.eval()
        return avg

    def summary(self) -> dict[str, Any]:
        return {"swa_epochs_averaged": self.n_averaged}


register(
    RegularizerSpec(
        name="swa",
        settings=SWASettings,
        make=lambda s: SWA(s.swa) if s.swa else None,
        doc="average the weights of the last epochs: one model's inference cost",
        citation="Izmailov et al. 2018",
        example={"swa": {"start": 0.5}},
    )
)
