"""The framework examples of your own training function (issue 22): a PyTorch Lightning
``LightningModule`` + ``Trainer`` on digits, and Keras 3 (torch backend) on an MNIST subset. Each
runs end to end through the CLI with worker processes on real data; each is deterministic per seed
(``run_once``, as docs/own-training.md suggests); and reglab's stop (``StopRun`` raised from
``ctx.report`` inside the framework's callback) really ends a run before its last epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from cilib import need_module
from reglab.study import parse_study
from reglab.study.definition.spec import StudySpec
from reglab.study.execution.executors import execute_task
from reglab.study.execution.worker import DataCache
from reglab.study.protocol.protocol import make_task, run_once
from reglab.study.results.outcome import RunOutcome, RunStatus

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "own_training"
MNIST = ROOT.parent / "shared" / "data" / "mnist"  # keras.yaml's data_dir: ../../../shared/data


def _reglab(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "reglab.cli", *args]
    return subprocess.run(cmd, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=600, check=False)


def _need_lightning() -> None:
    need_module("lightning", "lightning")


def _need_keras() -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")  # as keras_mnist.py: before the first import of keras
    need_module("keras", "keras")


def _need_mnist() -> None:
    if not (MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST is not in {MNIST} (keras.yaml reads it from ../../../shared/data, offline)")


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example modules importable here; one torch thread, as in a worker process (two threads
    on a busy two-core machine make these tiny models many times slower)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.chdir(EXAMPLE)  # data_dir is relative to the study file, which load paths resolve from
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _spec(study: str, **settings: Any) -> StudySpec:
    doc = yaml.safe_load((EXAMPLE / study).read_text())
    doc["settings"].update(settings)
    if "data_dir" in doc["data"]:
        doc["data"]["data_dir"] = str((EXAMPLE / doc["data"]["data_dir"]).resolve())
    return parse_study(doc)


def _check_cli_study(out: Path, res: subprocess.CompletedProcess[str], arms: set[str], seeds: int, epochs: int) -> Any:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    n = len(arms) * seeds
    assert summary["n_runs"] == summary["n_expected"] == n and not summary["failed_runs"]
    assert set(summary["arms"]) == arms
    for arm in summary["arms"].values():  # train_acc next to val_acc: every arm is diagnosed
        assert arm["n_completed"] == seeds and arm["diagnosis"]["label"]
        assert 0.5 < arm["metrics"]["test_acc"]["mean"] <= 1.0
    assert set(summary["ranking"]) == arms
    baseline = summary["baseline"]
    assert all(summary["arms"][a]["comparison"]["verdict"] for a in arms - {baseline})  # paired verdicts
    import pandas as pd

    finals, epochs_csv = pd.read_csv(out / "finals.csv"), pd.read_csv(out / "runs.csv")
    assert len(finals) == n and set(finals["status"]) == {"completed"}
    assert {(a, s) for a, s in zip(finals["arm"], finals["seed"], strict=True)} == {
        (a, s) for a in arms for s in range(seeds)
    }
    assert {"train_acc", "val_acc", "test_acc"} <= set(finals.columns) and (finals["epochs_run"] == epochs).all()
    assert len(epochs_csv) == n * epochs and {"train_loss", "train_acc", "val_acc"} <= set(epochs_csv.columns)
    assert summary["study"] in (out / "report.html").read_text()
    return summary


def _stopped_after(spec: StudySpec, arm: str, params: dict[str, Any], epoch: int) -> RunOutcome:
    """A tuning trial whose driver asks it to stop after ``epoch`` (as a pruner does)."""
    task = make_task(spec.arm(arm), 0, trial=0, params=params)
    return execute_task(task, lambda record, key=None: record["epoch"] >= epoch, DataCache(size=1))


# -- PyTorch Lightning ---------------------------------------------------------------------------------


def test_the_lightning_example_runs_through_the_cli(tmp_path: Path) -> None:
    _need_lightning()
    out = tmp_path / "out"
    args = ["run", "lightning.yaml", "--output", str(out), "--jobs", "2", "--no-progress"]
    res = _reglab([*args, "--set", "search.trials=3", "--set", "epochs=5"])
    summary = _check_cli_study(out, res, {"none", "weight_decay", "dropout"}, seeds=3, epochs=5)
    tuning = summary["tuning"]
    assert tuning["weight_decay"]["n_trials"] == tuning["dropout"]["n_trials"] == 3  # the same budget


def test_the_lightning_example_is_deterministic_and_stops_when_reglab_asks(example: None) -> None:
    _need_lightning()
    spec = _spec("lightning.yaml", epochs=4)
    a, b, c = (run_once(spec, "dropout", s, params={"dropout": 0.3}) for s in (0, 0, 1))
    assert a.status is RunStatus.COMPLETED, a.reason
    assert a.final == b.final and a.history == b.history and a.final != c.final
    assert [r["epoch"] for r in a.history] == [1, 2, 3, 4]  # one report per validation epoch, none for the sanity check
    # StopRun raised in the Callback leaves Trainer.fit (its teardown re-raises it): pruned after epoch 2 of 4
    stopped = _stopped_after(spec, "dropout", {"dropout": 0.3}, epoch=2)
    assert stopped.status is RunStatus.PRUNED, stopped.reason
    assert [r["epoch"] for r in stopped.history] == [1, 2] and stopped.epochs_spent == 2


# -- Keras 3 (torch backend) ------------------------------------------------------------------------


def test_the_keras_example_runs_through_the_cli_on_mnist(tmp_path: Path) -> None:
    _need_keras()
    _need_mnist()
    out = tmp_path / "out"
    res = _reglab(["run", "keras.yaml", "--output", str(out), "--jobs", "2", "--no-progress", "--set", "epochs=3"])
    _check_cli_study(out, res, {"none", "l2", "dropout", "l2_dropout"}, seeds=3, epochs=3)
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    both = resolved["arms"]["l2_dropout"]
    assert both["settings"]["l2"] == 1e-4 and both["settings"]["dropout"] == 0.3
    assert both["config"]["data"]["n_train"] == 2000  # the MNIST subset


def test_the_keras_example_is_deterministic_and_stops_when_reglab_asks(example: None) -> None:
    _need_keras()
    _need_mnist()
    import keras

    assert keras.backend.backend() == "torch"
    spec = _spec("keras.yaml", epochs=3)
    a, b, c = (run_once(spec, "l2_dropout", s) for s in (0, 0, 1))
    assert a.status is RunStatus.COMPLETED, a.reason
    assert a.final == b.final and a.history == b.history and a.final != c.final
    assert set(a.final) >= {"train_acc", "val_acc", "test_acc"} and [r["epoch"] for r in a.history] == [1, 2, 3]
    # StopRun raised in the keras Callback ends model.fit: pruned after epoch 1 of 3
    stopped = _stopped_after(spec, "l2_dropout", {}, epoch=1)
    assert stopped.status is RunStatus.PRUNED, stopped.reason
    assert [r["epoch"] for r in stopped.history] == [1] and stopped.epochs_spent == 1
