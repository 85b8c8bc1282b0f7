"""Validated, frozen configuration models: YAML/CLI -> these models -> plain functions.

One :class:`RunConfig` fully describes one training run. Field names are unique across the
sections, so a study arm can override any of them with a flat mapping (``{l2: 1e-4}``) as well
as with nested sections (``{regularization: {l2: 1e-4}}``).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from reglab.data.config import DataConfig
from reglab.data.config import SyntheticConfig as SyntheticConfig
from reglab.errors import ConfigError, suggest
from reglab.models.config import ModelConfig
from reglab.optim import OPTIMIZERS, SCHEDULES
from reglab.regularizers.augment import AugmentConfig as AugmentConfig
from reglab.regularizers.early_stopping import EarlyStoppingConfig as EarlyStoppingConfig
from reglab.regularizers.snapshot import SnapshotConfig as SnapshotConfig
from reglab.regularizers.swa import SWAConfig as SWAConfig
from reglab.tasks import LOSSES, METRICS, check_loss, check_metric


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def regularization_model() -> type[BaseModel]:
    """The ``regularization`` section, generated from the registered regularizers' settings: their
    fields in registry order, their validators, and the rule that excluded pairs (swa and snapshot)
    cannot be combined. A new class each call; :func:`regularization_section` keeps the current one."""
    from reglab.regularizers import REGULARIZERS

    settings = [spec.settings for _, spec in REGULARIZERS.items()]
    # pydantic collects fields from the last base first: reversed bases give registry order
    bases = tuple(dict.fromkeys(reversed(settings)))
    model: type[BaseModel] = create_model(
        "RegularizationConfig", __base__=(_RegularizationBase, *bases), __module__=__name__
    )
    clash = {f: sec for sec, m in FIXED_SECTIONS.items() for f in m.model_fields if f in model.model_fields}
    if clash:
        name, sec = next(iter(clash.items()))
        raise ConfigError(f"regularization setting {name!r} is already a {sec} setting; rename it")
    return model


_SECTION: dict[int, type[BaseModel]] = {}  # registry generation -> its section


def regularization_section() -> type[BaseModel]:
    """The ``regularization`` section of the regularizers registered now (issue 24: no process-wide
    surgery). It is built from the registry at one moment - the first use after a registration
    (the first at import) - and never changed: a regularizer registered later gets a new section
    class for the configs validated from then on, and the configs and model classes loaded before
    stay as they are. ``RunConfig`` and ``StudySpec`` validate their ``regularization`` with the
    current section; the section class pickles by value (its settings), so a config pickled before
    a registration unpickles after it."""
    from reglab.regularizers.registry import generation

    gen = generation()
    model = _SECTION.get(gen)
    if model is None:
        model = _SECTION[gen] = regularization_model()
    return model


class _RegularizationBase(_Frozen):
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings, unpickled into the section current then (a generated class
        has no importable name of its own)."""
        return (_section_from_dump, (self.model_dump(),))

    @model_validator(mode="after")
    def _exclusive(self) -> Any:
        from reglab.regularizers.registry import exclusion_errors

        errors = exclusion_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @model_serializer(mode="wrap")
    def _omit_new_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Settings of regularizers registered with ``dump_defaults=False`` are left out while at
        their defaults, so configs (and study fingerprints) without them dump as before them."""
        from reglab.regularizers import REGULARIZERS

        out: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        for _, spec in REGULARIZERS.items():
            if not spec.dump_defaults:
                for name in spec.fields:
                    if name in out and getattr(self, name) == fields[name].get_default(call_default_factory=True):
                        del out[name]
        return out


if TYPE_CHECKING:  # the static view: the built-in regularizers' settings (the runtime class is generated)
    from reglab.regularizers.adaptive_augment import AdaptiveAugmentSettings
    from reglab.regularizers.augment import AugmentSettings
    from reglab.regularizers.batch_norm import BatchNormSettings
    from reglab.regularizers.cutout import CutoutSettings
    from reglab.regularizers.dropout import DropoutSettings
    from reglab.regularizers.early_stopping import EarlyStoppingSettings
    from reglab.regularizers.elastic_net import ElasticNetSettings
    from reglab.regularizers.generative_augment import GenerativeAugmentSettings
    from reglab.regularizers.input_noise import InputNoiseSettings
    from reglab.regularizers.l1 import L1Settings
    from reglab.regularizers.l2 import L2Settings
    from reglab.regularizers.label_smoothing import LabelSmoothingSettings
    from reglab.regularizers.max_norm import MaxNormSettings
    from reglab.regularizers.mixup import MixupSettings
    from reglab.regularizers.snapshot import SnapshotSettings
    from reglab.regularizers.swa import SWASettings
    from reglab.regularizers.weight_decay import WeightDecaySettings

    class RegularizationConfig(
        SnapshotSettings,
        SWASettings,
        EarlyStoppingSettings,
        MixupSettings,
        LabelSmoothingSettings,
        InputNoiseSettings,
        CutoutSettings,
        AdaptiveAugmentSettings,
        AugmentSettings,
        GenerativeAugmentSettings,
        MaxNormSettings,
        BatchNormSettings,
        DropoutSettings,
        WeightDecaySettings,
        ElasticNetSettings,
        L2Settings,
        L1Settings,
    ):
        pass

    RegularizationSection = RegularizationConfig


def _default_section() -> RegularizationSection:
    return regularization_section()()  # type: ignore[return-value]


def regularization_field() -> Any:
    """The ``regularization`` field of a model (``RunConfig``, ``StudySpec``): the current
    section, default all off."""
    return Field(default_factory=_default_section, json_schema_extra=_section_field_schema)


def _section_field_schema(schema: dict[str, Any]) -> None:
    """The field's JSON schema as a model-typed field's: a reference and the default's values."""
    ref = schema["$ref"]
    schema.clear()
    schema.update({"$ref": ref, "default": regularization_section()().model_dump(mode="json")})


