"""IDX reader: round trips, and corrupt files rejected with the file named."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from reglab.data.idx import IDX_IMAGES, IDX_LABELS, read_idx, write_idx
from reglab.errors import DataError


@pytest.mark.parametrize("name", ["images-idx3-ubyte.gz", "images-idx3-ubyte"])
def test_round_trip_images(tmp_path: Path, name: str) -> None:
    a = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    p = write_idx(tmp_path / name, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    out = read_idx(p, IDX_IMAGES)
    assert out.dtype == np.uint8 and out.shape == (7, 28, 28)
    np.testing.assert_array_equal(out, a)
    assert out.flags.writeable


def test_round_trip_labels_and_gzip_detected_by_content(tmp_path: Path) -> None:
    y = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    p = write_idx(tmp_path / "labels.gz", y, compress=False)  # a plain file named .gz still reads
    np.testing.assert_array_equal(read_idx(p, IDX_LABELS), y)
    p = write_idx(tmp_path / "labels", y, compress=True)
    np.testing.assert_array_equal(read_idx(p, IDX_LABELS), y)


def _error(path: Path, magic: int | None = None) -> str:
    with pytest.raises(DataError) as ei:
        read_idx(path, magic)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_bad_magic(tmp_path: Path) -> None:
    p = tmp_path / "bad.gz"
    p.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + b"\x00" * 20))
    msg = _error(p)
    assert "magic" in msg and "delete it and re-run" in msg


def test_wrong_kind_of_file(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "labels.gz", np.zeros(4, np.uint8))
    assert "0x00000803" in _error(p, IDX_IMAGES)


def test_truncated_payload(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "x", np.zeros((3, 4, 4), np.uint8)).read_bytes()
    p = tmp_path / "cut-idx3-ubyte"
    p.write_bytes(good[:-5])
    assert "truncated" in _error(p, IDX_IMAGES)
    p.write_bytes(good + b"extra")
    assert "trailing" in _error(p, IDX_IMAGES)
    p.write_bytes(good[:9])  # inside the header
    assert "truncated" in _error(p, IDX_IMAGES)


def test_truncated_gzip(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "x.gz", np.arange(1000, dtype=np.uint16).astype(np.uint8)).read_bytes()
    p = tmp_path / "cut.gz"
    p.write_bytes(good[: len(good) // 2])
    assert "gzip" in _error(p)


def test_bad_gzip(tmp_path: Path) -> None:
    p = tmp_path / "garbage.gz"
    p.write_bytes(b"\x1f\x8b" + b"this is not deflate data" * 3)
    assert "gzip" in _error(p)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nope.gz")
