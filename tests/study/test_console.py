"""The terminal summary of a tuned study shows what each arm's tuning found and what it cost."""

from __future__ import annotations

from rich.console import Console

from reglab.study.console import print_tuning


def test_tuning_table_lists_tuned_values_and_budget_spent() -> None:
    tuning = {
        "none": {"n_trials": 0, "best_params": {}},
        "l2": {
            "n_trials": 12,
            "n_complete": 7,
            "n_pruned": 4,
            "n_failed": 1,
            "epochs_spent": 93,
            "seconds_spent": 150.0,
            "best_value": 0.98765,
            "best_params": {"l2": 0.000123456, "optimizer": "adam"},
        },
    }
    console = Console(record=True, width=200)
    print_tuning(tuning, console)
    lines = console.export_text().splitlines()
    l2 = next(line for line in lines if line.strip().startswith("l2"))
    cells = [c.strip() for c in l2.split("│")]
    assert cells == ["l2", "12", "7/4/1", "93", "2.5", "0.9877", "l2=0.000123, optimizer=adam"]
    assert "nothing to tune" in next(line for line in lines if line.strip().startswith("none"))
