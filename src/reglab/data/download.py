"""Finding dataset files on disk, and downloading them (md5-verified) when they are missing.

Lookup order for every file, first hit wins:

1. ``data.data_dir`` (``cfg.data_dir``),
2. ``$REGLAB_DATA``,
3. the user cache, ``$XDG_CACHE_HOME/reglab`` (default ``~/.cache/reglab``),

each either in a per-dataset subfolder (``<dir>/mnist/train-images-idx3-ubyte.gz``) or directly
(``<dir>/train-images-idx3-ubyte.gz``); gzipped files may also be stored already decompressed
(``train-images-idx3-ubyte``) when the md5 of their payload is known.

A file that is found must match a known checksum: the md5 of the file as distributed, or (for
gzip files re-compressed by someone else) the md5 of the decompressed payload. A mismatch is an
error naming the file; it is never overwritten, since it may be the user's only copy.

Missing files are downloaded into the cache (a temporary file, md5 checked, then renamed, so an
interrupted or corrupt download never leaves a half file behind) from, in order:

- the base URLs in ``$REGLAB_MIRROR`` (comma-separated; ``<base>/<dataset>/<file>``, the same
  layout as the cache, so a served copy of a cache folder works as a mirror),
- the ``mirrors=`` argument of :func:`ensure_files` if given, else the dataset's official mirrors
  (``SPECS[name].mirrors``; ``dataclasses.replace`` a spec to change them).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reglab.errors import DataError

ENV_DATA = "REGLAB_DATA"
ENV_MIRROR = "REGLAB_MIRROR"
DEFAULT_TIMEOUT = 60.0
_FIX = "delete it and re-run to download again, or replace it with the original file"


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset with its known checksums."""

    name: str
    md5: str  # md5 of the file as distributed by the official mirrors
    raw_md5: str | None = None  # md5 of the decompressed payload (gzip files), where published

    @property
    def plain_name(self) -> str | None:
        """Name of the already-decompressed variant we also accept, if it can be verified."""
        if self.raw_md5 and self.name.endswith(".gz"):
            return self.name[:-3]
        return None


@dataclass(frozen=True)
class DatasetFiles:
    """Where a dataset's files come from and how they are verified."""

    name: str  # also the per-dataset subfolder name, in data folders and in the cache
    files: tuple[FileSpec, ...]
    mirrors: tuple[str, ...]  # base URLs; the file name is appended
    subdirs: tuple[str, ...] = ()  # other accepted subfolder names (e.g. torchvision's layout)


_IDX = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_files(gz_md5: Sequence[str], raw_md5: Sequence[str | None]) -> tuple[FileSpec, ...]:
    return tuple(FileSpec(f"{n}.gz", g, r) for n, g, r in zip(_IDX, gz_md5, raw_md5, strict=True))


