"""The practitioner's own data (issue 11): every format gives the same splits as the equivalent
arrays; text columns are encoded on the train split only; bad input is one clear DataError."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reglab.config import DataConfig
from reglab.data import check_source, load_data, load_raw
from reglab.data.arrays import materialize, raw_from_python, save_npz, splits_from_python
from reglab.data.base import DataSplits, RawData, make_splits
from reglab.errors import DataError


def _table(n: int = 240, f: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    return x, y


def _same(a: DataSplits, b: DataSplits) -> None:
    for name in ("x_train", "y_train", "x_val", "y_val"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), msg=name)
    torch.testing.assert_close(a.test.labels, b.test.labels)
    torch.testing.assert_close(a.test.read()[0], b.test.read()[0])
    assert a.n_classes == b.n_classes and a.image == b.image


CFG = DataConfig(split_seed=3, val_fraction=0.2)


def _with(name: str, **kw: Any) -> DataConfig:
    return CFG.model_validate({**CFG.model_dump(), "name": name, **kw})


# -- every format round-trips into the splits of the same arrays ------------------------------------


def test_npz_csv_parquet_and_dataset_equal_the_arrays(tmp_path: Path) -> None:
    import pandas as pd

    x, y = _table()
    ref = splits_from_python((x, y), CFG)
    np.savez(tmp_path / "d.npz", X=x, y=y)
    cols = {f"f{i}": x[:, i] for i in range(x.shape[1])}
    pd.DataFrame({**cols, "label": y}).to_csv(tmp_path / "d.csv", index=False, float_format="%.9g")
    pd.DataFrame({**cols, "label": y}).to_parquet(tmp_path / "d.parquet")
    _same(ref, load_data(_with(f"npz:{tmp_path / 'd.npz'}")))
    _same(ref, load_data(_with(f"csv:{tmp_path / 'd.csv'}", target="label")))
    _same(
        ref,
        load_data(
            DataConfig.model_validate({**CFG.model_dump(), "path": str(tmp_path / "d.parquet"), "target": "label"})
        ),
    )
    _same(ref, splits_from_python(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), CFG))
    _same(ref, splits_from_python((torch.from_numpy(x), torch.from_numpy(y)), CFG))
    assert ref.sizes() == {"train": 153, "val": 39, "test": 48} and ref.target_dtype == "int64"


def test_dict_of_splits_uses_the_given_test_and_val(tmp_path: Path) -> None:
    x, y = _table(300)
    splits = {"train": (x[:200], y[:200]), "val": (x[200:250], y[200:250]), "test": (x[250:], y[250:])}
    s = splits_from_python(splits, CFG)
    assert s.sizes() == {"train": 200, "val": 50, "test": 50}
    torch.testing.assert_close(s.test.labels, torch.from_numpy(y[250:]))
    mean, std = x[:200].mean(0), x[:200].std(0)  # statistics from train only
    torch.testing.assert_close(s.x_val, torch.from_numpy((x[200:250] - mean) / std))
    np.savez(tmp_path / "s.npz", x_train=x[:200], y_train=y[:200], x_test=x[250:], y_test=y[250:])
    t = load_data(_with(f"npz:{tmp_path / 's.npz'}"))
    torch.testing.assert_close(t.test.labels, s.test.labels)
    assert t.sizes()["train"] + t.sizes()["val"] == 200


def _write_images(root: Path, n: int, size: tuple[int, int], mode: str = "L", seed: int = 0) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(seed)
    ch = 1 if mode == "L" else 3
    x = rng.integers(0, 256, (n, ch, *size), dtype=np.uint8)
    for i in range(n):
        d = root / f"class{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        arr = x[i, 0] if ch == 1 else x[i].transpose(1, 2, 0)
        Image.fromarray(arr, mode).save(d / f"img{i:04d}.png")
    return x


def test_image_folder_equals_its_pixels(tmp_path: Path) -> None:
    x = _write_images(tmp_path / "imgs", 30, (8, 6))
    s = load_data(_with(f"images:{tmp_path / 'imgs'}"))
    # the folder lists class0 files, then class1, class2: the same order as arrays sorted that way
    order = np.argsort(np.arange(30) % 3, kind="stable")
    ref = splits_from_python((x[order], (np.arange(30) % 3)[order]), CFG)
    _same(ref, s)
    assert s.image and s.input_shape == (1, 8, 6) and s.classes == ["class0", "class1", "class2"]
    rgb = load_data(_with(f"images:{tmp_path / 'imgs'}", color="rgb", image_size=4))
    assert rgb.input_shape == (3, 4, 4)


def test_image_folder_with_train_and_test(tmp_path: Path) -> None:
    _write_images(tmp_path / "r" / "train", 24, (5, 5), "RGB")
    _write_images(tmp_path / "r" / "test", 9, (5, 5), "RGB", seed=1)
    s = load_data(DataConfig.model_validate({"path": str(tmp_path / "r")}))
    assert len(s.test) == 9 and s.input_shape == (3, 5, 5)


def test_categories_are_fitted_on_train_only() -> None:
    x = np.zeros((6, 1), np.float32)
    cat = np.array([["a"], ["b"], ["a"], ["b"], ["c"], ["c"]])
    y = np.array([0, 1, 0, 1, 0, 1])
    raw = RawData(x[:4], y[:4], x[4:], y[4:], cat_train=cat[:4], cat_test=cat[4:], cat_names=["k"])
    s = make_splits(raw, DataConfig(val_fraction=0.5), "t")
    x_test = s.test.read()[0]
    assert s.x_train.shape[1] == 3  # the number column + one-hot a, b (c is only in test)
    assert torch.all(x_test[:, 1:] == x_test[0, 1:])  # c, unseen in train, encodes like nothing seen
    o = make_splits(raw, DataConfig(val_fraction=0.5, categorical="ordinal"), "t")
    assert o.x_train.shape[1] == 2


def test_csv_text_columns_and_string_targets(tmp_path: Path) -> None:
    rows = ["size,city,price_band"] + [
        f"{i},{['Paris', 'Rome', 'Oslo'][i % 3]},{'hi' if i % 2 else 'lo'}" for i in range(40)
    ]
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n")
    s = load_data(DataConfig.model_validate({"path": str(tmp_path / "h.csv"), "target": "price_band"}))
    assert s.x_train.shape[1] == 4 and s.classes == ["hi", "lo"] and s.n_classes == 2


def test_continuous_target_for_regression(tmp_path: Path) -> None:
    x, _ = _table()
    y = x[:, 0] * 2.5 + 0.1
    raw = raw_from_python((x, y))
    assert raw.target_dtype == "float32"
    s = make_splits(raw, CFG, "reg", task="regression")
    assert s.y_train.dtype == torch.float32 and s.n_classes == 1 and sum(s.sizes().values()) == 240
    assert make_splits(raw, CFG, "reg").task == "regression"  # data.task auto: fractional targets are a quantity
    with pytest.raises(DataError, match="fractional values"):
        make_splits(raw, CFG.model_copy(update={"task": "classification"}), "reg")


def test_fractional_labels_are_refused_when_classes_are_asked_for() -> None:
    data = (np.zeros((8, 2)), np.arange(8) * 0.5)
    with pytest.raises(DataError, match="fractional values") as e:
        splits_from_python(data, DataConfig(task="classification"))
    assert "\n" not in str(e.value)


def test_python_loader_by_class_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_data_mod.py").write_text(
        "import numpy as np\n"
        "def load(n=50):\n"
        "    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)\n"
        "    return {'train': (x, np.arange(n) % 2)}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = DataConfig.model_validate({"class_path": "my_data_mod:load", "init_args": {"n": 60}})
    assert cfg.name == "py:my_data_mod:load" and cfg.loader_args == {"n": 60} and hash(cfg)
    assert sum(load_data(cfg).sizes().values()) == 60
    bad = cfg.model_validate({**cfg.model_dump(), "loader_args": {"m": 1}})
    with pytest.raises(DataError, match="rejects init_args"):
        load_raw(bad)
    sys.modules.pop("my_data_mod", None)


def test_npz_is_content_addressed(tmp_path: Path) -> None:
    x, y = _table()
    a = materialize((x, y), DataConfig(), tmp_path)
    b = materialize((x.copy(), y.copy()), DataConfig(), tmp_path)
    x[0, 0] += 1
    c = materialize((x, y), DataConfig(), tmp_path)
    assert a.name == b.name != c.name and a.name.startswith("npz:")
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not list(tmp_path.glob(".*"))
    assert save_npz(raw_from_python((x, y)), tmp_path).name == c.name.rsplit("/", 1)[1]


# -- bad input: one DataError naming the thing and the fix ------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ((np.zeros((10, 2)), np.zeros(9)), "10 rows but the targets have 9"),
        ((np.array([[np.nan, 1.0]] * 4 + [[0.0, 1.0]] * 4), np.arange(8) % 2), "NaN or infinite feature"),
        ((np.array([[np.inf, 1.0]] * 4 + [[0.0, 1.0]] * 4), np.arange(8) % 2), "NaN or infinite feature"),
        ((np.zeros((8, 2)), np.arange(8) % 2 - 1), "out of range"),
        ((np.zeros((8, 2)), np.zeros(8, dtype=int)), "single class"),
        ((np.zeros(8), np.arange(8) % 2), "must be 2-D"),
        ({"train": (np.zeros((8, 2)), np.arange(8) % 2), "tset": (np.zeros((2, 2)), [0, 1])}, "splits are train"),
        ("data.csv", "cannot use a str"),
    ],
    ids=["lengths", "nan", "inf", "negative", "one-class", "1d", "bad-split", "string"],
)
def test_bad_arrays(data: Any, match: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=match) as e:
        splits_from_python(data, DataConfig())
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=match):
        materialize(data, DataConfig(), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b,target\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match=r"no 'price' column.*set data.target"):
        load_raw(_with(f"csv:{tmp_path / 'x.csv'}", target="price"))
    (tmp_path / "na.csv").write_text("a,b,target\n1,,0\n3,4,1\n")
    with pytest.raises(DataError, match="missing values in feature columns 'b'"):
        load_raw(_with(f"csv:{tmp_path / 'na.csv'}"))
    for name, kind in (("bad.npz", "npz"), ("bad.parquet", "parquet")):
        (tmp_path / name).write_bytes(b"not really")
        with pytest.raises(DataError, match=rf"{name}: cannot read as"):
            load_raw(_with(f"{kind}:{tmp_path / name}"))
    np.savez(tmp_path / "keys.npz", a=np.zeros(3))
    with pytest.raises(DataError, match=r"no x_train/y_train .*keys are a"):
        load_raw(_with(f"npz:{tmp_path / 'keys.npz'}"))
    _write_images(tmp_path / "imgs", 6, (4, 4))
    (tmp_path / "imgs" / "class1" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"broken.png: cannot read as an image"):
        check_source(_with(f"images:{tmp_path / 'imgs'}"))
    with pytest.raises(DataError, match=r"cannot import 'no_such_pkg_xyz.data'"):
        load_raw(DataConfig.model_validate({"class_path": "no_such_pkg_xyz.data:load"}))
    with pytest.raises(DataError, match="file not found"):
        check_source(_with(f"parquet:{tmp_path / 'missing.parquet'}"))


def test_image_sizes_must_agree_or_be_set(tmp_path: Path) -> None:
    _write_images(tmp_path / "a", 6, (4, 4))
    _write_images(tmp_path / "a", 3, (5, 5), seed=2)  # overwrites three files with another size
    with pytest.raises(DataError, match=r"differ in size.*image_size"):
        load_raw(_with(f"images:{tmp_path / 'a'}"))
    assert load_data(_with(f"images:{tmp_path / 'a'}", image_size=[4, 3])).input_shape == (1, 4, 3)


def test_new_settings_leave_existing_fingerprints_alone() -> None:
    """Dumps (and so study fingerprints) of configs that do not use the own-data settings are
    what they were before those settings existed; a setting in use is dumped and round-trips."""
    from reglab.data.config import OWN_DATA_FIELDS

    assert not set(OWN_DATA_FIELDS) & set(DataConfig().model_dump())
    cfg = DataConfig(name="csv:a.csv", target="price", image_size=(4, 5), loader_args={"k": [1]})
    dumped = cfg.model_dump()
    assert {"target", "image_size", "loader_args"} <= set(dumped) and "color" not in dumped
    assert DataConfig.model_validate(dumped) == cfg
