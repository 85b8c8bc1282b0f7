"""MNIST and its drop-in relatives (Fashion-MNIST, Kuzushiji-MNIST): four IDX files each.

All three share the file names and layout, so one loader reads them; only the checksums,
mirrors and class names differ (see :data:`reglab.data.download.SPECS`). CIFAR-10's loader is
:func:`reglab.data.cifar.load_cifar10`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from reglab.data.base import RawData
from reglab.data.idx import IDX_IMAGES, IDX_LABELS, read_idx
from reglab.errors import DataError

if TYPE_CHECKING:
    from reglab.data.config import DataConfig

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]


def load_idx_dataset(name: str, cfg: DataConfig, classes: list[str] | None = None) -> RawData:
    """Locate/download the four IDX files of dataset ``name`` and read them as (N, 1, 28, 28) uint8."""
    from reglab.data.download import SPECS, ensure_files

    paths = ensure_files(SPECS[name], cfg.data_dir, download=cfg.download)

    def split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        img_path = paths[f"{prefix}-images-idx3-ubyte.gz"]
        lab_path = paths[f"{prefix}-labels-idx1-ubyte.gz"]
        x = read_idx(img_path, IDX_IMAGES)
        y = read_idx(lab_path, IDX_LABELS)
        if len(x) != len(y):
            raise DataError(
                f"{img_path} has {len(x)} images but {lab_path} has {len(y)} labels; "
                "replace them with the original files"
            )
        if x.shape[1:] != (28, 28):
            raise DataError(f"{img_path}: images are {x.shape[1:]}, expected (28, 28)")
        return x[:, None, :, :], y.astype(np.int64)

    x_train, y_train = split("train")
    x_test, y_test = split("t10k")
    folder = paths["train-images-idx3-ubyte.gz"].parent
    return RawData(x_train, y_train, x_test, y_test, image=True, classes=classes, source=f"{name} ({folder})")


def load_mnist(cfg: DataConfig) -> RawData:
    """MNIST handwritten digits (LeCun et al. 1998): 60,000 train, 10,000 test."""
    return load_idx_dataset("mnist", cfg)


def load_fashion_mnist(cfg: DataConfig) -> RawData:
    """Fashion-MNIST (Xiao et al. 2017): Zalando article images, harder than MNIST, same format."""
    return load_idx_dataset("fashion-mnist", cfg, FASHION_CLASSES)


def load_kmnist(cfg: DataConfig) -> RawData:
    """Kuzushiji-MNIST (Clanuwat et al. 2018): cursive Japanese characters, same format."""
    return load_idx_dataset("kmnist", cfg, KMNIST_CLASSES)
