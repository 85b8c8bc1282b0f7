"""One protocol, every way of running it: ``reglab run`` (the local driver) and ``reglab worker``
(workers sharing a study through SQLite or PostgreSQL) must keep the same promises. Before they
shared one implementation, worker-mode tuning read the test split and ignored ``when:`` conditions
on settings that are not tuned.

Everything runs in this process (``InProcessExecutor``), so ``TestSplit.read`` can be counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from reglab.study.definition.spec import StudySpec, parse_study
from reglab.study.execution.executors import InProcessExecutor
from reglab.study.protocol.protocol import run_protocol, work
from reglab.study.results.results import StudyResults
from reglab.study.results.storage import open_storage

MODES = ["local", "worker-sqlite", pytest.param("worker-postgres", marks=pytest.mark.servers)]
LR = {"low": 1e-3, "high": 0.5, "log": True}


def tiny(tmp_path: Path, name: str, arms: dict[str, Any], search: dict[str, Any]) -> StudySpec:
    return parse_study(
        {
            "name": name,
            "data": {"name": "digits", "n_train": 150},
            "model": {"hidden": [16]},
            "train": {"epochs": 2, "optimizer": "momentum", "lr": 0.05, "batch_size": 32, "device": "cpu"},
            "seeds": 2,
            "arms": arms,
            "search": search,
            "output": str(tmp_path / name),
        }
    )


def run_in(mode: str, spec: StudySpec, ex: InProcessExecutor, request: pytest.FixtureRequest) -> StudyResults:
    if mode == "local":
        return run_protocol(spec, executor=ex, progress=False)
    url = request.getfixturevalue("pg_url") if mode == "worker-postgres" else spec.storage_url()
    spec.output_dir().mkdir(parents=True, exist_ok=True)
    return work(spec, url, executor=ex, say=lambda line: None, heartbeat=0.5)


@pytest.mark.parametrize("mode", MODES)
def test_tuning_never_reads_the_test_split(
    mode: str, tmp_path: Path, test_reads: dict[str, int], request: pytest.FixtureRequest
) -> None:
    spec = tiny(tmp_path, "guard", {"none": {}, "l2": {"l2": "tune"}}, {"sampler": "random", "trials": 3})
    ex = InProcessExecutor(record=True)
    try:
        res = run_in(mode, spec, ex, request)
    finally:
        ex.close()
    assert (test_reads["tuning_phases"], test_reads["tuning"]) == (1, 0)
    trials = [t for t in ex.submitted if "/trial" in t.key]
    runs = [t for t in ex.submitted if "/seed" in t.key]
    assert len(trials) == 3 and not any(t.evaluate_test for t in trials)
    assert len(runs) == 4 and all(t.evaluate_test for t in runs)
    assert test_reads["total"] == 4  # one read per confirmation run, none per trial
    for task, outcome in ex.payloads:
        assert ("test_acc" in outcome.final) == ("/seed" in task.key), task.key
    assert res.summary.n_runs == 4


@pytest.mark.parametrize("mode", MODES)
def test_when_conditions_on_a_fixed_setting_behave_the_same(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    mom = {"low": 0.5, "high": 0.95, "when": {"optimizer": ["momentum", "nesterov"]}}
    spec = tiny(
        tmp_path,
        "cond",
        {"sgd": {"optimizer": "sgd", "momentum": mom}, "nag": {"optimizer": "nesterov", "momentum": mom}},
        {"sampler": "random", "trials": 2, "space": {"lr": LR}},
    )
    ex = InProcessExecutor(record=True)
    try:
        run_in(mode, spec, ex, request)
    finally:
        ex.close()
    url = request.getfixturevalue("pg_url") if mode == "worker-postgres" else spec.storage_url()
    storage = open_storage(url)
    params = {
        arm: [t.params for t in optuna.load_study(study_name=f"cond/tune/{arm}", storage=storage).trials]
        for arm in spec.arms
    }
    assert len(params["sgd"]) == len(params["nag"]) == 2
    assert all(set(p) == {"lr"} for p in params["sgd"])  # optimizer sgd: momentum is not sampled
    assert all(set(p) == {"lr", "momentum"} for p in params["nag"])
    for task in ex.submitted:  # and the configurations trained agree with the sampled values
        if task.key.startswith("sgd/"):
            assert task.config.train.optimizer == "sgd" and task.config.train.momentum == 0.9
