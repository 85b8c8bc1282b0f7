"""Stochastic depth (Huang et al. 2016): residual blocks dropped at random in training.

Structural: at the ``residual`` site of each block of a residual network (``model.residual: true``,
arch mlp or cnn; see :mod:`reglab.models.blocks`) it inserts a :class:`DropPath` on the block's
branch. Block l of L (1-based, from the input) is dropped with probability p_l = l / L * p_L, the
linear decay rule of the paper, so the blocks near the input survive most. Convention of timm and
torchvision: one draw per example, the kept branch scaled by 1 / (1 - p_l) in training, so in
evaluation a block is identity + branch (the paper instead scales the branch by 1 - p_l at test
time - the same expectation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TuneRange, register

if TYPE_CHECKING:
    from torch import nn

    from reglab.models.hooks import Site


class StochasticDepthSettings(Settings):
    stochastic_depth: float = Field(
        0.0, ge=0.0, lt=1.0, description="drop rate p_L of the last residual block (block l of L: l/L * p_L)"
    )


def block_rate(p_last: float, index: int, count: int) -> float:
    """p_l = l / L * p_L for block l = index + 1 of L = count (Huang et al. 2016's linear decay)."""
    return (index + 1) / count * p_last


class StochasticDepth(Regularizer):
    """Drops residual blocks at random in training (Huang et al. 2016)."""

    name = "stochastic_depth"
    sites = ("residual",)
    needs = "needs residual blocks: set model.residual: true, with arch mlp or cnn"

    def __init__(self, p_last: float) -> None:
        self.p_last = p_last

    def modules(self, site: Site) -> list[nn.Module]:
        if site.point != "residual":
            return []
        from reglab.regularizers.layers import DropPath

        return [DropPath(block_rate(self.p_last, site.index, site.count))]


register(
    RegularizerSpec(
        name="stochastic_depth",
        settings=StochasticDepthSettings,
        make=lambda s: StochasticDepth(s.stochastic_depth) if s.stochastic_depth > 0 else None,
        doc="drop residual blocks at random in training, block l of L with rate l/L * p_L (needs `residual: true`)",
        citation="Huang et al. 2016",
        example={"stochastic_depth": 0.3, "residual": True},
        tune={"stochastic_depth": TuneRange(0.0, 0.5)},
        structural=True,
        dump_defaults=False,
    )
)
