"""Early stopping on a validation quantity, restoring the best epoch's weights (Prechelt 1998)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.base import Members, section_switch

if TYPE_CHECKING:
    from torch import nn


class EarlyStoppingConfig(Settings):
    """Stop when the monitored validation quantity stops improving (Prechelt 1998)."""

    patience: int = Field(5, ge=1, le=10_000)
    min_delta: float = Field(0.0, ge=0.0)
    monitor: str = Field("val_loss", description="val_loss, val_acc or any val_<metric> (direction: the metric's)")
    restore_best: bool = True

    @field_validator("monitor")
    @classmethod
    def _monitor(cls, v: str) -> str:
        from reglab.tasks import check_metric

        return check_metric(v, ("val",), None, "early_stopping.monitor")


class EarlyStoppingSettings(Settings):
    early_stopping: EarlyStoppingConfig | None = None

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_stopping_switch(cls, v: Any) -> Any:
        return section_switch(v)


class EarlyStopping(Regularizer):
    """Stop when the monitored validation loss or accuracy has not improved for ``patience``
    epochs and restore the best epoch's weights (Prechelt 1998). The best epoch is reported
    through ``TrainContext.best_epoch``."""

    name = "early_stopping"

    def __init__(self, cfg: EarlyStoppingConfig) -> None:
        self.cfg = cfg
        self.best: float | None = None
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._bad = 0
        self._state: dict[str, Any] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        from reglab.tasks import higher_is_better

        if not higher_is_better(self.cfg.monitor):
            return value < self.best - self.cfg.min_delta
        return value > self.best + self.cfg.min_delta

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        value = record[self.cfg.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self._bad = value, int(record["epoch"]), 0
            ctx.best_epoch = self.best_epoch
            if self.cfg.restore_best:
                self._state = copy.deepcopy(model.state_dict())
            return False
        self._bad += 1
        if self._bad >= self.cfg.patience:
            self.stopped_epoch = int(record["epoch"])
            return True
        return False

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        if self.cfg.restore_best and self._state is not None:
            model.load_state_dict(self._state)
        return model

    def summary(self) -> dict[str, Any]:
        return {
            "early_stopping_best_epoch": self.best_epoch,
            "early_stopping_stopped_epoch": self.stopped_epoch,
        }


register(
    RegularizerSpec(
        name="early_stopping",
        settings=EarlyStoppingSettings,
        make=lambda s: EarlyStopping(s.early_stopping) if s.early_stopping else None,
        doc="stop when validation stops improving and restore the best epoch's weights",
        citation="Prechelt 1998",
        example={"early_stopping": {"patience": 2}},
        tune={"early_stopping.patience": TuneRange(2, 20, kind="int")},
        members=Members(()),
    )
)
