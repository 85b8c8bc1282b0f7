"""The classic two-conv network (as in the Keras/PyTorch MNIST examples):
conv(c1) -> pool -> conv(c2) -> pool -> fc -> classes.

Works for 8x8 (digits), 28x28 and 32x32x3 inputs: 3x3 convolutions keep the size, each pool halves it.
Sites for structural regularizers: ``input`` (the image), ``pre_activation`` after each conv (batch
norm, Ioffe & Szegedy 2015; the conv bias is then dropped), and two ``post_activation`` sites: after
the flattened conv stack and after the fc activation, before the classifier (dropout, Srivastava et
al. 2014: a single rate goes before the classifier, a pair ``(a, b)`` to both).

With ``model.residual`` each conv is a residual block (:mod:`reglab.models.blocks`; He et al.
2016) before its pool: ``act(skip(x) + conv(act(conv(x))))`` with two 3x3 convolutions, the skip
a bias-free 1x1 convolution where the channels change; ``pre_activation`` sites follow both
convolutions of a branch, the ``residual`` site is the branch output (stochastic depth), and the
classifier part and its dropout sites are as above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from reglab.models.blocks import ResidualBlock
from reglab.models.hooks import LayerHooks, normalizes
from reglab.models.mlp import ACTIVATIONS

if TYPE_CHECKING:
    from reglab.models.config import ModelConfig

_DROP_SITES = ("conv", "linear")  # after the conv stack, after the fc layer


def build_cnn(model: ModelConfig, input_shape: tuple[int, ...], n_classes: int, hooks: LayerHooks) -> nn.Module:
    if len(input_shape) != 3:
        from reglab.errors import ConfigError

        raise ConfigError(f"model.arch: cnn needs image inputs (C, H, W), this dataset has shape {input_shape}")
    c, h, w = input_shape
    act = ACTIVATIONS[model.activation]
    layers: list[nn.Module] = hooks.at("input", ["input"], c)
    convs = ["conv"] * len(model.channels)
    for i, out in enumerate(model.channels):
        if model.residual:
            layers += [_residual_block(c, out, i, len(model.channels), act, hooks), nn.MaxPool2d(2)]
            c, h, w = out, h // 2, w // 2
            continue
        norm = hooks.at("pre_activation", convs, out, i)  # no random numbers: built before the layer
        layers += [
            nn.Conv2d(c, out, kernel_size=3, padding=1, bias=not normalizes(norm)),
            *norm,
            act(),
            nn.MaxPool2d(2),
        ]
        c, h, w = out, h // 2, w // 2
    layers.append(nn.Flatten())
    layers += hooks.at("post_activation", _DROP_SITES, c * h * w, 0)
    layers += [nn.Linear(c * h * w, model.fc), act()]
    layers += hooks.at("post_activation", _DROP_SITES, model.fc, 1)
    layers.append(nn.Linear(model.fc, n_classes))
    return nn.Sequential(*layers)


def _residual_block(c: int, out: int, i: int, n: int, act: type[nn.Module], hooks: LayerHooks) -> ResidualBlock:
    convs = ["conv"] * (2 * n)
    n1 = hooks.at("pre_activation", convs, out, 2 * i)
    n2 = hooks.at("pre_activation", convs, out, 2 * i + 1)
    branch = nn.Sequential(
        nn.Conv2d(c, out, kernel_size=3, padding=1, bias=not normalizes(n1)),
        *n1,
        act(),
        nn.Conv2d(out, out, kernel_size=3, padding=1, bias=not normalizes(n2)),
        *n2,
    )
    skip = nn.Identity() if c == out else nn.Conv2d(c, out, kernel_size=1, bias=False)
    return ResidualBlock(branch, skip, hooks.at("residual", ["block"] * n, out, i), act())
