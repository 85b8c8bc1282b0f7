"""Run records in an Optuna storage (SQLite by default; any Optuna URL, e.g. PostgreSQL).

Each finished run is one Optuna trial of the study ``<name>/runs``: COMPLETE with value = the
selection metric, or FAIL with ``status`` diverged/failed and its reason. A trial is created and
finished in one go by the driver when the result arrives, so a killed study leaves at most a
stale RUNNING trial, which is marked FAIL ("interrupted") and redone on resume.

Workers (``reglab worker``) share one storage instead of one driver; they *claim* runs:

- a claim is a RUNNING trial with the run's ``arm``/``seed`` and a ``heartbeat`` (wall-clock
  seconds) created *before* training, by :meth:`RunStore.claim` under a storage-wide lock
  (:func:`storage_lock`: a PostgreSQL advisory lock, MySQL ``GET_LOCK``, or a lock file next to a
  SQLite database), so two workers never claim the same run;
- the worker refreshes the heartbeat while it trains; a RUNNING trial whose heartbeat is older
  than ``stale_after`` seconds belongs to a dead worker: the next claim marks it FAIL
  ("interrupted") and the run becomes claimable again;
- :meth:`RunStore.finish` stores the result into the same trial, under the lock and only while it
  is still RUNNING - a worker that lost its claim (it was taken as stale) stores nothing. So
  every run is stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError
from reglab.study.results.outcome import RunOutcome, RunStatus
from reglab.urls import mask_url, scrub

if TYPE_CHECKING:
    import optuna

RUNS_SUFFIX = "/runs"
HEARTBEAT = "heartbeat"  # user attr of a claimed (RUNNING) trial: wall-clock seconds of the last sign of life
WORKER = "worker"  # user attr: who claimed it (host-pid)
STALE_AFTER = 120.0  # seconds without a heartbeat after which a claim is taken as abandoned


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def lock_supported(storage: Any) -> bool:
    engine = getattr(storage, "engine", None)
    return engine is not None and engine.dialect.name in ("postgresql", "mysql", "sqlite")


@contextlib.contextmanager
def storage_lock(storage: Any, name: str) -> Iterator[None]:
    """An exclusive lock named ``name`` shared by every process using ``storage``: a PostgreSQL
    advisory lock or MySQL ``GET_LOCK`` (released by the server if the holder dies), or an
    ``flock`` on ``<database>.lock`` for SQLite (one machine). Other storages raise ConfigError."""
    engine = getattr(storage, "engine", None)
    dialect = engine.dialect.name if engine is not None else type(storage).__name__
    if dialect in ("postgresql", "mysql"):
        from sqlalchemy import text

        if dialect == "postgresql":
            acquire, release = "SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"
            params: dict[str, Any] = {"k": _lock_key(name)}
        else:
            acquire, release = "SELECT GET_LOCK(:k, -1)", "SELECT RELEASE_LOCK(:k)"
            params = {"k": "reglab:" + hashlib.sha1(name.encode()).hexdigest()[:40]}
        assert engine is not None
        with engine.connect() as conn:
            conn.execute(text(acquire), params)
            conn.commit()
            try:
                yield
            finally:
                try:
                    conn.execute(text(release), params)
                    conn.commit()
                except Exception:  # a broken connection: the server drops the lock with it
                    conn.invalidate()
        return
    if dialect == "sqlite":
        assert engine is not None
        db = engine.url.database
        if db and db != ":memory:" and not db.startswith("file::memory:"):
            try:
                import fcntl
            except ImportError:  # not POSIX: one process per SQLite file is all we can promise
                fcntl = None  # type: ignore[assignment]
            if fcntl is not None:
                with open(f"{db}.lock", "a+") as fh:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                return
        # an in-memory database lives in this storage object only: a lock of the object's own suffices
        locks: dict[str, threading.Lock] = storage.__dict__.setdefault("_reglab_locks", {})
        with locks.setdefault(name, threading.Lock()):
            yield
        return
    raise ConfigError(
        f"workers need a PostgreSQL, MySQL or SQLite storage to share a study (got {dialect}); "
        "use postgresql://USER:PASSWORD@HOST/DB"
    )


def _heartbeat_age(t: optuna.trial.FrozenTrial, now: float) -> float:
    """Seconds since a RUNNING trial's last heartbeat (since its start when it has none)."""
    beat = t.user_attrs.get(HEARTBEAT)
    if isinstance(beat, int | float):
        return now - float(beat)
    start = t.datetime_start.timestamp() if t.datetime_start is not None else 0.0
    return now - start


