"""The regularizer protocol: small objects whose hooks default to no-ops (like skorch callbacks).

The engine calls, per run: ``setup`` once; per batch ``transform_batch`` -> ``penalty`` (added to the
loss) -> ``before_step`` -> optimizer step -> ``after_step``; per epoch ``adjust_lr`` and
``on_epoch_end``; and ``on_train_end``, which returns the module to evaluate (restored best weights,
SWA average or snapshot ensemble).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from reglab.config import RunConfig


@dataclass
class TrainContext:
    """What hooks may need to know about the run; created by the engine."""

    gen: torch.Generator
    n_classes: int
    image: bool
    epochs: int
    penalized: list[nn.Parameter]
    x_train: Tensor
    batch_size: int
    optimizer_name: str = "sgd"
    epoch: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


class Regularizer:
    """Base class: every hook is a no-op. Subclasses override only what they need."""

    name: str = "regularizer"

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        """Called once before training."""

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        """Change a training batch; ``y`` holds class indices or (N, C) soft targets."""
        return x, y

    def penalty(self, ctx: TrainContext) -> Tensor | None:
        """A term added to the training loss (already multiplied by its strength)."""
        return None

    def before_step(self, model: nn.Module, lr: float, ctx: TrainContext) -> None:
        """After backward, before the optimizer step."""

    def after_step(self, model: nn.Module, ctx: TrainContext) -> None:
        """After the optimizer step (e.g. projections)."""

    def adjust_lr(self, epoch: int, lr: float, ctx: TrainContext) -> float:
        """The learning rate for ``epoch`` given the schedule's ``lr``."""
        return lr

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        """After validation; return True to stop training."""
        return False

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        """Return the module to evaluate (default: the trained model)."""
        return model

    def summary(self) -> dict[str, Any]:
        """Facts to record in the run's results (e.g. the epoch early stopping restored)."""
        return {}


@dataclass(frozen=True)
class TuneRange:
    """A documented default search range for ``field: tune`` (used by the tuning issue)."""

    low: float
    high: float
    log: bool = False
    kind: str = "float"


@dataclass(frozen=True)
class RegularizerSpec:
    """A registry entry: how to build the regularizer from a run config, when it is active, an
    example override that activates it (for the conformance tests and docs), and default ranges."""

    name: str
    doc: str
    build: Callable[[RunConfig], Regularizer | None]
    example: dict[str, Any]
    tune: dict[str, TuneRange] = field(default_factory=dict)
    structural: bool = False  # lives in the model (dropout, batch norm); no hooks

    def active(self, cfg: RunConfig) -> bool:
        return self.build(cfg) is not None


class Structural(Regularizer):
    """A regularizer that is part of the model's structure (dropout, batch norm)."""

    def __init__(self, name: str) -> None:
        self.name = name


def penalized_parameters(model: nn.Module, include_biases: bool) -> list[nn.Parameter]:
    """Weights of linear and conv layers (ndim > 1); with ``include_biases`` every parameter."""
    return [p for p in model.parameters() if p.requires_grad and (include_biases or p.ndim > 1)]


def constrained_weights(model: nn.Module) -> Sequence[Tensor]:
    """Weight matrices/kernels of linear and conv layers, for max-norm."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
