"""The practitioner's own arrays: ``(X, y)`` (numpy or torch), a dict of splits, any map-style
torch ``Dataset``, and ``.npz`` files - all turned into :class:`RawData`, so they are split,
checked and normalized exactly like the built-in datasets (:func:`reglab.data.base.make_splits`).

Studies run in other processes (spawned workers, Ray nodes), so arrays given to ``run_protocol``
are not pickled into every task: :func:`materialize` writes them once as a content-addressed
``.npz`` (``<output>/data/<sha256[:16]>.npz``) and the study's ``data.name`` becomes
``npz:PATH`` - the fingerprint changes exactly when the data does, and workers load it by path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.data.base import RawData, check_raw, check_splits
from reglab.errors import DataError

if TYPE_CHECKING:
    from reglab.data.base import DataSplits
    from reglab.data.config import DataConfig

SPLITS = ("train", "val", "test")
# standard key names of an .npz file: per split, or one X/y pair (then the test split is carved out)
NPZ_KEYS = {s: (f"x_{s}", f"y_{s}") for s in SPLITS}
NPZ_PAIRS = (("X", "y"), ("x", "y"))


def to_numpy(a: Any, what: str) -> np.ndarray:
    """A numpy array from a numpy array, torch tensor, pandas object or (nested) list."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor (no torch import needed)
        a = a.detach().cpu().numpy()
    elif hasattr(a, "to_numpy"):  # pandas
        a = a.to_numpy()
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise DataError(f"{what}: cannot be read as an array ({e}); pass a numpy array or a tensor") from None
    if arr.dtype == object:
        raise DataError(f"{what}: has mixed or ragged values (dtype object); pass a numeric array of one shape")
    return arr


