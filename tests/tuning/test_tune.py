"""The tuning protocol end to end on tiny digits runs: equal budgets, no test reads while tuning,
pruning, resuming, stale trials, plain-Optuna storage, cross-validation, grids, and the tuned
values reaching the confirmation runs.

Tasks run in this process (``LockstepExecutor`` in conftest.py), so ``TestSplit.read`` can be
counted and pruning decisions take effect deterministically at the next epoch.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import optuna
import pytest
import yaml

import reglab.study.protocol.coordination as coordination_mod
import reglab.study.protocol.protocol as protocol_mod
import reglab.tuning.studies as studies_mod
from reglab.study.definition.spec import StudySpec
from reglab.study.execution.worker import execute_run
from reglab.study.protocol.protocol import run_protocol, tune_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

LR = {"low": 1e-3, "high": 0.5, "log": True}


def trials_of(spec: StudySpec, arm: str) -> list[optuna.trial.FrozenTrial]:
    """The arm's tuning trials, read back with plain Optuna (as optuna-dashboard would)."""
    study = optuna.load_study(study_name=f"{spec.name}/tune/{arm}", storage=spec.storage_url())
    return study.get_trials(deepcopy=False)


def with_trials(spec: StudySpec, trials: int) -> StudySpec:
    assert spec.search is not None
    return spec.model_copy(update={"search": spec.search.model_copy(update={"trials": trials})})


# -- equal budgets -------------------------------------------------------------------------------


def test_every_arm_gets_the_same_budget_and_sampler_seed(make_spec: Any, lockstep: Any, monkeypatch: Any) -> None:
    seeds: list[tuple[str, int]] = []
    real = studies_mod.create_sampler

    def spy(name: str, seed: int, grid: Any = None) -> Any:
        seeds.append((name, seed))
        return real(name, seed, grid)

    monkeypatch.setattr(studies_mod, "create_sampler", spy)
    spec = make_spec(
        "budget",
        {"none": {}, "l2": {"l2": 1e-3}, "drop": {"dropout": 0.2}},
        {"sampler": "random", "trials": 4, "seed": 7, "space": {"lr": LR}},
    )
    results = tune_study(spec, executor=lockstep, progress=False)

    assert seeds == [("random", 7)] * 3
    assert [r.n_trials for r in results.values()] == [4, 4, 4]
    lrs = {arm: [t.params["lr"] for t in r.trials] for arm, r in results.items()}
    assert lrs["none"] == lrs["l2"] == lrs["drop"]  # same seed, same space: the same draws
    assert len(set(lrs["none"])) == 4
    for arm in spec.arms:
        assert len(trials_of(spec, arm)) == 4
    # every tuning run uses the tuning seed (1000 + search.seed) for split and initialization
    cfgs = [t.config for t in lockstep.submitted]
    assert {(c.data.split_seed, c.train.seed) for c in cfgs} == {(1007, 1007)}
    assert len(lockstep.submitted) == 12


def test_arms_with_different_spaces_still_get_equal_trials(make_spec: Any, lockstep: Any) -> None:
    spec = make_spec(
        "budget2",
        {"l2": {"l2": "tune"}, "drop": {"dropout": "tune", "lr": LR}, "fixed": {"l2": 1e-4}},
        {"sampler": "tpe", "trials": 3},
    )
    results = tune_study(spec, executor=lockstep, progress=False)
    assert results["l2"].n_trials == results["drop"].n_trials == 3
    assert set(results["drop"].best_params) == {"dropout", "lr"}
    # nothing to tune: confirmed as written, no budget spent
    assert results["fixed"].n_trials == 0 and results["fixed"].best_params == {}


# -- the test split ------------------------------------------------------------------------------


