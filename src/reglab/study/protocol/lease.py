"""Who may work on a study at a time: one ``reglab run`` (an exclusive lease) or any number of
``reglab worker``s (a shared lease), never both.

A driver counts trials and hands out runs in memory, so two drivers on one study would each train
every run, and a driver next to workers would take their running trials for a killed session's.
The lease makes the later process refuse with one line (:class:`StudyBusy`, exit code 4) before it
touches anything. It is held by the operating system or the database server for the life of the
process, so a killed process (even ``kill -9``) releases it at once and the same command resumes
without waiting for a heartbeat to go stale:

- SQLite file: ``flock`` on ``<database>.<study hash>.lease`` (one machine, like SQLite itself);
  the lock file's identity is checked after locking, so a folder removed and re-created meanwhile
  cannot split the lease.
- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock[_shared]``) on a connection
  kept open; the server drops it with the connection.
- MySQL: ``GET_LOCK`` for drivers only (it has no shared mode; workers coordinate through claims).
- Other storages (in-memory, journal files): no lease; they are not shared between processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reglab.errors import ConfigError, ReglabError
from reglab.study.results.storage import check_sqlite_file, check_storage_url, sqlite_file
from reglab.urls import mask_url

EXIT_BUSY = 4  # exit code of a process refused because another one is running the study


class StudyBusy(ReglabError):
    """Another process holds the study's lease; nothing was written."""

    exit_code = EXIT_BUSY


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"reglab-lease:{name}".encode()).digest()[:8], "big", signed=True)


def _backend(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name()
    except ArgumentError:  # not a database URL: opening the storage says so
        return None


def lease_path(url: str, name: str) -> Path | None:
    """The lock file of study ``name`` in a SQLite database ``url`` (None for other storages)."""
    file = sqlite_file(url)
    if file is None:
        return None
    db = Path(file)
    return db.with_name(f"{db.name}.{hashlib.sha1(name.encode()).hexdigest()[:8]}.lease")


def _refusal(name: str, url: str, shared: bool, holder: str) -> StudyBusy:
    where = f"study {name!r} in {mask_url(url)}"
    if shared:
        return StudyBusy(
            f"{where} is being run by `reglab run` ({holder}); workers can join only a study that no "
            "`reglab run` drives: wait for it to finish, or stop it and start the workers"
        )
    if holder == "workers":
        return StudyBusy(
            f"{where} is being worked on by `reglab worker` processes; start more workers to help, or wait "
            "for them to finish and run this command again to see the results"
        )
    return StudyBusy(
        f"{where} is already being run by another process ({holder}); wait for it to finish "
        "(this command then shows its results without training anything), or add `--output` for a separate study"
    )


@contextlib.contextmanager
def study_lease(url: str, name: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the lease of study ``name`` in storage ``url`` for the block; raise :class:`StudyBusy`
    at once (never wait) when it is taken: exclusive for a driver, shared for workers."""
    check_storage_url(url)
    check_sqlite_file(url)  # a database that cannot be: refused before its lease file is made
    path = lease_path(url, name)
    if path is not None:
        with _file_lease(path, url, name, shared):
            yield
        return
    backend = _backend(url)
    if backend == "postgresql" or (backend == "mysql" and not shared):
        with _server_lease(url, name, shared, backend):
            yield
        return
    yield


@contextlib.contextmanager
def _file_lease(path: Path, url: str, name: str, shared: bool) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: one process per SQLite file is all we can promise
        yield
        return
    made = not os.path.lexists(path)  # then it goes again if the study is refused (see below)
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a+")  # noqa: SIM115 - held for the block
        except OSError as err:  # made unwritable since check_sqlite_file
            raise ConfigError(
                f"storage {mask_url(url)}: cannot write {path} ({err.strerror or type(err).__name__}); "
                "choose another --storage"
            ) from None
        try:
            fcntl.flock(fh.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _file_holder(fh, fcntl) if not shared else _read_holder(path)
            fh.close()
            raise _refusal(name, url, shared, holder) from None
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()  # the file was removed (its folder deleted) between open and lock: lock the new one
    try:
        if not shared:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            fh.flush()
        yield
    except BaseException:
        if made:  # e.g. the storage is refused: no lease file is left next to it
            _remove_if_alone(fh, path, fcntl)
        raise
    finally:
        fh.close()  # releases the lock


def _remove_if_alone(fh: Any, path: Path, fcntl: Any) -> None:
    """Remove the lease file ``fh`` holds when no other process holds it: safe because a process
    that opened it meanwhile finds, once it has the lock, that the path is no longer its file, and
    locks a new one (see :func:`_file_lease`)."""
    with contextlib.suppress(OSError):
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a driver holds it already; workers: alone?
        if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
            path.unlink()


def _read_holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    return "another process"


def _file_holder(fh: Any, fcntl: Any) -> str:
    """Who holds the exclusive lock we could not take: workers (a shared lock is free) or a driver."""
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(Path(fh.name))
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return "workers"


@contextlib.contextmanager
def _server_lease(url: str, name: str, shared: bool, backend: str) -> Iterator[None]:
    import sqlalchemy
    from sqlalchemy import text
    from sqlalchemy.pool import NullPool

    from reglab.study.results.storage import storage_error, with_driver

    try:
        engine = sqlalchemy.create_engine(with_driver(url), poolclass=NullPool)
        conn = engine.connect()
    except Exception as err:  # unreachable server, missing driver: said as opening the storage would
        raise ConfigError(storage_error(url, err)) from None
    try:
        try:
            if backend == "postgresql":
                mode = "_shared" if shared else ""
                k: dict[str, Any] = {"k": _key(name)}
                got = conn.execute(text(f"SELECT pg_try_advisory_lock{mode}(:k)"), k).scalar()
                holder = "another process"
                if not got and not shared and conn.execute(text("SELECT pg_try_advisory_lock_shared(:k)"), k).scalar():
                    conn.execute(text("SELECT pg_advisory_unlock_shared(:k)"), k)
                    holder = "workers"
            else:
                k = {"k": "reglab-lease:" + hashlib.sha1(name.encode()).hexdigest()[:40]}
                got = conn.execute(text("SELECT GET_LOCK(:k, 0)"), k).scalar() == 1
                holder = "another process"
            conn.commit()
            if not got:
                raise _refusal(name, url, shared, holder)
            yield  # the lock lives as long as this connection; closing it releases the lock
        finally:
            conn.close()
    finally:
        engine.dispose()
