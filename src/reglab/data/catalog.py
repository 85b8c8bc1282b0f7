"""What ``reglab datasets`` prints: every registered dataset and where its files are.

Files are only located here, not verified (md5 of 170 MB takes a while); loading verifies them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NOT_FOUND = "not found (downloads on first use)"
# datasets that need no files: how they come about
_NO_FILES = {"digits": "bundled", "synthetic": "generated"}


def _where(paths: list[Path]) -> str:
    folders = sorted({str(p.parent) for p in paths})
    return folders[0] if len(folders) == 1 else ", ".join(folders)


USER_DATA = (  # the forms of the user's own data (data.name, or data: {path: ...} / {class_path: ...})
    ("csv:PATH", "a CSV file: a target column (data.target), numeric and text columns"),
    ("parquet:PATH", "a Parquet file, read like a CSV file"),
    ("npz:PATH", "numpy arrays: x_train, y_train (x_val, y_val, x_test, y_test) or X, y"),
    ("images:FOLDER", "FOLDER/<class>/*.png|jpg (or FOLDER/train, FOLDER/test); data.image_size, data.color"),
    ("py:module:attr", "your function or class (data.class_path, init_args) returning arrays or a Dataset"),
)


def describe(data_dir: str | None) -> list[dict[str, Any]]:
    """One dict per registered dataset: name, description, size, location."""
    from reglab.data import DATASETS
    from reglab.data.download import SPECS, locate

    rows: list[dict[str, Any]] = []
    for name, info in DATASETS.items():
        spec = SPECS.get(name)
        if spec is None:
            location = _NO_FILES.get(name, "bundled" if not info.files else NOT_FOUND)
        else:
            found = locate(spec, data_dir)
            present = [p for p in found.values() if p is not None]
            if not present:
                location = NOT_FOUND
            elif len(present) == len(found):
                location = _where(present)
            else:
                absent = [n for n, p in found.items() if p is None]
                location = f"{_where(present)} (incomplete: {', '.join(absent)} downloads on first use)"
        rows.append({"name": name, "description": info.description, "size": info.size, "location": location})
    return rows


def user_data_rows() -> list[dict[str, Any]]:
    """The forms of the user's own data, as rows like :func:`describe`'s."""
    return [{"name": n, "description": d, "size": "yours", "location": "the path given"} for n, d in USER_DATA]
