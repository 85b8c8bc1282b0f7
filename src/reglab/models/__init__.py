"""Model families: an MLP and the classic two-conv CNN, built from config.

Dropout and batch norm are configured under ``regularization`` (they are regularizers to the
user) but live in the model's structure, so the builders read them from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reglab.registry import Registry

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

    from reglab.config import ModelConfig, RegularizationConfig

    Builder = Callable[[ModelConfig, RegularizationConfig, tuple[int, ...], int], nn.Module]

MODELS: Registry[str] = Registry("model")
MODELS.add("mlp", "reglab.models.mlp:build_mlp")
MODELS.add("cnn", "reglab.models.cnn:build_cnn")


def build_model(
    model: ModelConfig, reg: RegularizationConfig, input_shape: tuple[int, ...], n_classes: int
) -> nn.Module:
    """Build and initialize the network that ``model`` describes for this input shape."""
    import importlib

    from reglab.models.init import initialize

    mod, fn = MODELS.get(model.arch).split(":")
    builder: Builder = getattr(importlib.import_module(mod), fn)
    net = builder(model, reg, input_shape, n_classes)
    initialize(net, model.init, model.activation)
    return net
