"""Multi-layer perceptron with optional input dropout, per-layer dropout and batch norm."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from reglab.config import ModelConfig, RegularizationConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def layer_rates(dropout: float | tuple[float, ...], n: int, what: str = "hidden layers") -> list[float]:
    """Expand a dropout spec to one rate per layer (a single rate applies to all)."""
    if isinstance(dropout, tuple):
        if len(dropout) == 1:
            return [dropout[0]] * n
        if len(dropout) != n:
            from reglab.errors import ConfigError

            raise ConfigError(f"regularization.dropout: {len(dropout)} rates given for {n} {what}")
        return list(dropout)
    return [dropout] * n


def build_mlp(model: ModelConfig, reg: RegularizationConfig, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    if reg.input_dropout > 0:
        layers.append(nn.Dropout(reg.input_dropout))
    width = math.prod(input_shape)
    for h, rate in zip(model.hidden, layer_rates(reg.dropout, len(model.hidden)), strict=True):
        layers.append(nn.Linear(width, h, bias=not reg.batch_norm))
        if reg.batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(ACTIVATIONS[model.activation]())
        if rate > 0:
            layers.append(nn.Dropout(rate))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)
