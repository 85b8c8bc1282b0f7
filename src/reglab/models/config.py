"""The ``model`` section of a run. It lives beside the model registry (which it validates
against), so the models package never imports :mod:`reglab.config` (which re-exports it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from reglab.models import MODELS
from reglab.models.init import INITIALIZATIONS


class ModelConfig(BaseModel):
    """The ``model`` section of a run: which registered network, its sizes and initialization."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    arch: str = Field("mlp", description="a registered model (mlp, cnn)", json_schema_extra=MODELS.schema_enum())
    hidden: tuple[int, ...] = Field((256, 128), description="MLP hidden layer sizes")
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    channels: tuple[int, int] = Field((32, 64), description="CNN conv widths")
    fc: int = Field(128, ge=1, description="CNN fully-connected width")
    init: str = Field(
        "default",
        description="weight initialization (default, he, xavier)",
        json_schema_extra=INITIALIZATIONS.schema_enum(),
    )

    @field_validator("arch", "init")
    @classmethod
    def _registered(cls, v: str, info: ValidationInfo) -> str:
        return (MODELS if info.field_name == "arch" else INITIALIZATIONS).check(v)

    @field_validator("hidden", "channels", mode="before")
    @classmethod
    def _parse_sizes(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return tuple(int(s) for s in v.split(",") if s.strip())
            except ValueError:
                raise ValueError("expected comma-separated integers, e.g. 256,128") from None
        if isinstance(v, int):
            return (v,)
        return v

    @field_validator("hidden", "channels")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 1 for s in v):
            raise ValueError("layer sizes must be >= 1")
        return v
