"""Helpers shared by the study tests: the CLI in-process, and a study watched from outside its process."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def complete_runs(db: Path) -> int:
    """COMPLETE trials in the study DB, read-only (0 while the DB or its tables do not exist)."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:  # no tables yet, or the writer holds the lock
        return 0


def cli(argv: list[str]) -> int:
    """Run the console entry point in-process and return its exit code."""
    from reglab.cli import main

    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0
