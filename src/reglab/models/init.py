"""Weight initialization: framework default, He (He et al. 2015) or Xavier/Glorot (2010)."""

from __future__ import annotations

from typing import Literal

from torch import nn


def initialize(model: nn.Module, scheme: str, activation: str = "relu") -> None:
    if scheme == "default":
        return
    nonlin: Literal["relu", "tanh"] = "relu" if activation in ("relu", "gelu") else "tanh"
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain(nonlin))
            else:
                raise ValueError(f"unknown init {scheme!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
