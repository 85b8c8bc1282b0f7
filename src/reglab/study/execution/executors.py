"""Executors run training tasks; the driver keeps the storage and talks to them through four
methods, so nothing else in reglab knows which executor runs:

- ``submit(task)``: start a run (``slots`` of them run at once);
- ``poll(timeout)``: per-epoch events (for progress and pruners) and finished runs;
- ``stop(key)``: ask a running task to stop after its current epoch (a pruned trial);
- ``close()``.

``LocalExecutor`` uses spawned worker processes on this machine, one torch thread each;
``InProcessExecutor`` runs one task at a time in this process (notebooks, debugging, tests and
deterministic benchmarks).
"""

from __future__ import annotations

import contextlib
import queue as queue_mod
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reglab.study.execution.task import Events, Finished, Task
from reglab.study.results.outcome import RunOutcome

if TYPE_CHECKING:
    from reglab.study.execution.worker import DataCache, Report


def default_jobs() -> int:
    """The cores this process may use."""
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def execute_task(task: Task, report: Report, cache: DataCache) -> RunOutcome:
    """What a worker does with a task, whatever runs it: a run of the user's function
    (:func:`reglab.study.execution.function_runs.execute_function`), a population
    (:func:`reglab.study.execution.population_executor.execute_population`), or one run of reglab's
    engine (or its cross-validation folds: :func:`reglab.study.execution.worker.execute_single`).
    ``report`` gets each epoch's record and returns True when the driver wants the run stopped."""
    if task.function is not None:  # the user's own function (reglab.study.definition.objective)
        from reglab.study.execution.function_runs import execute_function

        return execute_function(task, report, cache)
    if task.members:  # a population (reglab.study.execution.population_executor)
        from reglab.study.execution.population_executor import execute_population

        return execute_population(task, report, cache)
    from reglab.study.execution.worker import execute_single

    return execute_single(task, report, cache)


# -- local processes ---------------------------------------------------------------------------


@dataclass
class _WorkerState:
    """What one pool process keeps between tasks: its channels to the driver and its datasets."""

    events: Any
    stops: Any  # numpy view of the shared stop board (see ``LocalExecutor.stop``)
    cache: DataCache


_state: _WorkerState | None = None  # set once per spawned pool process by its initializer

STARTED = "\x00started"  # an event's key: (STARTED, (task key, pid)) - which process runs which task
STOP_BOARD = 4096  # stop requests a worker still sees: far more than can arrive during one epoch


def _stop_mark(seq: int, key: str) -> int:
    """The mark of a stop request for ``key`` within the submission numbered ``seq``: a stop for
    an earlier run of the same key (an earlier study on a shared executor) never matches."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(f"{seq}:{key}".encode(), digest_size=8).digest(), "little") >> 1


def _child_process(driver: int) -> None:
    """Set up a pool process: Ctrl-C reaches the whole process group, but the driver decides what
    stops; and the process ends with the driver. First thing in the process, before torch is
    imported: a driver killed while its workers start must not leave them behind."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(driver)


def _exit_with_parent(parent: int, every: float = 0.2) -> None:
    """Exit this process within ``every`` seconds of the death of ``parent`` (its pid, passed down
    by the parent: ``os.getppid()`` here can already be 1 when the parent died while this process
    started). A driver killed with ``kill -9`` (or by the out-of-memory killer) leaves no orphan
    training on or holding memory, and no resource tracker kept alive by an orphan's copy of its pipe.

    A watchdog thread rather than ``PR_SET_PDEATHSIG``: that signal follows the *thread* that
    started the process, and a pool process can be started by any thread that submits a task."""
    import os
    import time

    if os.getppid() != parent:  # re-parented: the parent is gone already
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="reglab-exit-with-parent", daemon=True).start()


def _init_worker(events: Any, board: Any, threads: int, driver: int) -> None:
    global _state
    _child_process(driver)  # before the imports below, which take seconds

    import numpy as np
    import torch

    from reglab.study.execution.worker import DataCache

    torch.set_num_threads(threads)
    _state = _WorkerState(events, np.frombuffer(board, dtype=np.int64), DataCache())


