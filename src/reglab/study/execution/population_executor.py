"""Populations through any executor: tasks that can train together are grouped into one job.

:class:`PopulationExecutor` wraps an executor (local processes, in-process, Ray) and speaks the
same four methods. It advertises ``inner.slots * size`` slots, so the driver hands it a whole
round of tasks at once; it buffers them until the next ``poll`` and groups those with equal
:func:`reglab.training.population.population_key` (same data, architecture, batch size, epochs;
members differ only in seed and per-member scalars; the same ``evaluate_test``) into
:class:`PopulationTask` s of at most ``size`` members - split further while workers would
otherwise idle. One worker process of the inner executor trains a population task
(:func:`execute_population`, called by :func:`reglab.study.execution.executors.execute_task`) with
:func:`reglab.training.population.fit_population`; its result carries each member's outcome and is
fanned out here, so the driver sees one finished outcome per task it submitted, stored exactly as
single runs are. Tasks that cannot join a population (``train.population: off``, the lstm,
mixup, cross-validation folds, ...) pass through to the inner executor unchanged; the first of
each reason gets a one-line note.

Per-member epochs and stop requests travel under each member's own key: the worker reports a
member's epoch as ``report(record, member_key)``, so every executor's reporting channel files the
event under the member and answers the member's stop request (pruning) without knowing populations.
"""

from __future__ import annotations

import functools
import math
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reglab.study.execution.task import Events, Executor, Finished, Task
from reglab.study.results.outcome import RunOutcome, RunStatus

if TYPE_CHECKING:
    from reglab.config import RunConfig
    from reglab.study.execution.worker import DataCache, Report


@dataclass(frozen=True)
class PopulationTask(Task):
    """Several tasks trained as one population by one worker (its ``members``). ``key`` names the
    job; ``config`` is the first member's (for anything that reads a task's config)."""


def _as_member(report: Report, member: str, record: dict[str, float], key: str | None = None) -> bool:
    return bool(report(record, key or member))


def execute_population(task: Task, report: Report, cache: DataCache) -> RunOutcome:
    """Train a population task in this worker and return one outcome whose ``members`` maps each
    member's key to its outcome (completed | diverged | pruned | failed | error). A
    population the data turn out not to allow (streamed data, another task) trains its members one
    at a time here, with a note."""
    from reglab.errors import ReglabError, from_user_code
    from reglab.study.execution.worker import execute_single, run_outcome
    from reglab.training.population import PopulationRefused, fit_population

    members = task.members
    outcomes: dict[str, RunOutcome] = {}
    note = None

    def member_report(i: int, record: dict[str, float]) -> bool:
        return bool(report(record, members[i].key))

    try:
        data = cache.get_many([m.config.data for m in members])
        results = fit_population(
            [m.config for m in members],
            data,  # streamed splits are refused inside
            on_epoch=member_report,
            evaluate_test=task.evaluate_test,
            keep_model=any(m.save_to for m in members),
        )
        for m, d, result in zip(members, data, results, strict=True):
            if m.save_to is not None and result.status is RunStatus.COMPLETED and result.model is not None:
                from reglab.study.results.saved_models import save_run_model

                save_run_model(result.model, m.save_to, m.config, d, result.final)
            outcomes[m.key] = run_outcome(result, d, m.reference).model_copy(update={"test_reads": d.test.reads})
    except PopulationRefused as why:
        note = f"population of {len(members)} ({members[0].key}, ...) trained one at a time: {why}"
        for m in members:
            outcomes[m.key] = execute_single(m, functools.partial(_as_member, report, m.key), cache)
    except ReglabError as err:  # the user's problem (e.g. missing data files): stop the study
        outcomes = {m.key: RunOutcome(status=RunStatus.ERROR, reason=str(err)) for m in members}
    except BaseException as err:  # a bug, a resource problem, the model's sys.exit: these runs failed
        if not from_user_code(err):
            raise
        tb = traceback.format_exc(limit=3)[-2000:]
        outcomes = {m.key: RunOutcome.failed(f"{type(err).__name__}: {err}", traceback=tb) for m in members}
    return RunOutcome(status=RunStatus.COMPLETED, members=outcomes, note=note)