# Official gz md5s as in torchvision; payload md5s are the published md5s of the uncompressed files.
SPECS: dict[str, DatasetFiles] = {
    "mnist": DatasetFiles(
        "mnist",
        _idx_files(
            (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
            (
                "6bbc9ace898e44ae57da46a324031adb",
                "a25bea736e30d166cdddb491f175f624",
                "2646ac647ad5339dbf082846283269ea",
                "27ae3e4e09519cfbb04c329615203637",
            ),
        ),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        ("MNIST/raw",),
    ),
    "fashion-mnist": DatasetFiles(
        "fashion-mnist",
        _idx_files(
            (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
            (
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "9018921c3c673c538a1fc5bad174d6f9",
                "8181f5470baa50b63fa0f6fddb340f0a",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
        ),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("FashionMNIST/raw",),
    ),
    "kmnist": DatasetFiles(
        "kmnist",
        _idx_files(
            (
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ),
            (None, None, None, None),
        ),
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        ("KMNIST/raw",),
    ),
    "cifar10": DatasetFiles(
        "cifar10",
        (FileSpec("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        ("https://www.cs.toronto.edu/~kriz/",),
        ("cifar-10",),
    ),
}


def cache_dir() -> Path:
    """The per-user download cache (XDG convention, so it can be moved or cleared as usual)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base).expanduser() / "reglab"


def search_dirs(data_dir: str | Path | None) -> list[Path]:
    """The folders looked in, in order: ``data_dir``, ``$REGLAB_DATA``, the cache."""
    dirs: list[Path] = []
    for d in (data_dir, os.environ.get(ENV_DATA) or None, cache_dir()):
        if d is not None:
            p = Path(d).expanduser()
            if p not in dirs:
                dirs.append(p)
    return dirs


def candidates(spec: DatasetFiles, f: FileSpec, data_dir: str | Path | None) -> list[Path]:
    """Every path where ``f`` is accepted, in lookup order."""
    names = [f.name] + ([f.plain_name] if f.plain_name else [])
    out: list[Path] = []
    for d in search_dirs(data_dir):
        for sub in (spec.name, *spec.subdirs, ""):
            out.extend(d / sub / n if sub else d / n for n in names)
    return out


def find_file(spec: DatasetFiles, f: FileSpec, data_dir: str | Path | None) -> Path | None:
    """The first existing candidate for ``f`` (not verified), or None."""
    return next((p for p in candidates(spec, f, data_dir) if p.is_file()), None)


def locate(spec: DatasetFiles, data_dir: str | Path | None) -> dict[str, Path | None]:
    """File name -> where it is found (not verified; cheap, for listings)."""
    return {f.name: find_file(spec, f, data_dir) for f in spec.files}


def md5_file(path: str | Path, *, decompress: bool = False) -> str:
    """md5 hex digest of a file, or of its gzip payload when ``decompress`` (streamed)."""
    h = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if decompress else open
    with opener(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def matches(path: str | Path, f: FileSpec) -> tuple[bool, str]:
    """Whether ``path`` holds ``f`` (file md5 first, it is cheap; then payload md5), and its md5."""
    p = Path(path)
    digest = md5_file(p)
    if digest == f.md5 or (f.raw_md5 and digest == f.raw_md5):
        return True, digest
    if f.raw_md5 and _is_gzip(p):
        try:
            return md5_file(p, decompress=True) == f.raw_md5, digest
        except (OSError, EOFError, zlib.error):
            return False, digest
    return False, digest


def check_file(path: str | Path, spec: DatasetFiles, f: FileSpec) -> None:
    """Raise a :class:`DataError` naming ``path`` unless it matches a known checksum of ``f``."""
    try:
        ok, digest = matches(path, f)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if not ok:
        expected = f.md5 + (f" (or {f.raw_md5} decompressed)" if f.raw_md5 else "")
        raise DataError(f"{path}: not the {spec.name} file {f.name} (md5 {digest}, expected {expected}); {_FIX}")


def mirror_urls(spec: DatasetFiles, f: FileSpec, mirrors: Sequence[str] | None = None) -> list[str]:
    """URLs to try for ``f``: ``$REGLAB_MIRROR`` bases first, then ``mirrors`` or the spec's."""
    urls = [
        f"{base.strip().rstrip('/')}/{spec.name}/{f.name}"
        for base in os.environ.get(ENV_MIRROR, "").split(",")
        if base.strip()
    ]
    urls += [m.rstrip("/") + "/" + f.name for m in (spec.mirrors if mirrors is None else mirrors)]
    return urls


class _Unreachable(Exception):
    """No mirror answered for one file (network down, server gone, 404, ...)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def ensure_files(
    spec: DatasetFiles,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> dict[str, Path]:
    """File name -> verified path for every file of ``spec``, downloading missing ones if allowed.

    ``progress`` shows a rich progress bar (default: when stderr is a terminal).
    """
    found: dict[str, Path] = {}
    missing: list[FileSpec] = []
    for f in spec.files:
        p = find_file(spec, f, data_dir)
        if p is None:
            missing.append(f)
        else:
            check_file(p, spec, f)
            found[f.name] = p
    if not missing:
        return found
    if not download:
        raise DataError(f"{_missing_message(spec, missing, data_dir)}; downloading is off (data.download)")
    if progress is None:
        progress = sys.stderr.isatty()
    for i, f in enumerate(missing):
        try:
            found[f.name] = _download(spec, f, mirror_urls(spec, f, mirrors), timeout, progress)
        except _Unreachable as e:
            raise DataError(f"{_missing_message(spec, missing[i:], data_dir)}; download failed ({e})") from None
    return found


def _missing_message(spec: DatasetFiles, missing: Sequence[FileSpec], data_dir: str | Path | None) -> str:
    folders = ", ".join(str(d / spec.name) for d in search_dirs(data_dir))
    names = ", ".join(f.name for f in missing)
    return (
        f"{spec.name}: missing {names}; put the files in one of {folders} "
        f"(or directly in those folders), or point data.data_dir or ${ENV_DATA} at a folder holding them"
    )


def _download(spec: DatasetFiles, f: FileSpec, urls: Sequence[str], timeout: float, progress: bool) -> Path:
    dest_dir = cache_dir() / spec.name
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create the cache folder {dest_dir} ({e.strerror or e}); set XDG_CACHE_HOME "
            f"or put the files in a folder named by data.data_dir or ${ENV_DATA}"
        ) from None
    dest = dest_dir / f.name
    unreachable: list[str] = []
    mismatched: list[str] = []
    for url in urls:
        try:
            tmp = _fetch(url, dest_dir, f.name, timeout, progress)
        except (OSError, http.client.HTTPException, ValueError) as e:
            unreachable.append(f"{url}: {_reason(e)}")
            continue
        try:
            ok, digest = matches(tmp, f)
            if ok:
                os.replace(tmp, dest)
                return dest
        finally:
            tmp.unlink(missing_ok=True)
        mismatched.append(f"{url} gave md5 {digest}, expected {f.md5}")
    if mismatched:
        raise DataError(
            f"{spec.name}: download of {f.name} failed its checksum ({'; '.join(mismatched)}); "
            f"nothing was saved. Try again later, or put the original file in {dest_dir}"
        )
    raise _Unreachable(unreachable)


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__


def _fetch(url: str, dest_dir: Path, name: str, timeout: float, progress: bool) -> Path:
    """Stream ``url`` into a temporary file in ``dest_dir``; return its path (caller renames)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"unsupported URL scheme in {url}")
    req = urllib.request.Request(url, headers={"User-Agent": "reglab"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            received = 0
            with os.fdopen(fd, "wb") as out, _progress_bar(name, total, progress) as advance:
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
            if total is not None and received != total:
                raise OSError(f"incomplete download: {received} of {total} bytes")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return tmp


@contextlib.contextmanager
def _progress_bar(name: str, total: int | None, show: bool) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"downloading {name}", total=total)
        yield lambda n: bar.advance(task, n)