def _features(x: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    """(features, image): (N, F) tabular, (N, H, W) grayscale images, (N, C, H, W) images."""
    if x.ndim == 1:
        raise DataError(f"{what}: features must be 2-D (examples x features), got shape {x.shape}; reshape(-1, 1)")
    if x.ndim == 3:
        return x[:, None], True
    if x.ndim > 4:
        raise DataError(f"{what}: features of shape {x.shape}: expected (N, F), (N, H, W) or (N, C, H, W)")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{what}: features must be numeric, not {x.dtype}; encode text columns as numbers")
    return x, x.ndim == 4


def _labels(ys: list[np.ndarray]) -> tuple[list[np.ndarray], list[str] | None, str]:
    """Text labels become 0..K-1 (classes sorted); numbers stay as given (checked by make_splits)."""
    dtype = str(ys[0].dtype)
    if ys[0].dtype.kind in "USO":
        uniq = np.unique(np.concatenate([y.astype(str) for y in ys]))
        return [np.searchsorted(uniq, y.astype(str)) for y in ys], [str(u) for u in uniq], dtype
    if ys[0].dtype == np.bool_:
        return [y.astype(np.int64) for y in ys], ["False", "True"], dtype
    return ys, None, dtype


def raw_from_arrays(pairs: Mapping[str, tuple[Any, Any]], source: str, classes: list[str] | None = None) -> RawData:
    """RawData from ``{"train": (X, y), "test": ..., "val": ...}`` (train required), checked."""
    unknown = set(pairs) - set(SPLITS)
    if unknown or "train" not in pairs:
        raise DataError(
            f"{source}: splits are train (required), val and test; got {', '.join(map(str, pairs)) or 'none'}"
        )
    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    image = False
    for split, pair in pairs.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise DataError(f"{source}: the {split} split must be a pair (X, y)")
        x, image = _features(to_numpy(pair[0], f"{source}: {split} X"), f"{source}: {split} X")
        xs[split], ys[split] = x, to_numpy(pair[1], f"{source}: {split} y")
        if ys[split].ndim == 2 and ys[split].shape[1] == 1:
            ys[split] = ys[split][:, 0]
    shapes = {s: x.shape[1:] for s, x in xs.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{source}: the splits' features differ in shape {shapes}; give every split the same columns")
    order = list(ys)
    encoded, found, dtype = _labels([ys[s] for s in order])
    ys = dict(zip(order, encoded, strict=True))
    raw = RawData(
        x_train=xs["train"],
        y_train=ys["train"],
        x_test=xs.get("test"),
        y_test=ys.get("test"),
        x_val=xs.get("val"),
        y_val=ys.get("val"),
        image=image,
        classes=classes or found,
        source=source,
        target_dtype=dtype,
    )
    check_raw(raw, task="regression")  # shapes and values; the labels are checked when split
    return raw


def _dataset_arrays(ds: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a map-style dataset once: ``ds[i] -> (x, y)`` for i in 0..len-1."""
    n = len(ds)
    if n == 0:
        raise DataError(f"{source}: the dataset is empty")
    xs, ys = [], []
    for i in range(n):
        item = ds[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(f"{source}: item {i} is not a pair (x, y); a Dataset must return (features, target)")
        xs.append(to_numpy(item[0], f"{source}: item {i} features"))
        ys.append(to_numpy(item[1], f"{source}: item {i} target"))
    if len({x.shape for x in xs}) > 1:
        raise DataError(f"{source}: items have different shapes (e.g. {xs[0].shape}, resize them to one shape")
    return np.stack(xs), np.stack(ys)


def is_dataset(obj: Any) -> bool:
    """A map-style dataset: ``len()`` and ``[i]`` (a torch Dataset, or anything shaped like one)."""
    plain = (tuple, list, Mapping, str, bytes, np.ndarray)
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, plain)


def raw_from_python(obj: Any, source: str = "data") -> RawData:
    """RawData from what a user hands the Python API (see the module docstring), or from a
    scikit-learn ``Bunch`` (``.data``/``.target``). RawData passes through."""
    if isinstance(obj, RawData):
        check_raw(obj, task="regression")
        return obj
    if isinstance(obj, tuple | list):
        if len(obj) != 2:
            raise DataError(f"{source}: expected (X, y), a dict of splits or a Dataset; got a sequence of {len(obj)}")
        return raw_from_arrays({"train": (obj[0], obj[1])}, source)
    if isinstance(obj, Mapping):
        if {"data", "target"} <= set(obj):  # scikit-learn Bunch
            return raw_from_arrays({"train": (obj["data"], obj["target"])}, source, _names(obj.get("target_names")))
        pairs = {str(k): (_dataset_arrays(v, f"{source}[{k!r}]") if is_dataset(v) else v) for k, v in obj.items()}
        return raw_from_arrays(pairs, source)
    if is_dataset(obj):
        x, y = _dataset_arrays(obj, source)
        return raw_from_arrays({"train": (x, y)}, source, _names(getattr(obj, "classes", None)))
    raise DataError(
        f"{source}: cannot use a {type(obj).__name__}; pass (X, y) arrays, a dict of splits "
        '({"train": (X, y), "test": (X, y)}) or a map-style torch Dataset'
    )


def _names(classes: Any) -> list[str] | None:
    return None if classes is None else [str(c) for c in classes]


def splits_from_python(obj: Any, cfg: DataConfig, task: str | None = None) -> DataSplits:
    """The splits of the user's own data, split by ``cfg`` like every dataset (``fit(cfg, data=...)``)."""
    from reglab.data.base import make_splits

    raw = raw_from_python(obj)
    return make_splits(raw, cfg, "arrays", task=task)


# -- .npz files ------------------------------------------------------------------------------------


def load_npz(cfg: DataConfig) -> RawData:
    """``npz:PATH``: keys ``x_train``/``y_train`` (+ ``x_test``/``y_test``, ``x_val``/``y_val``) or
    ``X``/``y``; optional ``classes``. Read without unpickling (``allow_pickle=False``)."""
    import zipfile

    path = Path(cfg.name.partition(":")[2]).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: .npz file not found (data.name is {cfg.name!r}); check the path")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(
            f"{path}: cannot read as .npz ({str(e)[:200]}); write it with numpy.savez (no object arrays)"
        ) from None
    pairs: dict[str, tuple[Any, Any]] = {}
    for split, (xk, yk) in NPZ_KEYS.items():
        if xk in arrays or yk in arrays:
            if xk not in arrays or yk not in arrays:
                raise DataError(f"{path}: has {xk if xk in arrays else yk} but not {yk if xk in arrays else xk}")
            pairs[split] = (arrays[xk], arrays[yk])
    if not pairs:
        for xk, yk in NPZ_PAIRS:
            if xk in arrays and yk in arrays:
                pairs["train"] = (arrays[xk], arrays[yk])
                break
    if not pairs:
        raise DataError(
            f"{path}: no x_train/y_train (or X/y) arrays; its keys are {', '.join(sorted(arrays)) or 'none'}"
        )
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    raw = raw_from_arrays(pairs, f"npz ({path})", classes)
    if "image" in arrays:
        raw.image = bool(arrays["image"])
    return raw


def save_npz(raw: RawData, folder: Path) -> Path:
    """Write ``raw`` to ``folder/<sha256[:16]>.npz`` (content-addressed: the same data gives the
    same file, and an existing file is reused). Written to a temporary name, then renamed."""
    arrays: dict[str, np.ndarray] = {"x_train": raw.x_train, "y_train": raw.y_train}
    for split in ("test", "val"):
        x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        if x is not None and y is not None:
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    if raw.classes:
        arrays["classes"] = np.asarray(raw.classes, dtype=str)
    arrays["image"] = np.asarray(raw.image)
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{h.hexdigest()[:16]}.npz"
    if not path.exists():
        tmp = folder / f".{path.stem}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle as **kwds
        tmp.replace(path)
    return path


def materialize(obj: Any, cfg: DataConfig, folder: Path, task: str | None = None) -> DataConfig:
    """``cfg`` pointing at the user's data written once as a content-addressed ``.npz`` in
    ``folder`` (for ``run_protocol(spec, data=...)``). The data is checked first (the labels as
    ``task`` needs them): bad input is refused before anything is written."""
    raw = raw_from_python(obj)
    check_raw(raw, task)  # a study must not start on data that every run would refuse
    check_splits(raw, cfg, "arrays", task)  # nor on splits too small for it
    path = save_npz(raw, folder)
    return cfg.model_validate({**cfg.model_dump(), "name": f"npz:{path}"})
