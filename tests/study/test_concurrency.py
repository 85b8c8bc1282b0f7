"""Many processes started at once on one study (issue 12, failures 1 and 2): real ``reglab``
processes released together by a start signal; every run is stored exactly once and nothing is
deleted. Several ``reglab run``s: one trains, the others refuse with one line (exit 4). Several
``reglab worker``s on a new SQLite database: they share the work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from reglab.study.protocol.lease import EXIT_BUSY

ROOT = Path(__file__).resolve().parents[2]
ARMS = {"none": {}, "l2": {"l2": 1.0e-3}}
SEEDS = 4

# the CLI, started only when the go file appears (imports done first, so the processes really race)
STARTER = """
import os, sys, time
import reglab.cli, reglab.study.protocol.protocol, optuna, torch
ready, go = sys.argv[1:3]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
reglab.cli.main(sys.argv[3:])
"""


def race(tmp_path: Path, argvs: list[list[str]], cwd: Path) -> list[tuple[int, str]]:
    """Start one process per argv, release them together, return (exit code, output) of each."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    logs = [tmp_path / f"p{i}.log" for i in range(len(argvs))]
    procs = []
    for i, argv in enumerate(argvs):
        with logs[i].open("w") as sink:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", STARTER, str(tmp_path / f"ready{i}"), str(go), *argv],
                    cwd=cwd,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        deadline = time.monotonic() + 300
        while not all((tmp_path / f"ready{i}").exists() for i in range(len(argvs))):
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]
            time.sleep(0.05)
        go.touch()
        for p in procs:
            p.wait(timeout=600)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, log.read_text()) for p, log in zip(procs, logs, strict=True)]


def stored(db: Path, name: str) -> Counter[tuple[str, int]]:
    """How often each (arm, seed) is stored COMPLETE in the runs study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=f"{name}/runs", storage=f"sqlite:///{db}").get_trials()
    return Counter(
        (t.user_attrs["arm"], t.user_attrs["seed"]) for t in trials if t.state == optuna.trial.TrialState.COMPLETE
    )


@pytest.fixture
def study(tmp_path: Path, tiny_study: Callable[..., dict[str, Any]]) -> Path:
    doc = tiny_study(name="race", arms=ARMS, seeds=SEEDS, output=str(tmp_path / "out"))
    doc["train"]["epochs"] = 3
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.slow
def test_three_runs_started_at_once_on_a_new_folder_train_each_run_once(study: Path, tmp_path: Path) -> None:
    results = race(tmp_path, [["run", str(study), "--jobs", "1", "--no-progress"]] * 3, tmp_path)
    codes = sorted(code for code, _ in results)
    assert codes == [0, EXIT_BUSY, EXIT_BUSY], results
    for code, text in results:
        assert "Traceback" not in text, text
        if code == EXIT_BUSY:
            (line,) = [x for x in text.splitlines() if x.strip()]
            assert line.startswith("error: study 'race' in sqlite:///") and "is already being run by" in line
    out = tmp_path / "out"
    assert stored(out / "study.db", "race") == {(a, s): 1 for a in ARMS for s in range(SEEDS)}
    for name in ("study.db", "runs.csv", "summary.json", "config.resolved.yaml"):
        assert (out / name).exists(), name  # nothing deleted


@pytest.mark.slow
def test_four_workers_started_at_once_on_a_new_sqlite_database_share_the_runs(study: Path, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    argv = ["worker", str(study), "--storage", f"sqlite:///{db}", "--jobs", "1", "--no-report"]
    results = race(tmp_path, [argv] * 4, tmp_path)
    for code, text in results:
        assert code == 0, text
        assert "Traceback" not in text, text
    assert stored(db, "race") == {(a, s): 1 for a in ARMS for s in range(SEEDS)}
    assert (tmp_path / "out" / "summary.json").exists()
