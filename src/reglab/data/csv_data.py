"""Tabular data from a user's CSV file (``data.name: csv:PATH``).

The file needs a ``target`` column (class labels, numbers or strings) and numeric feature
columns. Everything that would otherwise fail later with an obscure numpy/torch error (a missing
column, text in a feature, empty cells) is reported here, naming the file and the columns.
Splitting and standardization happen in :func:`reglab.data.base.make_splits`, as for every dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reglab.data.base import RawData
from reglab.errors import DataError

if TYPE_CHECKING:
    from reglab.data.config import DataConfig

TARGET = "target"


def _names(cols: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(c) for c in cols[:limit])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > limit else "")


def load_csv(cfg: DataConfig) -> RawData:
    """Read ``csv:PATH``: numeric features plus a ``target`` column: class labels encoded to
    0..K-1, or numbers for a regression task (``data.task``, or inferred: see ``data.targets``)."""
    import pandas as pd

    path = Path(cfg.name.removeprefix("csv:")).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found (data.name is {cfg.name!r})")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: cannot read as CSV ({str(e).strip().splitlines()[0]})") from None

    columns = [str(c) for c in df.columns]
    df.columns = pd.Index(columns)
    if TARGET not in columns:
        raise DataError(f"{path}: no {TARGET!r} column; the columns are {_names(columns)}")
    features = [c for c in columns if c != TARGET]
    if not features:
        raise DataError(f"{path}: no feature columns besides {TARGET!r}")
    if len(df) < 2:
        raise DataError(f"{path}: needs at least 2 rows, has {len(df)}")

    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]  # bool counts as numeric
    if non_numeric:
        raise DataError(
            f"{path}: feature columns must be numeric; not numeric: {_names(non_numeric)} "
            "(encode them as numbers or drop them)"
        )
    with_na = [c for c in features if df[c].isna().any()]
    if with_na:
        raise DataError(f"{path}: empty or missing values in feature columns {_names(with_na)}")

    target = df[TARGET]
    if target.isna().any():
        rows = [int(i) + 2 for i in np.flatnonzero(target.isna().to_numpy())[:5]]  # 1-based, after header
        raise DataError(f"{path}: missing {TARGET!r} values (file lines {rows})")
    from reglab.data.targets import encode_target, resolve_task

    values = target.to_numpy() if pd.api.types.is_numeric_dtype(target) else target.astype(str).to_numpy()
    task = resolve_task(cfg.task, None, values, f"{path}: {TARGET!r}")
    y, classes = encode_target(values, task, f"{path}: {TARGET!r}")

    x = df[features].to_numpy(dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: infinite or too large values in the features")
    return RawData(
        x_train=x,
        y_train=y,
        image=False,
        classes=classes,
        source=f"csv ({path})",
        task=task,
    )
