"""Fixtures for the tuning tests: tiny study files and an in-process executor.

``LockstepExecutor`` speaks the executor protocol (``slots``/``submit``/``poll``/``stop``/
``close``) but runs each task in a thread of this process, one epoch per ``poll``: the worker
reports an epoch and then waits until the driver polls again, i.e. until the driver has handled
the event (reported it to the pruner and, maybe, called ``stop``). So pruning decisions take
effect at the very next epoch - deterministically, unlike with worker processes - and
monkeypatches (e.g. counting ``TestSplit.read``) see everything the runs do.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from reglab.study.executors import Task
from reglab.study.spec import StudySpec, parse_study

torch.set_num_threads(1)

# a tiny study: digits with 150 training examples, a 16-unit MLP, 3 epochs, CPU
BASE_DOC: dict[str, Any] = {
    "data": {"name": "digits", "n_train": 150},
    "model": {"hidden": [16]},
    "train": {"epochs": 3, "optimizer": "momentum", "lr": 0.05, "batch_size": 32, "device": "cpu"},
    "seeds": 2,
}


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
        self.submitted: list[Task] = []
        self.stopped: list[str] = []
        self.payloads: list[tuple[Task, dict[str, Any]]] = []
        self.events: list[tuple[str, dict[str, float]]] = []

    def submit(self, task: Task) -> None:
        self.submitted.append(task)
        self._todo.append(task)

    def stop(self, key: str) -> None:
        self.stopped.append(key)
        self._stops.add(key)

    def _work(self, task: Task) -> None:
        def report(record: dict[str, float]) -> bool:
            self._items.put(("epoch", task.key, dict(record)))
            self._go.acquire()  # until the driver has seen this epoch
            return task.key in self._stops or "*" in self._stops

        try:
            payload = self._execute(task, report)
        except BaseException as err:  # handed to the driver like a dead worker's
            payload = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        self.payloads.append((task, payload))
        self._items.put(("done", task, payload))

    def poll(self, timeout: float) -> tuple[list[tuple[str, dict[str, float]]], list[tuple[Task, dict[str, Any]]]]:
        if self._current is None:
            if not self._todo:
                return [], []
            self._current = threading.Thread(target=self._work, args=(self._todo.popleft(),), daemon=True)
            self._current.start()
        else:
            self._go.release()  # the driver handled the previous epoch: go on
        kind, a, b = self._items.get(timeout=120)
        if kind == "epoch":
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


@pytest.fixture
def lockstep() -> Iterator[LockstepExecutor]:
    ex = LockstepExecutor()
    yield ex
    ex.close()


@pytest.fixture
def make_spec(tmp_path: Path) -> Any:
    """``make_spec(name, arms, search, **more)``: a validated tiny study writing under tmp_path."""

    def _make(name: str, arms: dict[str, Any], search: dict[str, Any] | None = None, **more: Any) -> StudySpec:
        doc: dict[str, Any] = {**BASE_DOC, "name": name, "arms": arms, "output": str(tmp_path / name), **more}
        if search is not None:
            doc["search"] = search
        return parse_study(doc, f"{name}.yaml")

    return _make