def test_tuning_never_reads_the_test_split_and_confirmation_uses_tuned_values(
    make_spec: Any, lockstep: Any, test_reads: dict[str, int]
) -> None:
    spec = make_spec(
        "proto",
        {"none": {}, "l2": {"l2": {"low": 1e-4, "high": 1e-1, "log": True}}},
        {"sampler": "random", "trials": 3},
    )
    results = run_protocol(spec, executor=lockstep, progress=False)

    assert (test_reads["tuning_phases"], test_reads["tuning"]) == (1, 0)
    assert test_reads["total"] == len(spec.arms) * len(spec.seed_list)  # one read per confirmation run
    tuning_tasks = [t for t in lockstep.submitted if "/trial" in t.key]
    confirm_tasks = [t for t in lockstep.submitted if "/seed" in t.key]
    assert len(tuning_tasks) == 3 and len(confirm_tasks) == 4
    assert not any(t.evaluate_test for t in tuning_tasks) and all(t.evaluate_test for t in confirm_tasks)
    for task, outcome in lockstep.payloads:
        has_test = any(k.startswith("test_") for k in outcome.final) or outcome.test_probs is not None
        assert has_test == ("/seed" in task.key), task.key

    # summary.json: per-arm tuning info
    summary = json.loads((spec.output_dir() / "summary.json").read_text())
    tuning = summary["tuning"]
    assert results.summary.model_dump(mode="json")["tuning"] == tuning
    best_l2 = tuning["l2"]["best_params"]["l2"]
    assert set(tuning["l2"]["best_params"]) == {"l2"}
    assert (tuning["l2"]["n_trials"], tuning["l2"]["epochs_spent"]) == (3, 3 * 3)
    assert (tuning["none"]["n_trials"], tuning["none"]["epochs_spent"], tuning["none"]["best_params"]) == (0, 0, {})
    trial_values = [
        t["value"] for t in json.loads((spec.output_dir() / "tuning.json").read_text())["arms"]["l2"]["trials"]
    ]
    assert tuning["l2"]["best_value"] == max(trial_values)

    # the confirmation ran the tuned value, and says so in config.resolved.yaml
    resolved = yaml.safe_load((spec.output_dir() / "config.resolved.yaml").read_text())
    assert resolved["arms"]["l2"]["config"]["regularization"]["l2"] == best_l2
    assert resolved["arms"]["none"]["config"]["regularization"]["l2"] == 0.0
    for t in confirm_tasks:
        assert t.config.regularization.l2 == (best_l2 if t.key.startswith("l2/") else 0.0)

    # the storage is plain Optuna: tuning and confirmation studies side by side
    names = set(optuna.get_all_study_names(spec.storage_url()))
    assert {"proto/tune/l2", "proto/tune/none", "proto/runs"} <= names
    study = optuna.load_study(study_name="proto/tune/l2", storage=spec.storage_url())
    assert len(study.trials) == 3 and study.best_params == {"l2": best_l2}
    assert study.user_attrs["arm"] == "l2" and study.user_attrs["fingerprint"]


