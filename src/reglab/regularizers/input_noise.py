"""Gaussian input noise: training with noise is Tikhonov regularization (Bishop 1995)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.base import Members

if TYPE_CHECKING:
    from torch import Tensor


class InputNoiseSettings(Settings):
    input_noise: float = Field(0.0, ge=0.0, le=10.0, description="std of Gaussian noise on inputs")


class InputNoise(Regularizer):
    """Gaussian noise on the (normalized) inputs of any dataset, tabular included (Bishop 1995)."""

    name = "input_noise"

    def __init__(self, std: float) -> None:
        self.std = std

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        from reglab.regularizers import functional as Fn

        return Fn.gaussian_noise(x, self.std, ctx.gen), y


register(
    RegularizerSpec(
        name="input_noise",
        settings=InputNoiseSettings,
        make=lambda s: InputNoise(s.input_noise) if s.input_noise > 0 else None,
        doc="Gaussian noise on the (normalized) inputs of any dataset, tabular included",
        citation="Bishop 1995",
        example={"input_noise": 0.2},
        tune={"input_noise": TuneRange(0.01, 1.0, log=True)},
        members=Members(("input_noise",)),
    )
)
