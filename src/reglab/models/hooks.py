"""Named points where a model builder asks the active structural regularizers for layers.

A builder calls ``hooks.at(point, ...)`` at each point and inserts what comes back, so dropout,
batch norm or a user's structural regularizer reach every model without the models reading the
regularization config. The points:

- ``input``: the network input (after flattening, for an MLP);
- ``pre_activation``: after a hidden linear/conv layer, before its activation (normalization);
- ``post_activation``: after a hidden layer's activation (dropout; in the CNN also after the
  flattened conv stack; in the LSTM after each layer's output);
- ``residual``: on the branch of a residual block, before it is added to the skip connection
  (stochastic depth; only ``model.residual: true`` networks have these);
- ``recurrent``: an LSTM layer's per-sequence masks. The layer applies what comes back once per
  forward pass to a tensor of ones of shape (N, features) for its inputs and (N, hidden) for its
  state, and multiplies every time step by the result (variational dropout; Keras draws its
  recurrent dropout masks the same way), in training only;
- ``recurrent_weight``: applied to an LSTM layer's hidden-to-hidden weight matrix once per forward
  pass, in training only (weight drop).

A hook that acts only at some points says so (``sites``, with ``needs``: what to set instead), so a
model that offers none of them refuses it rather than silently training without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from torch import nn

Point = Literal["input", "pre_activation", "post_activation", "residual", "recurrent", "recurrent_weight"]


@dataclass(frozen=True)
class Site:
    """One point of the network being built: ``layers`` names the layer kind ("input", "linear",
    "conv", "lstm", "block") that precedes each site of this point in the model, ``index`` which
    of them this is, ``width`` its features (channels for conv layers)."""

    point: Point
    index: int
    layers: tuple[str, ...]
    width: int

    @property
    def layer(self) -> str:
        return self.layers[self.index]

    @property
    def count(self) -> int:
        return len(self.layers)


class LayerHook(Protocol):
    def modules(self, site: Site) -> list[nn.Module]: ...


class LayerHooks:
    """The hooks of a model build, asked in order (registry order) at every site."""

    def __init__(self, hooks: Iterable[LayerHook] = ()) -> None:
        self.hooks = tuple(hooks)
        self.asked: set[Point] = set()

    def at(self, point: Point, layers: Sequence[str], width: int, index: int = 0) -> list[nn.Module]:
        self.asked.add(point)
        site = Site(point, index, tuple(layers), width)
        return [m for h in self.hooks for m in h.modules(site)]

    def unmet(self) -> list[str]:
        """After a build: the hooks that act only at points (``sites``) this model never offered,
        each with what to set instead (``needs``), e.g. stochastic depth without residual blocks."""
        out = []
        for h in self.hooks:
            sites = getattr(h, "sites", ())
            if sites and not set(sites) & self.asked:
                name = getattr(h, "name", type(h).__name__)
                out.append(f"{name}: {getattr(h, 'needs', '') or 'this model has no ' + ' or '.join(sites) + ' sites'}")
        return out


def normalizes(modules: Sequence[nn.Module]) -> bool:
    """Whether ``modules`` contain a normalization with its own shift, which makes the bias of the
    preceding layer redundant (Ioffe & Szegedy 2015)."""
    from torch import nn

    return any(isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm) for m in modules)