def _run_in_worker(task: Task, seq: int) -> RunOutcome:
    import os

    state = _state
    assert state is not None, "not a reglab worker process"
    state.events.put((STARTED, (task.key, os.getpid())))  # written before this task can kill the process

    def report(record: dict[str, float], key: str | None = None) -> bool:
        key = key or task.key
        state.events.put((key, record))
        board = state.stops
        n = min(int(board[0]), STOP_BOARD)
        return n > 0 and bool((board[1 : n + 1] == _stop_mark(seq, key)).any())

    return execute_task(task, report, state.cache)


MAX_ATTEMPTS = 2  # a run whose worker process died is started at most this often
DIED_REASON = "its worker process died"
UNBLAMED_BREAKS = 3  # pool breaks in a row that no run can be blamed for, after which every lost run is charged


def exit_status(exitcode: int) -> str:
    """A dead process's exit code in words: "exit code 2", "killed by SIGKILL" (negative: the signal)."""
    import signal

    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"


def died_reason(exitcode: int | None) -> str:
    """Why a run's worker process died, from its exit code, for the run's stored reason."""
    import signal

    if exitcode is None:  # the pool could not tell which process died by itself
        return DIED_REASON
    hint = ", e.g. out of memory" if exitcode == -signal.SIGKILL else ""
    return f"{DIED_REASON} ({exit_status(exitcode)}{hint})"


