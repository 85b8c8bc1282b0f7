"""CIFAR-10 archive reader: the real structure (Python 2 pickles in a tar.gz), read safely."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reglab.config import DataConfig
from reglab.data import download, load_data
from reglab.data.cifar import read_cifar10, safe_loads
from reglab.errors import DataError

Writer = Callable[..., dict[str, Any]]


def test_reads_tiny_archive(tmp_path: Path, cifar_archive: Writer) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    content = cifar_archive(path, n=4)
    raw = read_cifar10(path)
    assert raw.x_train.shape == (20, 3, 32, 32) and raw.x_train.dtype == np.uint8
    assert raw.x_test is not None and raw.y_test is not None
    assert raw.x_test.shape == (4, 3, 32, 32) and raw.y_test.dtype == np.int64
    assert raw.image and raw.classes is not None and raw.classes[0] == "airplane" and len(raw.classes) == 10
    first = content["data_batch_1"]
    # row layout is 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major
    np.testing.assert_array_equal(raw.x_train[0, 1].ravel(), first[b"data"][0, 1024:2048])
    np.testing.assert_array_equal(raw.y_train[:4], first[b"labels"])
    np.testing.assert_array_equal(raw.y_test, content["test_batch"][b"labels"])


def test_python3_pickles_also_read(tmp_path: Path, cifar_archive: Writer) -> None:
    rng = np.random.default_rng(5)
    batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [1, 2]}
    path = tmp_path / "a.tar.gz"
    cifar_archive(path, replace={"test_batch": pickle.dumps(batch, protocol=4)})
    raw = read_cifar10(path)
    assert raw.y_test is not None and raw.y_test.tolist() == [1, 2]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_disallowed_global_is_rejected(tmp_path: Path, cifar_archive: Writer) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=4)
    path = tmp_path / "evil.tar.gz"
    cifar_archive(path, replace={"data_batch_3": evil})
    with pytest.raises(DataError) as ei:
        read_cifar10(path)
    msg = str(ei.value)
    assert "data_batch_3" in msg and str(path) in msg and f"{os.system.__module__}.system" in msg
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [pickle.dumps(eval, protocol=2), pickle.dumps(b"x", protocol=2), b"cbuiltins\nexec\n(S'1'\ntR."],
    ids=["eval", "codecs", "exec"],
)
def test_other_globals_rejected(payload: bytes) -> None:
    with pytest.raises(DataError, match="refusing to load global"):
        safe_loads(payload, "x")


def test_wrong_structure_rejected(tmp_path: Path, cifar_archive: Writer) -> None:
    path = tmp_path / "a.tar.gz"
    cifar_archive(path, replace={"data_batch_2": pickle.dumps({b"data": [1, 2], b"labels": [0]})})
    with pytest.raises(DataError, match="data_batch_2: 'data' is not a 2-d uint8 array"):
        read_cifar10(path)


def test_missing_member_and_corrupt_archive(tmp_path: Path, cifar_archive: Writer) -> None:
    path = tmp_path / "a.tar.gz"
    cifar_archive(path, drop=("batches.meta",))
    with pytest.raises(DataError, match=r"lacks batches\.meta"):
        read_cifar10(path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"not a valid CIFAR-10 tar\.gz") as ei:
        read_cifar10(cut)
    assert str(cut) in str(ei.value)


def test_load_data_cifar10_from_data_dir(
    tmp_path: Path, cifar_archive: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    path = folder / "cifar-10-python.tar.gz"
    cifar_archive(path, n=10)
    spec = download.SPECS["cifar10"]
    f = dataclasses.replace(spec.files[0], md5=hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setitem(download.SPECS, "cifar10", dataclasses.replace(spec, files=(f,), mirrors=()))
    splits = load_data(DataConfig(name="cifar10", data_dir=str(tmp_path / "data"), val_fraction=0.2))
    assert splits.input_shape == (3, 32, 32)
    assert splits.sizes()["train"] + splits.sizes()["val"] == 50 and splits.sizes()["test"] == 10
    assert splits.classes[-1] == "truck"
