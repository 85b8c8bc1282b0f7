"""Weight drop (Merity et al. 2018, AWD-LSTM): DropConnect on an LSTM's hidden-to-hidden weights.

One mask per forward pass (per batch), shared by all time steps and sequences, on each layer's
recurrent weight matrix U; the input weights are left alone. It regularizes the recurrence without
touching the fused LSTM kernel (which runs on the masked weights). Structural: at each LSTM layer's
``recurrent_weight`` site it gives a :class:`reglab.regularizers.layers.DropConnectWeight`
(inverted scaling, plain weights in evaluation). A regularizer, like variational dropout, so it can
be tuned and is refused on networks without recurrent layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TuneRange, register

if TYPE_CHECKING:
    from torch import nn

    from reglab.models.hooks import Site


class WeightDropSettings(Settings):
    weight_drop: float = Field(
        0.0, ge=0.0, lt=1.0, description="LSTM: DropConnect rate on the hidden-to-hidden weights"
    )


class WeightDrop(Regularizer):
    """DropConnect on the recurrent weights, one mask per batch (Merity et al. 2018)."""

    name = "weight_drop"
    sites = ("recurrent_weight",)
    needs = "acts on recurrent layers: set model.arch: lstm"

    def __init__(self, p: float) -> None:
        self.p = p

    def modules(self, site: Site) -> list[nn.Module]:
        if site.point != "recurrent_weight":
            return []
        from reglab.regularizers.layers import DropConnectWeight

        return [DropConnectWeight(self.p)]


register(
    RegularizerSpec(
        name="weight_drop",
        settings=WeightDropSettings,
        make=lambda s: WeightDrop(s.weight_drop) if s.weight_drop > 0 else None,
        doc="LSTM: DropConnect on the hidden-to-hidden weights, one mask per batch",
        citation="Merity et al. 2018",
        example={"weight_drop": 0.5, "arch": "lstm"},
        tune={"weight_drop": TuneRange(0.0, 0.6)},
        structural=True,
        dump_defaults=False,
    )
)