def fail_stale(storage: Any, trials: Sequence[optuna.trial.FrozenTrial], stale_after: float | None) -> int:
    """Mark RUNNING trials FAIL ("interrupted") - all of them with ``stale_after`` None (the
    single-driver resume), else those whose heartbeat is older than ``stale_after`` seconds.
    A trial finished meanwhile by its owner is left alone. Returns how many were marked."""
    import optuna

    now = time.time()
    n = 0
    for t in trials:
        if t.state != optuna.trial.TrialState.RUNNING:
            continue
        if stale_after is not None and _heartbeat_age(t, now) < stale_after:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
            storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished by its owner in the meantime
        n += 1
    return n


def _finished_at(t: optuna.trial.FrozenTrial) -> float:
    at = t.user_attrs.get("finished_at")
    if isinstance(at, int | float):
        return float(at)
    return t.datetime_complete.timestamp() if t.datetime_complete is not None else 0.0


@dataclass(frozen=True)
class Claim:
    """A run this worker claimed: the RUNNING trial that will hold its result."""

    arm: str
    seed: int
    trial_id: int
    number: int

    @property
    def key(self) -> str:
        return f"{self.arm}/seed{self.seed}"


@dataclass(frozen=True)
class ClaimState:
    """Where the study's runs stand, as a worker sees them."""

    done: int  # completed or diverged
    running: int  # claimed with a fresh heartbeat (by any worker)
    failed: int  # failed during this worker session (not retried by it)
    open: int  # claimable

    @property
    def settled(self) -> bool:
        return self.open == 0 and self.running == 0


@dataclass(frozen=True)
class RunRecord:
    """A finished confirmation run as stored (completed or diverged)."""

    arm: str
    seed: int
    outcome: RunOutcome
    number: int
    worker: str | None = None  # who stored it (shared studies)

    @property
    def status(self) -> RunStatus:
        return self.outcome.status


def with_driver(url: str) -> str:
    """A plain ``postgresql://`` (or ``postgres://``) URL with the PostgreSQL driver that is
    installed: SQLAlchemy's default (psycopg 3 since SQLAlchemy 2.1) or else psycopg2."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return f"postgresql://{rest}"


def check_storage_url(url: str) -> None:
    """Refuse a URL whose user name or password holds an unencoded ``@`` before anything connects:
    the database library would take the part after it for the host name and print it."""
    netloc = url.strip().partition("://")[2].partition("/")[0]  # a SQLite path may hold "@"s
    if netloc.count("@") > 1:
        raise ConfigError(
            f"storage URL {mask_url(url)}: the user name or password contains '@'; percent-encode it as %40 "
            "(e.g. p%40ss), or give the password through the database client's environment (PGPASSWORD)"
        )


def storage_error(url: str, err: BaseException, doing: str = "cannot open storage") -> str:
    """``DOING URL: Type: message`` on one line, password scrubbed: SQLAlchemy appends the SQL
    statement, its parameters and a link on lines of their own (left out); a driver's hint on a
    second line (psycopg: "Is the server running ...?") is kept, joined to the first."""
    lines = [line.strip() for line in scrub(str(err), url).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("[SQL:", "[parameters:", "(Background on"))]
    return f"{doing} {mask_url(url)}: {type(err).__name__}: {' '.join(kept)[:300]}"


SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(url: str) -> None:
    """Refuse a SQLite storage that cannot hold the study before anything is written for it (the
    output folder, the lease and lock files next to the database): a folder that cannot be created
    or written (``sqlite:////proc/x/s.db``, a read-only file system), a folder at the database's
    path, or an existing file that is not a SQLite database. Other storages: nothing to check here."""
    from pathlib import Path

    from reglab.files import unusable_folder

    db = sqlite_file(url)
    if db is None:
        return
    path = Path(db)
    where = f"storage {mask_url(url)}"
    fix = "choose another --storage (or storage: in the study file)"
    reason = unusable_folder(path.parent)
    if reason is not None:
        raise ConfigError(f"{where}: folder {path.parent}: {reason}; {fix}")
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a folder, not a database file; {fix}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return  # a new database
    except OSError as err:
        raise ConfigError(f"{where}: cannot read {path} ({err.strerror or type(err).__name__}); {fix}") from None
    if head and head != SQLITE_HEADER:
        raise ConfigError(f"{where}: {path} is not a SQLite database; {fix}")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage for ``url`` (one connection pool: a driver opens it once per session
    and hands it to everything that reads or writes the study)."""
    import optuna

    check_storage_url(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 120}}
    elif url.startswith(("postgresql", "postgres:")):
        kwargs = {"pool_pre_ping": True}  # survive a server restart or a dropped idle connection
    db = sqlite_file(url)
    made_lock = db is not None and not os.path.lexists(f"{db}.lock")
    for attempt in range(6):
        try:
            with _schema_lock(url):
                storage = optuna.storages.RDBStorage(with_driver(url), engine_kwargs=kwargs, heartbeat_interval=None)
        except Exception as err:  # bad URL, unreachable server, missing driver
            if attempt < 5 and _schema_race(err):
                time.sleep(0.2 + 0.3 * attempt + random.random() * 0.5)
                continue
            if made_lock:  # a refused storage file gets no lock file left next to it
                with contextlib.suppress(OSError):
                    os.unlink(f"{db}.lock")
            raise ConfigError(storage_error(url, err)) from None
        if url.startswith("sqlite"):
            _write_ahead_log(storage.engine)
        return storage
    raise AssertionError("unreachable")


