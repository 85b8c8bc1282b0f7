"""Running studies end to end on tiny digits runs: outputs, the paired design, divergence, resuming,
changed studies, parallel workers on SQLite, plain-Optuna access, and the test-split guard."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from reglab.errors import ConfigError
from reglab.study import StudyResults, parse_study, run_protocol
from reglab.study.definition.spec import StudySpec

# lr 1e6 alone can leave a ReLU net dead but finite (it then "completes" at chance level); with an
# L2 penalty the weights overflow in the first epoch, for every seed
DIVERGING_ARM: dict[str, Any] = {"lr": 1.0e6, "l2": 1.0}
ARMS = {"none": {}, "l2": {"l2": 1.0e-3}, "crazy": DIVERGING_ARM}
SEEDS = 4  # 3 arms x 4 seeds = 12 runs
EPOCHS = 3


class Recorder:
    """Wraps an executor and records the tasks the driver submits."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.tasks: list[Any] = []

    def submit(self, task: Any) -> None:
        self.tasks.append(task)
        self.inner.submit(task)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def optuna_trials(spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=f"{spec.name}/runs", storage=spec.storage_url()).get_trials()


@pytest.fixture(scope="module")
def main_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> StudyResults:
    """The main study, run once for the module as ``reglab run --jobs 2`` does it: ``run_protocol``
    makes its own two-worker LocalExecutor and closes it. The pool it gets is the session's (already
    started: spawning workers and importing torch in them takes many seconds); a real own pool is
    started by the ``reglab run --jobs 2`` process of test_resume."""
    made: list[Any] = []

    class OwnPool:
        def __init__(self, jobs: int) -> None:
            made.append(jobs)

        def __getattr__(self, name: str) -> Any:
            return getattr(executor, name)

        def close(self) -> None:
            made.append("closed")

    out = tmp_path_factory.mktemp("main") / "out"
    doc = tiny_study(name="main", arms=ARMS, seeds=SEEDS, output=str(out))
    doc["train"]["epochs"] = EPOCHS
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("reglab.study.protocol.protocol.LocalExecutor", OwnPool)
        results = run_protocol(parse_study(doc), jobs=2, progress=False)
    assert made == [2, "closed"] and executor.slots == 2
    return results


def test_outputs_are_written(main_run: StudyResults) -> None:
    out, spec = main_run.output_dir, main_run.spec
    assert {p.name for p in out.iterdir()} >= {
        "config.resolved.yaml",
        "runs.csv",
        "finals.csv",
        "summary.json",
        "study.db",
    }
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["name"] == "main" and resolved["seeds"] == [0, 1, 2, 3] and resolved["baseline"] == "none"
    assert resolved["fingerprint"] == spec.fingerprint()
    assert resolved["arms"]["crazy"]["config"]["train"]["lr"] == 1.0e6
    assert resolved["storage"].startswith("sqlite:///")

    summary = json.loads((out / "summary.json").read_text())
    assert summary == main_run.summary.model_dump(mode="json")
    assert summary["n_runs"] == summary["n_expected"] == 12
    assert summary["underpowered"] is True  # 4 seeds

    runs = pd.read_csv(out / "runs.csv")
    completed = runs[runs.status == "completed"]
    # one row per arm x seed x epoch for the runs that trained; one row per diverged run
    assert len(completed) == 2 * SEEDS * EPOCHS
    assert Counter(zip(completed.arm, completed.seed, strict=True)) == {
        (a, s): EPOCHS for a in ("none", "l2") for s in range(SEEDS)
    }
    assert sorted(completed[(completed.arm == "l2") & (completed.seed == 1)].epoch) == [1, 2, 3]
    assert len(runs) == 2 * SEEDS * EPOCHS + SEEDS
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(runs.columns)
    assert "test_acc" not in runs.columns  # the test split is never looked at per epoch

    finals = pd.read_csv(out / "finals.csv")
    assert len(finals) == 12 and set(finals.arm) == set(ARMS)
    assert Counter(finals.status) == {"completed": 8, "diverged": 4}
    pd.testing.assert_frame_equal(finals, main_run.finals.reset_index(drop=True), check_dtype=False)


