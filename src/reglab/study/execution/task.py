"""The task an executor runs, and the four methods through which the driver talks to an executor
(:class:`Executor`: ``submit``, ``poll``, ``stop``, ``close``); the executors themselves are in
:mod:`reglab.study.execution.executors`, :mod:`~reglab.study.execution.population_executor` and
:mod:`~reglab.study.execution.ray_executor`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from reglab.study.results.outcome import RunOutcome

if TYPE_CHECKING:
    from reglab.config import RunConfig
    from reglab.study.definition.objective import FunctionCall

# (task key, epoch record) -> True to stop that task (pruning)
EpochEvent = Callable[[str, dict[str, float]], bool | None]
Events = list[tuple[str, dict[str, float]]]
Finished = list[tuple["Task", RunOutcome]]


@dataclass(frozen=True)
class Task:
    """One run to train, or several trained together (``members``: a population). Built in one
    place only (``reglab.study.protocol.protocol.make_task``), which decides the key, the seed and
    whether the test split may be read; populations are grouped from such tasks
    (:mod:`reglab.study.execution.population_executor`)."""

    key: str  # unique id, e.g. "l2/seed3" or "l2/trial7"
    config: RunConfig
    folds: int | None = None  # K-fold cross-validation on the train split instead of one val split
    evaluate_test: bool = True  # False for tuning trials: the test split is never read
    save_to: str | None = None  # confirmation runs of save_models: best|all: the model file to write
    reference: bool = False  # also fit the classical reference models on this run's splits (study.reference)
    function: FunctionCall | None = None  # a run of the user's function (objective.function), not of the engine
    members: tuple[Task, ...] = ()  # a population: the tasks one worker trains together; () for a single run


class Executor(Protocol):
    slots: int

    def submit(self, task: Task) -> None: ...

    def poll(self, timeout: float) -> tuple[Events, Finished]: ...

    def stop(self, key: str) -> None: ...

    def close(self) -> None: ...


def run_tasks(
    executor: Executor, tasks: Sequence[Task], on_epoch: EpochEvent | None = None
) -> Iterator[tuple[Task, RunOutcome]]:
    """Run ``tasks`` keeping every slot busy; yield (task, outcome) as each finishes (benchmarks)."""
    todo = list(tasks)[::-1]
    running = 0
    while todo or running:
        while todo and running < executor.slots:
            executor.submit(todo.pop())
            running += 1
        events, finished = executor.poll(0.1)
        for key, record in events:
            if on_epoch is not None and on_epoch(key, record):
                executor.stop(key)
        for item in finished:
            running -= 1
            yield item