def _write_ahead_log(engine: Any) -> None:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``: a commit appends to the log
    without waiting for the disk, so a trial costs about 14 ms of wall time instead of 130 ms on
    this machine's disk (half the CPU), and readers no longer block the writer. A killed process
    loses nothing it committed (the log is in the operating system's cache); only a power cut or
    a kernel crash may lose the last commits, never consistency. One machine only, as SQLite
    always was for reglab (PostgreSQL is the storage for several)."""
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while creating the tables get the pragmas too


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for other databases, in-memory SQLite and text
    that is not a database URL (opening the storage reports that)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        return None
    db = u.database
    if u.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return db


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """For a SQLite file: an ``flock`` on ``<database>.lock`` (the lock :func:`storage_lock` uses)
    while Optuna creates or checks its tables, so processes opening a new database at once take
    turns. Other databases (and a lock file that cannot be made) go without: :func:`_schema_race`
    retries instead."""
    fcntl: Any = None
    db = sqlite_file(url)
    if db is not None:
        with contextlib.suppress(ImportError):
            import fcntl
    if fcntl is None or db is None:
        yield
        return
    try:
        fh = open(f"{db}.lock", "a+")  # noqa: SIM115 - closed below
    except OSError:
        yield
        return
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


_RACE_MESSAGES = ("already exists", "unique constraint failed", "duplicate key", "duplicate entry")


def _schema_race(err: BaseException) -> bool:
    """Two processes creating Optuna's tables in a new database at once: the loser retries.
    PostgreSQL reports it as ``... already exists`` / ``duplicate key ...``, MySQL as ``Duplicate
    entry``, SQLite as ``OperationalError: table ... already exists`` or ``IntegrityError: UNIQUE
    constraint failed: alembic_version...``."""
    try:
        from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
    except ImportError:  # pragma: no cover - optuna depends on SQLAlchemy
        return False
    message = str(err).lower()
    return isinstance(err, IntegrityError | ProgrammingError | OperationalError) and any(
        m in message for m in _RACE_MESSAGES
    )


class RunStore:
    """The confirmation runs of one study, kept in an Optuna storage."""

    def __init__(
        self,
        url: str,
        name: str,
        fingerprint: str,
        new: bool = False,
        derived: str | None = None,
        storage: optuna.storages.BaseStorage | None = None,
        legacy: tuple[str, str | None] | None = None,
        compatible: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        """``fingerprint``: what the user wrote; a change is refused unless ``new``. ``derived``: what
        the runs' configurations were derived from (a tuned study's tuned values): when only it
        changed - a larger budget found other values - the outdated runs are replaced
        (``self.replaced`` of them). ``legacy``: the (fingerprint, derived) the same study had
        before fingerprints ignored the working directory: a study stored so is kept, and its keys
        are updated. ``compatible``: other (fingerprint, derived) whose runs are this study's too (an
        adaptive study continuing a fixed one with fewer seeds): kept, and its keys updated."""
        import optuna

        self.url = url
        self.storage = storage if storage is not None else open_storage(url)
        self.study_name = name + RUNS_SUFFIX
        self.replaced = 0
        lock = storage_lock(self.storage, self.study_name) if lock_supported(self.storage) else contextlib.nullcontext()
        with lock:  # workers opening the store at once replace it at most once
            existing = {s.study_name: s for s in self.storage.get_all_studies()}
            if self.study_name in existing:
                attrs = dict(existing[self.study_name].user_attrs)
                if legacy is not None and (attrs.get("fingerprint"), attrs.get("derived")) == legacy:
                    attrs.update(fingerprint=fingerprint, derived=derived)  # the same study, stored by an older reglab
                if (attrs.get("fingerprint"), attrs.get("derived")) in set(compatible):
                    attrs.update(fingerprint=fingerprint, derived=derived)  # the same runs, more seeds planned
                old = attrs.get("fingerprint")
                if old != fingerprint and not new:
                    raise ConfigError(
                        f"study {name!r} in {mask_url(url)} was run with a different configuration "
                        f"(fingerprint {old} != {fingerprint}); pass --new to discard its results and "
                        f"start again, or give the study a new name"
                    )
                if new or attrs.get("derived") != derived:
                    if not new:  # the same study, other tuned values: its runs are outdated
                        sid = existing[self.study_name]._study_id
                        self.replaced = len(self.storage.get_all_trials(sid, deepcopy=False))
                    optuna.delete_study(study_name=self.study_name, storage=self.storage)
            self.study = optuna.create_study(
                study_name=self.study_name, storage=self.storage, direction="maximize", load_if_exists=True
            )
            self.study.set_user_attr("fingerprint", fingerprint)
            self.study.set_user_attr("derived", derived)
        self.study_id = self.storage.get_study_id_from_name(self.study_name)
        self._recorded: set[tuple[str, int]] = set()

    def _trials(self) -> Iterator[optuna.trial.FrozenTrial]:
        yield from self.study.get_trials(deepcopy=False)

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        if lock_supported(self.storage):
            return storage_lock(self.storage, self.study_name)
        return contextlib.nullcontext()

    def recover_stale(self, stale_after: float | None = None) -> int:
        """Mark RUNNING trials left by a killed process as FAIL (interrupted); return how many.
        Claims of workers (trials with a heartbeat) are only taken when their heartbeat is older
        than ``stale_after`` (default :data:`STALE_AFTER`), so a driver started next to live
        workers does not break their claims."""
        import optuna

        after = STALE_AFTER if stale_after is None else stale_after
        with self._lock():
            trials = [t for t in self._trials() if t.state == optuna.trial.TrialState.RUNNING]
            legacy = [t for t in trials if HEARTBEAT not in t.user_attrs]  # created by a killed driver
            claims = [t for t in trials if HEARTBEAT in t.user_attrs]
            return fail_stale(self.storage, legacy, None) + fail_stale(self.storage, claims, after)

    def done(self) -> dict[tuple[str, int], RunRecord]:
        """Finished runs (completed or diverged) by (arm, seed); the first record wins."""
        import optuna

        out: dict[tuple[str, int], RunRecord] = {}
        for t in self._trials():
            status = t.user_attrs.get("status")
            finished = t.state == optuna.trial.TrialState.COMPLETE or (
                t.state == optuna.trial.TrialState.FAIL and status == "diverged"
            )
            if not finished or "arm" not in t.user_attrs:
                continue
            key = (str(t.user_attrs["arm"]), int(t.user_attrs["seed"]))
            if key not in out:
                outcome = RunOutcome.model_validate(t.user_attrs)
                out[key] = RunRecord(key[0], key[1], outcome, t.number, t.user_attrs.get(WORKER))
        return out

    def failed(self) -> dict[tuple[str, int], RunRecord]:
        """Runs that failed with an exception (status ``failed``) and have no finished record: the
        latest failure per (arm, seed). They are reported, never averaged; a resumed study redoes them."""
        import optuna

        done = self.done()
        out: dict[tuple[str, int], RunRecord] = {}
        for t in self._trials():
            if t.state != optuna.trial.TrialState.FAIL or t.user_attrs.get("status") != RunStatus.FAILED.value:
                continue
            if "arm" not in t.user_attrs:
                continue
            key = (str(t.user_attrs["arm"]), int(t.user_attrs["seed"]))
            if key in done or (key in out and out[key].number > t.number):
                continue
            outcome = RunOutcome.model_validate(t.user_attrs)
            out[key] = RunRecord(key[0], key[1], outcome, t.number, t.user_attrs.get(WORKER))
        return out

    def record(self, arm: str, seed: int, outcome: RunOutcome, value: float | None) -> None:
        """Store one finished run as a trial (COMPLETE, or FAIL when it diverged). A run this store
        already recorded is not stored again (an executor reporting a result twice)."""
        import optuna

        if outcome.status.done:
            if (arm, seed) in self._recorded:
                return
            self._recorded.add((arm, seed))
        trial = self.study.ask()
        for k, v in {"arm": arm, "seed": seed, **outcome.to_attrs()}.items():
            trial.set_user_attr(k, v)
        if outcome.status is RunStatus.COMPLETED and value is not None:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    # -- workers: claims ---------------------------------------------------------------------------
    def _key_states(
        self, keys: Sequence[tuple[str, int]], stale_after: float, since: float
    ) -> tuple[dict[tuple[str, int], str], int]:
        """(state per key: done | running | failed | open, stale claims marked FAIL); under the lock."""
        import optuna

        S = optuna.trial.TrialState
        trials = [t for t in self._trials() if "arm" in t.user_attrs]
        stale = fail_stale(self.storage, [t for t in trials if t.state == S.RUNNING], stale_after)
        if stale:
            trials = [t for t in self._trials() if "arm" in t.user_attrs]
        wanted = set(keys)
        seen: dict[tuple[str, int], set[str]] = {}
        for t in trials:
            key = (str(t.user_attrs["arm"]), int(t.user_attrs["seed"]))
            if key not in wanted:
                continue
            status = t.user_attrs.get("status")
            if t.state == S.COMPLETE or (t.state == S.FAIL and status == "diverged"):
                seen.setdefault(key, set()).add("done")
            elif t.state == S.RUNNING:
                seen.setdefault(key, set()).add("running")
            elif t.state == S.FAIL and status in ("failed", "error") and _finished_at(t) >= since:
                seen.setdefault(key, set()).add("failed")
        state = {}
        for k in keys:
            marks = seen.get(k, set())
            state[k] = next((m for m in ("done", "running", "failed") if m in marks), "open")
        return state, stale

    def claim(
        self,
        keys: Sequence[tuple[str, int]],
        worker: str,
        stale_after: float = STALE_AFTER,
        since: float = 0.0,
    ) -> Claim | None:
        """Claim the first of ``keys`` (arm, seed) that is neither done, nor claimed by a live
        worker, nor failed since ``since`` (wall-clock seconds; earlier failures are retried):
        a RUNNING trial with its arm, seed, worker and heartbeat, created under the storage lock.
        Abandoned claims (heartbeat older than ``stale_after`` seconds) are marked FAIL first.
        None when nothing is left to claim."""
        from datetime import datetime

        import optuna

        with storage_lock(self.storage, self.study_name):
            states, _ = self._key_states(keys, stale_after, since)
            free = next((k for k in keys if states[k] == "open"), None)
            if free is None:
                return None
            template = optuna.trial.FrozenTrial(
                number=-1,
                state=optuna.trial.TrialState.RUNNING,
                value=None,
                datetime_start=datetime.now(),
                datetime_complete=None,
                params={},
                distributions={},
                user_attrs={
                    "arm": free[0],
                    "seed": free[1],
                    "status": "running",
                    WORKER: worker,
                    HEARTBEAT: time.time(),
                },
                system_attrs={},
                intermediate_values={},
                trial_id=-1,
            )
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        return Claim(free[0], free[1], trial_id, self.storage.get_trial_number_from_id(trial_id))

    def heartbeat(self, claim: Claim) -> bool:
        """Refresh a claim's heartbeat; False when the claim was taken away (marked stale)."""
        import optuna

        try:
            self.storage.set_trial_user_attr(claim.trial_id, HEARTBEAT, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        return True

    def finish(self, claim: Claim, outcome: RunOutcome, value: float | None) -> bool:
        """Store a claimed run's result in its trial (COMPLETE, or FAIL when it diverged or
        failed); False, storing nothing, when the claim was taken away meanwhile."""
        import optuna

        S = optuna.trial.TrialState
        with storage_lock(self.storage, self.study_name):
            if self.storage.get_trial(claim.trial_id).state != S.RUNNING:
                return False
            attrs = {**outcome.to_attrs(), "arm": claim.arm, "seed": claim.seed, "finished_at": time.time()}
            for k, v in attrs.items():
                self.storage.set_trial_user_attr(claim.trial_id, k, v)
            if outcome.status is RunStatus.COMPLETED and value is not None:
                self.storage.set_trial_state_values(claim.trial_id, S.COMPLETE, [float(value)])
            else:
                self.storage.set_trial_state_values(claim.trial_id, S.FAIL)
        return True

    def release(self, claim: Claim, reason: str = "interrupted") -> None:
        """Give a claim back (the worker is stopping): FAIL with ``status`` ``reason``, claimable again."""
        import optuna

        try:
            self.storage.set_trial_user_attr(claim.trial_id, "status", reason)
            self.storage.set_trial_state_values(claim.trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def claim_state(
        self, keys: Sequence[tuple[str, int]], stale_after: float = STALE_AFTER, since: float = 0.0
    ) -> ClaimState:
        """How many of ``keys`` are done, claimed by live workers, failed since ``since``, or open."""
        with storage_lock(self.storage, self.study_name):
            states, _ = self._key_states(keys, stale_after, since)
        values = list(states.values())
        return ClaimState(values.count("done"), values.count("running"), values.count("failed"), values.count("open"))
