"""A run of the user's own function (``objective.function``) is one more kind of task: every
executor runs it as it runs a built-in run - the same outcome as running it here, every reported
epoch in order, a stop request ending it as pruned, an exception a failed outcome."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reglab.study.executors import Executor, InProcessExecutor, LocalExecutor
from reglab.study.outcome import RunOutcome, RunStatus

FNS = str(Path(__file__).resolve().parents[1] / "study")  # own_fns.py, imported by name in every worker


def _ray() -> Executor:
    from reglab.study.ray_executor import RayExecutor

    os.environ.pop("RAY_ADDRESS", None)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (FNS, old) if p)  # the local Ray's workers inherit it
    try:
        return RayExecutor(None, num_cpus=2)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


EXECUTORS: dict[str, Callable[[], Executor]] = {
    "in-process": InProcessExecutor,
    "local": lambda: LocalExecutor(2),
    "ray": _ray,
}
PARAMS = [pytest.param(n, marks=pytest.mark.servers if n == "ray" else ()) for n in EXECUTORS]


@pytest.fixture(scope="module", params=PARAMS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    if FNS not in sys.path:
        sys.path.insert(0, FNS)  # spawned worker processes get this process's sys.path
    ex = EXECUTORS[request.param]()
    yield ex
    ex.close()


def _task(arm: dict[str, Any], seed: int = 0, trial: int | None = None, function: str = "own_fns:scripted") -> Any:
    from reglab.study.protocol import make_task
    from reglab.study.spec import parse_study

    doc = {
        "name": "fn",
        "data": {"name": "digits", "n_train": 200},
        "objective": {"function": function},
        "arms": {"a": arm},
        "seeds": 1,
    }
    return make_task(parse_study(doc).arm("a"), seed, trial=trial, params={} if trial is not None else None)


def _drain(
    ex: Executor, n: int, timeout: float = 240
) -> tuple[list[tuple[str, dict[str, float]]], dict[str, RunOutcome]]:
    events: list[tuple[str, dict[str, float]]] = []
    done: dict[str, RunOutcome] = {}
    deadline = time.monotonic() + timeout
    while len(done) < n:
        assert time.monotonic() < deadline, f"only {len(done)} of {n} tasks finished in {timeout}s"
        ev, fin = ex.poll(0.1)
        events += ev
        done.update({t.key: o for t, o in fin})
    return events, done


def test_a_function_run_gives_the_same_outcome_as_running_it_here(executor: Executor) -> None:
    from reglab.study.worker import DataCache, execute_task

    task = _task({"x": 0.7, "epochs": 3}, function="own_fns:scripted")
    data_task = _task({}, seed=1, function="own_fns:uses_data")  # another key
    executor.submit(task)
    executor.submit(data_task)
    events, done = _drain(executor, 2)
    assert [int(r["epoch"]) for k, r in events if k == task.key] == [1, 2, 3]
    for t in (task, data_task):
        here = execute_task(t, lambda rec, key=None: False, DataCache())
        assert done[t.key].status is RunStatus.COMPLETED and done[t.key].final == here.final


def test_stop_ends_a_function_run_early_as_pruned(executor: Executor) -> None:
    task = _task({"x": 0.5, "epochs": 100_000}, trial=0)
    executor.submit(task)
    deadline = time.monotonic() + 600
    stopped = False
    done: dict[str, RunOutcome] = {}
    while not done:
        assert time.monotonic() < deadline
        events, fin = executor.poll(0.1)
        if events and not stopped:
            executor.stop(task.key)
            stopped = True
        done.update({t.key: o for t, o in fin})
    outcome = done[task.key]
    assert outcome.status is RunStatus.PRUNED and 1 <= outcome.epochs_spent < 100_000


def test_an_exception_in_the_function_is_a_failed_outcome(executor: Executor) -> None:
    task = _task({"raise_in": "confirm"})
    executor.submit(task)
    _, done = _drain(executor, 1)
    assert done[task.key].status is RunStatus.FAILED
    assert done[task.key].reason == "ValueError: boom in confirm at seed 0"
