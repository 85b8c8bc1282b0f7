"""Helpers of the cluster tests (a module of its own: test folders are not packages, so
``import conftest`` would be ambiguous)."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

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

    from reglab.study.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def trials_by_key(url: str, study_name: str) -> dict[tuple[str, int], list[Any]]:
    """Trials of a study's confirmation runs, grouped by (arm, seed)."""
    study = load_study(study_name + "/runs", url)
    out: dict[tuple[str, int], list[Any]] = {}
    for t in study.get_trials(deepcopy=False):
        if "arm" in t.user_attrs:
            out.setdefault((str(t.user_attrs["arm"]), int(t.user_attrs["seed"])), []).append(t)
    return out
