"""Data from the user's own code: ``data: {class_path: my_pkg.data:load, init_args: {...}}``
(stored as ``name: py:my_pkg.data:load`` with ``loader_args``). The function or class is called
with ``init_args`` and may return anything the Python API accepts: ``(X, y)``, a dict of splits,
a map-style torch ``Dataset``, or a scikit-learn ``Bunch``. The current directory is importable,
as with ``python -m``."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from reglab.errors import DataError

if TYPE_CHECKING:
    from reglab.data.base import RawData
    from reglab.data.config import DataConfig


def import_object(path: str, what: str) -> Any:
    """``module:attr`` or ``module.attr`` -> the object; one clear error otherwise."""
    mod, sep, attr = path.partition(":")
    if not sep:
        mod, _, attr = path.rpartition(".")
    if not mod or not attr:
        raise DataError(f"{what}: {path!r} is not 'module:attr' (e.g. my_pkg.data:load)")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # the current directory, as with python -m
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise DataError(
            f"{what}: cannot import module {mod!r} ({e}); run from the folder that contains it or install it"
        ) from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise DataError(f"{what}: module {mod!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_python(cfg: DataConfig) -> RawData:
    from reglab.data.arrays import raw_from_python

    path = cfg.name.partition(":")[2]
    factory = import_object(path, "data.class_path")
    if not callable(factory):
        raise DataError(f"data.class_path: {path!r} is not a function or class")
    try:
        obj = factory(**cfg.loader_args)
    except TypeError as e:
        raise DataError(f"data.class_path {path!r} rejects init_args {sorted(cfg.loader_args)}: {e}") from None
    return raw_from_python(obj, f"data.class_path {path!r}")
