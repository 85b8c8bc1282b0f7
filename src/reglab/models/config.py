"""The ``model`` section of a run. It lives beside the model registry (which it validates
against), so the models package never imports :mod:`reglab.config` (which re-exports it).

Either a built-in network (``arch: mlp`` with ``hidden``, ``arch: cnn`` with ``channels``/``fc``,
either of them with ``residual`` blocks, or ``arch: lstm`` with ``lstm_layers``/``lstm_hidden``/
``bidirectional``) or the user's own (``class_path`` with ``init_args``, PyTorch Lightning CLI's convention; see
:mod:`reglab.models.user`). A dump leaves out the fields of the kind not in use, so a built-in
model's configuration (and the fingerprint of a study that uses it) is what it was before
``class_path`` existed; likewise the fields added with the LSTM and the residual networks are left
out while at their defaults (``NEW_FIELDS``), so mlp/cnn configurations dump as before them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from reglab.models import MODELS
from reglab.models.init import INITIALIZATIONS

_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*([:.])[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
LSTM_ONLY = ("lstm_layers", "lstm_hidden", "bidirectional")  # fields of arch: lstm
NEW_FIELDS = ("residual", *LSTM_ONLY)  # added with issue 16: left out of dumps at their defaults
BUILTIN_ONLY = ("arch", "hidden", "channels", "fc", *NEW_FIELDS)  # fields of the built-in networks
OWN_ONLY = ("class_path", "init_args")  # fields of the user's own network


class ModelConfig(BaseModel):
    """The ``model`` section of a run: which network, its sizes and initialization."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    arch: str = Field("mlp", description="a registered model (mlp, cnn, lstm)", json_schema_extra=MODELS.schema_enum())
    class_path: str | None = Field(
        None,
        description="your own model instead of arch: 'package.module:Name', a class or a function returning an "
        "nn.Module (the current directory is importable)",
    )
    init_args: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of class_path; each can differ per arm and be tuned "
        "(model.init_args.width: {low: 32, high: 128})",
    )
    hidden: tuple[int, ...] = Field((256, 128), description="MLP hidden layer sizes")
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    channels: tuple[int, int] = Field((32, 64), description="CNN conv widths")
    fc: int = Field(128, ge=1, description="CNN fully-connected width")
    residual: bool = Field(
        False,
        description="mlp and cnn: residual blocks instead of plain layers, one per hidden/conv width "
        "(stochastic_depth drops them)",
    )
    lstm_layers: int = Field(1, ge=1, le=16, description="LSTM: stacked layers")
    lstm_hidden: int = Field(128, ge=1, le=65536, description="LSTM: hidden units per layer and direction")
    bidirectional: bool = Field(False, description="LSTM: also read each sequence backwards")
    init: str = Field(
        "default",
        description="weight initialization (default, he, xavier)",
        json_schema_extra=INITIALIZATIONS.schema_enum(),
    )

    @field_validator("arch", "init")
    @classmethod
    def _registered(cls, v: str, info: ValidationInfo) -> str:
        return (MODELS if info.field_name == "arch" else INITIALIZATIONS).check(v)

    @field_validator("class_path")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        if v is not None and not _REF.match(v):
            raise ValueError("expected 'package.module:Name' (or 'package.module.Name'), a class or a function")
        return v

    @field_validator("init_args")
    @classmethod
    def _plain_args(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if not _IDENT.match(str(key)):
                raise ValueError(f"{key!r} is not a parameter name")
        try:  # stored with the results and hashed into the study's fingerprint
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"values must be numbers, strings, booleans, null, lists or mappings ({err})") from None
        return v

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

    @model_validator(mode="after")
    def _one_kind(self) -> ModelConfig:
        if self.class_path is None:
            if self.init_args:
                raise ValueError("init_args are the arguments of class_path; give model.class_path too")
            if self.residual and self.arch == "lstm":
                raise ValueError("residual: residual blocks exist for arch mlp and cnn, not lstm")
            return self
        for name in BUILTIN_ONLY:
            if getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(
                    f"{name} belongs to the built-in models and does not apply to class_path {self.class_path}; "
                    "pass your model's sizes through model.init_args"
                )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for name in OWN_ONLY if self.class_path is None else BUILTIN_ONLY:
            out.pop(name, None)
        for name in NEW_FIELDS:
            if name in out and getattr(self, name) == type(self).model_fields[name].default:
                del out[name]
        return out

    def __hash__(self) -> int:  # frozen configs are hashable; init_args is a dict
        return hash(json.dumps(self.model_dump(mode="json"), sort_keys=True))

    @property
    def label(self) -> str:
        """What the network is called in titles: ``mlp``, ``cnn`` or the user's class name."""
        if self.class_path is None:
            return self.arch
        from reglab.models.user import display_name

        return display_name(self.class_path)