def _section_from_dump(values: dict[str, Any]) -> BaseModel:
    return regularization_section().model_validate(values)


class _CurrentSection:
    """The ``regularization`` field's type: validated (and described in the JSON schema) by the
    section current at validation time (:func:`regularization_section`)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def validate(value: Any) -> Any:
            model = regularization_section()
            if isinstance(value, model):
                return value
            if isinstance(value, _RegularizationBase):  # validated before a registration
                value = value.model_dump()
            return model.model_validate(value)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v, when_used="always")
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler.generate_json_schema.generate_inner(regularization_section().__pydantic_core_schema__)  # type: ignore[attr-defined]


if not TYPE_CHECKING:
    RegularizationSection = Annotated[_RegularizationBase, _CurrentSection]


def __getattr__(name: str) -> Any:
    """``reglab.config.RegularizationConfig``: the current section class."""
    if name == "RegularizationConfig":
        return regularization_section()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LossSpec(_Frozen):
    """A loss given by import path: a class or factory called with ``init_args`` that returns a
    callable ``(outputs, targets) -> scalar`` (e.g. ``torch.nn.SmoothL1Loss``)."""

    class_path: str = Field(description="'package.module:Name'")
    init_args: dict[str, Any] = Field(default_factory=dict)


POPULATION_FIELDS = ("population", "population_size")  # left out of dumps at their defaults


class TrainConfig(_Frozen):
    optimizer: str = Field("sgd", description="a registered optimizer", json_schema_extra=OPTIMIZERS.schema_enum())
    lr: float = Field(0.05, gt=0.0, le=1e6, description="initial learning rate")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="for momentum and nesterov")
    schedule: str = Field(
        "constant", description="see reglab.optim.SCHEDULES", json_schema_extra=SCHEDULES.schema_enum()
    )
    step_size: int = Field(10, ge=1, description="epochs between step decays")
    decay: float | None = Field(
        None, gt=0.0, description="step/exponential factor (default 0.1/0.95), inverse-time rate (0.1)"
    )
    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    grad_clip: float | None = Field(None, gt=0.0, description="clip the global gradient norm")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="initialization, batch order and augmentation seed")
    device: str = Field("auto", description="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    eval_batch_size: int = Field(4096, ge=1)
    # -- task: loss and metrics (reglab.tasks) --
    loss: str | LossSpec = Field(
        "auto",
        description="auto (the task's: cross_entropy, bce or mse), cross_entropy, bce, mse, huber, "
        "or {class_path: 'pkg.mod:Loss', init_args: {...}}",
    )
    metrics: tuple[str, ...] = Field(
        (),
        description="metrics measured besides loss and accuracy (names as in `reglab metrics`); the first picks "
        "the best epoch. A study adds its metric.select/compare here",
    )

    @field_validator("loss")
    @classmethod
    def _loss(cls, v: str | LossSpec) -> str | LossSpec:
        if isinstance(v, str) and v != "auto" and v not in LOSSES:
            raise ValueError(LOSSES.unknown(v, "auto", "{class_path, init_args}"))
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for m in v:
            METRICS.check(m)
        return v

    # -- end task --
    # -- populations (reglab.training.population) --
    population: Literal["off", "auto"] = Field(
        "off",
        description="auto: runs that differ only in seed and per-member settings (lr, penalties, dropout rate, "
        "label smoothing, input noise, max-norm, augmentation) train together as one vectorized model; "
        "off: one run at a time",
    )
    population_size: int = Field(32, ge=1, le=1024, description="most runs trained together as one population")

    @model_serializer(mode="wrap")
    def _omit_population_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The population settings are left out of dumps while at their defaults, so configs (and
        study fingerprints) that do not use them dump exactly as before they existed."""
        out: dict[str, Any] = handler(self)
        for name in POPULATION_FIELDS:
            if name in out and getattr(self, name) == type(self).model_fields[name].default:
                del out[name]
        return out

    @field_validator("optimizer", "schedule")
    @classmethod
    def _registered(cls, v: str, info: ValidationInfo) -> str:
        return (OPTIMIZERS if info.field_name == "optimizer" else SCHEDULES).check(v)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("device must be auto, cpu, cuda, cuda:N or mps")


