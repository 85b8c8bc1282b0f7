"""DropConnect (Wan et al. 2013): drop random connections - weight entries - instead of units.

Every linear and convolution weight of the model (any model: the built-in ones and the user's own)
is replaced, through ``torch.nn.utils.parametrize``, by itself times a fresh Bernoulli(1 - p) mask
scaled by 1 / (1 - p) at every forward pass in training (inverted like dropout, so evaluation uses
the plain weights; biases are never masked). The parametrizations are added in ``setup`` and taken
off again when training ends, so the evaluated and saved model has plain weights and the state-dict
keys of the network it was built as. That must happen after the regularizers that restore or
average weights (early stopping, SWA, snapshots) have done so: this regularizer is registered after
them. Not structural: the network is built as without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register

if TYPE_CHECKING:
    from torch import nn


class DropConnectSettings(Settings):
    dropconnect: float = Field(
        0.0, ge=0.0, lt=1.0, description="probability of dropping each linear/conv weight in training (DropConnect)"
    )


def connection_layers(model: nn.Module) -> list[nn.Module]:
    """The linear and convolution (1-, 2-, 3-d) layers of any model, in module order."""
    from torch import nn

    kinds = nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d
    return [m for m in model.modules() if isinstance(m, kinds)]


class DropConnect(Regularizer):
    """Random weight masks in training (Wan et al. 2013), plain weights in evaluation."""

    name = "dropconnect"

    def __init__(self, p: float) -> None:
        self.p = p

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        from torch.nn.utils import parametrize

        from reglab.regularizers.layers import DropConnectWeight

        for layer in connection_layers(model):
            if not parametrize.is_parametrized(layer):  # a layer parametrized otherwise is left alone
                # unsafe: skips a trial call (a random draw) that only checks the shape, which a mask keeps
                parametrize.register_parametrization(layer, "weight", DropConnectWeight(self.p), unsafe=True)

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        strip_dropconnect(model)
        return model


def strip_dropconnect(model: nn.Module) -> None:
    """Take the DropConnect parametrizations off every layer of ``model`` (an ensemble's members
    and an SWA average included), keeping the trained weights themselves. By hand rather than with
    ``parametrize.remove_parametrizations``, which edits the layer class that ``parametrize``
    created - a class that deep copies (SWA's average, snapshot members) share with the original."""
    from torch.nn.utils import parametrize

    from reglab.regularizers.layers import DropConnectWeight

    for m in list(model.modules()):
        if not parametrize.is_parametrized(m, "weight"):
            continue
        chain: parametrize.ParametrizationList = m.parametrizations["weight"]  # type: ignore[index,assignment]
        if len(chain) == 1 and isinstance(chain[0], DropConnectWeight):
            original = chain.original
            m.__class__ = type(m).__bases__[0]  # the layer's own class again
            del m._modules["parametrizations"]
            m.weight = original  # registered as a parameter again


register(
    RegularizerSpec(
        name="dropconnect",
        settings=DropConnectSettings,
        make=lambda s: DropConnect(s.dropconnect) if s.dropconnect > 0 else None,
        doc="drop random weights (connections) of every linear and conv layer in training, rescaled by 1/(1-p); "
        "plain weights in evaluation",
        citation="Wan et al. 2013",
        example={"dropconnect": 0.3},
        tune={"dropconnect": TuneRange(0.0, 0.5)},
        dump_defaults=False,
    )
)
