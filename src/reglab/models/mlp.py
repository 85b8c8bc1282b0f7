"""Multi-layer perceptron. Structural regularizers insert layers at its sites: ``input`` (after
flattening), ``pre_activation`` after each hidden linear layer (its bias is dropped when a
normalization follows), ``post_activation`` after each hidden activation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import nn

from reglab.models.hooks import LayerHooks, normalizes

if TYPE_CHECKING:
    from reglab.models.config import ModelConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def build_mlp(model: ModelConfig, input_shape: tuple[int, ...], n_classes: int, hooks: LayerHooks) -> nn.Module:
    width = math.prod(input_shape)
    layers: list[nn.Module] = [nn.Flatten(), *hooks.at("input", ["input"], width)]
    hidden = ["linear"] * len(model.hidden)
    for i, h in enumerate(model.hidden):
        norm = hooks.at("pre_activation", hidden, h, i)  # no random numbers: built before the layer
        layers += [nn.Linear(width, h, bias=not normalizes(norm)), *norm, ACTIVATIONS[model.activation]()]
        layers += hooks.at("post_activation", hidden, h, i)
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)
