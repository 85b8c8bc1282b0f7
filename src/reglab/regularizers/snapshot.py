"""Snapshot ensembles (Huang et al. 2017): cyclic cosine learning rate, a snapshot per cycle."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, register
from reglab.regularizers.base import section_switch

if TYPE_CHECKING:
    from torch import nn


class SnapshotConfig(Settings):
    """Snapshot ensembling with cyclic cosine learning rate (Huang et al. 2017)."""

    cycles: int = Field(3, ge=2, le=100)


class SnapshotSettings(Settings):
    snapshot: SnapshotConfig | None = None

    @field_validator("snapshot", mode="before")
    @classmethod
    def _snapshot_switch(cls, v: Any) -> Any:
        return section_switch(v)


class Snapshot(Regularizer):
    """Cyclic cosine learning rate; a snapshot at the end of each cycle; predictions average the
    snapshots (Huang et al. 2017, "Train 1, get M for free")."""

    name = "snapshot"

    def __init__(self, cfg: SnapshotConfig) -> None:
        self.cfg = cfg
        self.snapshots: list[dict[str, Any]] = []

    def _bounds(self, ctx: TrainContext) -> list[int]:
        """Epoch counts at which each cycle ends (cycles as equal as the epochs allow)."""
        cycles = min(self.cfg.cycles, ctx.epochs)
        return [round((i + 1) * ctx.epochs / cycles) for i in range(cycles)]

    def adjust_lr(self, epoch: int, lr: float, ctx: TrainContext) -> float:
        start = 0
        for end in self._bounds(ctx):
            if epoch < end:
                return lr * 0.5 * (1 + math.cos(math.pi * (epoch - start) / (end - start)))
            start = end
        return lr

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        if int(record["epoch"]) in self._bounds(ctx):  # the end of a cycle: lowest learning rate
            self.snapshots.append(copy.deepcopy(model.state_dict()))
        return False

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        if len(self.snapshots) < 2:
            return model
        from reglab.regularizers.ensembles import SoftmaxEnsemble

        members = []
        for state in self.snapshots[-self.cfg.cycles :]:
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            m.eval()
            members.append(m)
        return SoftmaxEnsemble(members)

    def summary(self) -> dict[str, Any]:
        return {"snapshots": min(len(self.snapshots), self.cfg.cycles)}


register(
    RegularizerSpec(
        name="snapshot",
        settings=SnapshotSettings,
        make=lambda s: Snapshot(s.snapshot) if s.snapshot else None,
        doc="cyclic cosine learning rate; predictions average the snapshot at the end of each cycle",
        citation="Huang et al. 2017",
        example={"snapshot": {"cycles": 2}},
        excludes=("swa",),
    )
)
