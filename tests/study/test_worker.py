"""The worker's payloads: what a tuning driver counts as budget spent."""

from __future__ import annotations

from reglab.config import RunConfig
from reglab.study.worker import execute_run


def test_a_diverged_run_counts_the_epoch_it_diverged_in() -> None:
    # a coupled L2 step multiplies the weights by (1 - 2 * lr * l2) = -1999: overflow within a few steps
    cfg = RunConfig().override(
        {"n_train": 150, "hidden": (16,), "lr": 100.0, "l2": 10.0, "epochs": 20, "device": "cpu"}
    )
    payload = execute_run(cfg.model_dump(mode="json"), None, evaluate_test=False)
    assert payload["status"] == "diverged"
    assert payload["epochs_spent"] == payload["diverged_epoch"] == len(payload["history"]) + 1
