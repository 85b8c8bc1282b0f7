"""The worker's outcomes: what a tuning driver counts as budget spent."""

from __future__ import annotations

from reglab.config import RunConfig
from reglab.study.execution.worker import execute_run


def test_a_diverged_run_counts_the_epoch_it_diverged_in() -> None:
    # a coupled L2 step multiplies the weights by (1 - 2 * lr * l2) = -1999: overflow within a few steps
    cfg = RunConfig().override(
        {"n_train": 150, "hidden": (16,), "lr": 100.0, "l2": 10.0, "epochs": 20, "device": "cpu"}
    )
    outcome = execute_run(cfg, None, evaluate_test=False)
    assert outcome.status == "diverged"
    assert outcome.epochs_spent == outcome.diverged_epoch == len(outcome.history) + 1
