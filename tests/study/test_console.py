"""The terminal summary: the tuning table, the typed summary's numbers, and (issue 15) a layout that
fits 80 columns without cutting names or verdicts, the headline verdict first and differences in
percentage points."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from rich.console import Console

from reglab.stats.summary import ArmTuning, StudySummary
from reglab.study.definition.spec import parse_study
from reglab.study.results.console import print_summary, print_tuning
from reglab.study.results.outcome import RunOutcome, RunStatus
from reglab.study.results.results import summarize
from reglab.study.results.storage import RunRecord

BEFORE = Path(__file__).parents[1] / "stats" / "data" / "summary-before-typed.json"
# the demo's arm names, and two longer ones a user might choose
ARMS = {
    "none": 0.0,
    "label_smooth": 0.016,
    "augment": 0.013,
    "dropout": 0.001,
    "l2+dropout": -0.003,
    "early_stopping": -0.003,
    "batch_norm": -0.025,
    "l1": -0.010,
    "dropout_then_l2": 0.0,
}


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
    console = Console(record=True, width=80)
    print_tuning({arm: ArmTuning.model_validate(t) for arm, t in tuning.items()}, console)
    lines = console.export_text().splitlines()
    l2 = next(line for line in lines if line.strip().startswith("l2"))
    assert l2.split(None, 6) == ["l2", "12", "7/4/1", "93", "2.5", "0.9877", "l2=0.000123, optimizer=adam"]
    assert "nothing to tune" in next(line for line in lines if line.strip().startswith("none"))


def test_summary_table_reads_the_typed_summary() -> None:
    summary = StudySummary.load(BEFORE)  # none completed, crazy diverged in epoch 1
    console = Console(record=True, width=80)
    print_summary(summary, console)
    text = console.export_text()
    none = next(line for line in text.splitlines() if line.startswith("none "))
    assert "baseline" in none and f"{summary.metric('none', 'test_acc').mean:.2%}" in none
    crazy = [line for line in text.splitlines() if line.startswith("crazy ")]
    assert "no runs" in crazy[0] and "no completed runs" in crazy[0] and "baseline" not in crazy[0]
    assert crazy[1].rstrip().endswith("0 (1 failed)")  # the details table's runs column
    assert "diverged: crazy seed 0 in epoch 1: non-finite training loss" in text
    assert summary.underpowered_note and summary.underpowered_note in " ".join(text.split())


def _record(arm: str, seed: int, effect: float, rng: np.random.Generator) -> RunRecord:
    test = 0.90 + effect + 0.004 * seed + float(rng.normal(0, 0.004))
    final = {"train_acc": 1.0, "val_acc": test + 0.01, "test_acc": test, "test_loss": 0.3, "gap": 1.0 - test}
    return RunRecord(arm, seed, RunOutcome(status=RunStatus.COMPLETED, final=final), 0)


def demo_like_summary() -> StudySummary:
    rng = np.random.default_rng(0)
    arms = {a: ({} if a == "none" else {"l2": 1e-4}) for a in ARMS}
    spec = parse_study({"name": "demo", "arms": arms, "seeds": 10})
    records = {(a, s): _record(a, s, e, rng) for a, e in ARMS.items() for s in range(10)}
    return summarize(spec, records)


def _render(summary: StudySummary, width: int = 80) -> str:
    console = Console(record=True, width=width, force_terminal=False)
    print_summary(summary, console)
    return console.export_text()


def test_the_summary_fits_80_columns_without_cutting_names_or_verdicts() -> None:
    summary = demo_like_summary()
    verdicts = {a: summary.arm(a).comparison.verdict for a in ARMS if a != "none"}  # type: ignore[union-attr]
    assert {"better", "worse", "no significant difference"} <= set(verdicts.values())
    text = _render(summary)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    # every arm's row is one line in each table: its full name, and in the main table its full verdict
    for arm in ARMS:
        rows = [line for line in lines if line.split(" ", 1)[0] == arm]
        assert len(rows) == 2, (arm, rows)
        expected = "baseline" if arm == "none" else verdicts[arm]
        assert rows[0].rstrip().endswith(expected), rows[0]
    # no wrapped rows: between a table's rule and its caption, every line starts with an arm name
    rules = [i for i, line in enumerate(lines) if set(line.strip()) == {"─"}]
    assert len(rules) == 2
    for r in rules:
        body = lines[r + 1 : r + 1 + len(ARMS)]
        assert [line.split(" ", 1)[0] for line in body] == summary.ranking


def test_the_headline_verdict_comes_first_and_differences_are_in_points() -> None:
    summary = demo_like_summary()
    lines = _render(summary).splitlines()
    assert lines[0].startswith("verdict: Better than the baseline (none) after Holm correction: ")
    head = " ".join(lines[:3])
    assert "label_smooth" in head and "Significantly worse: " in head and "batch_norm" in head
    main = next(line for line in lines if line.startswith("label_smooth "))
    diff = summary.arm("label_smooth").comparison.mean_diff  # type: ignore[union-attr]
    assert f"{diff * 100:+.2f} pp" in main
    assert re.search(r"[+-]\d+\.\d\d%", main) is None  # a difference is never printed as "%"
    details = [line for line in lines if line.startswith("label_smooth ")][1]
    assert re.search(r"[+-]\d+\.\d\d–[+-]\d+\.\d\d pp", details)  # the interval of the difference
    assert f"{summary.arm('label_smooth').metric('gap').mean * 100:+.2f} pp" in details


def holm_note_summary() -> StudySummary:
    """Five arms against ``none``; ``aug``'s paired differences have a t-statistic of 2.82 on 9
    degrees of freedom (p = 0.020): its unadjusted 95 % interval excludes 0, but Holm's correction
    for five comparisons (``big`` and ``worse`` have smaller p-values) raises it to 0.06."""
    z = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -0.2, 0.2, 0.0])
    z = (z - z.mean()) / z.std(ddof=1)
    base = 0.90 + 0.004 * np.arange(10)
    sd = 0.004
    diffs = {
        "none": np.zeros(10),
        "big": 0.05 + 0.002 * z,
        "worse": -0.04 - 0.002 * z,
        "aug": 2.82 * sd / np.sqrt(10) + sd * z,
        "zero": 0.0 + sd * z[::-1],
        "slight": 0.001 + sd * np.roll(z, 3),
    }
    spec = parse_study({"name": "holm", "arms": {a: {} for a in diffs}, "seeds": 10})
    records = {}
    for arm, d in diffs.items():
        for s in range(10):
            test = float(base[s] + d[s])
            final = {"train_acc": 1.0, "val_acc": test, "test_acc": test, "test_loss": 0.3, "gap": 1.0 - test}
            records[(arm, s)] = RunRecord(arm, s, RunOutcome(status=RunStatus.COMPLETED, final=final), 0)
    return summarize(spec, records)


def test_an_interval_that_excludes_zero_beside_no_significant_difference_is_explained() -> None:
    summary = holm_note_summary()
    aug = summary.arm("aug").comparison
    assert aug is not None and aug.verdict == "no significant difference"
    assert aug.ci_low is not None and aug.ci_low > 0 and aug.t_pvalue is not None and aug.t_pvalue < 0.05
    note = summary.holm_note()
    assert note is not None and "For aug the unadjusted 95 % interval" in note
    for other in ("big", "worse", "zero", "slight"):
        assert f"For {other} " not in note and f"{other} p" not in note
    assert " ".join(note.split()) in " ".join(_render(summary).split())


def test_thresholds_are_explained() -> None:
    summary = demo_like_summary()
    text = " ".join(_render(summary).split())
    assert "diagnosis thresholds: high bias when avoidable bias (training error − reference error) > 5 pp" in text
    # no classical reference for these runs: the lowest training error of any arm, said as such
    ref = summary.reference_error
    assert ref is not None and ref.source == "best arm"
    assert f"reference error {ref.value * 100:.1f} % (the lowest training 1 − accuracy of any arm" in text
    assert "high variance when train − validation gap > 3 pp" in text


def test_tuned_values_that_do_not_fit_80_columns_follow_the_table_unbroken() -> None:
    """Several tuned settings (as in benchmarks/mnist.py) used to wrap each arm's row over four lines
    and cut values in two ("augment.shift=0.0" / "74"): the rows stay one line, the values follow."""
    params = {"lr": 0.0269, "l2": 5.1e-5, "dropout": 0.011, "augment.shift": 0.074}
    tuning = {
        "none": ArmTuning(n_trials=0),
        "mlp_dropout_l2": ArmTuning(n_trials=15, n_complete=4, n_pruned=11, epochs_spent=200, best_params=params),
        "label_smoothing": ArmTuning(n_trials=15, n_complete=15, best_params={"label_smoothing": 0.137}),
    }
    doc = demo_like_summary().model_dump(mode="json")
    doc["tuning"] = {a: t.model_dump() for a, t in tuning.items()}
    lines = _render(StudySummary.model_validate(doc)).splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    assert lines[rule - 1].split()[:2] == ["arm", "trials"]  # the tuning table comes first
    assert [line.split(" ", 1)[0] for line in lines[rule + 1 : rule + 4]] == list(tuning)
    assert "…" not in "\n".join(lines)
    assert lines[rule + 4] == "tuned values:"
    assert lines[rule + 6] == "  mlp_dropout_l2: lr=0.0269, l2=5.1e-05, dropout=0.011, augment.shift=0.074"
    assert lines[rule + 7] == "  label_smoothing: label_smoothing=0.137"
    wide = _render(StudySummary.model_validate(doc), width=160)  # room enough: one table, as before
    row = next(line for line in wide.splitlines() if line.startswith("mlp_dropout_l2 "))
    assert row.rstrip().endswith("lr=0.0269, l2=5.1e-05, dropout=0.011, augment.shift=0.074")


def regression_summary() -> StudySummary:
    """Five seeds of two regression arms compared on test RMSE, whose baseline runs carry a
    classical reference (as their workers store it)."""
    rng = np.random.default_rng(1)
    records = {}
    for arm, rmse in (("none", 66.0), ("early_stopping", 56.5)):
        for s in range(5):
            final = {
                "test_rmse": rmse + rng.normal(0, 1),
                "val_rmse": rmse + 2,
                "train_rmse": rmse - 10,
                "train_r2": 0.58 if arm == "early_stopping" else 0.95,
                "val_r2": 0.43 if arm == "early_stopping" else 0.11,
                "test_r2": 0.4,
            }
            info: dict[str, object] = {"n_params": 4929}
            if arm == "none":
                info["reference"] = {"errors": {"ridge": 0.6, "hist_gradient_boosting": 0.67}, "seconds": 0.01}
            records[(arm, s)] = RunRecord(arm, s, RunOutcome(status=RunStatus.COMPLETED, final=final, info=info), 0)
    doc = {
        "name": "reg",
        "data": {"name": "diabetes"},
        "arms": {"none": {}, "early_stopping": {"early_stopping": {"patience": 8}}},
        "seeds": 5,
    }
    return summarize(parse_study(doc), records)


def test_a_regression_study_names_its_interval_scale_and_reference() -> None:
    """Issue 21: the legend said "logit scale" for RMSE, whose interval is taken on log(RMSE); the
    reference error the diagnosis measured bias against is printed beside the thresholds."""
    text = " ".join(_render(regression_summary(), width=100).split())
    assert "95% CI: Student-t over seeds on the log scale, log(x), mapped back (never below 0)." in text
    assert "logit" not in text
    assert "high bias when avoidable bias (1 − train R² − reference error) > 0.05" in text
    assert "reference error 0.600 (validation 1 − R² of ridge regression, better than HistGradientBoosting 0.670" in (
        text
    )
    assert "early_stopping" in text and "reduce regularization" not in text
