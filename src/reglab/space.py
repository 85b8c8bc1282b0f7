"""The search-space grammar of study files: which settings an arm tunes, over which ranges.

It belongs to the study file's schema (``reglab.study.definition.spec`` reads it) and is sampled by
``reglab.tuning`` (``suggest``); neither of those imports the other.

An arm marks a setting for tuning with ``tune`` (the documented default range) or an explicit
range ``{low, high, log}`` / ``{choices: [...]}``; ``when`` makes a dimension conditional
(``momentum: {low: 0.5, high: 0.99, when: {optimizer: [momentum, nesterov]}}``). Default
ranges of regularizers live next to each regularizer (``RegularizerSpec.tune``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reglab.errors import ConfigError

if TYPE_CHECKING:
    from reglab.config import RunConfig

DIM_KEYS = {"low", "high", "log", "step", "choices", "int", "when", "num"}

# defaults for training settings; regularizers' come from the regularizer registry
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "lr": {"low": 1e-4, "high": 1.0, "log": True},
    "momentum": {"low": 0.5, "high": 0.99},
    "batch_size": {"choices": [32, 64, 128, 256]},
    "epochs": {"low": 5, "high": 50, "int": True},
    "activation": {"choices": ["relu", "tanh", "gelu"]},
    "batch_norm": {"choices": [False, True]},
}
# settings whose default choices are every registered name: a registered optimizer is tuned too
REGISTRY_CHOICES: dict[str, tuple[str, str]] = {
    "optimizer": ("reglab.optim", "OPTIMIZERS"),
    "schedule": ("reglab.optim", "SCHEDULES"),
    "init": ("reglab.models.init", "INITIALIZATIONS"),
}


def registry_choices(field: str) -> list[str]:
    import importlib

    module, name = REGISTRY_CHOICES[field]
    return list(getattr(importlib.import_module(module), name).names())


class Dim(BaseModel):
    """One search dimension (float, int or categorical), optionally conditional."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    integer: bool = Field(False, alias="int", description="integer range")
    choices: list[Any] | None = None
    when: dict[str, list[Any]] | None = None
    num: int = Field(5, ge=2, le=100, description="grid points for a continuous range (grid sampler)")

    @model_validator(mode="after")
    def _check(self) -> Dim:
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must not be empty")
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs low and high (or choices)")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must be <= high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range must be > 0 (low is {self.low:g}); use log: false or low > 0")
        return self

    def grid(self) -> list[Any]:
        if self.choices is not None:
            return list(self.choices)
        lo, hi = float(self.low or 0.0), float(self.high or 0.0)
        if self.step is not None:
            if (hi - lo) / self.step > 100_000:  # more points than any budget; never build the list
                raise ConfigError(
                    f"a grid over [{lo:g}, {hi:g}] with step {self.step:g} has more than 100000 points; "
                    "use a larger step or another sampler"
                )
            n = math.floor((hi - lo) / self.step + 1e-9) + 1
            vals = [lo + i * self.step for i in range(n)]
        elif self.log:
            vals = [
                math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (self.num - 1)) for i in range(self.num)
            ]
        else:
            vals = [lo + i * (hi - lo) / (self.num - 1) for i in range(self.num)]
        if self.step is None:  # exact ends: exp(log(hi)) may round above hi (out of the range)
            vals[0], vals[-1] = lo, hi
        return [round(v) for v in vals] if self.integer else vals


def default_range(field: str) -> dict[str, Any]:
    from reglab.regularizers import REGULARIZERS

    for _, spec in REGULARIZERS.items():
        if field in spec.tune:
            r = spec.tune[field]
            if r.kind == "int":
                return {"low": r.low, "high": r.high, "int": True}
            return {"low": r.low, "high": r.high, "log": r.log}
    if field in TRAIN_DEFAULTS:
        return dict(TRAIN_DEFAULTS[field])
    if field in REGISTRY_CHOICES:
        return {"choices": registry_choices(field)}
    known = sorted({f for _, s in REGULARIZERS.items() for f in s.tune} | set(TRAIN_DEFAULTS) | set(REGISTRY_CHOICES))
    raise ConfigError(
        f"{field}: no default range for 'tune'; give {{low, high}} or choices. Defaults exist for: {', '.join(known)}"
    )


def is_dim(value: Any) -> bool:
    return value == "tune" or (
        # no setting is named low/high/choices, so such a mapping is a dimension (typos in its
        # other keys are reported by Dim, not taken for settings)
        isinstance(value, dict) and bool({"low", "high", "choices"} & set(value))
    )


def split_overrides(overrides: dict[str, Any], where: str, prefix: str = "") -> tuple[dict[str, Any], dict[str, Dim]]:
    """Separate fixed overrides from search dimensions; dimension names are flat dotted field paths
    (``l2``, ``augment.shift``)."""
    from reglab.config import SECTIONS

    fixed: dict[str, Any] = {}
    space: dict[str, Dim] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if is_dim(value):
            field = name.split(".", 1)[1] if name.split(".")[0] in SECTIONS else name
            try:
                raw = default_range(field) if value == "tune" else value
                space[field] = Dim.model_validate(raw)
            except Exception as err:
                from pydantic import ValidationError

                from reglab.config import validation_messages

                if isinstance(err, ValidationError):  # "num: ..." for a field, ": ..." for the whole
                    msg = "; ".join(m.removeprefix(": ") for m in validation_messages(err))
                else:
                    msg = str(err).split(": ", 1)[-1]
                raise ConfigError(f"{where}{name}: {msg}") from None
        elif isinstance(value, dict):
            sub_fixed, sub_space = split_overrides(value, where, f"{name}.")
            if sub_fixed or not sub_space:
                fixed[key] = sub_fixed
            space.update(sub_space)
        else:
            fixed[key] = value
    return fixed, space


def setting_value(config: dict[str, Any], name: str) -> Any:
    """The value of setting ``name`` (``optimizer``, ``augment.shift``, ``train.lr``) in a dumped
    RunConfig; None where a section is off. Unknown names raise ConfigError."""
    from reglab.config import nest_overrides

    node: Any = nest_overrides({name: None})
    cur: Any = config
    while isinstance(node, dict):
        ((key, node),) = node.items()
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def condition_values(cfg: RunConfig, space: dict[str, Dim]) -> dict[str, Any]:
    """Values, in ``cfg``, of the settings that conditions (``when``) refer to but that are not tuned."""
    dump = cfg.model_dump(mode="json")
    return {k: setting_value(dump, k) for d in space.values() for k in (d.when or {}) if k not in space}


def grid_space(space: dict[str, Dim]) -> dict[str, list[Any]]:
    return {name: d.grid() for name, d in space.items()}
