"""The executor conformance suite: every executor keeps the four-method contract the protocol
relies on (``submit``, ``poll``, ``stop``, ``close``), so nothing else in reglab needs to know
which one runs. Like the regularizer suite, a new executor is added to ``EXECUTORS`` and must
pass all of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from clusterlib import EXECUTOR_PARAMS, drain, make_executor, stopped_after_its_first_epoch

from reglab.config import RunConfig
from reglab.study.execution.task import Executor, Task
from reglab.study.execution.worker import execute_run
from reglab.study.results.outcome import RunOutcome, RunStatus


def base() -> RunConfig:
    """The tiny run configuration the executors train."""
    return RunConfig().override({"n_train": 200, "hidden": [16], "epochs": 3, "batch_size": 32, "device": "cpu"})


def slow() -> RunConfig:
    return base().override({"n_train": 1000, "hidden": [256, 256], "batch_size": 8, "epochs": 30})


@pytest.fixture(scope="module", params=EXECUTOR_PARAMS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    ex = make_executor(request.param)
    yield ex
    ex.close()


def test_has_slots(executor: Executor) -> None:
    assert isinstance(executor.slots, int) and executor.slots >= 1


def test_a_run_gives_the_same_outcome_as_training_here(executor: Executor) -> None:
    executor.submit(Task("a/seed0", base()))
    events, done = drain(executor, 1)
    outcome = done["a/seed0"]
    assert isinstance(outcome, RunOutcome) and outcome.status is RunStatus.COMPLETED
    assert [int(r["epoch"]) for k, r in events if k == "a/seed0"] == [1, 2, 3]  # every epoch, in order
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every executor's workers do
    try:
        here = execute_run(base())
    finally:
        torch.set_num_threads(threads)

    def untimed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "time"} for r in records]

    assert outcome.final == here.final  # deterministic wherever it runs
    assert untimed(outcome.history) == untimed(here.history)
    assert outcome.test_probs is not None  # a confirmation run reads the test split once


def test_a_tuning_task_never_returns_test_metrics(executor: Executor) -> None:
    executor.submit(Task("a/trial0", base(), evaluate_test=False))
    _, done = drain(executor, 1)
    outcome = done["a/trial0"]
    assert outcome.status is RunStatus.COMPLETED and "val_acc" in outcome.final
    assert not any(k.startswith("test_") for k in outcome.final) and outcome.test_probs is None


def test_runs_count_their_test_split_reads_where_they_train(executor: Executor) -> None:
    """A read counter in the driver does not see worker processes or Ray nodes: each run counts
    its own reads (``RunOutcome.test_reads``) - none for tuning trials, one for a confirmation run."""
    executor.submit(Task("a/trial0", base(), evaluate_test=False))
    executor.submit(Task("a/trial1", base(), folds=2, evaluate_test=False))
    executor.submit(Task("a/seed0", base()))
    _, done = drain(executor, 3)
    assert all(o.status is RunStatus.COMPLETED for o in done.values()), {k: o.reason for k, o in done.items()}
    assert {k: o.test_reads for k, o in done.items()} == {"a/trial0": 0, "a/trial1": 0, "a/seed0": 1}


def test_stop_ends_a_task_early_as_pruned(executor: Executor) -> None:
    outcome = stopped_after_its_first_epoch(executor, Task("slow/trial0", slow(), evaluate_test=False))
    assert outcome.status is RunStatus.PRUNED
    assert 1 <= outcome.epochs_spent < 30


def test_a_failing_run_is_a_failed_outcome_not_an_exception(executor: Executor) -> None:
    bad = base().override({"batch_norm": True, "batch_size": 1})  # batch norm cannot train on one example
    executor.submit(Task("bn/seed0", bad))
    executor.submit(Task("ok/seed0", base()))
    _, done = drain(executor, 2)
    assert done["ok/seed0"].status is RunStatus.COMPLETED
    assert done["bn/seed0"].status is RunStatus.FAILED and "ValueError" in (done["bn/seed0"].reason or "")


def test_many_tasks_each_finish_exactly_once(executor: Executor) -> None:
    keys = [f"a/seed{i}" for i in range(4)]
    for i, k in enumerate(keys):
        executor.submit(Task(k, base().override({"seed": i})))
    events, done = drain(executor, len(keys))
    assert sorted(done) == sorted(keys)
    assert {k for k, _ in events} == set(keys)
    finals: dict[str, Any] = {k: o.final["train_loss"] for k, o in done.items()}
    assert len(set(finals.values())) == len(keys)  # other seeds, other runs
