"""Cutout: zero a random square of every training image (DeVries & Taylor 2017)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.base import Members

if TYPE_CHECKING:
    from torch import Tensor


class CutoutSettings(Settings):
    cutout: int = Field(0, ge=0, le=64, description="side of the zeroed square (pixels)")


class Cutout(Regularizer):
    """Zero a random square of every training image (DeVries & Taylor 2017)."""

    name = "cutout"

    def __init__(self, size: int) -> None:
        self.size = size

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        from reglab.regularizers import functional as Fn

        return (Fn.cutout(x, self.size, ctx.gen) if x.ndim == 4 else x), y


register(
    RegularizerSpec(
        name="cutout",
        settings=CutoutSettings,
        make=lambda s: Cutout(s.cutout) if s.cutout > 0 else None,
        doc="zero a random square of every training image",
        citation="DeVries & Taylor 2017",
        example={"cutout": 3},
        tune={"cutout": TuneRange(1, 16, kind="int")},
        members=Members(("cutout",)),
    )
)
