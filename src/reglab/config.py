"""Validated, frozen configuration models: YAML/CLI -> these models -> plain functions.

One :class:`RunConfig` fully describes one training run. Field names are unique across the
sections, so a study arm can override any of them with a flat mapping (``{l2: 1e-4}``) as well
as with nested sections (``{regularization: {l2: 1e-4}}``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reglab.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SyntheticConfig(_Frozen):
    """Options of the ``synthetic`` dataset (scikit-learn's ``make_classification``)."""

    n_samples: int = Field(2000, ge=20, le=10_000_000)
    n_features: int = Field(20, ge=2, le=100_000)
    n_informative: int = Field(10, ge=1)
    n_classes: int = Field(2, ge=2, le=1000)
    flip_y: float = Field(0.05, ge=0.0, le=1.0, description="share of labels assigned at random")

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        if self.n_informative > self.n_features:
            raise ValueError("n_informative must be <= n_features")
        return self


class DataConfig(_Frozen):
    name: str = Field("digits", description="dataset name, or csv:PATH (see `reglab datasets`)")
    data_dir: str | None = Field(None, description="where dataset files are looked up first")
    download: bool = Field(True, description="download missing files (verified by md5) when online")
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0, description="share of train carved out for validation")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="test share for datasets without one")
    n_train: int | None = Field(None, ge=10, description="use only this many training examples")
    split_seed: int = Field(0, ge=0, description="seed of the train/validation(/test) split")
    cv_folds: int | None = Field(None, ge=2, le=50, description="K-fold CV: validation is fold cv_fold of K")
    cv_fold: int = Field(0, ge=0, description="which fold is the validation split (with cv_folds)")
    synthetic: SyntheticConfig = SyntheticConfig()

    @model_validator(mode="after")
    def _fold(self) -> DataConfig:
        if self.cv_folds is not None and self.cv_fold >= self.cv_folds:
            raise ValueError(f"cv_fold must be < cv_folds ({self.cv_folds})")
        return self

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from reglab.data import DATASETS

        if v.startswith("csv:"):
            if len(v) == 4:
                raise ValueError("csv: needs a path, e.g. csv:data/train.csv")
            return v
        if v not in DATASETS:
            raise ValueError(f"unknown dataset {v!r}; valid choices: {', '.join(DATASETS.names())}, csv:PATH")
        return v


class ModelConfig(_Frozen):
    arch: Literal["mlp", "cnn"] = Field("mlp", description="mlp or the classic two-conv cnn")
    hidden: tuple[int, ...] = Field((256, 128), description="MLP hidden layer sizes")
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    channels: tuple[int, int] = Field((32, 64), description="CNN conv widths")
    fc: int = Field(128, ge=1, description="CNN fully-connected width")
    init: Literal["default", "he", "xavier"] = Field("default", description="weight initialization")

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


class AugmentConfig(_Frozen):
    """Random input transformations applied per batch in training only (Simard et al. 2003)."""

    shift: float = Field(0.0, ge=0.0, le=0.5, description="max translation, fraction of the image side")
    rotation: float = Field(0.0, ge=0.0, le=180.0, description="max rotation in degrees")
    scale: float = Field(0.0, ge=0.0, lt=1.0, description="max relative zoom in or out")
    crop_padding: int = Field(0, ge=0, le=16, description="pad then random-crop back (pixels)")
    hflip: bool = Field(False, description="random horizontal flip (off for digits!)")
    noise: float = Field(0.0, ge=0.0, le=10.0, description="std of Gaussian pixel noise")

    @property
    def active(self) -> bool:
        return bool(self.shift or self.rotation or self.scale or self.crop_padding or self.hflip or self.noise)


class EarlyStoppingConfig(_Frozen):
    """Stop when the monitored validation quantity stops improving (Prechelt 1998)."""

    patience: int = Field(5, ge=1, le=10_000)
    min_delta: float = Field(0.0, ge=0.0)
    monitor: Literal["val_loss", "val_acc"] = "val_loss"
    restore_best: bool = True


class SWAConfig(_Frozen):
    """Stochastic weight averaging (Izmailov et al. 2018)."""

    start: float = Field(0.75, gt=0.0, le=1.0, description="fraction of epochs after which averaging starts")
    lr: float | None = Field(None, gt=0.0, description="constant SWA learning rate (default: keep schedule)")


