"""Adaptive augmentation: the augmentation probability p follows an over-fitting signal measured
on the run (Karras et al. 2020's adaptive discriminator augmentation, for a classifier).

ADA measures over-fitting by how sure the discriminator is of the (augmented) training images and
moves p by a fixed step towards a target. A classifier's analogue, measured every epoch for free:
``acc_gap`` = training accuracy on the epoch's augmented batches minus validation accuracy (or
``loss_gap`` = (val_loss - train_loss) / val_loss, for tasks without accuracy). Augmentation
lowers the training accuracy it is measured on, so p settles where the gap meets the target;
validation is used as early stopping uses it, the test split never.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from reglab.errors import ConfigError
from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.augment import AugmentConfig
from reglab.regularizers.base import section_switch

if TYPE_CHECKING:
    from torch import Tensor, nn


class AdaptiveAugmentConfig(AugmentConfig):
    """The transforms of ``augment`` (their strengths when applied), each applied per example with
    the probability p that the controller adjusts every epoch (Karras et al. 2020)."""

    shift: float = Field(0.1, ge=0.0, le=0.5, description="max translation, fraction of the image side")
    rotation: float = Field(10.0, ge=0.0, le=180.0, description="max rotation in degrees")
    scale: float = Field(0.1, ge=0.0, lt=1.0, description="max relative zoom in or out")
    target: float = Field(0.03, ge=-1.0, le=1.0, description="the over-fitting signal's target (gap)")
    signal: Literal["acc_gap", "loss_gap"] = Field(
        "acc_gap", description="train - val accuracy, or (val - train loss) / val loss"
    )
    ramp_epochs: float = Field(5.0, gt=0.0, le=10000.0, description="epochs for p to go from 0 to 1")
    p_init: float = Field(0.0, ge=0.0, le=1.0, description="p in the first epoch")

    @model_validator(mode="after")
    def _adaptive_augment_transforms(self) -> AdaptiveAugmentConfig:
        if not self.active:
            raise ValueError("set at least one transform (shift, rotation, scale, crop_padding, hflip, noise)")
        return self


class AdaptiveAugmentSettings(Settings):
    adaptive_augment: AdaptiveAugmentConfig | None = None

    @field_validator("adaptive_augment", mode="before")
    @classmethod
    def _adaptive_augment_switch(cls, v: Any) -> Any:
        return section_switch(v)


class AdaptiveAugment(Regularizer):
    """Augment each example with probability p; after every epoch raise p by 1/ramp_epochs when
    the over-fitting signal exceeds the target, else lower it (Karras et al. 2020). The p of each
    epoch and its signal are recorded in the run's history (``adaptive_augment_p``,
    ``adaptive_augment_signal``)."""

    name = "adaptive_augment"

    def __init__(self, cfg: AdaptiveAugmentConfig) -> None:
        self.cfg = cfg
        self.p = cfg.p_init
        self.trajectory: list[float] = []

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        self.p = self.cfg.p_init
        self.trajectory = []

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        from reglab.regularizers import functional as Fn

        c, p = self.cfg, self.p
        if p <= 0.0:
            return x, y
        if x.ndim == 4:
            if c.shift or c.rotation or c.scale:
                x = Fn.with_probability(
                    x, p, ctx.gen, lambda t: Fn.random_affine(t, c.shift, c.rotation, c.scale, ctx.gen)
                )
            if c.crop_padding:
                x = Fn.with_probability(x, p, ctx.gen, lambda t: Fn.random_crop(t, c.crop_padding, ctx.gen))
            if c.hflip:
                x = Fn.with_probability(x, p, ctx.gen, lambda t: t.flip(3))
        if c.noise:
            x = Fn.with_probability(x, p, ctx.gen, lambda t: Fn.gaussian_noise(t, c.noise, ctx.gen))
        return x, y

    def signal(self, record: dict[str, float]) -> float:
        """The over-fitting signal of an epoch's record (see the module's docstring)."""
        if self.cfg.signal == "acc_gap":
            if "train_acc" not in record or "val_acc" not in record:
                raise ConfigError(
                    "adaptive_augment.signal: acc_gap needs accuracy, which this task has not; use loss_gap"
                )
            return record["train_acc"] - record["val_acc"]
        return (record["val_loss"] - record["train_loss"]) / max(abs(record["val_loss"]), 1e-12)

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        from reglab.regularizers import functional as Fn

        s = self.signal(record)
        record["adaptive_augment_p"] = self.p  # the p this epoch trained with
        record["adaptive_augment_signal"] = s
        self.trajectory.append(self.p)
        self.p = Fn.ada_update(self.p, s, self.cfg.target, 1.0 / self.cfg.ramp_epochs)
        return False

    def summary(self) -> dict[str, Any]:
        if not self.trajectory:
            return {}
        return {
            "adaptive_augment_p_mean": sum(self.trajectory) / len(self.trajectory),
            "adaptive_augment_p_last": self.trajectory[-1],
        }


register(
    RegularizerSpec(
        name="adaptive_augment",
        settings=AdaptiveAugmentSettings,
        dump_defaults=False,
        make=lambda s: AdaptiveAugment(s.adaptive_augment) if s.adaptive_augment else None,
        doc="augment's transforms applied with a probability p that rises while the train-val "
        "accuracy gap exceeds a target and falls otherwise; p per epoch in the history",
        citation="Karras et al. 2020",
        example={"adaptive_augment": {"target": 0.0, "ramp_epochs": 2, "noise": 0.1}},
        tune={"adaptive_augment.target": TuneRange(0.0, 0.15)},
        excludes=("augment",),
    )
)
