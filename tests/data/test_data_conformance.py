"""Every registered dataset, tested the same way (a newly registered one is picked up here).

Datasets that need no files always run; file datasets run when their files are in ../shared/data,
else they are skipped with the reason. For each: the splits add up to the loaded examples, the
held-out splits are stratified, normalization statistics come from the training split only, and the
test split sits behind its read counter (a run reads it once, after training; tuning never).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reglab.config import RunConfig
from reglab.data import DATASETS, create_dataset, load_data
from reglab.data.base import DataSplits, RawData
from reglab.data.config import DataConfig
from reglab.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NAMES = DATASETS.names()
# file datasets carry the realdata marker (they read ../shared/data)
PARAMS = [pytest.param(n, marks=[pytest.mark.realdata] if DATASETS.get(n).files else []) for n in NAMES]
SYNTHETIC = {"n_samples": 400, "n_features": 12, "n_classes": 3}
_CACHE: dict[str, tuple[DataConfig, RawData, DataSplits]] = {}


def _cfg(name: str) -> DataConfig:
    info = DATASETS.get(name)
    if not info.files:
        return DataConfig(name=name, synthetic=SYNTHETIC) if name == "synthetic" else DataConfig(name=name)
    folder = SHARED / name
    missing = [f for f in info.files if not (folder / f).is_file()]
    if missing:
        pytest.skip(f"{name}: {', '.join(missing)} not in {folder} (file datasets run only where their files are)")
    return DataConfig(name=name, data_dir=str(SHARED), download=False)


def _loaded(name: str) -> tuple[DataConfig, RawData, DataSplits]:
    """(config, raw arrays, splits) of ``name``, loaded once per session (MNIST takes seconds)."""
    if name not in _CACHE:
        cfg = _cfg(name)
        _CACHE[name] = (cfg, create_dataset(name, cfg), load_data(cfg))
    return _CACHE[name]


def _counts(y: torch.Tensor | np.ndarray, k: int) -> np.ndarray:
    return np.bincount(np.asarray(y), minlength=k)


def test_every_dataset_is_documented() -> None:
    assert {"digits", "synthetic"} <= set(NAMES)
    for name, info in DATASETS.items():
        assert info.name == name and info.description and info.size
        assert callable(info)


def _n_strata(splits: DataSplits) -> int:
    """Classes, or the quantile bins a regression target is stratified on."""
    from reglab.data.targets import REGRESSION_BINS

    return REGRESSION_BINS if splits.task == "regression" else splits.n_classes


@pytest.mark.parametrize("name", PARAMS)
def test_split_sizes_add_up(name: str) -> None:
    cfg, raw, splits = _loaded(name)
    n_raw = len(raw.y_train) + (0 if raw.y_test is None else len(raw.y_test))
    sizes = splits.sizes()
    assert sizes["train"] + sizes["val"] + sizes["test"] == n_raw
    assert min(sizes.values()) > 0
    if raw.y_test is not None:  # the official test split is kept as it is
        assert sizes["test"] == len(raw.y_test)
    else:
        assert sizes["test"] == pytest.approx(cfg.test_fraction * n_raw, abs=_n_strata(splits))
    assert sizes["val"] == pytest.approx(cfg.val_fraction * (sizes["train"] + sizes["val"]), abs=_n_strata(splits))
    assert len(splits.x_train) == sizes["train"] and len(splits.x_val) == sizes["val"]
    assert splits.x_train.shape[1:] == splits.x_val.shape[1:] == splits.test.read()[0].shape[1:]


@pytest.mark.parametrize("name", PARAMS)
def test_held_out_splits_are_stratified(name: str) -> None:
    cfg, raw, splits = _loaded(name)
    k = _n_strata(splits)
    if splits.task == "regression":  # stratified on quantile bins of the target: compare on the pool's bins
        edges = np.quantile(torch.cat([splits.y_train, splits.y_val]).numpy(), np.linspace(0, 1, k + 1)[1:-1])

        def binned(y: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.searchsorted(edges, y.numpy(), side="right"))

        train, val, tol = _counts(binned(splits.y_train), k), _counts(binned(splits.y_val), k), 2.0
        test_labels = binned(splits.test.labels)
    else:
        train, val, tol = _counts(splits.y_train, k), _counts(splits.y_val, k), 1.0
        test_labels = splits.test.labels
    pool = train + val
    # every class (target bin) keeps its share in validation, up to rounding
    assert np.all(np.abs(val - cfg.val_fraction * pool) <= tol), (val, pool)
    assert np.all(val[pool >= 2] >= 1)
    if raw.y_test is None:
        test = _counts(test_labels, k)
        total = pool + test
        assert np.all(np.abs(test - cfg.test_fraction * total) <= tol), (test, total)


@pytest.mark.parametrize("name", PARAMS)
def test_normalization_statistics_come_from_the_training_split(name: str) -> None:
    """Train is standardized exactly (mean 0, std 1 per channel or feature: no other split's
    statistics could give that), while validation and test are only approximately so."""
    _, raw, splits = _loaded(name)
    axes = (0, 2, 3) if raw.image else (0,)
    x = splits.x_train.double()
    mean, std = x.mean(dim=axes), x.std(dim=axes, unbiased=False)
    varying = std > 1e-6  # constant pixels (digit borders) are left at 0 with std 1
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)
    assert torch.allclose(std[varying], torch.ones_like(std[varying]), atol=1e-4)
    for held in (splits.x_val.double(), splits.test.read()[0].double()):
        assert float((held.mean(dim=axes) - mean).abs().max()) > 1e-4  # not re-standardized on its own
        assert float(held.abs().mean()) < 3  # but on the same scale


@pytest.mark.parametrize("name", PARAMS)
def test_the_test_split_is_counted_and_read_only_by_the_final_evaluation(name: str) -> None:
    cfg, _, _ = _loaded(name)
    data = load_data(cfg.model_copy(update={"n_train": 60}))
    assert data.test.reads == 0
    run = RunConfig().override({"data": cfg.model_dump(), "n_train": 60, "epochs": 1, "hidden": [8], "device": "cpu"})
    reads: list[int] = []
    from reglab.training.engine import fit

    fit(run, data, callbacks=[lambda _: reads.append(data.test.reads)])
    assert reads == [0] and data.test.reads == 1
    fresh = data.test.fresh()
    fit(run, DataSplits(**{**data.__dict__, "test": fresh}), evaluate_test=False)
    assert fresh.reads == 0  # tuning trials never look


def test_unknown_dataset_lists_the_valid_choices() -> None:
    with pytest.raises(ConfigError) as e:
        RunConfig().override({"name": "imagenet"})
    assert str(e.value) == (
        f"data.name: unknown dataset 'imagenet'; valid choices: {', '.join(NAMES)}, csv:PATH, parquet:PATH, "
        "npz:PATH, images:FOLDER, py:module:attr (got 'imagenet')"
    )
    with pytest.raises(ConfigError, match=r"^unknown dataset 'imagenet'; valid choices: digits, "):
        create_dataset("imagenet", DataConfig())


def test_the_data_package_does_not_import_the_config() -> None:
    import subprocess
    import sys

    code = "import sys, reglab.data, reglab.data.config, reglab.data.base; print('reglab.config' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    src = Path(__file__).resolve().parents[2] / "src" / "reglab" / "data"
    for f in src.glob("*.py"):
        assert "reglab.config import" not in f.read_text(), f
