"""Studies on a real two-node Ray cluster (head + worker node, 1 CPU each, on this machine):
every run stored once, pruning through the executor's event/stop channel, and a worker node
killed mid-study without losing or doubling a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from clusterlib import REGLAB, load_study, reglab_env, run_reglab, small_study, trials_by_key

pytestmark = pytest.mark.servers


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'out' / 'study.db'}"


def _each_once(url: str, name: str, keys: set[tuple[str, int]]) -> None:
    import optuna

    by_key = trials_by_key(url, name)
    assert set(by_key) == keys
    for key, trials in by_key.items():
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE], key


def test_study_runs_on_a_ray_cluster(ray_cluster: Any, study_dir: Any, tmp_path: Path) -> None:
    study = study_dir(small_study(name="ray-small"))
    res = run_reglab(
        ["run", str(study), "--executor", "ray", "--address", ray_cluster.address, "--no-progress"], cwd=tmp_path
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    _each_once(_sqlite(tmp_path), "ray-small", {(a, s) for a in ("none", "l2") for s in range(3)})
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {a: summary["arms"][a]["n_completed"] for a in ("none", "l2")} == {"none": 3, "l2": 3}


EPOCHS = 30


def test_tuning_on_ray_prunes_through_the_executor(ray_cluster: Any, study_dir: Any, tmp_path: Path) -> None:
    """Per-epoch values travel task -> channel actor -> driver -> pruner, and the stop flag back."""
    import optuna

    doc = small_study(
        name="ray-prune",
        # epochs of ~0.05 s (not milliseconds) and many of them, so a stop request lands while the run
        # still trains even when the machine is busy (a stop takes a few epochs to travel back: the
        # pruner decides after it has the epoch's value, and the run sees the flag at an epoch's end)
        data={"name": "digits", "n_train": 500},
        model={"hidden": [256, 256]},
        train={"epochs": EPOCHS, "batch_size": 8, "optimizer": "sgd", "device": "cpu"},
        arms={"sgd": {"lr": {"low": 1e-4, "high": 0.3, "log": True}}},
        seeds=2,
        search={"sampler": "random", "trials": 8, "pruner": "median", "startup_trials": 2, "seed": 3},
    )
    study = study_dir(doc)
    res = run_reglab(
        ["run", str(study), "--executor", "ray", "--address", ray_cluster.address, "--no-progress"],
        cwd=tmp_path,
        timeout=480,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    S = optuna.trial.TrialState
    trials = load_study("ray-prune/tune/sgd", _sqlite(tmp_path)).get_trials()
    assert len(trials) == 8 and all(t.state in (S.COMPLETE, S.PRUNED) for t in trials)
    complete = [t for t in trials if t.state == S.COMPLETE]
    pruned = [t for t in trials if t.state == S.PRUNED]
    steps = {t.number: (t.state.name, sorted(t.intermediate_values)) for t in trials}
    # every epoch's value reached the pruner, in order (a trial the pruner stopped has a prefix)
    assert all(v == list(range(1, len(v) + 1)) for _, v in steps.values()), steps
    assert any(len(t.intermediate_values) == EPOCHS for t in complete), steps
    assert pruned, f"the median pruner should stop some of the low-learning-rate trials: {steps}"
    assert all(len(t.intermediate_values) < EPOCHS for t in pruned), steps  # stopped early, on the cluster
    _each_once(_sqlite(tmp_path), "ray-prune", {("sgd", 0), ("sgd", 1)})


def test_tuning_on_ray_never_reads_the_test_split(ray_cluster: Any, study_dir: Any, tmp_path: Path) -> None:
    """Each run counts its test-split reads on the node that trains it, stored with the trial or
    run: 0 for every tuning trial, exactly 1 for every confirmation run."""
    doc = small_study(
        name="ray-guard",
        arms={"none": {}, "l2": {"l2": {"low": 1e-4, "high": 1e-1, "log": True}}},
        seeds=2,
        search={"sampler": "random", "trials": 3},
    )
    study = study_dir(doc)
    res = run_reglab(
        ["run", str(study), "--executor", "ray", "--address", ray_cluster.address, "--no-progress"], cwd=tmp_path
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    tuning = load_study("ray-guard/tune/l2", _sqlite(tmp_path)).get_trials()
    assert [t.user_attrs["test_reads"] for t in tuning] == [0, 0, 0]
    runs = load_study("ray-guard/runs", _sqlite(tmp_path)).get_trials()
    assert [t.user_attrs["test_reads"] for t in runs] == [1] * 4


def test_a_worker_node_dies_mid_study(ray_cluster: Any, study_dir: Any, tmp_path: Path) -> None:
    """Kill the worker node (its raylet's whole process group) while it trains a run: Ray runs
    the task again on the head node, and the study stores every run exactly once."""
    doc = small_study(
        name="ray-node-death",
        data={"name": "digits", "n_train": 1000},
        model={"hidden": [64]},
        train={"epochs": 12, "batch_size": 16, "device": "cpu"},
        seeds=2,
    )
    study = study_dir(doc)
    driver = subprocess.Popen(
        [*REGLAB, "run", str(study), "--executor", "ray", "--address", ray_cluster.address, "--no-progress"],
        cwd=tmp_path,
        env=reglab_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not ray_cluster.worker_task_pids():
            assert driver.poll() is None, "the study ended before a run reached the worker node"
            time.sleep(0.1)
        assert ray_cluster.worker_task_pids(), "no run was scheduled on the worker node"
        ray_cluster.kill_worker_node()
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, stdout[-3000:] + stderr[-3000:]
    _each_once(_sqlite(tmp_path), "ray-node-death", {(a, s) for a in ("none", "l2") for s in range(2)})
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {a: summary["arms"][a]["n_completed"] for a in ("none", "l2")} == {"none": 2, "l2": 2}
