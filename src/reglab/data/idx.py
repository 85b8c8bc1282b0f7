"""Reader (and writer, for tests and tools) of the IDX format used by MNIST and its relatives.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the data. Only unsigned bytes (dtype 0x08) occur in the datasets we load.
Files may be gzipped (detected by content, not by name). Every check failure is a
:class:`~reglab.errors.DataError` that names the file, because a truncated download or a wrong
file dropped into a data folder should be fixed by the user, not debugged from a traceback.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from reglab.errors import DataError

IDX_UBYTE = 0x08
IDX_LABELS = 0x00000801  # ubyte, 1 dimension
IDX_IMAGES = 0x00000803  # ubyte, 3 dimensions
GZIP_MAGIC = b"\x1f\x8b"

_FIX = "delete it and re-run to download again, or replace it with the original file"


def _bad(path: Path | str, what: str) -> DataError:
    return DataError(f"{path}: {what}; {_FIX}")


def read_payload(path: str | Path) -> bytes:
    """The file's bytes, decompressed when it is gzipped (so users may gunzip files or not)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from None
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise _bad(p, f"not a valid gzip file ({e})") from None


def parse_idx(data: bytes, name: str | Path, magic: int | None = None) -> np.ndarray:
    """Parse an uncompressed IDX payload; ``magic`` (e.g. :data:`IDX_IMAGES`) is checked if given."""
    if len(data) < 4:
        raise _bad(name, f"too short for an IDX file ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    zero, dtype, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype != IDX_UBYTE or not 1 <= ndim <= 4:
        raise _bad(name, f"not an IDX ubyte file (magic number 0x{found:08x})")
    if magic is not None and found != magic:
        raise _bad(name, f"wrong IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _bad(name, f"truncated IDX header ({len(data)} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)  # Python ints: no overflow on a garbage header
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing data"
        raise _bad(name, f"{state}: {len(data)} bytes, dimensions {dims} need {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path: str | Path, magic: int | None = None) -> np.ndarray:
    """Read a (possibly gzipped) IDX file into a uint8 array of its dimensions."""
    return parse_idx(read_payload(path), path, magic)


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` (uint8, 1-4 dims) as IDX; gzipped when ``compress`` (default: name ends .gz)."""
    p = Path(path)
    a = np.ascontiguousarray(array, dtype=np.uint8)
    if not 1 <= a.ndim <= 4:
        raise ValueError("IDX arrays have 1 to 4 dimensions")
    data = bytes([0, 0, IDX_UBYTE, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape) + a.tobytes()
    if compress is None:
        compress = p.suffix == ".gz"
    p.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return p