# -- pruning -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tuning_in_worker_processes_never_reads_the_test_split(make_spec: Any) -> None:
    """``test_reads`` (above) counts in this process only; runs in worker processes count their own
    reads where they train and store them with the trial or run (``RunOutcome.test_reads``): 0 for
    every tuning trial (K-fold ones too), exactly 1 for every confirmation run."""
    from reglab.study.execution.executors import LocalExecutor

    arms = {"none": {}, "l2": {"l2": {"low": 1e-4, "high": 1e-1, "log": True}}}
    ex = LocalExecutor(2)
    try:
        for name, cv in (("pool", None), ("pool-cv", 2)):
            spec = make_spec(name, arms, {"sampler": "random", "trials": 3, "cv": cv})
            run_protocol(spec, executor=ex, progress=False)
            tuning = trials_of(spec, "l2")
            assert [t.user_attrs["status"] for t in tuning] == ["completed"] * 3
            assert [t.user_attrs["test_reads"] for t in tuning] == [0, 0, 0], name
            runs = optuna.load_study(study_name=f"{name}/runs", storage=spec.storage_url()).get_trials()
            assert [t.user_attrs["test_reads"] for t in runs] == [1] * 4, name
    finally:
        ex.close()


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruned_trials_are_pruned_not_failed(make_spec: Any, lockstep: Any, pruner: str) -> None:
    spec = make_spec(
        f"prune-{pruner}",
        {"a": {}},
        {
            "sampler": "random",
            "trials": 8,
            "pruner": pruner,
            "startup_trials": 2,
            "space": {"lr": {"low": 1e-4, "high": 1.0, "log": True}},
        },
        train={"epochs": 6, "optimizer": "momentum", "batch_size": 32, "device": "cpu"},
    )
    r = tune_study(spec, executor=lockstep, progress=False)["a"]
    states = [t.state for t in trials_of(spec, "a")]
    assert len(states) == r.n_trials == 8
    assert r.n_pruned >= 1 and r.n_failed == 0
    assert states.count(optuna.trial.TrialState.PRUNED) == r.n_pruned
    assert r.n_complete + r.n_pruned == 8
    pruned = [t for t in r.trials if t.state == "PRUNED"]
    assert all(t.status == "pruned" and 1 <= t.epochs_spent < 6 and t.value is None for t in pruned)
    # the driver asked exactly the pruned runs to stop, and they stopped at once
    assert sorted(lockstep.stopped) == sorted(f"a/trial{t.number}" for t in pruned)
    assert r.epochs_spent == 6 * r.n_complete + sum(t.epochs_spent for t in pruned) < 6 * 8
    doc = json.loads((spec.output_dir() / "tuning.json").read_text())["arms"]["a"]
    assert (doc["n_pruned"], doc["n_trials"], doc["n_failed"]) == (r.n_pruned, 8, 0)


class _LateStops:
    """An executor on which a run always finishes before the driver sees its epochs (a busy
    machine, a slow channel): every epoch and the result arrive in the same poll, stops too late."""

    slots = 1

    def __init__(self) -> None:
        from reglab.study.execution.worker import DataCache

        self.cache = DataCache()
        self.done: list[tuple[Any, Any]] = []
        self.events: list[tuple[str, dict[str, float]]] = []

    def submit(self, task: Any) -> None:
        from reglab.study.execution.executors import execute_task

        def report(record: dict[str, float], key: str | None = None) -> bool:
            self.events.append((key or task.key, dict(record)))
            return False

        self.done.append((task, execute_task(task, report, self.cache)))

    def stop(self, key: str) -> None:
        pass

    def poll(self, timeout: float) -> tuple[list[Any], list[Any]]:
        events, done, self.events, self.done = self.events, self.done, [], []
        return events, done

    def close(self) -> None:
        pass


def test_a_trial_the_pruner_stopped_is_pruned_however_late_the_stop_lands(make_spec: Any, lockstep: Any) -> None:
    """The same pruning decisions, trial states and stored steps as when every stop lands at once."""
    search = {"sampler": "random", "trials": 8, "pruner": "median", "startup_trials": 2, "space": {"lr": LR}}
    train = {"epochs": 6, "optimizer": "momentum", "batch_size": 32, "device": "cpu"}
    at_once, late = (
        make_spec("prune-now", {"a": {}}, search, train=train),
        make_spec("prune-late", {"a": {}}, search, train=train),
    )
    tune_study(at_once, executor=lockstep, progress=False)
    r = tune_study(late, executor=_LateStops(), progress=False)["a"]  # type: ignore[arg-type]
    assert r.n_pruned >= 1

    def states(spec: StudySpec) -> list[tuple[str, list[int], float | None]]:
        return [(t.state.name, sorted(t.intermediate_values), t.value) for t in trials_of(spec, "a")]

    assert states(late) == states(at_once)


# -- resuming ------------------------------------------------------------------------------------


