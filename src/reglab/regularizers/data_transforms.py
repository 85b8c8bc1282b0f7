"""Regularizers that change training batches: augmentation, cutout, input noise, label
smoothing and mixup. Inputs are changed in training only; evaluation never sees them."""

from __future__ import annotations

import torch
from scipy.special import betaincinv as beta_ppf
from torch import Tensor

from reglab.config import AugmentConfig
from reglab.regularizers import functional as Fn
from reglab.regularizers.base import Regularizer, TrainContext


class Augment(Regularizer):
    """Random shift/rotation/scale, pad-and-crop, horizontal flip and pixel noise (Simard et al.
    2003; Krizhevsky et al. 2012). Labels are unchanged."""

    name = "augment"

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
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


class Cutout(Regularizer):
    """Zero a random square of every training image (DeVries & Taylor 2017)."""

    name = "cutout"

    def __init__(self, size: int) -> None:
        self.size = size

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        return (Fn.cutout(x, self.size, ctx.gen) if x.ndim == 4 else x), y


class InputNoise(Regularizer):
    """Gaussian noise on the (normalized) inputs of any dataset, tabular included (Bishop 1995)."""

    name = "input_noise"

    def __init__(self, std: float) -> None:
        self.std = std

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        return Fn.gaussian_noise(x, self.std, ctx.gen), y


class LabelSmoothing(Regularizer):
    """Soft targets (1 - eps) onehot + eps / K (Szegedy et al. 2016)."""

    name = "label_smoothing"

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        return x, Fn.smooth_labels(y, ctx.n_classes, self.eps)


class Mixup(Regularizer):
    """Train on convex combinations of example pairs and their targets, lambda ~ Beta(a, a)
    (Zhang et al. 2018)."""

    name = "mixup"

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        # Beta(a, a) by inverse CDF of a uniform from the run's generator: deterministic per seed
        # (torch.distributions.Beta cannot take a generator).
        u = float(torch.rand(1, generator=ctx.gen))
        lam = float(beta_ppf(self.alpha, self.alpha, u))  # scipy: betaincinv(a, b, y)
        perm = torch.randperm(x.shape[0], generator=ctx.gen).to(x.device)
        return Fn.mixup(x, Fn.one_hot(y, ctx.n_classes), lam, perm)
