"""Executors run training tasks and yield results as they finish; nothing else in reglab knows
which executor runs. ``LocalExecutor`` uses worker processes on this machine (one torch thread
each); a cluster executor implements the same two methods."""

from __future__ import annotations

import queue as queue_mod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

EpochEvent = Callable[[str, dict[str, float]], None]


@dataclass(frozen=True)
class Task:
    key: str  # unique id, e.g. "l2/seed3"
    config: dict[str, Any]  # RunConfig as JSON-able dict


class Executor(Protocol):
    def run(self, tasks: Sequence[Task], on_epoch: EpochEvent | None = None) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Execute ``tasks``; yield (task, payload) as each finishes."""
        ...

    def close(self) -> None: ...


_events: Any = None  # per worker process: the queue progress events go to


def _init_worker(events: Any, threads: int) -> None:
    global _events
    import torch

    torch.set_num_threads(threads)
    _events = events


def _run_in_worker(task: Task) -> dict[str, Any]:
    from reglab.study.worker import execute_run

    def report(record: dict[str, float]) -> None:
        if _events is not None:
            _events.put((task.key, record))

    return execute_run(task.config, report)


class LocalExecutor:
    """Worker processes (spawned, so no state leaks from the driver), one torch thread each."""

    def __init__(self, jobs: int, threads_per_worker: int = 1) -> None:
        self.jobs = max(1, jobs)
        self.threads = threads_per_worker
        self._pool: Any = None
        self._events: Any = None

    def _start(self) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        self._events = ctx.Queue()
        self._pool = ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=ctx, initializer=_init_worker, initargs=(self._events, self.threads)
        )

    def run(self, tasks: Sequence[Task], on_epoch: EpochEvent | None = None) -> Iterator[tuple[Task, dict[str, Any]]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        if not tasks:
            return
        if self._pool is None:
            self._start()
        pending = {self._pool.submit(_run_in_worker, t): t for t in tasks}
        while pending:
            finished, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            self._drain(on_epoch)
            for fut in finished:
                task = pending.pop(fut)
                try:
                    payload = fut.result()
                except Exception as err:  # the worker process died (e.g. out of memory)
                    payload = {"status": "failed", "reason": f"worker died: {type(err).__name__}: {err}"}
                yield task, payload

    def _drain(self, on_epoch: EpochEvent | None) -> None:
        while True:
            try:
                key, record = self._events.get_nowait()
            except queue_mod.Empty:
                return
            if on_epoch is not None:
                on_epoch(key, record)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
