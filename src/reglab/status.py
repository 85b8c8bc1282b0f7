"""How a run ended, one enum for both engines (a single run's and a population member's) and for
the study's typed outcomes. No imports: the study driver reads it without torch."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    COMPLETED = "completed"  # trained to the end (or stopped early by early stopping)
    DIVERGED = "diverged"  # NaN/inf loss: a result of the configuration, kept and reported
    PRUNED = "pruned"  # stopped by the driver (pruner or time budget)
    FAILED = "failed"  # an exception or a dead worker: this run failed, the study goes on
    ERROR = "error"  # the user's problem (e.g. missing data files): the study stops

    @property
    def done(self) -> bool:
        """A finished run whose result counts (stored once, never redone)."""
        return self in (RunStatus.COMPLETED, RunStatus.DIVERGED)
