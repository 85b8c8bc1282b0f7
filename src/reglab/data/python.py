"""Data from the user's own code: ``data: {class_path: my_pkg.data:load, init_args: {...}}``
(stored as ``name: py:my_pkg.data:load`` with ``loader_args``). The function or class is called
with ``init_args`` and may return anything the Python API accepts: ``(X, y)``, a dict of splits,
a map-style torch ``Dataset``, or a scikit-learn ``Bunch``. The current directory is importable,
as with ``python -m``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reglab.errors import DataError
from reglab.imports import import_object

if TYPE_CHECKING:
    from reglab.data.base import RawData
    from reglab.data.config import DataConfig


def load_python(cfg: DataConfig) -> RawData:
    from reglab.data.arrays import raw_from_python

    path = cfg.name.partition(":")[2]
    factory = import_object(path, "data.class_path", example="my_pkg.data:load", error=DataError)
    if not callable(factory):
        raise DataError(f"data.class_path: {path!r} is not a function or class")
    try:
        obj = factory(**cfg.loader_args)
    except TypeError as e:
        raise DataError(f"data.class_path {path!r} rejects init_args {sorted(cfg.loader_args)}: {e}") from None
    return raw_from_python(obj, f"data.class_path {path!r}")