def test_summary_statistics_match_the_finals(main_run: StudyResults) -> None:
    s, finals = main_run.summary.model_dump(mode="json"), main_run.finals
    assert s["baseline"] == "none" and s["compare_metric"] == "test_acc"
    for arm in ("none", "l2"):
        vals = finals[finals.arm == arm].sort_values("seed").test_acc.tolist()
        m = s["arms"][arm]["metrics"]["test_acc"]
        assert m["values"] == vals and m["n"] == SEEDS
        assert m["mean"] == pytest.approx(sum(vals) / len(vals))
        assert m["ci_low"] <= m["mean"] <= m["ci_high"]
        assert s["arms"][arm]["n_completed"] == SEEDS and s["arms"][arm]["diagnosis"]["label"]
    c = s["arms"]["l2"]["comparison"]
    assert c["seeds"] == [0, 1, 2, 3] and c["underpowered"] is True and c["verdict"] == "underpowered"
    assert 0.0 <= c["p_holm"] <= 1.0 and not c["significant"]
    assert s["ranking"][-1] == "crazy"
    table = main_run.table()
    assert list(table.index) == s["ranking"] and table.loc["none", "verdict"] == "baseline"


def test_diverging_arm_is_recorded_and_the_study_completes(main_run: StudyResults) -> None:
    s = main_run.summary.model_dump(mode="json")
    failed = s["failed_runs"]
    assert sorted((f["arm"], f["seed"]) for f in failed) == [("crazy", i) for i in range(SEEDS)]
    for f in failed:
        assert f["status"] == "diverged"
        assert "non-finite" in f["reason"] and f["epoch"] == 1
    crazy = s["arms"]["crazy"]
    assert crazy["n_completed"] == 0 and crazy["n_failed"] == SEEDS
    assert crazy["comparison"] is None and crazy["metrics"]["test_acc"]["mean"] is None
    finals = main_run.finals[main_run.finals.arm == "crazy"]
    assert set(finals.status) == {"diverged"} and finals.reason.str.contains("non-finite").all()


def test_stored_as_plain_optuna_trials(main_run: StudyResults) -> None:
    trials = optuna_trials(main_run.spec)
    state = optuna.trial.TrialState
    complete = [t for t in trials if t.state == state.COMPLETE]
    assert len(trials) == 12 and len(complete) == 8
    assert Counter((t.user_attrs["arm"], t.user_attrs["seed"]) for t in trials) == {
        (a, s): 1 for a in ARMS for s in range(SEEDS)
    }
    assert {t.user_attrs["arm"] for t in complete} == {"none", "l2"}
    for t in complete:  # the trial value is the selection metric (validation, never test)
        assert t.value == t.user_attrs["final"]["val_acc"]
    for t in trials:
        if t.state != state.COMPLETE:
            assert t.state == state.FAIL and t.user_attrs["status"] == "diverged"


def test_rerun_skips_everything_and_gives_the_same_summary(main_run: StudyResults, executor: Any) -> None:
    rec = Recorder(executor)
    again = run_protocol(main_run.spec, progress=False, executor=rec)
    assert rec.tasks == []
    assert again.stats.new == 0 and again.stats.skipped == 12
    for key in ("arms", "ranking", "failed_runs", "n_runs", "seeds", "baseline"):
        assert getattr(again.summary, key) == getattr(main_run.summary, key)
    pd.testing.assert_frame_equal(again.finals, main_run.finals)
    assert len(optuna_trials(main_run.spec)) == 12  # nothing recorded twice