def test_raising_the_budget_resumes_and_keeps_finished_trials(make_spec: Any, lockstep: Any) -> None:
    spec3 = make_spec("resume", {"a": {"l2": "tune"}}, {"sampler": "tpe", "trials": 3, "space": {"lr": LR}})
    first = tune_study(spec3, executor=lockstep, progress=False)["a"]
    assert first.n_trials == 3
    spec5 = with_trials(spec3, 5)
    assert protocol_mod.arm_fingerprint(spec5, spec5.arm("a")) == protocol_mod.arm_fingerprint(spec3, spec3.arm("a"))
    second = tune_study(spec5, executor=lockstep, progress=False)["a"]

    assert second.n_trials == 5 and len(trials_of(spec5, "a")) == 5
    assert len(lockstep.submitted) == 5  # 3 + 2: nothing was redone
    assert [(t.number, t.params, t.value) for t in second.trials[:3]] == [
        (t.number, t.params, t.value) for t in first.trials
    ]
    # and running it again does nothing
    assert tune_study(spec5, executor=lockstep, progress=False)["a"].n_trials == 5
    assert len(lockstep.submitted) == 5


def test_a_changed_search_needs_new(make_spec: Any, lockstep: Any) -> None:
    from reglab.errors import ConfigError

    spec = make_spec("changed", {"a": {"l2": "tune"}}, {"sampler": "random", "trials": 2})
    tune_study(spec, executor=lockstep, progress=False)
    other = make_spec(
        "changed", {"a": {"l2": {"low": 1e-4, "high": 1e-2, "log": True}}}, {"sampler": "random", "trials": 2}
    )
    with pytest.raises(ConfigError, match="different search"):
        tune_study(other, executor=lockstep, progress=False)
    assert tune_study(other, executor=lockstep, progress=False, new=True)["a"].n_trials == 2
    assert all(t.params["l2"] <= 1e-2 for t in trials_of(other, "a"))


def test_a_stale_running_trial_is_marked_interrupted_and_not_counted(make_spec: Any, lockstep: Any) -> None:
    spec = make_spec("stale", {"a": {"l2": "tune"}}, {"sampler": "random", "trials": 2})
    tune_study(spec, executor=lockstep, progress=False)
    # a driver killed mid-trial leaves a RUNNING trial behind
    study = optuna.load_study(study_name="stale/tune/a", storage=spec.storage_url())
    ghost = study.ask()
    assert study.trials[ghost.number].state == optuna.trial.TrialState.RUNNING

    r = tune_study(with_trials(spec, 3), executor=lockstep, progress=False)["a"]
    trials = trials_of(spec, "a")
    assert len(trials) == 4  # 2 done + the interrupted one + 1 new
    stale = trials[ghost.number]
    assert stale.state == optuna.trial.TrialState.FAIL and stale.user_attrs["status"] == "interrupted"
    assert r.n_trials == 3 and r.n_failed == 0 and r.n_interrupted_redone == 1
    assert ghost.number not in [t.number for t in r.trials]
    assert len(lockstep.submitted) == 3


# -- cross-validation ----------------------------------------------------------------------------


def test_cv_runs_k_folds_per_trial_and_reports_their_mean(
    make_spec: Any, lockstep: Any, test_reads: dict[str, int]
) -> None:
    search = {"sampler": "random", "trials": 2, "cv": 3, "pruner": "median", "startup_trials": 5}
    spec = make_spec("cv", {"a": {"l2": "tune"}}, search)  # a pruner (that never prunes here) reads the steps
    r = tune_study(spec, executor=lockstep, progress=False)["a"]

    assert test_reads["total"] == 0
    assert [t.folds for t in lockstep.submitted] == [3, 3]
    assert r.epochs_spent == 2 * 3 * 3 and all(t.epochs_spent == 9 for t in r.trials)
    by_number = {t.number: t for t in trials_of(spec, "a")}
    for task, outcome in lockstep.payloads:
        assert outcome.fold_finals is not None
        folds = [f["val_acc"] for f in outcome.fold_finals]
        assert len(folds) == 3
        trial = by_number[int(task.key.rsplit("trial", 1)[1])]
        assert trial.value == pytest.approx(float(np.mean(folds)), abs=1e-12)
        # the last reported step is the end of fold 3; its value is the mean over the folds
        steps = [rec for key, rec in lockstep.events if key == task.key]
        assert [int(s["step"]) for s in steps] == list(range(1, 10))
        assert steps[-1]["val_acc"] == pytest.approx(trial.value, abs=1e-12)
        assert sorted(trial.intermediate_values) == list(range(1, 10))
    # a fold is an ordinary run on fold k of the training split: recompute fold 1 on its own
    task, outcome = lockstep.payloads[0]
    assert outcome.fold_finals is not None
    alone = execute_run(task.config.override({"cv_folds": 3, "cv_fold": 1}), evaluate_test=False)
    assert alone.final["val_acc"] == pytest.approx(outcome.fold_finals[1]["val_acc"], abs=1e-12)


