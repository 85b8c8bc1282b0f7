"""How drivers share a study: the only difference between ``reglab run`` and ``reglab worker``.

The protocol (:mod:`reglab.study.protocol.protocol`) has one tuning loop and one confirmation loop; they
ask a *budget* which trial may start next and a *ledger* which run to train next:

- ``Local*``: this process owns the study. Counters in memory, no locks, no heartbeats; trials
  and runs left RUNNING by a killed process are marked interrupted at start and redone.
- ``Shared*``: any number of workers share the study through its storage. Every decision is
  taken under the storage lock (:func:`storage_lock`) from what the storage holds; RUNNING
  trials and claimed runs carry a heartbeat, and those of a dead worker (heartbeat older than
  ``stale_after``) are marked interrupted, which gives their budget back. The time budget runs
  on the shared wall clock from the arm's first trial.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reglab.study.results.storage import HEARTBEAT, WORKER, Claim, RunStore, fail_stale, storage_lock
from reglab.tuning.studies import ASKED_AT, SECONDS_SPENT, counted

if TYPE_CHECKING:
    import optuna

    from reglab.study.results.outcome import RunOutcome

RunKey = tuple[str, int]  # (arm, seed)


@dataclass
class ArmSearch:
    """One arm's tuning study and its trial budget (None: only the time budget)."""

    arm: str
    study: optuna.Study
    budget: int | None
    timeout: float | None
    stale: int = 0  # trials found interrupted and given back


# -- tuning budgets --------------------------------------------------------------------------------


class LocalBudget:
    """Trials counted in memory; the time budget is this process's clock plus the seconds earlier
    sessions spent (stored on the study)."""

    beat: float | None = None
    idle_wait = 0.0

    def __init__(self) -> None:
        self.arms: dict[str, ArmSearch] = {}
        self.launched: dict[str, int] = {}
        self.spent_before: dict[str, float] = {}
        self.t0: dict[str, float] = {}

    def start(self, arms: dict[str, ArmSearch]) -> None:
        import optuna

        self.arms = arms
        for a in arms.values():
            trials = a.study.get_trials(deepcopy=False)
            left = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]  # a killed session's
            a.stale = fail_stale(a.study._storage, left, None)
            self.launched[a.arm] = sum(1 for t in a.study.get_trials(deepcopy=False) if counted(t))
            self.spent_before[a.arm] = float(a.study.user_attrs.get(SECONDS_SPENT, 0.0))

    def elapsed(self, arm: str) -> float:
        t0 = self.t0.get(arm)
        return self.spent_before[arm] if t0 is None else time.perf_counter() - t0

    def time_over(self, arm: str) -> bool:
        timeout = self.arms[arm].timeout
        return timeout is not None and self.elapsed(arm) >= timeout

    def _can_ask(self, arm: str) -> bool:
        budget = self.arms[arm].budget
        return (budget is None or self.launched[arm] < budget) and not self.time_over(arm)

    def ask(self, arm: str) -> optuna.Trial | None:
        if not self._can_ask(arm):
            return None
        self.t0.setdefault(arm, time.perf_counter() - self.spent_before[arm])
        self.launched[arm] += 1
        return self.arms[arm].study.ask()

    @contextlib.contextmanager
    def telling(self, arm: str, trial: optuna.Trial) -> Iterator[bool]:
        yield True
        self.save_time(arm)

    def save_time(self, arm: str) -> None:
        if arm in self.t0:
            self.arms[arm].study.set_user_attr(SECONDS_SPENT, self.elapsed(arm))

    def over(self) -> bool:
        return not any(self._can_ask(arm) for arm in self.arms)

    def keep_alive(self, trial: optuna.Trial) -> bool:
        return True


