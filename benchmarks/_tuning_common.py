"""Shared by the tuning benchmarks: an in-process executor and a helper that runs one arm's search
through reglab's own driver (``reglab.tuning.tune.tune_study``: spaces, samplers, pruners, storage).

``LockstepExecutor`` speaks reglab's executor protocol but trains in a thread of this process, one
task at a time, advancing one epoch per ``poll``: a pruning decision takes effect at the very next
epoch, and results do not depend on how busy the machine is (the benchmarks are deterministic for
a given seed). Runs use one torch thread.
"""

from __future__ import annotations

import math
import queue
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from reglab.study.executors import Task
from reglab.study.spec import StudySpec, parse_study


class LockstepExecutor:
    """One task at a time, in a thread of this process, advancing one epoch per ``poll``."""

    def __init__(self) -> None:
        from reglab.study.worker import execute_task

        self._execute = execute_task
        self.slots = 1
        self._todo: deque[Task] = deque()
        self._items: queue.Queue[tuple[str, Any, Any]] = queue.Queue()
        self._go = threading.Semaphore(0)
        self._stops: set[str] = set()
        self._current: threading.Thread | None = None

    def submit(self, task: Task) -> None:
        self._todo.append(task)

    def stop(self, key: str) -> None:
        self._stops.add(key)

    def _work(self, task: Task) -> None:
        def report(record: dict[str, float]) -> bool:
            self._items.put(("epoch", task.key, dict(record)))
            self._go.acquire()  # until the driver has seen this epoch
            return task.key in self._stops or "*" in self._stops

        try:
            payload = self._execute(task, report)
        except BaseException as err:
            payload = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        self._items.put(("done", task, payload))

    def poll(self, timeout: float) -> tuple[list[tuple[str, dict[str, float]]], list[tuple[Task, dict[str, Any]]]]:
        if self._current is None:
            if not self._todo:
                return [], []
            self._current = threading.Thread(target=self._work, args=(self._todo.popleft(),), daemon=True)
            self._current.start()
        else:
            self._go.release()
        kind, a, b = self._items.get()
        if kind == "epoch":
            return [(a, b)], []
        self._current.join()
        self._current = None
        return [], [(a, b)]

    def close(self) -> None:
        if self._current is not None:
            self._stops.add("*")
            while self._current.is_alive():
                self._go.release()
                self._current.join(timeout=0.05)
            self._current = None


def make_spec(
    name: str,
    *,
    data: dict[str, Any],
    model: dict[str, Any],
    train: dict[str, Any],
    search: dict[str, Any],
    output: Path,
) -> StudySpec:
    """A one-arm study whose whole search space is ``search['space']``."""
    doc = {
        "name": name,
        "data": data,
        "model": model,
        "train": {**train, "device": "cpu"},
        "arms": {"arm": {}},
        "search": search,
        "seeds": 1,
        "output": str(output),
    }
    return parse_study(doc, f"{name}.yaml")


def run_search(spec: StudySpec) -> tuple[dict[str, Any], float]:
    """Tune the spec's single arm from scratch in this process; (insight, wall seconds)."""
    from reglab.tuning.tune import tune_study

    ex = LockstepExecutor()
    t0 = time.perf_counter()
    try:
        result = tune_study(spec, executor=ex, progress=False, new=True)["arm"]
    finally:
        ex.close()
    return result, time.perf_counter() - t0


def workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for the SQLite storage, in memory (/dev/shm) where there is one: the
    driver writes every reported epoch, and a disk's fsync would dominate these tiny runs."""
    shm = Path("/dev/shm")
    return tempfile.TemporaryDirectory(prefix=prefix, dir=shm if shm.is_dir() else None)


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (reglab.stats.compare.describe)."""
    from reglab.stats.compare import describe

    s = describe(values, confidence)
    half = (s.ci_high - s.ci_low) / 2 if s.ci_high is not None and math.isfinite(s.ci_high) else float("nan")
    return s.mean, half