# -- grid ----------------------------------------------------------------------------------------


def test_grid_sampler_covers_the_grid_exactly(make_spec: Any, lockstep: Any) -> None:
    spec = make_spec(
        "grid",
        {"a": {"l2": {"low": 1e-4, "high": 1e-2, "log": True, "num": 3}, "dropout": {"choices": [0.0, 0.3]}}},
        {"sampler": "grid"},
    )
    r = tune_study(spec, executor=lockstep, progress=False)["a"]
    assert r.n_trials == 6 and r.n_failed == 0
    got = sorted((round(t.params["l2"], 12), t.params["dropout"]) for t in r.trials)
    want = sorted((round(a, 12), b) for a, b in itertools.product([1e-4, 1e-3, 1e-2], [0.0, 0.3]))
    assert got == want


def test_grid_with_a_larger_budget_stops_at_the_budget(make_spec: Any, lockstep: Any) -> None:
    spec = make_spec("grid2", {"a": {"dropout": {"choices": [0.0, 0.2, 0.4]}}}, {"sampler": "grid", "trials": 4})
    r = tune_study(spec, executor=lockstep, progress=False)["a"]
    assert r.n_trials == 4
    assert {t.params["dropout"] for t in r.trials} == {0.0, 0.2, 0.4}


# -- conditional dimensions in a real search -----------------------------------------------------


def test_conditional_dimension_on_a_fixed_setting(make_spec: Any, lockstep: Any) -> None:
    mom = {"low": 0.5, "high": 0.95, "when": {"optimizer": ["momentum", "nesterov"]}}
    spec = make_spec(
        "cond",
        {"sgd": {"optimizer": "sgd", "momentum": mom}, "nag": {"optimizer": "nesterov", "momentum": mom}},
        {"sampler": "random", "trials": 2, "space": {"lr": LR}},
    )
    results = tune_study(spec, executor=lockstep, progress=False)
    assert all(set(t.params) == {"lr"} for t in results["sgd"].trials)
    assert all(set(t.params) == {"lr", "momentum"} for t in results["nag"].trials)


# -- time budget ---------------------------------------------------------------------------------


