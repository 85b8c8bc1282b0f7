"""The classic two-conv network (as in the Keras/PyTorch MNIST examples):
conv(c1) -> pool -> conv(c2) -> pool -> fc -> classes, with optional batch norm after each conv
(Ioffe & Szegedy 2015) and dropout before the classifier (Srivastava et al. 2014).

Works for 8x8 (digits), 28x28 and 32x32x3 inputs: 3x3 convolutions keep the size, each pool halves it.
A dropout tuple ``(a, b)`` puts ``a`` after the conv stack and ``b`` before the classifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from reglab.models.mlp import ACTIVATIONS, layer_rates

if TYPE_CHECKING:
    from reglab.config import ModelConfig, RegularizationConfig


def build_cnn(model: ModelConfig, reg: RegularizationConfig, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    if len(input_shape) != 3:
        from reglab.errors import ConfigError

        raise ConfigError(f"model.arch: cnn needs image inputs (C, H, W), this dataset has shape {input_shape}")
    c, h, w = input_shape
    act = ACTIVATIONS[model.activation]
    if isinstance(reg.dropout, tuple) and len(reg.dropout) == 2:
        conv_drop, fc_drop = reg.dropout
    else:
        conv_drop, fc_drop = 0.0, layer_rates(reg.dropout, 1, "classifier inputs")[0]
    layers: list[nn.Module] = []
    if reg.input_dropout > 0:
        layers.append(nn.Dropout(reg.input_dropout))
    for out in model.channels:
        layers.append(nn.Conv2d(c, out, kernel_size=3, padding=1, bias=not reg.batch_norm))
        if reg.batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers += [act(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    layers.append(nn.Flatten())
    if conv_drop > 0:
        layers.append(nn.Dropout(conv_drop))
    layers += [nn.Linear(c * h * w, model.fc), act()]
    if fc_drop > 0:
        layers.append(nn.Dropout(fc_drop))
    layers.append(nn.Linear(model.fc, n_classes))
    return nn.Sequential(*layers)
