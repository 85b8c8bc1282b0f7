"""Writing output files so that a reader never sees half of one: drivers and workers may share a
study's folder, and a killed process must not leave a truncated summary or report behind."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to a private file next to ``path`` - ``.<name>.<pid>.<hex>``,
    created with the usual permissions, so readers sharing the folder can read the result - then
    move it into place (``os.replace``: atomic within a folder)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    blob = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "xb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def unusable_folder(path: Path) -> str | None:
    """Why ``path`` cannot be used (created, then written) as an output folder, or None if it can.
    Leaves nothing behind: the check writes and removes one empty file in the nearest existing folder."""
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:  # the nearest existing ancestor
        probe = probe.parent
    if not probe.is_dir():
        return "it is a file, not a folder" if probe == path else f"{probe} is a file, not a folder"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".reglab-probe-", dir=probe)
    except OSError as err:
        return f"cannot write in {probe} ({err.strerror or type(err).__name__})"
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)
    return None
