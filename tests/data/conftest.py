"""Shared helpers for the data tests: an isolated environment, small IDX/CIFAR files, and a real
HTTP server on 127.0.0.1 serving generated files (so downloads are tested without the internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reglab.data.download import DatasetFiles, FileSpec
from reglab.data.idx import write_idx

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache and no user settings, so nothing leaks in or out."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("REGLAB_DATA", raising=False)
    monkeypatch.delenv("REGLAB_MIRROR", raising=False)
    return cache / "reglab"


@dataclass
class FakeIdxDataset:
    """A tiny MNIST-like dataset: gz bytes per file name, their md5s, and the arrays."""

    blobs: dict[str, bytes]
    raw: dict[str, bytes]
    arrays: dict[str, np.ndarray]

    def spec(self, name: str = "mnist", mirrors: tuple[str, ...] = ()) -> DatasetFiles:
        files = tuple(FileSpec(n, md5(self.blobs[n]), md5(self.raw[n])) for n in IDX_NAMES)
        return DatasetFiles(name, files, mirrors)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for n, b in self.blobs.items():
            (folder / n).write_bytes(b)
        return folder


@pytest.fixture
def fake_idx(tmp_path: Path) -> FakeIdxDataset:
    rng = np.random.default_rng(0)
    arrays = {
        IDX_NAMES[0]: rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        IDX_NAMES[1]: np.arange(30, dtype=np.uint8) % 10,
        IDX_NAMES[2]: rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        IDX_NAMES[3]: np.arange(10, dtype=np.uint8) % 10,
    }
    blobs, raw = {}, {}
    scratch = tmp_path / "fake-idx-src"
    scratch.mkdir()
    for n, a in arrays.items():
        p = write_idx(scratch / n, a)
        blobs[n] = p.read_bytes()
        raw[n] = write_idx(scratch / n.removesuffix(".gz"), a).read_bytes()
    return FakeIdxDataset(blobs, raw, arrays)


@dataclass
class LocalServer:
    """Files served over real HTTP; ``requests`` records every path asked for."""

    files: dict[str, bytes]
    url: str = ""
    requests: list[str] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, bytes]], LocalServer]]:
    """``serve({"/path": bytes})`` starts a server on 127.0.0.1 (port 0) and returns it."""
    started: list[LocalServer] = []

    def start(files: dict[str, bytes]) -> LocalServer:
        state = LocalServer(dict(files))

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests.append(self.path)
                body = state.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        state._server = server
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        started.append(state)
        return state

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def dead_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused: 'offline')."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/"


# --- Python 2 style pickles, byte for byte like the ones in the official CIFAR-10 archive ---


def _int(v: int) -> bytes:
    return b"J" + int(v).to_bytes(4, "little", signed=True)


def _str(b: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING / BINSTRING
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + len(b).to_bytes(4, "little") + b


def _py2(obj: Any) -> bytes:
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return _int(obj)
    if isinstance(obj, str):
        return _str(obj.encode())
    if isinstance(obj, bytes):
        return _str(obj)
    if obj is None:
        return b"N"
    if isinstance(obj, tuple):
        return b"(" + b"".join(_py2(o) for o in obj) + b"t"
    if isinstance(obj, list):
        return b"](" + b"".join(_py2(o) for o in obj) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, np.ndarray):
        assert obj.dtype == np.uint8
        dtype = b"cnumpy\ndtype\n" + _py2(("u1", 0, 1)) + b"R" + _py2((3, "|", None, None, None, -1, -1, 0)) + b"b"
        state = b"(" + _int(1) + _py2(tuple(obj.shape)) + dtype + b"\x89" + _str(obj.tobytes()) + b"t"
        new = b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n" + _py2((0,)) + _str(b"b") + b"tR"
        return new + state + b"b"
    raise TypeError(type(obj))


def py2_pickle(obj: Any) -> bytes:
    """Pickle ``obj`` the way Python 2's cPickle (protocol 2) did, with numpy 1.x array globals."""
    return b"\x80\x02" + _py2(obj) + b"."


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_batch(n: int, seed: int) -> dict[bytes, Any]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch %d of 5" % seed,
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def write_cifar_archive(
    path: Path, n: int = 4, replace: dict[str, bytes] | None = None, drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Write a tiny archive with the real layout; returns the batch dicts written (by member name)."""
    members: dict[str, bytes] = {}
    content: dict[str, Any] = {}
    for i in range(1, 6):
        content[f"data_batch_{i}"] = cifar_batch(n, i)
    content["test_batch"] = cifar_batch(n, 99)
    content["batches.meta"] = {
        b"num_cases_per_batch": n,
        b"label_names": [c.encode() for c in CIFAR_CLASSES],
        b"num_vis": 3072,
    }
    for name, obj in content.items():
        members[name] = py2_pickle(obj)
    members["readme.html"] = b"<html></html>"
    members.update(replace or {})
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            if name in drop:
                continue
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return content


@pytest.fixture
def cifar_archive() -> Callable[..., dict[str, Any]]:
    """``cifar_archive(path, n=4, replace=..., drop=...)``: see :func:`write_cifar_archive`."""
    return write_cifar_archive
