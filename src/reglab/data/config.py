"""The ``data`` section of a run: which dataset, how it is split, how much of it is used.

It lives beside the loaders (which read it) and imports only pydantic and the dataset registry,
so the data package never imports :mod:`reglab.config` (which re-exports these models).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reglab.data import DATASETS


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
    model_config = ConfigDict(frozen=True, extra="forbid")

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
    task: Literal["auto", "classification", "binary", "regression"] = Field(
        "auto",
        description="auto: the dataset's own task, else inferred from the target (fractional values: regression; "
        "an integer target with many distinct values must be set explicitly)",
    )

    @model_validator(mode="after")
    def _fold(self) -> DataConfig:
        if self.cv_folds is not None and self.cv_fold >= self.cv_folds:
            raise ValueError(f"cv_fold must be < cv_folds ({self.cv_folds})")
        return self

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v.startswith("csv:"):
            if len(v) == 4:
                raise ValueError("csv: needs a path, e.g. csv:data/train.csv")
            return v
        if v not in DATASETS:
            raise ValueError(DATASETS.unknown(v, "csv:PATH"))
        return v
