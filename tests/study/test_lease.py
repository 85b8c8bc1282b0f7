"""The study lease (:mod:`reglab.study.protocol.lease`): one driver or many workers, never both; a killed
holder releases it at once; a removed and re-created folder cannot split it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reglab.study.protocol.lease import StudyBusy, lease_path, study_lease

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from reglab.study.protocol.lease import study_lease
url, name, shared, ready = sys.argv[1:5]
with study_lease(url, name, shared=shared == "1"):
    open(ready, "w").close()
    time.sleep(600)
"""


def refusal(url: str, name: str, shared: bool = False) -> str:
    """The one-line refusal when the lease is taken, "" when it was free."""
    try:
        with study_lease(url, name, shared=shared):
            return ""
    except StudyBusy as err:
        return str(err)


def test_a_driver_excludes_drivers_and_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    with study_lease(url, "s"):
        assert re.search(r"study 's' in sqlite:///.* is already being run by another process \(pid", refusal(url, "s"))
        assert re.search("workers can join only a study that no `reglab run` drives", refusal(url, "s", shared=True))
        with study_lease(url, "other"):  # another study in the same database is not affected
            pass
    with study_lease(url, "s"):  # released
        pass


def test_workers_share_and_exclude_a_driver(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with study_lease(url, "s", shared=True), study_lease(url, "s", shared=True):
        assert re.search("is being worked on by `reglab worker` processes", refusal(url, "s"))


def test_storages_without_processes_to_share_have_no_lease(tmp_path: Path) -> None:
    for url in ("sqlite:///:memory:", "sqlite://", "not a url"):
        with study_lease(url, "s"), study_lease(url, "s"):
            pass


def _hold(url: str, tmp_path: Path, name: str = "s") -> subprocess.Popen[bytes]:
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, name, "0", str(ready)], env=env)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def test_a_killed_holder_releases_the_lease_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    proc = _hold(url, tmp_path)
    try:
        assert re.search(f"pid {proc.pid} on ", refusal(url, "s"))
        os.kill(proc.pid, signal.SIGKILL)  # as an out-of-memory kill or `kill -9` would
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with study_lease(url, "s"):  # no heartbeat to wait for
        pass


def test_a_folder_removed_under_a_waiting_process_cannot_split_the_lease(tmp_path: Path) -> None:
    """A process that opened the lock file of a folder that is then removed (by the process that
    made it, on bad input) locks the new file, not the removed one."""
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'study.db'}"
    path = lease_path(url, "s")
    assert path is not None and path.parent == out
    out.mkdir()
    stale = open(path, "a+")  # noqa: SIM115 - a file object of the removed folder, as a racing process has
    shutil.rmtree(out)
    with study_lease(url, "s"):
        assert path.exists() and os.stat(path).st_ino != os.fstat(stale.fileno()).st_ino
        assert refusal(url, "s")
    stale.close()


def test_run_protocol_refuses_a_study_another_driver_holds(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], write_yaml: Callable[..., Path], executor: Any
) -> None:
    from reglab.study import load_study, run_protocol

    spec = load_study(write_yaml(tiny_study(output=str(tmp_path / "out"))))
    url = spec.storage_url()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("kept")
    proc = _hold(url, tmp_path, "tiny")
    try:
        with pytest.raises(StudyBusy):
            run_protocol(spec, progress=False, executor=executor)
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine.txt", lease_path(url, "tiny").name]  # type: ignore[union-attr]
    results = run_protocol(spec, progress=False, executor=executor)
    assert results.stats.new == 6
