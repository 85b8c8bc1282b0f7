"""A run of the user's own function (``objective.function``) is one more kind of task: every
executor runs it as it runs a built-in run - the same outcome as running it here, every reported
epoch in order, a stop request ending it as pruned, an exception a failed outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterlib import EXECUTOR_PARAMS, drain, make_executor, stopped_after_its_first_epoch

from reglab.study.execution.task import Executor
from reglab.study.results.outcome import RunStatus

FNS = str(Path(__file__).resolve().parents[1] / "study")  # own_fns.py, imported by name in every worker


@pytest.fixture(scope="module", params=EXECUTOR_PARAMS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    ex = make_executor(request.param, extra_path=FNS)
    yield ex
    ex.close()


def _task(arm: dict[str, Any], seed: int = 0, trial: int | None = None, function: str = "own_fns:scripted") -> Any:
    from reglab.study.definition.spec import parse_study
    from reglab.study.protocol.protocol import make_task

    doc = {
        "name": "fn",
        "data": {"name": "digits", "n_train": 200},
        "objective": {"function": function},
        "arms": {"a": arm},
        "seeds": 1,
    }
    return make_task(parse_study(doc).arm("a"), seed, trial=trial, params={} if trial is not None else None)


def test_a_function_run_gives_the_same_outcome_as_running_it_here(executor: Executor) -> None:
    from reglab.study.execution.executors import execute_task
    from reglab.study.execution.worker import DataCache

    task = _task({"x": 0.7, "epochs": 3}, function="own_fns:scripted")
    data_task = _task({}, seed=1, function="own_fns:uses_data")  # another key
    executor.submit(task)
    executor.submit(data_task)
    events, done = drain(executor, 2)
    assert [int(r["epoch"]) for k, r in events if k == task.key] == [1, 2, 3]
    for t in (task, data_task):
        here = execute_task(t, lambda rec, key=None: False, DataCache())
        assert done[t.key].status is RunStatus.COMPLETED and done[t.key].final == here.final


def test_stop_ends_a_function_run_early_as_pruned(executor: Executor) -> None:
    outcome = stopped_after_its_first_epoch(executor, _task({"x": 0.5, "epochs": 100_000}, trial=0))
    assert outcome.status is RunStatus.PRUNED and 1 <= outcome.epochs_spent < 100_000


def test_an_exception_in_the_function_is_a_failed_outcome(executor: Executor) -> None:
    task = _task({"raise_in": "confirm"})
    executor.submit(task)
    _, done = drain(executor, 1)
    assert done[task.key].status is RunStatus.FAILED
    assert done[task.key].reason == "ValueError: boom in confirm at seed 0"
