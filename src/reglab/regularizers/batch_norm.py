"""Batch normalization (Ioffe & Szegedy 2015). Structural: a normalization layer after every hidden
linear/conv layer, before its activation (that layer's bias is then dropped as redundant)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, register
from reglab.regularizers.base import Members

if TYPE_CHECKING:
    from torch import nn

    from reglab.models.hooks import Site


class BatchNormSettings(Settings):
    batch_norm: bool = False


class BatchNorm(Regularizer):
    """Normalizes layer inputs with batch statistics in training, running statistics in evaluation
    (Ioffe & Szegedy 2015)."""

    name = "batch_norm"
    sites = ("pre_activation",)
    needs = "needs layers to normalize: arch mlp or cnn"

    def modules(self, site: Site) -> list[nn.Module]:
        from torch import nn

        if site.point != "pre_activation":
            return []
        return [nn.BatchNorm2d(site.width) if site.layer == "conv" else nn.BatchNorm1d(site.width)]


register(
    RegularizerSpec(
        name="batch_norm",
        settings=BatchNormSettings,
        make=lambda s: BatchNorm() if s.batch_norm else None,
        doc="normalize each hidden layer with batch statistics in training, running statistics in evaluation",
        citation="Ioffe & Szegedy 2015",
        example={"batch_norm": True},
        structural=True,
        members=Members(()),
    )
)
