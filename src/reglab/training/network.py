"""The network of a run and the device it trains on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from reglab.models import ModelCallable, build_model
from reglab.regularizers import build_regularizers, structural_args

if TYPE_CHECKING:
    from reglab.config import RunConfig
    from reglab.regularizers.base import Regularizer


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def build_network(
    cfg: RunConfig,
    input_shape: tuple[int, ...],
    outputs: int,
    regs: Sequence[Regularizer] | None = None,
    factory: ModelCallable | None = None,
    example: Tensor | None = None,
) -> nn.Module:
    """The network of a run, untrained: the one place a run's model is built, so a saved model is
    rebuilt exactly as it was trained (:mod:`reglab.study.results.saved_models`). ``regs``: the run's
    regularizers (structural ones add layers to built-in models, or reach a user model's constructor);
    built from ``cfg`` when not given. ``factory``: a user model given in Python; ``example``: one
    batch on which a user model's output is checked."""
    regs = build_regularizers(cfg) if regs is None else regs
    return build_model(cfg.model, input_shape, outputs, regs, structural_args(cfg), factory, example)
