"""The terminal summary of a tuned study shows what each arm's tuning found and what it cost."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from reglab.stats.summary import ArmTuning, StudySummary
from reglab.study.console import print_summary, print_tuning

BEFORE = Path(__file__).parents[1] / "stats" / "data" / "summary-before-typed.json"


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
    print_tuning({arm: ArmTuning.model_validate(t) for arm, t in tuning.items()}, console)
    lines = console.export_text().splitlines()
    l2 = next(line for line in lines if line.strip().startswith("l2"))
    cells = [c.strip() for c in l2.split("│")]
    assert cells == ["l2", "12", "7/4/1", "93", "2.5", "0.9877", "l2=0.000123, optimizer=adam"]
    assert "nothing to tune" in next(line for line in lines if line.strip().startswith("none"))


def test_summary_table_reads_the_typed_summary() -> None:
    summary = StudySummary.load(BEFORE)  # none completed, crazy diverged in epoch 1
    console = Console(record=True, width=200)
    print_summary(summary, console)
    text = console.export_text()
    none = next(line for line in text.splitlines() if line.strip().startswith("1 "))
    assert "none" in none and "baseline" in none and f"{summary.metric('none', 'test_acc').mean:.2%}" in none
    crazy = next(line for line in text.splitlines() if "crazy (1 failed)" in line)
    assert "no runs" in crazy and "no completed runs" in crazy and "baseline" not in crazy
    assert "diverged: crazy seed 0 in epoch 1: non-finite training loss" in text
    assert summary.underpowered_note and summary.underpowered_note in text.replace("\n", " ")
