"""Data that cannot support a study is refused by ``reglab validate`` exactly as ``reglab run``
refuses it (one line, exit 2), before anything is written: too few rows for a validation and a
test split, a class the train split never shows, NaN features, one class, no target column."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from studylib import cli

from reglab.errors import DataError
from reglab.study.definition.spec import parse_study


def _csv(
    path: Path, rows: int, *, label: Callable[[int], str] = lambda i: str(i % 2), header: str = "a,b,label"
) -> Path:
    rng = np.random.default_rng(0)
    lines = [header] + [f"{rng.random():.4f},{rng.random():.4f},{label(i)}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _nan_feature(path: Path) -> Path:
    path.write_text("a,b,label\n" + "".join(f"{'nan' if i == 3 else i},{i},{i % 2}\n" for i in range(40)))
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "two-rows": (lambda p: _csv(p, 2), "the data splits into 2 train, 0 validation and 0 test examples"),
    "six-rows-five-classes": (
        lambda p: _csv(p, 6, label=lambda i: str(i % 5)),
        "the data splits into 5 train, 0 validation and 1 test examples",
    ),
    "nan-feature": (_nan_feature, "missing values in feature columns 'a'"),
    "missing-label": (lambda p: _csv(p, 40, label=lambda i: "" if i == 3 else str(i % 2)), "label"),
    "one-class": (lambda p: _csv(p, 40, label=lambda i: "0"), "single class"),
    "no-target": (lambda p: _csv(p, 40, header="a,b,c"), "no 'label' column"),
    # a regression target that float32 standardization overflows: refused, not an infinite RMSE
    "target-1e300": (
        lambda p: _csv(p, 40, label=lambda i: "1e300" if i == 7 else f"{i * 0.37:.2f}"),
        "'label': target values up to 1e+300 in magnitude (first at row 7) are too large to standardize",
    ),
    "target-1e30": (
        lambda p: _csv(p, 40, label=lambda i: "-1e30" if i == 3 else f"{i * 0.37:.2f}"),
        "'label': target values up to 1e+30 in magnitude (first at row 3) are too large to standardize",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_reports_what_run_would_and_nothing_is_written(
    write_yaml: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, reason = CASES[case]
    data = make(tmp_path / "data.csv")
    out = tmp_path / "out"
    text = (
        f'name: d\ndata: {{name: "csv:{data}", target: label}}\nmodel: {{hidden: [8]}}\n'
        f"train: {{epochs: 1, batch_size: 8}}\narms: {{none: {{}}}}\nseeds: 2\noutput: {out}\n"
    )
    p = write_yaml(text)
    errors = []
    for argv in (["validate", str(p)], ["run", str(p), "--no-progress"]):
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and reason in err, err
        errors.append(err)
    assert errors[0] == errors[1]  # validate says what run says
    assert not out.exists()


def test_a_class_missing_from_the_train_split_is_refused(tmp_path: Path) -> None:
    """Through the Python API too: ``n_train`` so small that half the classes are never trained on."""
    from reglab.study.protocol.protocol import run_protocol

    x = np.random.default_rng(0).normal(size=(200, 3))
    y = np.arange(200) % 20
    doc = {
        "name": "api",
        "data": {"n_train": 10},
        "model": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 8},
        "arms": {"none": {}},
        "seeds": 2,
        "output": str(tmp_path / "out"),
    }
    with pytest.raises(DataError, match=r"the train split has no example of class .* \(10 of 20 classes\)"):
        run_protocol(parse_study(doc), data=(x, y), progress=False)
    assert not (tmp_path / "out" / "study.db").exists()


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("csv", {"task": "regression"}),
        ("parquet", {"task": "regression", "metric": "val_mae"}),
        ("csv", {"task": "auto"}),
        ("parquet", {"task": "auto"}),
    ],
    ids=["csv-regression", "parquet-regression-mae", "csv-auto", "parquet-auto"],
)
def test_a_fractional_target_is_a_regression_study_for_validate_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, data: dict[str, str]
) -> None:
    """A continuous target (as most regression targets are) in the user's own CSV or Parquet file:
    ``data.task: regression`` (with or without a metric) and ``auto`` validate and run."""
    import pandas as pd
    import yaml

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(price=1.5 * x[:, 0] + 0.1 * rng.normal(size=80))
    file = tmp_path / f"prices.{fmt}"
    df.to_csv(file, index=False) if fmt == "csv" else df.to_parquet(file)
    doc: dict[str, object] = {
        "name": "reg",
        "data": {"path": file.name, "target": "price", "task": data["task"]},
        "model": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
        "arms": {"none": {}},
        "seeds": 1,
        "output": "out",
    }
    if "metric" in data:
        doc["metric"] = {"select": data["metric"], "compare": "test_" + data["metric"].removeprefix("val_")}
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert cli(["validate", str(study)]) == 0, capsys.readouterr().err
    assert cli(["run", str(study), "--no-progress", "--jobs", "1"]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    metric = data.get("metric", "val_rmse")
    assert (summary["select_metric"], summary["n_runs"]) == (metric, 1)


def test_a_truncated_image_is_refused_by_validate_and_run_before_anything_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated PNG in an image folder passed ``validate`` (only its header was read); ``run``
    then failed mid-study, leaving ``study.db``. Both now decode every image first."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(24):
        (tmp_path / "imgs" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8), "L").save(
            tmp_path / "imgs" / f"c{i % 2}" / f"{i}.png"
        )
    bad = tmp_path / "imgs" / "c1" / "7.png"
    bad.write_bytes(bad.read_bytes()[:-30])
    study = tmp_path / "s.yaml"
    out = tmp_path / "out"
    study.write_text(
        f"name: im\ndata: {{path: imgs}}\nmodel: {{hidden: [8]}}\ntrain: {{epochs: 1, device: cpu}}\n"
        f"arms: {{none: {{}}}}\nseeds: 1\noutput: {out}\n",
        encoding="utf-8",
    )
    for argv in (["validate", str(study)], ["run", str(study), "--no-progress"]):
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{bad}: cannot read as an image (" in err, err
    assert not out.exists()
