"""The ``data`` section of a run: which dataset, how it is split, how much of it is used.

It lives beside the loaders (which read it) and imports only pydantic and the dataset registry,
so the data package never imports :mod:`reglab.config` (which re-exports these models).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from reglab.data import DATASETS, FILE_FORMATS, infer_format

# settings added with issue 11 (left out of dumps at their defaults: see DataConfig._omit_new_defaults)
OWN_DATA_FIELDS = ("target", "categorical", "image_size", "color", "loader_args", "memory_budget_mb", "loader_workers")
SCHEMES = ("csv:PATH", "parquet:PATH", "npz:PATH", "images:FOLDER", "py:module:attr")  # besides DATASETS


class SyntheticConfig(BaseModel):
    """Options of the ``synthetic`` dataset (scikit-learn's ``make_classification``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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


class DataConfig(BaseModel):
    """Where the data comes from is ``name``: a registered dataset, ``FORMAT:PATH`` for a file or
    folder (csv, parquet, npz, images) or ``py:module:attr`` for a function or class returning
    arrays or a torch ``Dataset``. Study files may also write ``{path: f.csv, format: csv}`` or
    ``{class_path: pkg.mod:load, init_args: {...}}`` (Lightning CLI's convention); both are
    normalized into ``name`` here, so one field identifies the data in configs and fingerprints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        "digits",
        description="dataset name, FORMAT:PATH (csv, parquet, npz, images) or py:module:attr (see `reglab datasets`)",
    )
    data_dir: str | None = Field(None, description="where dataset files are looked up first")
    download: bool = Field(True, description="download missing files (verified by md5) when online")
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0, description="share of train carved out for validation")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="test share for datasets without one")
    n_train: int | None = Field(None, ge=10, description="use only this many training examples")
    split_seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the train/validation(/test) split")
    cv_folds: int | None = Field(None, ge=2, le=50, description="K-fold CV: validation is fold cv_fold of K")
    cv_fold: int = Field(0, ge=0, description="which fold is the validation split (with cv_folds)")
    synthetic: SyntheticConfig = SyntheticConfig()
    task: Literal["auto", "classification", "binary", "regression"] = Field(
        "auto",
        description="auto: the dataset's own task, else inferred from the target (fractional values: regression; "
        "an integer target with many distinct values must be set explicitly)",
    )
    target: str = Field("target", min_length=1, description="target column of a CSV or Parquet file")
    categorical: Literal["onehot", "ordinal"] = Field(
        "onehot", description="encoding of text columns of a table (fitted on the train split only)"
    )
    image_size: int | tuple[int, int] | None = Field(
        None, description="resize image-folder images to SIZE or [H, W] (needed when their sizes differ)"
    )
    color: Literal["auto", "grayscale", "rgb"] = Field("auto", description="channels of image-folder images")
    loader_args: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of a py:module:attr data loader (init_args)"
    )
    memory_budget_mb: float | None = Field(
        None, gt=0, description="data larger than this streams from disk (default: a quarter of the RAM)"
    )
    loader_workers: int = Field(2, ge=0, le=64, description="DataLoader worker processes when streaming")

    @model_serializer(mode="wrap")
    def _omit_new_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dumps leave out the settings added for the user's own data while they are at their
        defaults, so the fingerprints of studies stored before them stay the same (resumable)."""
        out: dict[str, Any] = handler(self)
        for name in OWN_DATA_FIELDS:
            if name in out and getattr(self, name) == type(self).model_fields[name].get_default(
                call_default_factory=True
            ):
                del out[name]
        return out

    def __hash__(self) -> int:  # loader_args is a dict: hash the content, as frozen configs are hashable
        return hash(self.model_dump_json())

    @model_validator(mode="before")
    @classmethod
    def _sugar(cls, v: Any) -> Any:
        """``path``/``format`` and ``class_path``/``init_args`` -> ``name`` (and ``loader_args``)."""
        if not isinstance(v, dict) or not ({"path", "format", "class_path", "init_args"} & set(v)):
            return v
        v = dict(v)
        path, fmt = v.pop("path", None), v.pop("format", None)
        class_path, init_args = v.pop("class_path", None), v.pop("init_args", None)
        if path is not None and class_path is not None:
            raise ValueError("give either path or class_path, not both")
        if path is not None:
            if not isinstance(path, str) or not path:
                raise ValueError(f"path: expected a file or folder path (got {path!r})")
            fmt = fmt or infer_format(path)
            if fmt not in FILE_FORMATS:
                raise ValueError(f"format: {fmt!r} is not one of {', '.join(FILE_FORMATS)}")
            v["name"] = f"{fmt}:{path}"
        elif fmt is not None:
            raise ValueError("format needs a path")
        if class_path is not None:
            if not isinstance(class_path, str) or (":" not in class_path and "." not in class_path):
                raise ValueError(f"class_path: expected 'module:attr' or 'module.attr' (got {class_path!r})")
            v["name"] = f"py:{class_path}"
        if init_args is not None:
            v["loader_args"] = init_args
        return v

    @model_validator(mode="after")
    def _fold(self) -> DataConfig:
        if self.cv_folds is not None and self.cv_fold >= self.cv_folds:
            raise ValueError(f"cv_fold must be < cv_folds ({self.cv_folds})")
        return self

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        scheme, sep, rest = v.partition(":")
        if sep and scheme in (*FILE_FORMATS, "py"):
            if not rest:
                example = "py:my_pkg.data:load" if scheme == "py" else f"{scheme}:data/train.{scheme}"
                raise ValueError(f"{scheme}: needs a {'loader' if scheme == 'py' else 'path'}, e.g. {example}")
            return v
        if v not in DATASETS:
            raise ValueError(DATASETS.unknown(v, *SCHEMES))
        return v

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
        sizes = (v,) if isinstance(v, int) else (v or ())
        if any(not 1 <= s <= 4096 for s in sizes):
            raise ValueError("image sizes must be in 1..4096 pixels")
        return v