class RunConfig(_Frozen):
    """Everything that defines one training run."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    regularization: RegularizationSection = regularization_field()

    @model_validator(mode="after")
    def _task_fits(self) -> RunConfig:
        """With an explicit task: the loss fits it, and label smoothing needs classes."""
        task = self.data.task
        if task == "auto":
            return self
        if isinstance(self.train.loss, str):
            check_loss(self.train.loss, task)
        es = self.regularization.early_stopping
        if es is not None:
            check_metric(es.monitor, ("val",), task, "regularization.early_stopping.monitor")
        if task == "regression" and self.regularization.label_smoothing > 0:
            raise ValueError(
                "regularization.label_smoothing: needs classes and the task is regression (remove it, or set data.task)"
            )
        return self

    @model_validator(mode="after")
    def _sites_exist(self) -> RunConfig:
        """A structural regularizer that acts only at points this built-in network lacks (stochastic
        depth without residual blocks, variational dropout without an LSTM) is refused here."""
        from reglab.models import offered_sites
        from reglab.regularizers import build_regularizers

        offered = offered_sites(self.model)
        if offered is None:
            return self
        for r in build_regularizers(self):
            if r.sites and not set(r.sites) & offered:
                raise ValueError(f"regularization.{r.name}: {r.needs} (model.arch is {self.model.arch})")
        return self

    def override(self, overrides: dict[str, Any], where: str = "") -> RunConfig:
        """Return a copy with ``overrides`` (flat field names or nested sections) merged in."""
        merged = merge_overrides(self.model_dump(), overrides, where)
        return validate_model(RunConfig, merged, where)


# the sections not generated from a registry
FIXED_SECTIONS: dict[str, type[BaseModel]] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


class _Sections(Mapping[str, type[BaseModel]]):
    """Section name -> its model; ``regularization`` is the current section."""

    def __getitem__(self, key: str) -> type[BaseModel]:
        return regularization_section() if key == "regularization" else FIXED_SECTIONS[key]

    def __iter__(self) -> Iterator[str]:
        return iter([*FIXED_SECTIONS, "regularization"])

    def __len__(self) -> int:
        return len(FIXED_SECTIONS) + 1


class _FieldSections(Mapping[str, str]):
    """Flat field name -> its section, for the current sections; names are unique across sections
    (a regularizer's clash is refused when its section is built)."""

    def _index(self) -> dict[str, str]:
        model = regularization_section()
        index = _FIELD_INDEX.get(model)
        if index is None:
            index = _FIELD_INDEX[model] = {f: sec for sec, m in SECTIONS.items() for f in m.model_fields}
        return index

    def __getitem__(self, key: str) -> str:
        return self._index()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._index())


