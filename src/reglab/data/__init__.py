"""Datasets: a registry of loaders, all producing in-memory tensors split the same way.

``load_data(cfg)`` is the one entry point; ``DATASETS`` lists what exists (``reglab datasets``).
Each entry is a factory like every registry's: ``create_dataset(name, cfg)`` returns the raw arrays
(:class:`DatasetInfo` is callable and carries what ``reglab datasets`` prints). The ``data`` config
section is :class:`reglab.data.config.DataConfig`; this package never imports :mod:`reglab.config`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reglab.registry import Registry

if TYPE_CHECKING:
    from reglab.data.base import DataSplits, RawData
    from reglab.data.config import DataConfig


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    loader: str  # "module:function", imported lazily
    size: str
    files: tuple[str, ...] = ()
    task: str = "classification"  # what data.task: auto means for this dataset

    def __call__(self, cfg: DataConfig) -> RawData:
        """Load the raw arrays (the loader module is imported only now)."""
        import importlib

        mod, fn = self.loader.split(":")
        func: Callable[[DataConfig], RawData] = getattr(importlib.import_module(mod), fn)
        return func(cfg)


DATASETS: Registry[DatasetInfo] = Registry("dataset")


IDX_FILES = (  # the four files of every MNIST-format dataset
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _add(info: DatasetInfo) -> None:
    DATASETS.add(info.name, info)


_add(
    DatasetInfo(
        "digits",
        "8x8 handwritten digits, bundled with scikit-learn",
        "reglab.data.sklearn_data:load_digits",
        "1,797 images, 10 classes",
    )
)
_add(
    DatasetInfo(
        "synthetic",
        "make_classification (options under data.synthetic)",
        "reglab.data.sklearn_data:load_synthetic",
        "configurable",
    )
)
_add(
    DatasetInfo(
        "diabetes",
        "disease progression after one year from 10 baseline variables (Efron et al. 2004), bundled with scikit-learn",
        "reglab.data.sklearn_data:load_diabetes",
        "442 patients, 10 features, a numeric target (regression)",
        task="regression",
    )
)
_add(
    DatasetInfo(
        "breast_cancer",
        "Wisconsin diagnostic breast cancer: malignant vs benign from 30 cell-nucleus features, bundled with "
        "scikit-learn",
        "reglab.data.sklearn_data:load_breast_cancer",
        "569 tumours, 30 features, 2 classes (binary)",
        task="binary",
    )
)
_add(
    DatasetInfo(
        "mnist",
        "28x28 handwritten digits (LeCun et al. 1998)",
        "reglab.data.mnist_like:load_mnist",
        "70,000 images (60,000 train + 10,000 test), 10 classes, 11 MB",
        files=IDX_FILES,
    )
)
_add(
    DatasetInfo(
        "fashion-mnist",
        "28x28 Zalando article images, a harder drop-in for MNIST",
        "reglab.data.mnist_like:load_fashion_mnist",
        "70,000 images (60,000 train + 10,000 test), 10 classes, 30 MB",
        files=IDX_FILES,
    )
)
_add(
    DatasetInfo(
        "kmnist",
        "28x28 Kuzushiji (cursive Japanese) characters, a drop-in for MNIST",
        "reglab.data.mnist_like:load_kmnist",
        "70,000 images (60,000 train + 10,000 test), 10 classes, 20 MB",
        files=IDX_FILES,
    )
)
_add(
    DatasetInfo(
        "cifar10",
        "32x32 colour images of objects and animals (Krizhevsky 2009)",
        "reglab.data.cifar:load_cifar10",
        "60,000 images (50,000 train + 10,000 test), 10 classes, 163 MB",
        files=("cifar-10-python.tar.gz",),
    )
)


# files and folders named ``FORMAT:PATH`` (or ``data: {path: ..., format: ...}``): format -> loader
FILE_FORMATS: dict[str, str] = {
    "csv": "reglab.data.tables:load_csv_table",
    "parquet": "reglab.data.tables:load_parquet",
    "npz": "reglab.data.arrays:load_npz",
    "images": "reglab.data.images:load_image_folder",
}
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}


def infer_format(path: str) -> str:
    """The format of ``path`` from its suffix; a folder (or a path without suffix) is an image folder."""
    from pathlib import PurePath

    return _SUFFIXES.get(PurePath(path).suffix.lower(), "images")


def create_dataset(name: str, cfg: DataConfig) -> RawData:
    """The raw arrays of the registered dataset ``name`` (unknown names list the valid ones)."""
    return DATASETS.get(name)(cfg)


def load_raw(cfg: DataConfig) -> RawData:
    """The raw arrays of the data that ``cfg`` names (a registered dataset, a file or folder, or a
    ``py:module:attr`` loader), before splitting: the place to look at the raw targets."""
    import importlib

    scheme, sep, _ = cfg.name.partition(":")
    if sep and scheme in FILE_FORMATS:
        mod, fn = FILE_FORMATS[scheme].split(":")
        loader: Callable[[DataConfig], RawData] = getattr(importlib.import_module(mod), fn)
        return loader(cfg)
    if sep and scheme == "py":
        from reglab.data.python import load_python

        return load_python(cfg)
    return create_dataset(cfg.name, cfg)


def is_user_data(cfg: DataConfig) -> bool:
    """Data from the user's files or code (``FORMAT:PATH``, ``py:...``), not a registered dataset."""
    scheme, sep, _ = cfg.name.partition(":")
    return bool(sep) and (scheme in FILE_FORMATS or scheme == "py")


def check_source(cfg: DataConfig, task: str | None = None) -> None:
    """Refuse the user's data before a study stores anything (a run would refuse it anyway):
    tables, arrays and loaders are read, checked and split (sizes only); every image of an image
    folder is decoded (a truncated file fails here, not in a run). Registered datasets are not
    loaded here (their files are checked by md5)."""
    if not is_user_data(cfg):
        return
    if cfg.name.startswith("images:"):
        from reglab.data.images import decode_all, index_folder

        decode_all(index_folder(cfg))
        return
    from reglab.data.base import check_splits

    # checked (check_raw) and split as a run would, for the task the run resolves (data.task, the
    # dataset's own, else inferred from the target): a regression target is not held to class labels
    check_splits(load_raw(cfg), cfg, cfg.name, task)


def load_data(cfg: DataConfig) -> DataSplits:
    """Load, split and normalize the dataset that ``cfg`` names."""
    from reglab.data.base import make_splits

    return make_splits(load_raw(cfg), cfg, cfg.name)