class SnapshotConfig(_Frozen):
    """Snapshot ensembling with cyclic cosine learning rate (Huang et al. 2017)."""

    cycles: int = Field(3, ge=2, le=100)


def _bool_to_section(v: Any) -> Any:
    if v is True:
        return {}
    if v is False:
        return None
    return v


class RegularizationConfig(_Frozen):
    l1: float = Field(0.0, ge=0.0, le=10.0, description="L1 penalty strength (lambda * sum|w|)")
    l2: float = Field(0.0, ge=0.0, le=10.0, description="L2 penalty strength (lambda * sum w^2), coupled")
    elastic_net: float = Field(0.0, ge=0.0, le=10.0, description="elastic-net strength")
    l1_ratio: float = Field(0.5, ge=0.0, le=1.0, description="elastic-net share of L1")
    weight_decay: float = Field(0.0, ge=0.0, le=10.0, description="decoupled weight decay (as in AdamW)")
    penalize_biases: bool = Field(False, description="also penalize biases and norm parameters")
    dropout: float | tuple[float, ...] = Field(0.0, description="dropout rate per hidden layer")
    input_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False
    max_norm: float | None = Field(None, gt=0.0, description="max L2 norm of each unit's incoming weights")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    augment: AugmentConfig = AugmentConfig()
    mixup: float = Field(0.0, ge=0.0, le=10.0, description="mixup Beta(alpha, alpha) parameter")
    cutout: int = Field(0, ge=0, le=64, description="side of the zeroed square (pixels)")
    input_noise: float = Field(0.0, ge=0.0, le=10.0, description="std of Gaussian noise on inputs")
    early_stopping: EarlyStoppingConfig | None = None
    swa: SWAConfig | None = None
    snapshot: SnapshotConfig | None = None

    @field_validator("early_stopping", "swa", "snapshot", mode="before")
    @classmethod
    def _sections(cls, v: Any) -> Any:
        return _bool_to_section(v)

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

    @model_validator(mode="after")
    def _exclusive(self) -> RegularizationConfig:
        if self.swa is not None and self.snapshot is not None:
            raise ValueError("swa and snapshot ensembling cannot be combined")
        return self


class TrainConfig(_Frozen):
    optimizer: Literal["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0.0, le=1e6, description="initial learning rate")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="for momentum and nesterov")
    schedule: Literal["constant", "step", "exponential", "cosine", "inverse-time"] = "constant"
    step_size: int = Field(10, ge=1, description="epochs between step decays")
    decay: float | None = Field(
        None, gt=0.0, description="step/exponential factor (default 0.1/0.95), inverse-time rate (0.1)"
    )
    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    grad_clip: float | None = Field(None, gt=0.0, description="clip the global gradient norm")
    seed: int = Field(0, ge=0, description="initialization, batch order and augmentation seed")
    device: str = Field("auto", description="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    eval_batch_size: int = Field(4096, ge=1)

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
    regularization: RegularizationConfig = RegularizationConfig()

    def override(self, overrides: dict[str, Any], where: str = "") -> RunConfig:
        """Return a copy with ``overrides`` (flat field names or nested sections) merged in."""
        merged = merge_overrides(self.model_dump(), overrides, where)
        return validate_model(RunConfig, merged, where)


SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "regularization": RegularizationConfig,
}

# flat field name -> section; names are unique across sections (checked at import).
FIELD_SECTION: dict[str, str] = {}
for _sec, _model in SECTIONS.items():
    for _f in _model.model_fields:
        assert _f not in FIELD_SECTION, f"duplicate field name {_f}"
        FIELD_SECTION[_f] = _sec


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
            raise ConfigError(
                f"{where}{key}: unknown setting; valid: sections {', '.join(SECTIONS)} "
                f"or fields {', '.join(sorted(FIELD_SECTION))}"
            )
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


def format_validation_error(err: ValidationError, where: str = "") -> str:
    """All problems on one line, separated by "; ": ``field.path: message (got value)``."""
    return "; ".join(validation_messages(err, where))


def _short_repr(value: Any) -> str:
    """A bounded repr: a huge bad value must not make the error itself slow or unreadable."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxtuple, r.maxlevel = 60, 60, 6, 6, 3
    return r.repr(value)


def validation_messages(err: ValidationError, where: str = "") -> list[str]:
    """One message per problem (in the order of ``err.errors()``): ``field.path: message (got value)``."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
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
        raise ConfigError(format_validation_error(err, where)) from None
