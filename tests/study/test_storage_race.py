"""Several processes opening one new SQLite database at once all get it (issue 12, failure 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reglab.study.results.storage import _schema_race

ROOT = Path(__file__).resolve().parents[2]

OPENER = """
import os, sys, time
import optuna, sqlalchemy  # imported before the start signal, so the processes open the database together
from reglab.study.results.storage import open_storage
ready, go, url = sys.argv[1:4]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
open_storage(url)
print("opened")
"""


@pytest.mark.parametrize("round_", range(2))
def test_processes_opening_a_new_sqlite_database_at_once_all_succeed(tmp_path: Path, round_: int) -> None:
    n = 4
    db = tmp_path / "s.db"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(tmp_path / f"ready{i}"), str(go), f"sqlite:///{db}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        deadline = time.monotonic() + 300
        while not all((tmp_path / f"ready{i}").exists() for i in range(n)):
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.05)
        go.touch()
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "opened"


def test_sqlite_schema_race_messages_are_recognised() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    assert _schema_race(OperationalError("CREATE TABLE studies", {}, Exception("table studies already exists")))
    assert _schema_race(
        IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: alembic_version.version_num"))
    )
    assert not _schema_race(OperationalError("SELECT", {}, Exception("unable to open database file")))
    assert not _schema_race(ValueError("table studies already exists"))


def test_sqlite_storage_commits_through_a_write_ahead_log(tmp_path: Path) -> None:
    """Every connection of a SQLite storage uses the write-ahead log without a disk flush per
    commit; what one connection commits is read by a fresh process-independent connection."""
    import sqlite3

    import optuna

    from reglab.study.results.storage import open_storage

    db = tmp_path / "s.db"
    storage = open_storage(f"sqlite:///{db}")
    with storage.engine.connect() as conn:  # type: ignore[attr-defined]
        raw = conn.connection.dbapi_connection
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    with sqlite3.connect(db) as other:  # another connection sees the committed trial at once
        assert other.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0] == 1
