"""Locating and downloading dataset files, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest

from reglab.config import DataConfig
from reglab.data import download, load_data
from reglab.data.download import ensure_files, search_dirs
from reglab.errors import DataError

TIMEOUT = 5.0


def _files(fake, prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}/{n}": b for n, b in fake.blobs.items()}


def _no_partials(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".part")]


def test_download_then_cached(fake_idx, serve, isolated_env: Path) -> None:
    server = serve(_files(fake_idx, "/mnist"))
    spec = fake_idx.spec(mirrors=(server.url + "/mnist/",))
    paths = ensure_files(spec, None, timeout=TIMEOUT)
    assert len(server.requests) == 4
    for name, p in paths.items():
        assert p == isolated_env / "mnist" / name
        assert p.read_bytes() == fake_idx.blobs[name]
    _no_partials(isolated_env)
    again = ensure_files(spec, None, timeout=TIMEOUT)
    assert again == paths and len(server.requests) == 4  # nothing downloaded the second time


def test_first_mirror_down_second_used(fake_idx, serve, dead_url: str) -> None:
    server = serve(_files(fake_idx))
    paths = ensure_files(fake_idx.spec(), None, mirrors=[dead_url, server.url], timeout=TIMEOUT)
    assert len(paths) == 4 and len(server.requests) == 4


def test_env_mirror_is_tried_first(fake_idx, serve, dead_url: str, monkeypatch) -> None:
    server = serve(_files(fake_idx, "/base/fashion-mnist"))
    monkeypatch.setenv("REGLAB_MIRROR", server.url + "/base/")
    spec = fake_idx.spec("fashion-mnist", mirrors=(dead_url,))
    assert download.mirror_urls(spec, spec.files[0])[0] == (
        f"{server.url}/base/fashion-mnist/train-images-idx3-ubyte.gz"
    )
    ensure_files(spec, None, timeout=TIMEOUT)
    assert server.requests[0] == "/base/fashion-mnist/train-images-idx3-ubyte.gz"


def test_checksum_mismatch(fake_idx, serve, isolated_env: Path) -> None:
    files = _files(fake_idx)
    files["/train-labels-idx1-ubyte.gz"] = gzip.compress(b"not the labels")
    server = serve(files)
    with pytest.raises(DataError) as ei:
        ensure_files(fake_idx.spec(mirrors=(server.url,)), None, timeout=TIMEOUT)
    msg = str(ei.value)
    bad_md5 = download.hashlib.md5(files["/train-labels-idx1-ubyte.gz"]).hexdigest()
    assert f"{server.url}/train-labels-idx1-ubyte.gz gave md5 {bad_md5}" in msg
    assert "failed its checksum" in msg and "\n" not in msg
    assert not (isolated_env / "mnist" / "train-labels-idx1-ubyte.gz").exists()
    _no_partials(isolated_env)


def test_offline(fake_idx, serve, isolated_env: Path, tmp_path: Path) -> None:
    server = serve(_files(fake_idx))
    url = server.url
    server.stop()
    data_dir = tmp_path / "mydata"
    with pytest.raises(DataError) as ei:
        ensure_files(fake_idx.spec(mirrors=(url,)), str(data_dir), timeout=TIMEOUT)
    msg = str(ei.value)
    for name in fake_idx.blobs:
        assert name in msg
    assert str(data_dir / "mnist") in msg and str(isolated_env / "mnist") in msg
    assert "$REGLAB_DATA" in msg and "download failed" in msg and url in msg
    _no_partials(isolated_env)
    assert not list((isolated_env / "mnist").glob("*"))


def test_download_off(fake_idx, serve) -> None:
    server = serve(_files(fake_idx))
    with pytest.raises(DataError, match="downloading is off"):
        ensure_files(fake_idx.spec(mirrors=(server.url,)), None, download=False)
    assert server.requests == []


def test_users_corrupt_file_is_not_overwritten(fake_idx, serve, tmp_path: Path) -> None:
    server = serve(_files(fake_idx))
    folder = fake_idx.write(tmp_path / "mine" / "mnist")
    bad = folder / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b corrupted")
    with pytest.raises(DataError) as ei:
        ensure_files(fake_idx.spec(mirrors=(server.url,)), str(tmp_path / "mine"), timeout=TIMEOUT)
    assert str(bad) in str(ei.value) and "delete it and re-run" in str(ei.value)
    assert bad.read_bytes() == b"\x1f\x8b corrupted"
    assert server.requests == []


def test_recompressed_and_decompressed_files_accepted(fake_idx, tmp_path: Path) -> None:
    folder = fake_idx.write(tmp_path / "d")
    recompressed = folder / "train-images-idx3-ubyte.gz"
    recompressed.write_bytes(gzip.compress(fake_idx.raw["train-images-idx3-ubyte.gz"], 1, mtime=123))
    assert recompressed.read_bytes() != fake_idx.blobs["train-images-idx3-ubyte.gz"]
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    plain = folder / "t10k-labels-idx1-ubyte"
    plain.write_bytes(fake_idx.raw["t10k-labels-idx1-ubyte.gz"])
    paths = ensure_files(fake_idx.spec(), str(tmp_path / "d"), download=False)
    assert paths["train-images-idx3-ubyte.gz"] == recompressed
    assert paths["t10k-labels-idx1-ubyte.gz"] == plain


def test_lookup_order(fake_idx, tmp_path: Path, monkeypatch, isolated_env: Path) -> None:
    env_dir = fake_idx.write(tmp_path / "env")  # files directly in the folder
    fake_idx.write(isolated_env / "mnist")
    monkeypatch.setenv("REGLAB_DATA", str(env_dir))
    spec = fake_idx.spec()
    assert search_dirs(str(tmp_path / "cfg")) == [tmp_path / "cfg", env_dir, isolated_env]
    assert ensure_files(spec, None, download=False)["t10k-labels-idx1-ubyte.gz"].parent == env_dir
    cfg_dir = fake_idx.write(tmp_path / "cfg" / "mnist")
    paths = ensure_files(spec, str(tmp_path / "cfg"), download=False)
    assert {p.parent for p in paths.values()} == {cfg_dir}


def test_load_mnist_end_to_end_via_server(fake_idx, serve, monkeypatch) -> None:
    server = serve(_files(fake_idx))
    monkeypatch.setitem(download.SPECS, "mnist", fake_idx.spec(mirrors=(server.url,)))
    from reglab.data.mnist_like import load_mnist

    raw = load_mnist(DataConfig(name="mnist"))
    assert raw.x_train.shape == (30, 1, 28, 28) and raw.x_train.dtype == np.uint8
    np.testing.assert_array_equal(raw.x_train[:, 0], fake_idx.arrays["train-images-idx3-ubyte.gz"])
    assert raw.y_test is not None and raw.y_test.dtype == np.int64
    splits = load_data(DataConfig(name="mnist", val_fraction=0.2))
    sizes = splits.sizes()
    assert sizes["train"] + sizes["val"] == 30 and sizes["test"] == 10 and sizes["val"] >= 6
    assert len(server.requests) == 4


def test_image_label_count_mismatch(fake_idx, tmp_path: Path, monkeypatch) -> None:
    from reglab.data.idx import write_idx
    from reglab.data.mnist_like import load_mnist

    folder = fake_idx.write(tmp_path / "d" / "mnist")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    spec = fake_idx.spec()
    f = dataclasses.replace(spec.files[3], md5=download.md5_file(folder / "t10k-labels-idx1-ubyte.gz"))
    monkeypatch.setitem(download.SPECS, "mnist", dataclasses.replace(spec, files=(*spec.files[:3], f)))
    with pytest.raises(DataError, match=r"has 10 images but .* has 9 labels"):
        load_mnist(DataConfig(name="mnist", data_dir=str(tmp_path / "d"), download=False))
