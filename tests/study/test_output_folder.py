"""An output folder that cannot be used (an existing file, a folder under a file, a read-only or
virtual file system) is one line and exit 2 from ``reglab run``, ``tune`` and ``worker``, before
anything is stored."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REGLAB = str(Path(sys.executable).with_name("reglab"))


def _unwritable_dir(tmp_path: Path) -> Path:
    d = tmp_path / "read-only"
    d.mkdir()
    d.chmod(0o555)
    probe = d / "probe"
    try:  # root (and some file systems) ignore the mode: then this case says nothing
        probe.touch()
    except OSError:
        return d / "out"
    probe.unlink()
    pytest.skip("this user can write into a read-only folder (root)")


CASES: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "existing-file": lambda t: (t / "taken", "it is a file, not a folder"),
    "under-a-file": lambda t: (t / "taken" / "out", f"{t / 'taken'} is a file, not a folder"),
    "proc": lambda t: (Path("/proc/reglab-x"), "cannot write in /proc ("),
    "read-only": lambda t: (_unwritable_dir(t), "cannot write in "),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["run", "worker"])
def test_an_unusable_output_folder_is_one_line_and_exit_2(
    write_yaml: Callable[..., Path],
    tiny_study: Callable[..., dict[str, Any]],
    tmp_path: Path,
    case: str,
    command: str,
) -> None:
    if case == "proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    (tmp_path / "taken").write_text("a file\n", encoding="utf-8")
    out, reason = CASES[case](tmp_path)
    p = write_yaml(tiny_study())
    before = sorted(tmp_path.rglob("*"))
    argv = [REGLAB, command, str(p), "--output", str(out)]
    argv += ["--no-progress"] if command == "run" else ["--storage", f"sqlite:///{tmp_path / 's.db'}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert lines[0].startswith(f"error: output folder {out}: {reason}"), lines[0]
    assert sorted(tmp_path.rglob("*")) == before  # nothing stored, no database, no probe left