_FIELD_INDEX: dict[type[BaseModel], dict[str, str]] = {}
SECTIONS: Mapping[str, type[BaseModel]] = _Sections()
FIELD_SECTION: Mapping[str, str] = _FieldSections()


def deep_merge(base: dict[str, Any], upd: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``upd``, merging nested mappings instead of replacing them."""
    out = dict(base)
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def nest_overrides(overrides: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Turn ``{l2: 1e-4, train: {lr: 0.1}, "train.epochs": 5}`` into nested sections."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        key = str(key)
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key}: expected a mapping of {key} settings, got {value!r}")
            nested = deep_merge(nested, {key: value})
            continue
        parts = key.split(".")
        head = parts[0]
        if head in SECTIONS and len(parts) > 1:
            path = parts
        elif head in FIELD_SECTION:
            path = [FIELD_SECTION[head], *parts]
        else:
            hint = suggest(head, [*SECTIONS, *sorted(FIELD_SECTION)], "`reglab schema` lists the settings")
            raise ConfigError(f"{where}{key}: unknown setting; {hint}")
        node: dict[str, Any] = {}
        cur = node
        for p in path[:-1]:
            cur[p] = {}
            cur = cur[p]
        cur[path[-1]] = value
        nested = deep_merge(nested, node)
    return nested


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any], where: str = "") -> dict[str, Any]:
    return deep_merge(base, nest_overrides(overrides, where))


def format_validation_error(err: ValidationError, where: str = "", model: type[BaseModel] | None = None) -> str:
    """All problems, one per line: ``field.path: message (got value)``."""
    return "\n".join(validation_messages(err, where, model))


def _short_repr(value: Any) -> str:
    """A bounded repr: a huge bad value must not make the error itself slow or unreadable."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxtuple, r.maxlevel = 60, 60, 6, 6, 3
    return r.repr(value)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the pydantic model that holds ``loc`` (``("train", "epocs")`` ->
    TrainConfig's fields), for "did you mean"; [] where the path leaves the models."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        options = [field.annotation, *typing.get_args(field.annotation)]
        current = next((t for t in options if isinstance(t, type) and issubclass(t, BaseModel)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def validation_messages(err: ValidationError, where: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """One message per problem (in the order of ``err.errors()``): ``field.path: message (got value)``.
    With ``model`` (the validated class), an unknown field says which known one was meant."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = e["msg"].removeprefix("Value error, ").removeprefix(f"{loc}: ")  # a validator naming its field
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
            fields = _fields_at(model, tuple(e["loc"])) if model is not None and e["loc"] else []
            if fields:
                msg += f"; {suggest(e['loc'][-1], fields, '`reglab schema` lists the fields')}"
        got = e.get("input")
        shown = "" if isinstance(got, dict) or e["type"] == "missing" else f" (got {_short_repr(got)})"
        lines.append(f"{where}{loc}: {msg}{shown}" if loc else f"{where.rstrip('.: ')}: {msg}{shown}".lstrip(": "))
    return lines


M = Any


def validate_model(model: type[M], data: Any, where: str = "") -> M:
    """Validate ``data`` into ``model`` or raise a :class:`ConfigError` naming the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where, model)) from None
