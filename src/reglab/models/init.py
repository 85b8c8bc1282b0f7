"""Weight initialization schemes, a registry ``name -> init(layer, activation)`` applied to every
linear and conv layer: framework default, He (He et al. 2015) or Xavier/Glorot (Glorot & Bengio 2010)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from reglab.registry import Registry

if TYPE_CHECKING:  # torch is imported where a model is initialized, not where the names are read
    from torch import nn

LayerInit = Callable[["nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d", str], None]

INITIALIZATIONS: Registry[LayerInit] = Registry("initialization")


@INITIALIZATIONS.register("default")
def default(layer: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d, activation: str) -> None:
    """Keep torch's own initialization (Kaiming-uniform with a = sqrt(5), uniform biases)."""


@INITIALIZATIONS.register("he")
def he(layer: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d, activation: str) -> None:
    """N(0, 2 / fan_in) weights, zero biases (He et al. 2015)."""
    from torch import nn

    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


@INITIALIZATIONS.register("xavier")
def xavier(layer: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d, activation: str) -> None:
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)), zero biases (Glorot & Bengio 2010)."""
    from torch import nn

    nonlin: Literal["relu", "tanh"] = "relu" if activation in ("relu", "gelu") else "tanh"
    nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(nonlin))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def initialize(model: nn.Module, scheme: str, activation: str = "relu") -> None:
    """Apply ``scheme`` to every linear and conv (1-, 2-, 3-d) layer of ``model``, in module order
    (for the user's own model too)."""
    from torch import nn

    init = INITIALIZATIONS.get(scheme)
    if init is default:
        return
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            init(m, activation)
