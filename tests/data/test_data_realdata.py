"""The real MNIST and Fashion-MNIST files from ../shared/data (re-compressed copies, see SOURCE.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reglab.config import DataConfig
from reglab.data import load_data
from reglab.data.mnist_like import load_fashion_mnist, load_mnist

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _need(name: str) -> str:
    if not (SHARED / name).is_dir():
        pytest.skip(f"{SHARED / name} not found: real-data test needs ../shared/data/{name}")
    return str(SHARED)


@pytest.mark.realdata
def test_mnist() -> None:
    cfg = DataConfig(name="mnist", data_dir=_need("mnist"), download=False, val_fraction=0.1)
    raw = load_mnist(cfg)
    assert raw.x_train.shape == (60000, 1, 28, 28) and raw.x_train.dtype == np.uint8
    assert raw.x_test is not None and raw.y_test is not None and raw.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(raw.y_train).tolist() == MNIST_TRAIN
    assert np.bincount(raw.y_test).tolist() == MNIST_TEST
    assert raw.x_train.mean(dtype=np.float64) == pytest.approx(33.318421449829934, abs=1e-9)

    splits = load_data(cfg)
    sizes = splits.sizes()
    assert sizes["train"] + sizes["val"] == 60000 and sizes["val"] == pytest.approx(6000, abs=10)
    assert sizes["test"] == 10000 and splits.input_shape == (1, 28, 28) and splits.n_classes == 10
    assert abs(splits.x_train.mean().item()) < 1e-3


@pytest.mark.realdata
def test_fashion_mnist() -> None:
    raw = load_fashion_mnist(DataConfig(name="fashion-mnist", data_dir=_need("fashion-mnist"), download=False))
    assert raw.x_train.shape == (60000, 1, 28, 28)
    assert raw.y_test is not None
    assert np.bincount(raw.y_train).tolist() == [6000] * 10
    assert np.bincount(raw.y_test).tolist() == [1000] * 10
    assert raw.classes is not None and raw.classes[0] == "T-shirt/top" and raw.classes[9] == "Ankle boot"
    assert raw.x_train.mean(dtype=np.float64) == pytest.approx(72.9404, abs=1e-4)
