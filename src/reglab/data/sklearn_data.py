"""Datasets that need no files: scikit-learn's bundled digits, diabetes and breast cancer, and
make_classification."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reglab.data.base import RawData

if TYPE_CHECKING:
    from reglab.data.config import DataConfig


def _bundled(name: str) -> Path | None:
    """A data file shipped inside scikit-learn, found without importing it (``import
    sklearn.datasets`` costs about a second of CPU in every worker process)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / name
        if path.is_file():
            return path
    return None


def load_digits(cfg: DataConfig) -> RawData:
    """8x8 handwritten digits (1,797 images) bundled with scikit-learn (UCI optdigits), read from
    its file as ``sklearn.datasets.load_digits`` does."""
    path = _bundled("digits.csv.gz")
    if path is not None:
        table = np.loadtxt(path, delimiter=",")
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:  # a scikit-learn that keeps the file elsewhere
        from sklearn.datasets import load_digits as _load

        d = _load()
        images, target = d.images, d.target
    x = images.astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8), values 0..16
    return RawData(x, target.astype(np.int64), image=True, source="scikit-learn (bundled)")


def load_synthetic(cfg: DataConfig) -> RawData:
    """``make_classification`` (Guyon 2003): quick, controllable over-fitting demonstrations."""
    from sklearn.datasets import make_classification

    s = cfg.synthetic
    x, y = make_classification(
        n_samples=s.n_samples,
        n_features=s.n_features,
        n_informative=s.n_informative,
        n_redundant=min(2, s.n_features - s.n_informative),
        n_classes=s.n_classes,
        n_clusters_per_class=1 if s.n_classes * 2 > 2**s.n_informative else 2,
        flip_y=s.flip_y,
        random_state=cfg.split_seed,
    )
    return RawData(x.astype(np.float32), y.astype(np.int64), image=False, source="generated")


def load_diabetes(cfg: DataConfig) -> RawData:
    """442 diabetes patients, 10 baseline variables -> disease progression after a year (Efron et
    al. 2004): a small regression benchmark with no official test split."""
    from sklearn.datasets import load_diabetes as _load

    d = _load()
    return RawData(
        d.data.astype(np.float32),
        d.target.astype(np.float32),
        image=False,
        source="scikit-learn (bundled)",
        task="regression",
    )


def load_breast_cancer(cfg: DataConfig) -> RawData:
    """569 breast tumours, 30 features, malignant (0) vs benign (1) (Street et al. 1993)."""
    from sklearn.datasets import load_breast_cancer as _load

    d = _load()
    return RawData(
        d.data.astype(np.float32),
        d.target.astype(np.int64),
        image=False,
        classes=[str(c) for c in d.target_names],
        source="scikit-learn (bundled)",
        task="binary",
    )
