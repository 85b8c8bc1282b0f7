"""Helpers shared by the study tests that watch a study from outside its process."""

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
