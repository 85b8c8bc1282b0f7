"""Variational (recurrent) dropout (Gal & Ghahramani 2016) for the LSTM.

Dropout read as approximate Bayesian inference asks for one mask per sequence, repeated at every
time step, on the inputs and on the recurrent state - not a fresh mask per step, which in the
recurrence would disturb the memory (why Zaremba et al. 2014 kept dropout off the recurrent
connections). Structural: at each LSTM layer's ``recurrent`` site it gives an ``nn.Dropout``, which
the layer applies to ones once per forward pass to draw those masks (Keras draws its recurrent
dropout masks the same way); see :mod:`reglab.models.lstm`. A regularizer rather than a model
option, like ``dropout``, so it can be tuned, has a default range and is refused on networks
without recurrent layers. Combine it with ``dropout`` for the non-recurrent connections between
layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TuneRange, register

if TYPE_CHECKING:
    from torch import nn

    from reglab.models.hooks import Site


class VariationalDropoutSettings(Settings):
    variational_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="LSTM: rate of the per-sequence masks on each layer's inputs and state"
    )


class VariationalDropout(Regularizer):
    """One dropout mask per sequence, the same at every step, on LSTM inputs and hidden states."""

    name = "variational_dropout"
    sites = ("recurrent",)
    needs = "acts on recurrent layers: set model.arch: lstm"

    def __init__(self, p: float) -> None:
        self.p = p

    def modules(self, site: Site) -> list[nn.Module]:
        from torch import nn

        return [nn.Dropout(self.p)] if site.point == "recurrent" else []


register(
    RegularizerSpec(
        name="variational_dropout",
        settings=VariationalDropoutSettings,
        make=lambda s: VariationalDropout(s.variational_dropout) if s.variational_dropout > 0 else None,
        doc="LSTM: one dropout mask per sequence, constant over time, on each layer's inputs and recurrent state",
        citation="Gal & Ghahramani 2016",
        example={"variational_dropout": 0.25, "arch": "lstm"},
        tune={"variational_dropout": TuneRange(0.0, 0.5)},
        structural=True,
        dump_defaults=False,
    )
)