def test_paired_design_every_arm_sees_the_same_seeds(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> None:
    arms = {"none": {}, "twin": {}, "l2": {"l2": 1.0e-3}}  # twin: the same configuration as none
    doc = tiny_study(name="paired", arms=arms, seeds=[3, 8], output=str(tmp_path / "out"))
    doc["data"]["split_seed"] = 5
    doc["train"]["seed"] = 100
    spec = parse_study(doc)
    rec = Recorder(executor)
    res = run_protocol(spec, progress=False, executor=rec)
    assert res.stats.new == 6 and len(rec.tasks) == 6
    by_seed: dict[tuple[int, int], set[str]] = {}
    for task in rec.tasks:
        arm, seed = task.key.split("/seed")
        cfg = task.config
        assert cfg == spec.arm(arm).run_config(int(seed))
        by_seed.setdefault((cfg.data.split_seed, cfg.train.seed), set()).add(arm)
    assert by_seed == {(8, 103): set(arms), (13, 108): set(arms)}
    # same split, initialization and batch order per seed: identical arms give identical runs ...
    f = res.finals.set_index(["arm", "seed"]).drop(columns=["wall_time"])
    pd.testing.assert_frame_equal(f.loc["none"], f.loc["twin"])
    twin = res.summary.arm("twin").comparison
    assert twin is not None and twin.mean_diff == 0.0 and twin.prob_improvement == 0.5 and twin.t_pvalue == 1.0
    # ... while different seeds give different runs
    assert f.loc[("none", 3), "train_loss"] != f.loc[("none", 8), "train_loss"]


def test_changed_study_needs_new(tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any) -> None:
    out = tmp_path / "out"
    doc = tiny_study(name="changing", seeds=2, output=str(out))
    first = run_protocol(parse_study(doc), progress=False, executor=executor)
    assert first.stats.new == 4
    before = (out / "summary.json").read_text()

    changed = parse_study({**doc, "arms": {"none": {}, "l2": {"l2": 1.0e-2}}})
    with pytest.raises(ConfigError, match="--new") as e:
        run_protocol(changed, progress=False, executor=executor)
    assert "'changing'" in str(e.value) and "different configuration" in str(e.value)
    assert (out / "summary.json").read_text() == before  # nothing was touched
    with pytest.raises(ConfigError, match="--new"):
        run_protocol(parse_study({**doc, "seeds": 3}), progress=False, executor=executor)

    fresh = run_protocol(changed, progress=False, executor=executor, new=True)
    assert fresh.stats.new == 4 and fresh.stats.skipped == 0
    assert fresh.summary.fingerprint == changed.fingerprint() != first.summary.fingerprint
    trials = optuna_trials(changed)
    assert len(trials) == 4  # the old results are gone
    # the baseline arm did not change: its runs are reproduced exactly
    assert fresh.summary.metric("none", "test_acc") == first.summary.metric("none", "test_acc")
    # and resuming the changed study now works without --new
    assert run_protocol(changed, progress=False, executor=executor).stats.new == 0


def test_jobs_2_on_sqlite_stores_every_run(main_run: StudyResults, capfd: pytest.CaptureFixture[str]) -> None:
    # two worker processes finishing runs concurrently, the driver writing each to SQLite
    out, err = capfd.readouterr()
    assert "database is locked" not in out + err
    trials = optuna_trials(main_run.spec)
    assert len(trials) == 12 and all(t.state.is_finished() for t in trials)
    st = main_run.stats
    assert (st.new, st.stale, st.skipped, st.replaced, st.lost) == (12, 0, 0, 0, 0)


# -- the test split is read once, after training --------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"early_stopping": {"patience": 1, "monitor": "val_acc", "restore_best": True}},
        {"swa": {"start": 0.5}},
        {"snapshot": {"cycles": 2}, "epochs": 4},
    ],
    ids=["plain", "early-stopping", "swa", "snapshot"],
)
def test_test_split_is_read_only_by_the_final_evaluation(extra: dict[str, Any]) -> None:
    from reglab.config import RunConfig
    from reglab.data import load_data
    from reglab.training.engine import fit

    cfg = RunConfig().override({"n_train": 200, "hidden": [32], "epochs": 3, "device": "cpu", **extra})
    data = load_data(cfg.data)
    reads: list[int] = []
    result = fit(cfg, data, callbacks=[lambda rec: reads.append(data.test.reads)])
    assert result.status == "completed"
    assert reads and set(reads) == {0}
    assert data.test.reads == 1
    assert "test_acc" in result.final and all("test_acc" not in h for h in result.history)


def test_worker_reads_the_test_split_once_per_run() -> None:
    from reglab.config import RunConfig
    from reglab.study.execution import worker
    from reglab.study.results.outcome import RunOutcome, RunStatus

    cache = worker.DataCache()

    def run(cfg: RunConfig) -> tuple[RunOutcome, list[int], int]:
        reads: list[int] = []

        def on_epoch(record: dict[str, float]) -> None:
            data = cache.peek(cfg.data)
            assert data is not None
            reads.append(data.test.reads)

        outcome = worker.execute_run(cfg, on_epoch, cache=cache)
        data = cache.peek(cfg.data)
        assert data is not None
        return outcome, reads, data.test.reads

    base = RunConfig().override({"n_train": 200, "hidden": [32], "epochs": 3, "device": "cpu"})
    for _ in range(2):  # a cached dataset gets a fresh guard for every run
        outcome, reads, after = run(base)
        assert outcome.status is RunStatus.COMPLETED
        assert reads == [0, 0, 0] and after == 1
        assert outcome.test_probs is not None and outcome.test_labels is not None
    outcome, reads, after = run(base.override(DIVERGING_ARM))
    assert outcome.status is RunStatus.DIVERGED and outcome.diverged_epoch == 1
    assert after == 0  # a diverged run never evaluates on test