class PopulationExecutor:
    """Group population-capable tasks into population jobs of ``inner`` (see the module docstring).
    ``size``: most members per population; ``say``: where one-line notes go (fallbacks)."""

    def __init__(self, inner: Executor, size: int = 32, say: Callable[[str], None] | None = None) -> None:
        self.inner = inner
        self.size = max(1, size)
        self.slots = inner.slots * self.size
        self.say = say
        self.populations: list[PopulationTask] = []  # submitted so far (inspection, tests)
        self.notes: list[str] = []
        self._buffer: list[Task] = []
        self._stopped: set[str] = set()
        self._reasons: set[str] = set()
        self._keys: dict[str, str] = {}  # population job -> its members' population key
        self._refused: set[str] = set()  # keys whose population a worker could not build (e.g. your model's buffers)

    def submit(self, task: Task) -> None:
        self._buffer.append(task)

    def stop(self, key: str) -> None:
        self._stopped.add(key)
        self.inner.stop(key)  # a member's key reaches it through the population's reports

    def _note(self, line: str) -> None:
        self.notes.append(line)
        if self.say is not None:
            self.say(line)

    def _flush(self) -> None:
        """Group the buffered tasks and submit the groups (and the loners) to the inner executor."""
        from reglab.training.population_rules import population_check

        if not self._buffer:
            return
        groups: dict[tuple[str, bool], list[Task]] = {}
        alone: list[Task] = []
        for t in self._buffer:
            key, why = population_check(t.config)
            if t.folds:
                key, why = None, "cross-validation folds (search.cv)"
            if key in self._refused:  # a worker found it out: the rest train alone, in parallel
                alone.append(t)
                continue
            if key is None:
                alone.append(t)
                if t.config.train.population == "auto" and why and why not in self._reasons:
                    self._reasons.add(why)
                    self._note(f"  {t.key}: trained alone, not in a population: {why}")
                continue
            groups.setdefault((key, t.evaluate_test), []).append(t)
        self._buffer.clear()
        chunks: list[list[Task]] = []
        for tasks in groups.values():
            size = min(self.size, *(t.config.train.population_size for t in tasks))
            chunks += _split(tasks, math.ceil(len(tasks) / size))
        # more jobs than workers while a population could be halved: keep every worker busy
        while len(chunks) + len(alone) < self.inner.slots:
            big = max(chunks, key=len, default=[])
            if len(big) < 4:
                break
            chunks.remove(big)
            chunks += _split(big, 2)
        for chunk in chunks:
            if len(chunk) == 1:
                alone.append(chunk[0])
                continue
            pop = PopulationTask(
                f"population{len(self.populations)}[{chunk[0].key}+{len(chunk) - 1}]",
                chunk[0].config,
                evaluate_test=chunk[0].evaluate_test,
                members=tuple(chunk),
            )
            self.populations.append(pop)
            self._keys[pop.key] = population_check(chunk[0].config)[0] or ""
            self.inner.submit(pop)
        for t in alone:
            self.inner.submit(t)
        for key in self._stopped:  # asked to stop before it was handed on
            self.inner.stop(key)

    def poll(self, timeout: float) -> tuple[Events, Finished]:
        self._flush()
        events, finished = self.inner.poll(timeout)
        out: Finished = []
        for task, outcome in finished:
            members = task.members
            if not members:
                out.append((task, outcome))
                continue
            per = outcome.members if outcome.status is RunStatus.COMPLETED else None
            if outcome.note:  # trained one at a time: the worker could not build the population
                self._note(f"  {outcome.note}")
                self._refused.add(self._keys.get(task.key, ""))
            for m in members:
                got = per.get(m.key) if per is not None else None
                if got is None:  # the whole job failed (e.g. its worker process died)
                    got = outcome if outcome.status is not RunStatus.COMPLETED else RunOutcome.failed("no result")
                if outcome.attempts is not None:
                    got = got.model_copy(update={"attempts": outcome.attempts})
                out.append((m, got))
        for task, _ in out:
            self._stopped.discard(task.key)
        return events, out

    def close(self) -> None:
        self._buffer.clear()
        self.inner.close()


def with_populations(ex: Executor, configs: Iterable[RunConfig], say: Callable[[str], None] | None = None) -> Executor:
    """``ex`` wrapped in a :class:`PopulationExecutor` when any of ``configs`` (a study's arms)
    asks for populations (``train.population: auto``; its ``population_size`` bounds them), else
    ``ex`` itself - so a study without populations runs exactly as before."""
    sizes = [c.train.population_size for c in configs if c.train.population == "auto"]
    return PopulationExecutor(ex, max(sizes), say) if sizes else ex


def _split(tasks: list[Task], parts: int) -> list[list[Task]]:
    """``tasks`` in ``parts`` consecutive chunks whose sizes differ by at most one."""
    parts = max(1, min(parts, len(tasks)))
    q, r = divmod(len(tasks), parts)
    out, i = [], 0
    for k in range(parts):
        n = q + (1 if k < r else 0)
        out.append(tasks[i : i + n])
        i += n
    return out