def test_time_budget_is_hard_and_survives_a_resume(make_spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """search.timeout: no trial starts after it, a trial still running stops at its next epoch
    end (PRUNED, with the reason), and a resumed study counts the seconds already spent."""
    import types

    from reglab.study.execution.executors import InProcessExecutor

    clock = [0.0]
    monkeypatch.setattr(coordination_mod, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    class Clocked(InProcessExecutor):  # every poll (one epoch, or a finished run) takes 1 "second"
        def poll(self, timeout: float) -> Any:
            clock[0] += 1.0
            return super().poll(timeout)

    def tune(timeout: float) -> dict[str, Any]:
        spec = make_spec("deadline", {"a": {}}, {"sampler": "random", "timeout": timeout, "space": {"lr": LR}})
        ex = Clocked(record=True)
        try:
            return {"r": tune_study(spec, executor=ex, progress=False)["a"], "ex": ex, "spec": spec}
        finally:
            ex.close()

    # 3 epochs = 4 polls per trial: trial 0 ends at t=4, trial 1 starts then and is stopped at t=6
    first = tune(5.5)
    r = first["r"]
    assert [t.state for t in r.trials] == ["COMPLETE", "PRUNED"]
    assert r.trials[1].reason == protocol_mod.DEADLINE_REASON and r.trials[1].epochs_spent == 2
    assert first["ex"].stopped == ["a/trial1"]
    assert r.seconds_spent == pytest.approx(7.0) and r.epochs_spent == 5
    assert r.best_trial == 0  # a trial cut short is never the selected configuration

    # the same budget again: spent already, nothing runs
    again = tune(5.5)
    assert again["r"].n_trials == 2 and again["ex"].submitted == []
    # a larger budget (same search otherwise) continues from the seconds already spent
    more = tune(11.5)
    assert [t.state for t in more["r"].trials] == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert [t.key for t in more["ex"].submitted] == ["a/trial2", "a/trial3"]
    states = [t.state.name for t in trials_of(first["spec"], "a")]
    assert states == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]


def test_a_larger_budget_after_confirmation_keeps_the_tuning_and_replaces_outdated_runs(
    make_spec: Any, lockstep: Any
) -> None:
    from reglab.errors import ConfigError

    arms = {"none": {}, "l2": {"l2": {"low": 1e-4, "high": 1.0, "log": True}}}
    spec2 = make_spec("grow", arms, {"sampler": "random", "trials": 2})
    first = run_protocol(spec2, executor=lockstep, progress=False)
    assert first.stats.new == 4 and first.stats.replaced == 0
    again = run_protocol(spec2, executor=lockstep, progress=False)  # nothing to do
    assert (again.stats.new, again.stats.skipped, again.stats.replaced) == (0, 4, 0)

    n = len(lockstep.submitted)
    spec8 = with_trials(spec2, 8)
    grown = run_protocol(spec8, executor=lockstep, progress=False)  # no --new needed
    tuned = [t for t in lockstep.submitted[n:] if "/trial" in t.key]
    assert [t.key for t in tuned] == [f"l2/trial{i}" for i in range(2, 8)]  # trials 0, 1 kept, not redone
    old_l2, new_l2 = (r.summary.model_dump()["tuning"]["l2"]["best_params"]["l2"] for r in (first, grown))
    assert old_l2 != new_l2  # (deterministic: trial >= 2 is better for this sampler seed)
    # the confirmation used other values: its runs are replaced, and the new ones use the new value
    assert grown.stats.replaced == 4 and grown.stats.new == 4
    assert set(grown.finals.query("arm == 'l2'")["seed"]) == {0, 1}
    resolved = yaml.safe_load((spec8.output_dir() / "config.resolved.yaml").read_text())
    assert resolved["arms"]["l2"]["config"]["regularization"]["l2"] == new_l2
    assert len(trials_of(spec8, "l2")) == 8

    # a change of what the user wrote (here the seeds) still needs --new
    with pytest.raises(ConfigError, match="--new"):
        run_protocol(spec8.model_copy(update={"seeds": 3}), executor=lockstep, progress=False)


def test_an_arm_without_a_completed_trial_stops_the_study_before_confirmation(make_spec: Any, lockstep: Any) -> None:
    from reglab.errors import ReglabError

    # every trial diverges at once (a coupled L2 step with lr * l2 >> 1): nothing was tuned
    spec = make_spec(
        "nothing", {"a": {"lr": 100.0, "l2": {"low": 5.0, "high": 10.0}}}, {"sampler": "random", "trials": 2}
    )
    with pytest.raises(ReglabError, match=r"arm 'a': none of its 2 tuning trials completed .* 2 failed or diverged"):
        run_protocol(spec, executor=lockstep, progress=False)
    assert not [t for t in lockstep.submitted if "/seed" in t.key]  # no confirmation run
    assert "nothing/runs" not in optuna.get_all_study_names(spec.storage_url())


def test_without_a_pruner_no_intermediate_value_is_stored(make_spec: Any, lockstep: Any) -> None:
    """Nothing reads them: no storage write per epoch (issue 13); the trials' values are the same."""
    spec = make_spec("nopr", {"a": {"l2": "tune"}}, {"sampler": "random", "trials": 2})
    r = tune_study(spec, executor=lockstep, progress=False)["a"]
    assert r.n_complete == 2 and len(lockstep.events) == 2 * 3  # every epoch still reaches the driver
    assert all(t.intermediate_values == {} for t in trials_of(spec, "a"))
