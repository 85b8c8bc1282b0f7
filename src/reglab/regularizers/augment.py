"""Data augmentation: random shift/rotation/scale, pad-and-crop, horizontal flip and pixel noise,
per batch in training only (Simard et al. 2003; Krizhevsky et al. 2012)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.base import Members

if TYPE_CHECKING:
    from torch import Tensor


class AugmentConfig(Settings):
    """Random input transformations applied per batch in training only (Simard et al. 2003)."""

    shift: float = Field(0.0, ge=0.0, le=0.5, description="max translation, fraction of the image side")
    rotation: float = Field(0.0, ge=0.0, le=180.0, description="max rotation in degrees")
    scale: float = Field(0.0, ge=0.0, lt=1.0, description="max relative zoom in or out")
    crop_padding: int = Field(0, ge=0, le=16, description="pad then random-crop back (pixels)")
    hflip: bool = Field(False, description="random horizontal flip (off for digits!)")
    noise: float = Field(0.0, ge=0.0, le=10.0, description="std of Gaussian pixel noise")

    @property
    def active(self) -> bool:
        return bool(self.shift or self.rotation or self.scale or self.crop_padding or self.hflip or self.noise)


class AugmentSettings(Settings):
    augment: AugmentConfig = AugmentConfig()


class Augment(Regularizer):
    """Random shift/rotation/scale, pad-and-crop, horizontal flip and pixel noise (Simard et al.
    2003; Krizhevsky et al. 2012). Labels are unchanged."""

    name = "augment"

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        from reglab.regularizers import functional as Fn

        c = self.cfg
        if x.ndim == 4:
            if c.shift or c.rotation or c.scale:
                x = Fn.random_affine(x, c.shift, c.rotation, c.scale, ctx.gen)
            if c.crop_padding:
                x = Fn.random_crop(x, c.crop_padding, ctx.gen)
            if c.hflip:
                x = Fn.random_hflip(x, ctx.gen)
        if c.noise:
            x = Fn.gaussian_noise(x, c.noise, ctx.gen)
        return x, y


register(
    RegularizerSpec(
        name="augment",
        settings=AugmentSettings,
        make=lambda s: Augment(s.augment) if s.augment.active else None,
        doc="batched random affine (shift, rotation, scale), pad+crop, flip, pixel noise",
        citation="Simard et al. 2003; Krizhevsky et al. 2012",
        example={"augment": {"shift": 0.1, "rotation": 10, "scale": 0.1, "noise": 0.1}},
        tune={"augment.shift": TuneRange(0.0, 0.2), "augment.rotation": TuneRange(0.0, 30.0)},
        members=Members(("augment",)),
    )
)
