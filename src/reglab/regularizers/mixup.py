"""Mixup: train on convex combinations of example pairs and their targets (Zhang et al. 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register

if TYPE_CHECKING:
    from torch import Tensor


class MixupSettings(Settings):
    mixup: float = Field(0.0, ge=0.0, le=10.0, description="mixup Beta(alpha, alpha) parameter")


class Mixup(Regularizer):
    """Train on convex combinations of example pairs and their targets, lambda ~ Beta(a, a)
    (Zhang et al. 2018)."""

    name = "mixup"

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        import torch
        from scipy.special import betaincinv as beta_ppf

        from reglab.regularizers import functional as Fn

        # Beta(a, a) by inverse CDF of a uniform from the run's generator: deterministic per seed
        # (torch.distributions.Beta cannot take a generator).
        u = float(torch.rand(1, generator=ctx.gen))
        lam = float(beta_ppf(self.alpha, self.alpha, u))  # scipy: betaincinv(a, b, y)
        perm = torch.randperm(x.shape[0], generator=ctx.gen).to(x.device)
        return Fn.mixup(x, Fn.one_hot(y, ctx.n_classes), lam, perm)


register(
    RegularizerSpec(
        name="mixup",
        settings=MixupSettings,
        make=lambda s: Mixup(s.mixup) if s.mixup > 0 else None,
        doc="train on convex combinations of example pairs and their targets, lambda ~ Beta(a, a)",
        citation="Zhang et al. 2018",
        example={"mixup": 0.2},
        tune={"mixup": TuneRange(0.05, 1.0, log=True)},
    )
)
