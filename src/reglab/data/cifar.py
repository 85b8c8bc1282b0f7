"""CIFAR-10 from the official *Python version* archive, read straight from the .tar.gz.

The batches in the archive are Python 2 pickles. Unpickling runs code named by the file, so an
unrestricted ``pickle.load`` of a downloaded or user-supplied file is arbitrary code execution.
We use an unpickler that resolves only the few numpy globals a pickled uint8 array needs and
rejects everything else, then check the structure (types, shapes) of what came out.
"""

from __future__ import annotations

import importlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.data.base import RawData
from reglab.errors import DataError

if TYPE_CHECKING:
    from reglab.data.config import DataConfig

ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
_FIX = "delete it and re-run to download again, or replace it with the original file"


def _reconstruct() -> Any:
    try:  # numpy >= 2 moved the implementation; numpy.core is a deprecated alias there
        return importlib.import_module("numpy._core.multiarray")._reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")._reconstruct


# (module, name) -> object: exactly what a pickled dict of numpy arrays/lists/bytes refers to.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): None,  # resolved lazily, see find_class
    ("numpy._core.multiarray", "_reconstruct"): None,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves numpy's array-reconstruction globals."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        obj = _ALLOWED[key]
        return _reconstruct() if obj is None else obj


def safe_loads(data: bytes, name: str | Path) -> Any:
    """Unpickle ``data`` (a Python 2 or 3 pickle) with :class:`RestrictedUnpickler`.

    ``encoding="bytes"`` keeps Python 2 strings as bytes, as in the CIFAR documentation.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{name}: unsafe or invalid pickle ({e}); {_FIX}") from None
    except Exception as e:  # truncated or garbled pickles raise many kinds of errors
        raise DataError(f"{name}: not a valid pickle ({type(e).__name__}: {e}); {_FIX}") from None


def _get(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise DataError(f"{where}: expected a dict, got {type(d).__name__}; {_FIX}")
    for k in (key.encode(), key):  # bytes keys from Python 2 pickles, str from Python 3 ones
        if k in d:
            return d[k]
    raise DataError(f"{where}: no {key!r} entry; {_FIX}")


def _batch(d: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    data = _get(d, "data", where)
    labels = _get(d, "labels", where)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
        raise DataError(f"{where}: 'data' is not a 2-d uint8 array; {_FIX}")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: 'data' has {data.shape[1]} columns, expected 3072; {_FIX}")
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(data):
        raise DataError(f"{where}: 'labels' does not list one label per image; {_FIX}")
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{where}: labels are not integers 0..9; {_FIX}")
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)


def read_cifar10(path: str | Path) -> RawData:
    """Read the official CIFAR-10 Python archive: 50,000 train and 10,000 test (N, 3, 32, 32) uint8."""
    p = Path(path)
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(p, "r:gz") as tf:
            for member in tf:
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted and member.isfile() and base not in blobs:
                    fh = tf.extractfile(member)
                    if fh is not None:
                        blobs[base] = fh.read()
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{p}: not a valid CIFAR-10 tar.gz archive ({e}); {_FIX}") from None
    absent = sorted(wanted - blobs.keys())
    if absent:
        raise DataError(f"{p}: archive lacks {', '.join(absent)}; {_FIX}")

    train = [_batch(safe_loads(blobs[b], f"{p}:{b}"), f"{p}:{b}") for b in TRAIN_BATCHES]
    x_test, y_test = _batch(safe_loads(blobs[TEST_BATCH], f"{p}:{TEST_BATCH}"), f"{p}:{TEST_BATCH}")
    names = _get(safe_loads(blobs[META], f"{p}:{META}"), "label_names", f"{p}:{META}")
    if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
        raise DataError(f"{p}:{META}: 'label_names' is not a list of names; {_FIX}")
    classes = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
    return RawData(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
        image=True,
        classes=classes,
        source=f"cifar10 ({p})",
    )


def load_cifar10(cfg: DataConfig) -> RawData:
    """CIFAR-10 (Krizhevsky 2009): 60,000 32x32 colour images, 10 classes, official test split."""
    from reglab.data.download import SPECS, ensure_files

    paths = ensure_files(SPECS["cifar10"], cfg.data_dir, download=cfg.download)
    return read_cifar10(paths[ARCHIVE])
