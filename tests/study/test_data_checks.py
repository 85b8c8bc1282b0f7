"""Data that cannot support a study is refused by ``reglab validate`` exactly as ``reglab run``
refuses it (one line, exit 2), before anything is written: too few rows for a validation and a
test split, a class the train split never shows, NaN features, one class, no target column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from studylib import cli

from reglab.errors import DataError
from reglab.study.spec import parse_study


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
    from reglab.study.protocol import run_protocol

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
