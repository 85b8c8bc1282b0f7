"""Dropout (Srivastava et al. 2014): zero units at random in training, scale by 1/(1-p); identity
in evaluation. Structural: it inserts ``nn.Dropout`` layers at the model's dropout sites (in the
LSTM between layers and before the classifier, a fresh mask per time step: Zaremba et al. 2014's
non-recurrent dropout; ``variational_dropout`` is the per-sequence kind)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TuneRange, register
from reglab.regularizers.base import Members

if TYPE_CHECKING:
    from torch import nn

    from reglab.models.hooks import Site


class DropoutSettings(Settings):
    dropout: float | tuple[float, ...] = Field(0.0, description="dropout rate per hidden layer")
    input_dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("dropout", mode="before")
    @classmethod
    def _parse_dropout(cls, v: Any) -> Any:
        if isinstance(v, str) and "," in v:
            return tuple(float(s) for s in v.split(","))
        return v

    @field_validator("dropout")
    @classmethod
    def _dropout_range(cls, v: float | tuple[float, ...]) -> float | tuple[float, ...]:
        rates = v if isinstance(v, tuple) else (v,)
        if any(not 0.0 <= r < 1.0 for r in rates):
            raise ValueError("dropout rates must be in [0, 1)")
        return v


def layer_rates(dropout: float | tuple[float, ...], n: int, what: str = "hidden layers") -> list[float]:
    """Expand a dropout spec to one rate per layer (a single rate applies to all)."""
    if isinstance(dropout, tuple):
        if len(dropout) == 1:
            return [dropout[0]] * n
        if len(dropout) != n:
            from reglab.errors import ConfigError

            raise ConfigError(f"regularization.dropout: {len(dropout)} rates given for {n} {what}")
        return list(dropout)
    return [dropout] * n


def site_rate(dropout: float | tuple[float, ...], site: Site) -> float:
    """The rate at a ``post_activation`` site: a tuple with one rate per site sets each (the CNN's
    ``(a, b)``: after the conv stack, before the classifier); otherwise the rate(s) apply to the
    sites after dense layers only (linear, or LSTM layers: between them and before the
    classifier), one rate for all or one per dense layer."""
    if isinstance(dropout, tuple) and len(dropout) == site.count:
        return dropout[site.index]
    dense = [i for i, kind in enumerate(site.layers) if kind in ("linear", "lstm")]
    if site.index not in dense:
        return 0.0
    what = "hidden layers" if len(dense) == site.count else "classifier inputs"
    return layer_rates(dropout, len(dense), what)[dense.index(site.index)]


class Dropout(Regularizer):
    """Dropout (Srivastava et al. 2014) on the hidden units and, with ``input_dropout``, on the
    inputs as in the paper."""

    name = "dropout"

    def __init__(self, rate: float | tuple[float, ...], input_rate: float) -> None:
        self.rate, self.input_rate = rate, input_rate

    def modules(self, site: Site) -> list[nn.Module]:
        from torch import nn

        if site.point == "input":
            rate = self.input_rate
        elif site.point == "post_activation":
            rate = site_rate(self.rate, site)
        else:
            return []
        return [nn.Dropout(rate)] if rate > 0 else []


def _make(s: DropoutSettings) -> Dropout | None:
    rates = s.dropout if isinstance(s.dropout, tuple) else (s.dropout,)
    return Dropout(s.dropout, s.input_dropout) if any(r > 0 for r in rates) or s.input_dropout > 0 else None


register(
    RegularizerSpec(
        name="dropout",
        settings=DropoutSettings,
        make=_make,
        doc="zero hidden units (and inputs, `input_dropout`) at random in training; one rate or one per layer",
        citation="Srivastava et al. 2014",
        example={"dropout": 0.3},
        tune={"dropout": TuneRange(0.0, 0.7)},
        structural=True,
        members=Members(("dropout", "input_dropout")),
    )
)
