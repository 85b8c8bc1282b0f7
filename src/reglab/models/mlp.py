"""Multi-layer perceptron. Structural regularizers insert layers at its sites: ``input`` (after
flattening), ``pre_activation`` after each hidden linear layer (its bias is dropped when a
normalization follows), ``post_activation`` after each hidden activation.

With ``model.residual`` each hidden size ``h`` is one residual block (:mod:`reglab.models.blocks`):
``act(skip(x) + Linear(h, h)(act(Linear(w, h)(x))))``, the skip a bias-free ``Linear(w, h)``
projection where the width changes (the first block, and wherever ``hidden`` changes size). The
``pre_activation`` sites follow both linear layers of a branch, the ``residual`` site is the branch
output (stochastic depth), and ``post_activation`` follows each block, so a per-layer dropout spec
gives one rate per block."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import nn

from reglab.models.blocks import ResidualBlock
from reglab.models.hooks import LayerHooks, normalizes

if TYPE_CHECKING:
    from reglab.models.config import ModelConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def build_mlp(model: ModelConfig, input_shape: tuple[int, ...], n_classes: int, hooks: LayerHooks) -> nn.Module:
    width = math.prod(input_shape)
    layers: list[nn.Module] = [nn.Flatten(), *hooks.at("input", ["input"], width)]
    hidden = ["linear"] * len(model.hidden)
    if model.residual:
        return _residual_mlp(model, width, n_classes, hooks, layers)
    for i, h in enumerate(model.hidden):
        norm = hooks.at("pre_activation", hidden, h, i)  # no random numbers: built before the layer
        layers += [nn.Linear(width, h, bias=not normalizes(norm)), *norm, ACTIVATIONS[model.activation]()]
        layers += hooks.at("post_activation", hidden, h, i)
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def _residual_mlp(
    model: ModelConfig, width: int, n_classes: int, hooks: LayerHooks, layers: list[nn.Module]
) -> nn.Module:
    act = ACTIVATIONS[model.activation]
    blocks = ["block"] * len(model.hidden)
    linears = ["linear"] * (2 * len(model.hidden))
    for i, h in enumerate(model.hidden):
        n1 = hooks.at("pre_activation", linears, h, 2 * i)
        n2 = hooks.at("pre_activation", linears, h, 2 * i + 1)
        branch = nn.Sequential(
            nn.Linear(width, h, bias=not normalizes(n1)), *n1, act(), nn.Linear(h, h, bias=not normalizes(n2)), *n2
        )
        skip = nn.Identity() if width == h else nn.Linear(width, h, bias=False)
        layers.append(ResidualBlock(branch, skip, hooks.at("residual", blocks, h, i), act()))
        layers += hooks.at("post_activation", ["linear"] * len(model.hidden), h, i)
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)
