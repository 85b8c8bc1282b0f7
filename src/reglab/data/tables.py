"""Tables from the user's files: CSV (``csv:PATH``) and Parquet (``parquet:PATH``).

A named target column (``data.target``, default ``target``); numeric and boolean feature columns
as they are; text (categorical) columns kept as strings and encoded by
:func:`reglab.data.base.make_splits` with categories fitted on the train split only (one-hot or
ordinal, ``data.categorical``). Missing values are rejected naming the columns; text targets
become classes 0..K-1, integer targets are made contiguous, fractional targets stay floats
(regression). Everything that would fail later with an obscure numpy/torch error is reported
here, naming the file and the columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reglab.data.base import RawData
from reglab.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from reglab.data.config import DataConfig


def _names(cols: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(c) for c in cols[:limit])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > limit else "")


def _path(cfg: DataConfig, kind: str) -> Path:
    path = Path(cfg.name.partition(":")[2]).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: {kind} file not found (data.name is {cfg.name!r}); check the path")
    return path


def load_csv_table(cfg: DataConfig) -> RawData:
    """``csv:PATH``: a CSV file with a header row."""
    import pandas as pd

    path = _path(cfg, "CSV")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise DataError(
            f"{path}: cannot read as CSV ({str(e).strip().splitlines()[0]}); check that it is a comma-separated "
            "text file with a header row"
        ) from None
    return table_data(df, cfg, path, "csv")


def load_parquet(cfg: DataConfig) -> RawData:
    """``parquet:PATH``: a Parquet file (read with pyarrow)."""
    import pandas as pd

    path = _path(cfg, "Parquet")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a corrupt file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"{path}: cannot read as Parquet ({first[:200]}); re-export the file") from None
    return table_data(df, cfg, path, "parquet")


STRAY_TEXT = 0.9  # a text column whose values are at least this share numbers: a typo, not categories


def _refuse_stray_text(df: pd.DataFrame, text: list[str], path: Path, kind: str) -> None:
    """A column of numbers with a few non-numbers (a typo, "n/a", "abc") would silently become
    categories, one input per distinct number; refuse it, naming the values and where they are."""
    import pandas as pd

    for c in text:
        as_number = pd.to_numeric(df[c], errors="coerce")
        bad = as_number.isna() & df[c].notna()
        if len(df) and int(bad.sum()) > 0 and float((~bad).mean()) >= STRAY_TEXT:
            rows = np.flatnonzero(bad.to_numpy())[:3]
            where = [int(i) + 2 for i in rows] if kind == "csv" else [int(i) for i in rows]
            shown = ", ".join(repr(str(df[c].iloc[i])) for i in rows)
            raise DataError(
                f"{path}: column {c!r} holds numbers except {int(bad.sum())} value(s) ({shown} at "
                f"{'file lines' if kind == 'csv' else 'rows'} {where}); fix or drop them (a column of text "
                "categories is fine: it is one-hot encoded)"
            )


def table_data(df: pd.DataFrame, cfg: DataConfig, path: Path, kind: str) -> RawData:
    """Features and target of ``df``, checked (see the module docstring)."""
    import pandas as pd

    target_col = cfg.target
    columns = [str(c) for c in df.columns]
    df.columns = pd.Index(columns)
    if target_col not in columns:
        raise DataError(
            f"{path}: no {target_col!r} column; the columns are {_names(columns)} "
            "(set data.target to the target column)"
        )
    features = [c for c in columns if c != target_col]
    if not features:
        raise DataError(f"{path}: no feature columns besides {target_col!r}")
    if len(df) < 2:
        raise DataError(f"{path}: needs at least 2 rows, has {len(df)}")
    with_na = [c for c in features if df[c].isna().any()]
    if with_na:
        raise DataError(f"{path}: empty or missing values in feature columns {_names(with_na)}; fill or drop them")

    numeric = [c for c in features if pd.api.types.is_numeric_dtype(df[c])]  # bool counts as numeric
    text = [c for c in features if c not in numeric]
    _refuse_stray_text(df, text, path, kind)
    target = df[target_col]
    if target.isna().any():
        rows = [int(i) + 2 for i in np.flatnonzero(target.isna().to_numpy())[:5]]  # 1-based, after header
        where = f"file lines {rows}" if kind == "csv" else f"rows {[r - 2 for r in rows]}"
        raise DataError(f"{path}: missing {target_col!r} values ({where})")
    raw_dtype = str(target.dtype)
    from reglab.data.targets import encode_target, resolve_task

    values = target.to_numpy() if pd.api.types.is_numeric_dtype(target) else target.astype(str).to_numpy()
    task = resolve_task(cfg.task, None, values, f"{path}: {target_col!r}")
    y, classes = encode_target(values, task, f"{path}: {target_col!r}")

    x = df[numeric].to_numpy(dtype=np.float32) if numeric else np.zeros((len(df), 0), np.float32)
    if not np.isfinite(x).all():
        bad = [c for c in numeric if not np.isfinite(df[c].to_numpy(dtype=np.float64)).all()]
        raise DataError(f"{path}: infinite or too large values in feature columns {_names(bad)}")
    cat = df[text].astype(str).to_numpy() if text else None
    return RawData(
        x_train=x,
        y_train=y,
        image=False,
        classes=classes,
        source=f"{kind} ({path})",
        cat_train=cat,
        cat_names=text,
        target_name=target_col,
        target_dtype=raw_dtype,
        task=task,
    )
