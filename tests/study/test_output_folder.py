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
    out, reason = CASES[_prepare(case, tmp_path)](tmp_path)
    p = write_yaml(tiny_study())
    args = ["--output", str(out)]
    args += ["--no-progress"] if command == "run" else ["--storage", f"sqlite:///{tmp_path / 's.db'}"]
    line = _one_line_refusal(command, p, args, tmp_path)  # nothing stored, no database, no probe left
    assert line.startswith(f"error: output folder {out}: {reason}"), line


def _prepare(case: str, tmp_path: Path) -> str:
    """The folder of a refusal case: ``taken`` is a file; no /proc (not Linux): skipped."""
    if case == "proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    (tmp_path / "taken").write_text("a file\n", encoding="utf-8")
    return case


def _one_line_refusal(command: str, study: Path, args: list[str], tmp_path: Path) -> str:
    """``reglab COMMAND STUDY ARGS`` exits 2 with one line and no traceback, and leaves nothing in
    ``tmp_path``: its error line."""
    before = sorted(tmp_path.rglob("*"))
    argv = [REGLAB, command, str(study), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert sorted(tmp_path.rglob("*")) == before
    return lines[0]


def _corrupt_database(t: Path) -> Path:
    """A file that starts like a SQLite database but is not one: only opening it can tell."""
    (t / "corrupt.db").write_bytes(b"SQLite format 3\x00" + b"\x01" * 200)
    return t / "corrupt.db"


STORAGE_CASES: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "proc": lambda t: (Path("/proc/reglab-x/s.db"), "folder /proc/reglab-x: cannot write in /proc ("),
    "under-a-file": lambda t: (t / "taken" / "s.db", f"folder {t / 'taken'}: it is a file, not a folder"),
    "read-only": lambda t: (_unwritable_dir(t) / "s.db", "cannot write in "),
    "a-folder": lambda t: (t, f"{t} is a folder, not a database file"),
    "not-a-database": lambda t: (t / "taken", f"{t / 'taken'} is not a SQLite database"),
    "corrupt": lambda t: (_corrupt_database(t), "DatabaseError: (sqlite3.DatabaseError) file is not a database"),
}


@pytest.mark.parametrize("case", list(STORAGE_CASES))
@pytest.mark.parametrize("command", ["run", "worker"])
def test_an_unusable_sqlite_storage_is_one_line_and_exit_2(
    write_yaml: Callable[..., Path],
    tiny_study: Callable[..., dict[str, Any]],
    tmp_path: Path,
    case: str,
    command: str,
) -> None:
    """``--storage sqlite:////proc/x/s.db`` (or a read-only folder, a file that is no database) is
    refused by ``run`` and ``worker`` alike: one line, exit 2, and nothing left behind - no output
    folder, no lease or lock file next to the refused database."""
    db, reason = STORAGE_CASES[_prepare(case, tmp_path)](tmp_path)
    p = write_yaml(tiny_study())
    args = ["--output", str(tmp_path / "out"), "--storage", f"sqlite:///{db}"]
    args += ["--no-progress"] if command == "run" else []
    line = _one_line_refusal(command, p, args, tmp_path)  # no output folder, database, lease or lock file
    assert line.startswith("error: ") and f"sqlite:///{db}" in line and reason in line, line


def test_a_database_error_is_one_line_without_its_sql_statement() -> None:
    """SQLAlchemy appends the statement, its parameters and a link on lines of their own; the
    driver's own hint stays, on the same line; the password never shows."""
    from sqlalchemy.exc import OperationalError

    from reglab.study.results.storage import storage_error

    cause = Exception('connection to server at "db" failed: Connection refused\n\tIs the server running on that host?')
    msg = storage_error("postgresql://u:s3cret@db/x", OperationalError("SELECT 1", {"k": 1}, cause))
    assert "\n" not in msg and "[SQL" not in msg and "Background on this error" not in msg and "s3cret" not in msg
    assert msg.startswith("cannot open storage postgresql://u:***@db/x: OperationalError: ") and msg.endswith(
        "Connection refused Is the server running on that host?"
    ), msg
