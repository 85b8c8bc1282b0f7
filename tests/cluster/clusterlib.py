"""Helpers of the cluster tests (a module of its own: test folders are not packages, so
``import conftest`` would be ambiguous)."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

VENV_BIN = Path(sys.executable).parent
REGLAB = [sys.executable, "-m", "reglab.cli"]

# digits, 200 training examples, a 16-unit MLP, 2 epochs: 2 arms x 3 seeds
SMALL_STUDY: dict[str, Any] = {
    "name": "cluster-small",
    "data": {"name": "digits", "n_train": 200},
    "model": {"hidden": [16]},
    "train": {"epochs": 2, "batch_size": 32, "device": "cpu"},
    "arms": {"none": {}, "l2": {"l2": 1.0e-3}},
    "seeds": 3,
}


def small_study(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SMALL_STUDY)
    doc.update(copy.deepcopy(changes))
    return doc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_study(folder: Path, doc: dict[str, Any], name: str = "study.yaml") -> Path:
    p = folder / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return p


def reglab_env() -> dict[str, str]:
    env = dict(os.environ)
    # the test cluster listens on 127.0.0.1 only; without this, a token in ~/.ray makes `ray start`
    # require authentication that clients in the default mode do not send
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",
        }
    )
    return env


def run_reglab(args: list[str], cwd: Path, timeout: float = 480) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REGLAB, *args], cwd=cwd, env=reglab_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def load_study(name: str, url: str) -> Any:
    """An Optuna study of ``url`` opened the way reglab opens storages (driver choice included)."""
    import optuna

    from reglab.study.results.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def trials_by_key(url: str, study_name: str) -> dict[tuple[str, int], list[Any]]:
    """Trials of a study's confirmation runs, grouped by (arm, seed)."""
    study = load_study(study_name + "/runs", url)
    out: dict[tuple[str, int], list[Any]] = {}
    for t in study.get_trials(deepcopy=False):
        if "arm" in t.user_attrs:
            out.setdefault((str(t.user_attrs["arm"]), int(t.user_attrs["seed"])), []).append(t)
    return out


# -- the executors every executor test runs on, and how a test waits for their runs ------------------


def make_executor(name: str, extra_path: str | None = None) -> Any:
    """A fresh executor: ``in-process``, ``local`` (2 worker processes) or ``ray`` (a local Ray
    instance of 2 CPUs). ``extra_path``: a folder the workers must import from (spawned processes
    inherit ``sys.path``; a local Ray's workers inherit ``PYTHONPATH``)."""
    from reglab.study.execution.executors import InProcessExecutor, LocalExecutor

    if extra_path is not None and extra_path not in sys.path:
        sys.path.insert(0, extra_path)
    if name == "in-process":
        return InProcessExecutor()
    if name == "local":
        return LocalExecutor(2)
    from reglab.study.execution.ray_executor import RayExecutor

    os.environ.pop("RAY_ADDRESS", None)
    old = os.environ.get("PYTHONPATH")
    if extra_path is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, old) if p)
    try:
        return RayExecutor(None, num_cpus=2)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


EXECUTOR_NAMES = ["in-process", "local", "ray"]
EXECUTOR_PARAMS = [pytest.param(n, marks=pytest.mark.servers if n == "ray" else ()) for n in EXECUTOR_NAMES]


def drain(ex: Any, n: int, timeout: float = 600) -> tuple[list[tuple[str, dict[str, float]]], dict[str, Any]]:
    """Poll until ``n`` tasks finished: (events in arrival order, outcome by key). The deadline is
    generous: on two cores kept busy by other processes, a Ray worker process that starts (and
    imports torch) for a task took minutes in a CI rehearsal; a passing test never waits for it."""
    events: list[tuple[str, dict[str, float]]] = []
    done: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(done) < n:
        assert time.monotonic() < deadline, f"only {len(done)} of {n} tasks finished in {timeout}s"
        ev, fin = ex.poll(0.1)
        events += ev
        for task, outcome in fin:
            assert task.key not in done, f"{task.key} finished twice"
            done[task.key] = outcome
    return events, done


def stopped_after_its_first_epoch(ex: Any, task: Any, timeout: float = 600) -> Any:
    """Submit ``task``, ask it to stop as soon as it reports an epoch, and return its outcome."""
    ex.submit(task)
    deadline = time.monotonic() + timeout
    stopped = False
    done: dict[str, Any] = {}
    while not done:
        assert time.monotonic() < deadline, f"{task.key} did not end in {timeout}s"
        events, fin = ex.poll(0.1)
        if events and not stopped:
            ex.stop(task.key)
            stopped = True
        done.update({t.key: o for t, o in fin})
    return done[task.key]