class SharedBudget:
    """Trials counted from the storage under its lock: an arm asks only while counted + running
    trials (of every worker) < its budget."""

    def __init__(
        self, storage: optuna.storages.BaseStorage, lock_name: str, worker: str, stale_after: float, beat: float
    ) -> None:
        self.storage, self.lock_name, self.worker = storage, lock_name, worker
        self.stale_after, self.beat = stale_after, beat
        self.idle_wait = min(beat, 2.0)
        self.arms: dict[str, ArmSearch] = {}
        self.arm_start: dict[str, float] = {}  # first trial's wall-clock start per arm

    def start(self, arms: dict[str, ArmSearch]) -> None:
        self.arms = arms
        for a in arms.values():
            a.study.sampler.reseed_rng()  # workers must not propose the same random points

    def _state(self, arm: str) -> tuple[int, int, bool]:
        """(counted trials, running trials, time budget over); marks stale trials first. Under the lock."""
        import optuna

        a = self.arms[arm]
        trials = a.study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        n = fail_stale(self.storage, running, self.stale_after)
        if n:
            a.stale += n
            trials = a.study.get_trials(deepcopy=False)
        starts = [
            float(t.user_attrs.get(ASKED_AT) or t.datetime_start.timestamp())
            for t in trials
            if t.datetime_start is not None
        ]
        if starts:
            self.arm_start[arm] = min(starts)
        n_running = sum(1 for t in trials if t.state == optuna.trial.TrialState.RUNNING)
        return sum(1 for t in trials if counted(t)), n_running, self.time_over(arm)

    def time_over(self, arm: str) -> bool:
        timeout, start = self.arms[arm].timeout, self.arm_start.get(arm)
        return timeout is not None and start is not None and time.time() - start >= timeout

    def _can_ask(self, arm: str, counted_: int, running: int, over: bool) -> bool:
        budget = self.arms[arm].budget
        return not over and (budget is None or counted_ + running < budget)

    def ask(self, arm: str) -> optuna.Trial | None:
        with storage_lock(self.storage, self.lock_name):
            if not self._can_ask(arm, *self._state(arm)):
                return None
            trial = self.arms[arm].study.ask()
            now = time.time()
            trial.set_user_attr(HEARTBEAT, now)
            trial.set_user_attr(ASKED_AT, now)
            trial.set_user_attr(WORKER, self.worker)
            self.arm_start.setdefault(arm, now)
            return trial

    @contextlib.contextmanager
    def telling(self, arm: str, trial: optuna.Trial) -> Iterator[bool]:
        """Yields False (store nothing) when another worker took the trial over meanwhile."""
        import optuna

        with storage_lock(self.storage, self.lock_name):
            alive = self.storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.RUNNING
            yield alive
            if alive:
                self.save_time(arm)

    def save_time(self, arm: str) -> None:
        if arm in self.arm_start:  # wall time since the arm's first trial, over all workers
            self.arms[arm].study.set_user_attr(SECONDS_SPENT, time.time() - self.arm_start[arm])

    def over(self) -> bool:
        with storage_lock(self.storage, self.lock_name):
            for arm in self.arms:
                counted_, running, over = self._state(arm)
                if running or self._can_ask(arm, counted_, running, over):
                    return False
        return True

    def keep_alive(self, trial: optuna.Trial) -> bool:
        """Refresh the trial's heartbeat; False when another worker took it over (it looked dead)."""
        import optuna

        try:
            trial.set_user_attr(HEARTBEAT, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        return True


# -- confirmation ledgers ------------------------------------------------------------------------


@dataclass
class LocalLedger:
    """The runs not yet stored, in order; each result is stored as it arrives."""

    beat: float | None = None
    idle_wait: float = 0.0
    store: RunStore | None = None
    todo: list[RunKey] = field(default_factory=list)

    def start(self, store: RunStore, keys: Sequence[RunKey]) -> tuple[int, int]:
        """(runs already stored, interrupted runs found); interrupted runs are redone."""
        self.store = store
        stale = store.recover_stale()
        done = store.done()
        self.todo = [k for k in keys if k not in done]
        return len(keys) - len(self.todo), stale

    def claim(self) -> RunKey | None:
        return self.todo.pop(0) if self.todo else None

    def settled(self) -> bool:
        return not self.todo

    def finish(self, key: RunKey, outcome: RunOutcome, value: float | None) -> bool:
        assert self.store is not None
        self.store.record(key[0], key[1], outcome, value)
        return True

    def keep_alive(self, key: RunKey) -> bool:
        return True

    def release_all(self) -> None:
        """Nothing is claimed in the storage before a result arrives."""


class SharedLedger:
    """Runs claimed from the storage (:meth:`RunStore.claim`): a RUNNING trial with a heartbeat,
    created before training under the storage lock, so two workers never train the same run."""

    def __init__(self, worker: str, stale_after: float, beat: float) -> None:
        self.worker, self.stale_after, self.beat = worker, stale_after, beat
        self.idle_wait = min(beat, 2.0)
        self.store: RunStore | None = None
        self.keys: list[RunKey] = []
        self.mine: dict[RunKey, Claim] = {}
        self.since = 0.0

    def start(self, store: RunStore, keys: Sequence[RunKey]) -> tuple[int, int]:
        # adaptive seeds start one round after another: failures since the first are not retried
        self.store, self.keys, self.since = store, list(keys), self.since or time.time()
        return store.claim_state(self.keys, self.stale_after, self.since).done, 0

    def claim(self) -> RunKey | None:
        assert self.store is not None
        c = self.store.claim(self.keys, self.worker, self.stale_after, self.since)
        if c is None:
            return None
        self.mine[(c.arm, c.seed)] = c
        return c.arm, c.seed

    def settled(self) -> bool:
        assert self.store is not None
        return self.store.claim_state(self.keys, self.stale_after, self.since).settled

    def finish(self, key: RunKey, outcome: RunOutcome, value: float | None) -> bool:
        """False, storing nothing, when another worker took the run over (this one looked dead)."""
        assert self.store is not None
        return self.store.finish(self.mine.pop(key), outcome, value)

    def keep_alive(self, key: RunKey) -> bool:
        assert self.store is not None
        return self.store.heartbeat(self.mine[key])

    def release_all(self) -> None:
        """Give the claimed runs back at once instead of after ``stale_after`` (a stopping worker)."""
        assert self.store is not None
        for claim in self.mine.values():
            with contextlib.suppress(Exception):
                self.store.release(claim)
        self.mine.clear()
