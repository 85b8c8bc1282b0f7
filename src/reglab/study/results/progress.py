"""What the protocol tells the person watching: rich progress bars for ``reglab run``, one line
per event for ``reglab worker`` (whose output is usually a log), or nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reglab.study.results.outcome import RunOutcome
    from reglab.tuning.insight import ArmTuning

Say = Callable[[str], None]


class Observer:
    """Every hook is a no-op; subclasses override what they show."""

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def tuning_started(self, budgets: dict[str, tuple[int | None, int]]) -> None:
        """Per arm: (trial budget, trials already counted)."""

    def trial_epoch(self, arm: str, key: str, record: dict[str, float], metric: str) -> None: ...

    def trial_done(self, arm: str, key: str, outcome: RunOutcome | None) -> None:
        """``outcome`` None: the result was dropped (another worker took the trial over)."""

    def tuning_ended(self, arm: str) -> None:
        """The arm's time budget is spent and none of its trials is running (other arms may go on)."""

    def tuned(self, arm: str, result: ArmTuning) -> None: ...

    def runs_started(self, total: int, done: int) -> None: ...

    def run_epoch(self, key: str, record: dict[str, float], epochs: int, metric: str) -> None: ...

    def run_done(self, key: str, outcome: RunOutcome, stored: bool, metric: str) -> None: ...

    def note(self, line: str) -> None: ...


class Lines(Observer):
    """One line per finished trial or run (``reglab worker``)."""

    def __init__(self, say: Say) -> None:
        self.say = say

    def trial_done(self, arm: str, key: str, outcome: RunOutcome | None) -> None:
        if outcome is None:
            self.say(f"  {key}: result dropped (the trial was taken over by another worker)")
        else:
            self.say(f"  {key}: {outcome.status.value}")

    def tuned(self, arm: str, result: ArmTuning) -> None:
        self.say(f"  tuned {arm}: {result.n_trials} trials ({result.n_pruned} pruned), best {result.best_params}")

    def run_done(self, key: str, outcome: RunOutcome, stored: bool, metric: str) -> None:
        if not stored:
            self.say(f"  {key}: result dropped (the run was taken over by another worker)")
            return
        shown = f"  {metric} {outcome.final[metric]:.4f}" if metric in outcome.final else ""
        self.say(f"  {key}: {outcome.status.value}{shown}")

    def note(self, line: str) -> None:
        self.say(line)


class Bars(Observer):
    """Rich progress: trials per arm while tuning; runs done/left with ETA and each active run's
    epoch while confirming. Finished bars are completed, not left half-way."""

    MAX_ACTIVE = 32

    def __init__(self, console: Any = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.arm_bars: dict[str, Any] = {}
        self.active: dict[str, Any] = {}
        self.overall: Any = None

    def __enter__(self) -> Bars:
        self.p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(None, None, None)

    def tuning_started(self, budgets: dict[str, tuple[int | None, int]]) -> None:
        for arm, (budget, done) in budgets.items():
            finished = budget is not None and done >= budget  # resumed after its search was done
            self.arm_bars[arm] = self.p.add_task(
                f"{'tuned' if finished else 'tuning'} {arm}", total=budget, completed=done
            )

    def _epoch(self, key: str, record: dict[str, float], total: int | None, metric: str) -> None:
        if key not in self.active:
            if len(self.active) >= self.MAX_ACTIVE:
                return
            self.active[key] = self.p.add_task(f"  {key}", total=total)
        step = int(record.get("step", record["epoch"]))
        shown = f" {metric} {record[metric]:.3f}" if metric in record else ""
        self.p.update(self.active[key], completed=step, description=f"  {key}{shown}")

    def _drop(self, key: str) -> None:
        if key in self.active:
            self.p.remove_task(self.active.pop(key))

    def trial_epoch(self, arm: str, key: str, record: dict[str, float], metric: str) -> None:
        self._epoch(key, record, None, metric)

    def trial_done(self, arm: str, key: str, outcome: RunOutcome | None) -> None:
        self._drop(key)
        bar = self.arm_bars[arm]
        self.p.advance(bar)
        task = self._task(bar)
        if task.total is not None and task.completed >= task.total:  # the arm has its N trials: done now,
            self._finish(arm, int(task.completed))  # while other arms are still tuning

    def tuning_ended(self, arm: str) -> None:
        bar = self.arm_bars.get(arm)
        if bar is not None:  # the time budget ended it before its trial budget
            self._finish(arm, int(self._task(bar).completed))

    def tuned(self, arm: str, result: ArmTuning) -> None:
        self._finish(arm, result.n_trials)

    def _task(self, bar: Any) -> Any:
        return next(t for t in self.p.tasks if t.id == bar)

    def _finish(self, arm: str, n: int) -> None:
        """Show the arm's bar finished at N/N ("tuned ARM"), whatever ended its search."""
        bar = self.arm_bars.get(arm)
        if bar is not None:
            self.p.update(bar, total=n, completed=n, description=f"tuned {arm}")

    def runs_started(self, total: int, done: int) -> None:
        self.overall = self.p.add_task("runs", total=total, completed=done)

    def run_epoch(self, key: str, record: dict[str, float], epochs: int, metric: str) -> None:
        self._epoch(key, record, epochs, metric)

    def run_done(self, key: str, outcome: RunOutcome, stored: bool, metric: str) -> None:
        self._drop(key)
        self.p.advance(self.overall)

    def note(self, line: str) -> None:
        self.p.console.print(line, markup=False, highlight=False)
