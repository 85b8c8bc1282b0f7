"""Fault injection (issue 12): a real ``reglab run`` with 2 worker processes, 3 worker processes
SIGKILLed at random moments (as the out-of-memory killer does) and the driver SIGKILLed once, then
the same command resumed. The final ``runs.csv`` equals an uninterrupted run's, timing aside; every
run is stored once. And a run whose worker process dies every time fails after the retry limit,
with the reason, while the study finishes."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from studylib import complete_runs
from test_signals import alive, children, has_torch, start, stored_once

from reglab.study import load_study, run_protocol
from reglab.study.executors import DIED_REASON, MAX_ATTEMPTS

ARMS = {"none": {}, "dropout": {"dropout": 0.2}}
SEEDS = 16
TIMING = {"time"}  # runs.csv columns that differ between two runs of the same study


def _study(tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], out: str) -> Path:
    # runs of a second or more: all of digits, a 128-128 MLP, 12 epochs of batches of 16
    doc = tiny_study(name="signals", arms=ARMS, seeds=SEEDS, output=str(tmp_path / out))
    doc["data"] = {"name": "digits"}
    doc["model"] = {"hidden": [128, 128]}
    doc["train"] = {"epochs": 12, "batch_size": 16, "device": "cpu"}
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_random_kills_of_workers_and_driver_change_nothing(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    faults = ["worker", "worker", "worker", "driver"]
    rng.shuffle(faults)
    study, db, log = _study(tmp_path, tiny_study, "out"), tmp_path / "out" / "study.db", tmp_path / "run.log"
    why = f"fault order {faults} (random seed {seed}); log {log}"

    proc = start(study, log)
    try:
        for fault in faults:
            base = complete_runs(db)
            deadline = time.monotonic() + 300
            # at least 3 runs finished since the last fault (so no run is in flight at two worker
            # kills and none reaches the retry limit), both worker processes up, then a random moment
            while not (complete_runs(db) >= base + 3 and sum(map(has_torch, children(proc.pid))) == 2):
                assert proc.poll() is None, f"reglab run ended early; {why}\n{log.read_text()}"
                assert time.monotonic() < deadline, f"no progress; {why}\n{log.read_text()}"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.8))
            if fault == "worker":
                os.kill(rng.choice([p for p in children(proc.pid) if has_torch(p)]), signal.SIGKILL)
            else:
                kids = children(proc.pid)
                os.kill(proc.pid, signal.SIGKILL)  # the driver only, as an out-of-memory kill would
                proc.wait(timeout=60)
                deadline = time.monotonic() + 30  # its worker processes do not outlive it
                while any(map(alive, kids)):
                    assert time.monotonic() < deadline, f"orphans {[k for k in kids if alive(k)]}; {why}"
                    time.sleep(0.1)
                proc = start(study, log)  # the same command resumes
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, f"{why}\n{text}"
    assert "Traceback" not in text and "BrokenProcessPool" not in text, text
    assert stored_once(db) == {(a, s): 1 for a in ARMS for s in range(SEEDS)}, why

    reference = run_protocol(load_study(_study(tmp_path, tiny_study, "ref")), progress=False, executor=executor)
    assert reference.stats.new == len(ARMS) * SEEDS
    assert _rows(tmp_path / "out" / "runs.csv") == _rows(tmp_path / "ref" / "runs.csv"), why


DYING_NET = """
import multiprocessing, os, signal
from torch import nn

def make_net(in_features, n_classes, die=False):
    if die and multiprocessing.parent_process() is not None:  # in a worker process, never in the driver
        os.kill(os.getpid(), signal.SIGKILL)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, n_classes))
"""


@pytest.mark.slow
def test_a_run_whose_worker_dies_every_time_fails_after_the_retry_limit(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]]
) -> None:
    (tmp_path / "dying.py").write_text(textwrap.dedent(DYING_NET))
    doc = tiny_study(
        name="dying",
        model={"class_path": "dying:make_net"},
        arms={"ok": {}, "dies": {"init_args": {"die": True}}},
        seeds=2,
        output=str(tmp_path / "out"),
    )
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "reglab.cli", "run", str(study), "--jobs", "2", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = res.stdout + res.stderr
    assert res.returncode == 3, text  # some runs failed; every output written
    assert "Traceback" not in text and "BrokenProcessPool" not in text, text
    summary = yaml.safe_load((tmp_path / "out" / "summary.json").read_text())
    failed = {(f["arm"], f["seed"]): f for f in summary["failed_runs"]}
    assert set(failed) == {("dies", 0), ("dies", 1)}
    for f in failed.values():
        assert f["reason"] == f"{DIED_REASON}; started {MAX_ATTEMPTS} times", f
    retried = {(r["arm"], r["seed"]): r["attempts"] for r in summary["retried_runs"]}
    assert retried == {("dies", 0): MAX_ATTEMPTS, ("dies", 1): MAX_ATTEMPTS}  # the bystanders were not charged
    assert "retried: dies seed 0: its worker process died; started 2 times (failed)" in text
    with (tmp_path / "out" / "finals.csv").open(newline="") as fh:
        finals = {(r["arm"], r["seed"]): r["status"] for r in csv.DictReader(fh)}
    assert finals[("ok", "0")] == finals[("ok", "1")] == "completed"
    assert finals[("dies", "0")] == finals[("dies", "1")] == "failed"
