"""CSV loader: a target column plus numeric features; clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reglab.config import DataConfig
from reglab.data import load_data
from reglab.data.csv_data import load_csv
from reglab.errors import DataError


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _cfg(p: Path) -> DataConfig:
    return DataConfig(name=f"csv:{p}")


def test_good_file(tmp_path: Path) -> None:
    p = _csv(tmp_path, "a,b,target,flag\n1,2.5,0,true\n3,4,1,false\n5,6,1,true\n")
    raw = load_csv(_cfg(p))
    assert raw.x_train.dtype == np.float32 and raw.x_train.shape == (3, 3)
    np.testing.assert_array_equal(raw.x_train[:, 0], [1, 3, 5])
    assert raw.y_train.tolist() == [0, 1, 1] and raw.y_train.dtype == np.int64
    assert raw.classes == ["0", "1"] and not raw.image and raw.x_test is None


def test_missing_target_lists_columns(tmp_path: Path) -> None:
    p = _csv(tmp_path, "x1,x2,label\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError) as ei:
        load_csv(_cfg(p))
    msg = str(ei.value)
    assert str(p) in msg and "'target'" in msg and "'x1', 'x2', 'label'" in msg


def test_text_column_kept_for_encoding(tmp_path: Path) -> None:
    """Text columns are categorical (issue 11): kept as strings, encoded on the train split by make_splits."""
    p = _csv(tmp_path, "x1,city,target\n1,Paris,0\n3,Rome,1\n")
    raw = load_csv(_cfg(p))
    assert raw.x_train.shape == (2, 1) and raw.cat_names == ["city"]
    assert raw.cat_train is not None and raw.cat_train[:, 0].tolist() == ["Paris", "Rome"]


def test_missing_values_named(tmp_path: Path) -> None:
    p = _csv(tmp_path, "x1,x2,target\n1,,0\n3,4,1\n")
    with pytest.raises(DataError, match="missing values in feature columns 'x2'"):
        load_csv(_cfg(p))


def test_string_labels_encoded(tmp_path: Path) -> None:
    p = _csv(tmp_path, "x,target\n1,dog\n2,cat\n3,dog\n4,bird\n")
    raw = load_csv(_cfg(p))
    assert raw.classes == ["bird", "cat", "dog"]
    assert raw.y_train.tolist() == [2, 1, 2, 0]


def test_numeric_labels_made_contiguous(tmp_path: Path) -> None:
    p = _csv(tmp_path, "x,target\n1,-1\n2,1\n3,1\n")
    raw = load_csv(_cfg(p))
    assert raw.classes == ["-1", "1"] and raw.y_train.tolist() == [0, 1, 1]
    p = _csv(tmp_path, "x,target\n1,0.5\n2,1\n", "frac.csv")
    with pytest.raises(DataError, match=r"fractional.*data\.task: regression"):  # classification asked for
        load_csv(DataConfig(name=f"csv:{p}", task="classification"))
    raw = load_csv(_cfg(p))  # auto: fractional values are a regression target (issue 11)
    assert raw.task == "regression" and raw.y_train.dtype == np.float32 and raw.y_train.tolist() == [0.5, 1.0]


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="CSV file not found") as ei:
        load_csv(_cfg(p))
    assert str(p) in str(ei.value)


def test_load_data_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(5.0, 3.0, (n, 4))
    y = np.where(x[:, 0] > 5.0, "yes", "no")
    lines = ["f0,f1,f2,f3,target"] + [",".join(f"{v:.6f}" for v in row) + f",{t}" for row, t in zip(x, y, strict=True)]
    p = _csv(tmp_path, "\n".join(lines) + "\n")
    splits = load_data(DataConfig(name=f"csv:{p}", val_fraction=0.2, test_fraction=0.2))
    sizes = splits.sizes()
    assert sum(sizes.values()) == n and sizes["test"] == pytest.approx(60, abs=2)
    assert splits.x_train.dtype.is_floating_point and splits.input_shape == (4,)
    assert splits.x_train.mean(0).abs().max().item() < 1e-5
    assert (splits.x_train.std(0, unbiased=False) - 1).abs().max().item() < 1e-4
    assert splits.classes == ["no", "yes"] and splits.n_classes == 2


def test_a_stray_string_in_a_numeric_column_is_refused(tmp_path: Path) -> None:
    """One typo must not turn a numeric feature into 40 categories silently (issue 12, failure 8)."""
    rows = [f"{i / 10},{i % 3},{i % 2}" for i in range(40)]
    rows[17] = "abc,1,0"
    p = _csv(tmp_path, "a,b,target\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'a' holds numbers except 1 value\(s\) \('abc' at file lines \[19\]\)"):
        load_csv(_cfg(p))
    codes = _csv(tmp_path, "zip,target\n" + "\n".join(f"0{1000 + i},{i % 2}" for i in range(20)) + "\n", "z.csv")
    assert load_csv(_cfg(codes)).x_train.shape == (20, 1)  # numbers with leading zeros: still numbers
