"""Model families: a registry of factories ``(model config, input_shape, n_classes, hooks) -> nn.Module``.

Structural regularizers (dropout, batch norm, ...) reach a model through ``hooks``
(:class:`reglab.models.hooks.LayerHooks`): the builder asks them for layers at named points, so
models never read the regularization config. ``build_model`` builds and then initializes the
network with the ``model.init`` scheme from :data:`reglab.models.init.INITIALIZATIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from reglab.models.hooks import LayerHook, LayerHooks, Site
from reglab.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from reglab.models.config import ModelConfig

ModelFactory = Callable[["ModelConfig", tuple[int, ...], int, LayerHooks], "nn.Module"]

MODELS: Registry[ModelFactory] = Registry("model")
MODELS.add_lazy("mlp", "reglab.models.mlp:build_mlp")
MODELS.add_lazy("cnn", "reglab.models.cnn:build_cnn")

__all__ = ["MODELS", "LayerHook", "LayerHooks", "ModelFactory", "Site", "build_model"]


def build_model(
    model: ModelConfig, input_shape: tuple[int, ...], n_classes: int, hooks: Iterable[LayerHook] = ()
) -> nn.Module:
    """Build and initialize the network that ``model`` describes for this input shape; ``hooks``
    (e.g. the run's regularizers) are asked for layers at the model's sites, in order."""
    from reglab.models.init import initialize

    net = MODELS.create(model.arch, model, input_shape, n_classes, LayerHooks(hooks))
    initialize(net, model.init, model.activation)
    return net