class LocalExecutor:
    """Worker processes (spawned, so no state leaks from the driver), one torch thread each.

    A worker process that dies (killed, out of memory, or the user's code exiting it) breaks the
    pool: the pool is rebuilt and the runs it held are started again. Only the run whose process
    died is charged an attempt; it is started at most ``max_attempts`` times in all, after which it
    finishes as failed with the exit code or signal. ``close`` with runs still going (the driver was
    interrupted) does not wait for them: their processes are terminated."""

    def __init__(self, jobs: int, threads_per_worker: int = 1, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.slots = max(1, jobs)
        self.threads = threads_per_worker
        self.max_attempts = max(1, max_attempts)
        self.restarts = 0  # times the pool was rebuilt after a worker process died
        self._pool: Any = None
        self._board: Any = None
        self._events: Any = None
        self._seq = 0
        self._seq_of: dict[str, int] = {}  # task or population-member key -> its latest submission
        self._stopped: set[str] = set()
        self._where: dict[str, int] = {}  # task key -> pid of the process running it
        self._pending: dict[Any, Task] = {}
        self._attempts: dict[str, int] = {}
        self._epochs: dict[str, int] = {}  # task key -> epochs its current attempt reported
        self._unblamed = 0  # pool breaks in a row without a run to blame (see _rebuild)

    def _start(self) -> None:
        import multiprocessing as mp
        import os
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        if self._board is None:
            # stop requests: a ring of marks in shared memory (slot 0 counts them) that workers read at
            # each epoch end - no server process to start, no round trip per epoch
            self._board = ctx.RawArray("q", STOP_BOARD + 1)
        # a SimpleQueue writes each epoch into the pipe before ``report`` returns, so a run's epochs are
        # all readable once its result is (a Queue's feeder thread may send them after the result);
        # an epoch record is one write of far less than PIPE_BUF, so a killed writer leaves no half
        # message; new with every pool: a killed process may have held the old one's write lock
        self._events = ctx.SimpleQueue()
        self._pool = ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self._events, self._board, self.threads, os.getpid()),
        )

    def submit(self, task: Task) -> None:
        if self._pool is None:
            self._start()
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        self._seq += 1  # a new submission: stop requests for an earlier one of the same key do not apply
        for key in (task.key, *(m.key for m in task.members)):
            self._seq_of[key] = self._seq
            self._stopped.discard(key)
        try:
            fut = self._pool.submit(_run_in_worker, task, self._seq)
        except BrokenProcessPool as err:  # a worker died since the last poll: the next poll rebuilds the pool
            fut = Future()
            fut.set_exception(err)
            self._attempts[task.key] = self._attempts.get(task.key, 0)  # never started: not an attempt
        else:
            self._attempts[task.key] = self._attempts.get(task.key, 0) + 1
            self._wake_manager()
        self._pending[fut] = task

    def _wake_manager(self) -> None:
        """Make the pool's manager thread look at its processes again. CPython's pool wakes it
        *before* it starts a process on demand, so the thread can wait on the old list of processes
        and miss the new one's death (a run that exits its process) until another run ends."""
        wakeup = getattr(self._pool, "_executor_manager_thread_wakeup", None)
        if wakeup is not None:
            with contextlib.suppress(Exception):  # the pool broke meanwhile: the next poll sees it
                wakeup.wakeup()

    def stop(self, key: str) -> None:
        seq = self._seq_of.get(key)
        if seq is None or self._board is None or key in self._stopped:  # never submitted here, or already marked:
            return  # a repeated request (a population re-sends its members') must not crowd the board
        self._stopped.add(key)
        n = self._board[0]
        self._board[1 + n % STOP_BOARD] = _stop_mark(seq, key)
        self._board[0] = n + 1  # after the mark: a worker that reads the count finds the mark

    def _drain(self) -> Events:
        events = []
        try:
            while self._events is not None and not self._events.empty():
                key, record = self._events.get()
                if key == STARTED:
                    self._where[record[0]] = record[1]
                    self._epochs[record[0]] = 0
                else:
                    if key in self._where:  # a run's own epoch (a population's members report under theirs)
                        self._epochs[key] = self._epochs.get(key, 0) + 1
                    events.append((key, record))
        except (OSError, ValueError, EOFError):  # closed, or a process died mid-write
            pass
        return events

    def poll(self, timeout: float) -> tuple[Events, Finished]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(self._pending, timeout=timeout, return_when=FIRST_COMPLETED) if self._pending else ((), ())
        events = self._drain()
        finished, lost = [], []
        for fut in done:
            task = self._pending.pop(fut)
            err = fut.exception()  # any BaseException the worker sent back, without raising it here
            if isinstance(err, BrokenProcessPool):  # a worker process died: every run in the pool is lost
                lost.append(task)
                continue
            if err is None:
                outcome = fut.result()
            else:
                outcome = RunOutcome.failed(f"{type(err).__name__}: {err}", epochs_spent=self._epochs.get(task.key, 0))
            self._unblamed = 0
            finished.append((task, self._finish(task, outcome)))
        if lost:
            finished += self._rebuild(lost)
        return events, finished

    def _finish(self, task: Task, outcome: RunOutcome) -> RunOutcome:
        self._where.pop(task.key, None)
        self._epochs.pop(task.key, None)
        attempts = self._attempts.pop(task.key, 1)
        if attempts > 1:  # recorded with the run
            outcome = outcome.model_copy(update={"attempts": attempts})
        return outcome

    def _rebuild(self, lost: list[Task]) -> Finished:
        """A new pool for the runs of a broken one; a run started too often fails. Only the run of
        the process that died is charged an attempt: the others lost theirs because the pool broke.
        When no run can be blamed (the process that died held none) nobody is charged - unless that
        happens :data:`UNBLAMED_BREAKS` times in a row (e.g. processes that die while starting),
        when every lost run is, so that the study ends."""
        lost += self._pending.values()  # the broken pool's other futures fail too
        self._pending.clear()
        died = self._died()
        self._drain()  # which process ran which run (STARTED); the lost runs' epochs are dropped: they start over
        culprits = {key: died[pid] for key, pid in self._where.items() if pid in died}
        self._unblamed = 0 if culprits else self._unblamed + 1
        blame_all = not died or self._unblamed >= UNBLAMED_BREAKS  # cannot tell which process died by itself
        self._kill_pool()
        self.restarts += 1
        finished: Finished = []
        for task in lost:
            key = task.key
            spent = self._epochs.pop(key, 0)
            self._where.pop(key, None)
            charged = key in culprits or blame_all
            reason = died_reason(culprits.get(key))
            if key in self._stopped:  # asked to stop (pruned): nothing to redo
                attempts = self._attempts.pop(key, 1)
                outcome = RunOutcome.failed(f"{reason}; stopped", attempts=attempts, epochs_spent=spent)
                finished.append((task, outcome))
            elif charged and self._attempts.get(key, 0) >= self.max_attempts:
                attempts = self._attempts.pop(key, 1)
                outcome = RunOutcome.failed(
                    f"{reason}; started {attempts} times", attempts=attempts, epochs_spent=spent
                )
                finished.append((task, outcome))
            else:
                if not charged:  # a bystander: this start does not count
                    self._attempts[key] = max(0, self._attempts.get(key, 0) - 1)
                self.submit(task)
        return finished

    def _died(self) -> dict[int, int]:
        """The pool processes that died by themselves (pid -> exit code; negative: the signal),
        told apart from those the broken pool then terminated (SIGTERM). A process that died
        holding no run is in it too; empty when no process can be told to have died by itself."""
        import signal

        manager = getattr(self._pool, "_executor_manager_thread", None)
        if manager is not None:  # it terminates the other processes and reaps them all: exit codes are final
            manager.join(timeout=10)
        procs = dict(getattr(self._pool, "_processes", None) or {})
        # an exit code of its own (os._exit, sys.exit outside a run) or a signal (SIGKILL of an
        # out-of-memory kill, SIGSEGV...), not the pool's SIGTERM
        return {pid: p.exitcode for pid, p in procs.items() if p.exitcode is not None and p.exitcode != -signal.SIGTERM}

    def _kill_pool(self) -> None:
        """Terminate the pool's processes at once (runs in them are lost) and drop the pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for p in procs:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in procs:
            with contextlib.suppress(Exception):
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)
        pool.shutdown(wait=True, cancel_futures=True)
        self._drain()
        if self._events is not None:
            self._events.close()
            self._events = None

    def close(self) -> None:
        """Shut down; runs still going (an interrupted driver) are not waited for."""
        if self._pool is not None:
            if self._pending:
                self._pending.clear()
                self._kill_pool()
            else:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        self._attempts.clear()
        self._where.clear()
        self._epochs.clear()


# -- in this process ---------------------------------------------------------------------------


class InProcessExecutor:
    """One task at a time in a thread of this process, advancing one epoch per ``poll``.

    The task reports an epoch and waits until the driver polls again, i.e. until the driver has
    handled the event (reported it to the pruner and maybe called ``stop``): pruning takes effect
    at the very next epoch, so results do not depend on how busy the machine is. Everything runs
    in this process, so monkeypatches and debuggers see it. With ``record`` the submitted tasks,
    stop requests, events and payloads are kept for inspection.
    """

    def __init__(self, record: bool = False) -> None:
        from reglab.study.execution.worker import DataCache

        self.slots = 1
        self.record = record
        self.cache = DataCache()
        self._todo: deque[Task] = deque()
        self._items: queue_mod.Queue[tuple[str, Any, Any]] = queue_mod.Queue()
        self._go = threading.Semaphore(0)
        self._stops: set[str] = set()
        self._current: threading.Thread | None = None
        self.submitted: list[Task] = []
        self.stopped: list[str] = []
        self.events: Events = []
        self.payloads: Finished = []

    def submit(self, task: Task) -> None:
        if self.record:
            self.submitted.append(task)
        self._stops.discard(task.key)  # a stop request for an earlier task of the same key
        self._todo.append(task)

    def stop(self, key: str) -> None:
        if self.record:
            self.stopped.append(key)
        self._stops.add(key)

    def _work(self, task: Task) -> None:
        def report(record: dict[str, float], key: str | None = None) -> bool:
            key = key or task.key
            self._items.put(("epoch", key, dict(record)))
            self._go.acquire()  # until the driver has seen this epoch
            return key in self._stops or "*" in self._stops

        try:
            outcome = execute_task(task, report, self.cache)
        except BaseException as err:  # handed to the driver like a dead worker's
            outcome = RunOutcome.failed(f"{type(err).__name__}: {err}")
        if self.record:
            self.payloads.append((task, outcome))
        self._items.put(("done", task, outcome))

    def poll(self, timeout: float) -> tuple[Events, Finished]:
        if self._current is None:
            if not self._todo:
                return [], []
            self._current = threading.Thread(target=self._work, args=(self._todo.popleft(),), daemon=True)
            self._current.start()
        else:
            self._go.release()  # the driver handled the previous epoch: go on
        kind, a, b = self._items.get()
        if kind == "epoch":
            if self.record:
                self.events.append((a, b))
            return [(a, b)], []
        self._current.join()
        self._current = None
        return [], [(a, b)]

    def close(self) -> None:
        if self._current is not None:  # a driver that gave up mid-task: let the thread finish
            self._stops.add("*")
            while self._current.is_alive():
                self._go.release()
                self._current.join(timeout=0.05)
            self._current = None
