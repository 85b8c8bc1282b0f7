"""The typed study summary: what ``summarize`` builds from stored runs, its JSON round trip, files
written before it existed, one-line errors for files that do not match, and its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reglab.errors import ReglabError
from reglab.stats.summary import HIST_LINEAR, HIST_LOG, ArmTuning, StudySummary
from reglab.study.definition.spec import parse_study
from reglab.study.results.outcome import PackedArray, RunOutcome, RunStatus
from reglab.study.results.storage import RunRecord

BEFORE = Path(__file__).parent / "data" / "summary-before-typed.json"  # written by reglab 3b7e244
LABELS = np.array([0, 1, 1, 0, 1])


def outcome(test_acc: float, *, probs: list[float] | None = None) -> RunOutcome:
    final = {"train_acc": 0.99, "val_acc": 0.97, "test_acc": test_acc, "test_loss": 1 - test_acc, "gap": 0.02}
    p = np.array([[1 - x, x] for x in probs]) if probs is not None else None
    return RunOutcome(
        status=RunStatus.COMPLETED,
        final=final,
        history=[{"epoch": 1, "val_acc": 0.9}, {"epoch": 2, "val_acc": 0.97}],
        info={"weight_histogram": {"linear": [1.0] * 60, "log10_abs": [2.0] * 48}, "epochs_run": 2},
        test_probs=None if p is None else PackedArray.pack(p, "float16"),
        test_labels=None if p is None else PackedArray.pack(LABELS, "int64"),
    )


def diverged() -> RunOutcome:
    return RunOutcome(status=RunStatus.DIVERGED, reason="non-finite training loss (nan) in epoch 1", diverged_epoch=1)


def study(seeds: int = 5, **doc: Any) -> tuple[Any, dict[tuple[str, int], RunRecord]]:
    """Three arms: ``l2`` clearly better than ``none`` on every seed, ``crazy`` diverged everywhere."""
    arms = {"none": {}, "l2": {"l2": 1e-3}, "crazy": {"lr": 1e6}}
    spec = parse_study({"name": "typed", "arms": arms, "seeds": seeds, **doc})
    recs: dict[tuple[str, int], RunRecord] = {}
    for s in range(seeds):
        recs[("none", s)] = RunRecord("none", s, outcome(0.90 + 0.001 * s, probs=[0.4, 0.6, 0.7, 0.2, 0.4]), 0)
        recs[("l2", s)] = RunRecord("l2", s, outcome(0.93 + 0.002 * s, probs=[0.3, 0.8, 0.6, 0.1, 0.9]), 0)
        recs[("crazy", s)] = RunRecord("crazy", s, diverged(), 0)
    return spec, recs


def summary(seeds: int = 5, **extra: Any) -> StudySummary:
    from reglab.study.results.results import summarize

    spec, recs = study(seeds)
    return summarize(spec, recs, extra)


def test_summarize_builds_the_typed_summary() -> None:
    s = summary()
    assert s.ranking == ["l2", "none", "crazy"] and [s.arm(a).rank for a in s.ranking] == [1, 2, 3]
    l2 = s.arm("l2")
    assert l2.metric("test_acc").values == pytest.approx([0.93, 0.932, 0.934, 0.936, 0.938])
    assert l2.metric("test_acc").n == 5 and l2.metric("test_acc").ci is not None
    c = l2.comparison
    assert c is not None and c.seeds == [0, 1, 2, 3, 4] and c.mean_diff == pytest.approx(0.032)
    assert c.prob_improvement == 1.0 and c.significant and c.verdict == "better"
    assert l2.ensemble_test_acc == 1.0  # averaged probabilities [.3 .8 .6 .1 .9] -> labels 0 1 1 0 1
    assert s.arm("none").ensemble_test_acc == pytest.approx(0.8)  # [.4 .6 .7 .2 .4] -> 0 1 1 0 0: 4 of 5
    h = l2.weight_histogram
    assert h is not None and h.linear == [5.0] * 60 and h.linear_range == HIST_LINEAR and h.log10_abs_range == HIST_LOG
    crazy = s.arm("crazy")
    assert crazy.n_completed == 0 and crazy.n_failed == 5 and crazy.comparison is None and crazy.diagnosis is None
    assert crazy.metric("test_acc").mean is None  # no NaN anywhere: strict JSON
    assert [(f.arm, f.seed, f.status, f.epoch) for f in s.failed_runs] == [
        ("crazy", i, "diverged", 1) for i in range(5)
    ]
    assert not s.underpowered and s.underpowered_note is None and s.tuning is None
    assert "tuning" not in s.model_dump(mode="json")  # an untuned study's file has no tuning key


def test_loss_metric_ranks_lower_first_and_calls_a_higher_loss_worse() -> None:
    from reglab.study.results.results import summarize

    spec, recs = study(metric={"compare": "test_loss"})
    s = summarize(spec, recs)
    assert not s.higher_is_better and s.ranking == ["l2", "none", "crazy"]
    c = s.arm("l2").comparison
    assert c is not None and c.mean_diff == pytest.approx(-0.032) and c.verdict == "better"


def test_json_round_trip_is_exact() -> None:
    s = summary(
        seeds=2,
        environment={"python": "3.11", "platform": "linux", "versions": {"torch": None}, "device": "cpu"},
        storage="sqlite:///x.db",
        wall_time=1.5,
        tuning={"l2": {"best_params": {"l2": 1e-3}, "best_value": 0.97, "n_trials": 4, "metric": "val_acc"}},
    )
    again = StudySummary.model_validate(json.loads(json.dumps(s.model_dump(mode="json"))))
    assert again == s
    assert StudySummary.model_validate_json(s.to_json()) == s
    c = s.arm("l2").comparison
    assert s.underpowered and c is not None and c.verdict == "underpowered"
    assert again.tuning is not None and isinstance(again.tuning["l2"], ArmTuning) and again.tuning["l2"].n_trials == 4


def test_a_summary_written_before_the_typed_summary_loads_unchanged() -> None:
    text = BEFORE.read_text(encoding="utf-8")
    s = StudySummary.load(BEFORE)
    assert s.model_dump(mode="json") == json.loads(text)
    assert s.to_json() == text  # same keys, same order, same numbers
    assert s.arm("crazy").n_failed == 1 and s.failed_runs[0].reason and s.environment is not None


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d["arms"]["none"].pop("n_completed"), "arms.none.n_completed: missing"),
        (lambda d: d.update(metric=d.pop("compare_metric")), "compare_metric: missing; metric: unexpected key"),
        (lambda d: d["arms"]["none"]["metrics"]["test_acc"].update(mean="high"), "arms.none.metrics.test_acc.mean"),
        (lambda d: d["failed_runs"][0].update(seed="x"), "failed_runs.0.seed"),
    ],
    ids=["missing", "renamed", "wrong-type", "nested-list"],
)
def test_a_file_that_does_not_match_fails_in_one_line_naming_the_key(tmp_path: Path, edit: Any, named: str) -> None:
    doc = json.loads(BEFORE.read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ReglabError) as info:
        StudySummary.load(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: not a valid reglab study summary") and named in msg
    assert "rerun the study" in msg


def test_unreadable_or_foreign_files_fail_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    for text, expected in (("{", "cannot read it"), ("[]", "not a reglab study summary"), ('{"arms": {}}', "no arms")):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ReglabError, match=expected) as info:
            StudySummary.load(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_table_rows_in_rank_order() -> None:
    t = summary().table()
    assert list(t.index) == ["l2", "none", "crazy"]
    assert list(t["verdict"]) == ["better", "baseline", "no completed runs"]
    assert t.loc["l2", "diff"] == pytest.approx(0.032) and t.loc["l2", "p_improve"] == 1.0
    assert np.isnan(t.loc["none", "diff"]) and t.loc["crazy", "n"] == 0
    assert t.loc["l2", "test_acc_mean"] == pytest.approx(0.934) and t.loc["l2", "diagnosis"] == "good fit"


def test_histogram_bins_match_the_training_ones() -> None:
    from reglab.training.metrics import HIST_LINEAR as TRAIN_LINEAR
    from reglab.training.metrics import HIST_LOG as TRAIN_LOG

    assert (HIST_LINEAR, HIST_LOG) == (TRAIN_LINEAR, TRAIN_LOG)


def test_summarizing_and_loading_never_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys, json\n"
        "from reglab.stats.summary import StudySummary\n"
        f"StudySummary.load({str(BEFORE)!r})\n"
        "import reglab.study.results.results, reglab.report.build, reglab.study.results.console\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


def test_holm_p_values_across_several_arms_are_holms_of_the_paired_t_tests() -> None:
    """Five arms against the baseline with effects from clear to none: each stored ``p_holm`` is
    Holm's adjustment (``holm``) of the five paired t-test p-values (SciPy's, computed here), and an
    arm is significant exactly when its adjusted p-value is below 0.05 - so an arm whose
    unadjusted p-value is below 0.05 can still be "no significant difference"."""
    from scipy import stats

    from reglab.stats.compare import holm
    from reglab.study.results.results import summarize

    rng = np.random.default_rng(7)
    effects = {"none": 0.0, "big": 0.03, "mid": 0.006, "small": 0.003, "zero": 0.0, "worse": -0.02}
    seeds = 10
    base = 0.9 + 0.003 * np.arange(seeds)
    values = {a: base + e + (rng.normal(0, 0.005, seeds) if a != "none" else 0.0) for a, e in effects.items()}
    spec = parse_study({"name": "holm", "arms": {a: {} for a in effects}, "seeds": seeds})
    recs = {}
    for a, vs in values.items():
        for s, v in enumerate(vs):
            final = {"train_acc": 1.0, "val_acc": float(v), "test_acc": float(v), "test_loss": 0.3}
            recs[(a, s)] = RunRecord(a, s, RunOutcome(status=RunStatus.COMPLETED, final=final), 0)
    s = summarize(spec, recs)
    others = [a for a in effects if a != "none"]
    raw = [float(stats.ttest_rel(values[a], values["none"]).pvalue) for a in others]
    expected = holm(raw)
    comparisons = {a: s.arm(a).comparison for a in others}
    assert all(c is not None for c in comparisons.values())
    assert [comparisons[a].t_pvalue for a in others] == pytest.approx(raw, rel=1e-9)  # type: ignore[union-attr]
    assert [comparisons[a].p_holm for a in others] == pytest.approx(expected, rel=1e-9)  # type: ignore[union-attr]
    for a, p in zip(others, expected, strict=True):
        assert comparisons[a].significant == (p < 0.05), (a, p)  # type: ignore[union-attr]
    # the adjustment matters here: at least one arm is significant before Holm and not after
    assert any(r < 0.05 <= p for r, p in zip(raw, expected, strict=True)), (raw, expected)
    assert {comparisons["big"].verdict, comparisons["worse"].verdict} == {"better", "worse"}  # type: ignore[union-attr]
