"""``reglab datasets``: every registered dataset, and where its files are."""

from __future__ import annotations

from pathlib import Path

from reglab.data import DATASETS
from reglab.data.catalog import NOT_FOUND, describe


def test_lists_every_dataset_in_a_clean_environment() -> None:
    rows = {r["name"]: r for r in describe(None)}
    assert list(rows) == DATASETS.names()
    assert {"mnist", "fashion-mnist", "kmnist", "cifar10"} <= set(rows)
    for r in rows.values():
        assert set(r) == {"name", "description", "size", "location"}
    assert rows["digits"]["location"] == "bundled"
    assert rows["synthetic"]["location"] == "generated"
    assert rows["mnist"]["location"] == NOT_FOUND


def test_found_and_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "kmnist"
    folder.mkdir()
    for name in DATASETS.get("kmnist").files:
        (folder / name).write_bytes(b"x")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"x")
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"x")
    rows = {r["name"]: r for r in describe(str(tmp_path))}
    assert rows["kmnist"]["location"] == str(folder)
    assert rows["cifar10"]["location"] == str(tmp_path)
    assert rows["mnist"]["location"].startswith(f"{tmp_path / 'mnist'} (incomplete: train-images")
    assert rows["fashion-mnist"]["location"] == NOT_FOUND
