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

from reglab.config import RunConfig
from reglab.study import load_study, run_protocol
from reglab.study.execution.executors import MAX_ATTEMPTS, LocalExecutor, died_reason
from reglab.study.execution.task import Task
from reglab.study.results.outcome import RunOutcome, RunStatus

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
import os, signal
from torch import nn

class Net(nn.Module):
    def __init__(self, in_features, n_classes, die=None):
        super().__init__()
        self.die = die
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, n_classes))

    def forward(self, x):
        if self.training:  # in a worker process, never in the pre-flight check (eval mode)
            if self.die == "SIGKILL":
                os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer does
            if self.die == "exit 2":
                os._exit(2)  # as a library giving up on the process does
        return self.body(x)
"""


@pytest.mark.slow
@pytest.mark.parametrize("die", ["SIGKILL", "exit 2"])
def test_a_run_whose_worker_dies_every_time_fails_after_the_retry_limit(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], die: str
) -> None:
    """Only the run whose process died is charged an attempt, its reason names the exit code or
    signal (issue 21, failure 2: a process that exited with a positive code charged every run in
    the pool, and a healthy arm's seed failed). The healthy arm's runs take seconds, so they are in
    flight when the other arm's processes die."""
    (tmp_path / "dying.py").write_text(textwrap.dedent(DYING_NET))
    doc = tiny_study(
        name="dying",
        data={"name": "digits"},
        model={"class_path": "dying:Net"},
        arms={"ok": {"epochs": 10, "batch_size": 16}, "dies": {"init_args": {"die": die}}},
        seeds=3,
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
    assert set(failed) == {("dies", s) for s in range(3)}, text
    code = -signal.SIGKILL if die == "SIGKILL" else 2
    for f in failed.values():
        assert f["reason"] == f"{died_reason(code)}; started {MAX_ATTEMPTS} times", f
    assert died_reason(code).endswith("(killed by SIGKILL, e.g. out of memory)" if code < 0 else "(exit code 2)")
    retried = {(r["arm"], r["seed"]): r["attempts"] for r in summary["retried_runs"]}
    assert retried == {("dies", s): MAX_ATTEMPTS for s in range(3)}  # the bystanders were not charged
    assert "retried: dies seed 0: its worker process died; started 2 times (failed)" in text
    with (tmp_path / "out" / "finals.csv").open(newline="") as fh:
        finals = {(r["arm"], r["seed"]): r["status"] for r in csv.DictReader(fh)}
    assert [finals[("ok", str(s))] for s in range(3)] == ["completed"] * 3, text
    assert [finals[("dies", str(s))] for s in range(3)] == ["failed"] * 3


# a run that trains until it is stopped (epochs of ~0.2 s), and quick ones - as overrides, built into
# configurations when the test runs
SLOW = {"n_train": 1000, "hidden": [256, 256], "batch_size": 8, "epochs": 2000, "device": "cpu"}
QUICK = {"n_train": 200, "hidden": [16], "epochs": 2, "device": "cpu"}
DIES = {"n_train": 200, "epochs": 2, "device": "cpu", "class_path": "dying:Net", "init_args": {"die": "exit 2"}}


@pytest.mark.slow
@pytest.mark.parametrize("death", ["a run exits its process", "a process without a run is killed"])
def test_only_the_run_whose_process_died_is_charged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, death: str
) -> None:
    """Issue 21, failure 2, deterministically: with one attempt per run, a healthy run in flight
    when another process dies is started again, not failed - whether the process that died ran a
    run (exit code 2) or none (killed while idle)."""
    (tmp_path / "dying.py").write_text(textwrap.dedent(DYING_NET))
    monkeypatch.chdir(tmp_path)  # the worker processes import dying:Net from here
    monkeypatch.syspath_prepend(str(tmp_path))
    ex = LocalExecutor(2, max_attempts=1)
    done: dict[str, RunOutcome] = {}
    trained: list[str] = []

    def poll_until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 300
        while not condition():
            ok = done.get("ok/seed0")  # the healthy run never ends before it is asked to stop
            assert ok is None, f"{what}: the healthy run ended: {ok.status.value}: {ok.reason}"
            assert time.monotonic() < deadline, (
                f"{what}: not in time; finished {[(k, o.reason) for k, o in done.items()]}"
            )
            events, finished = ex.poll(0.1)
            trained.extend(key for key, _ in events)
            for task, outcome in finished:
                done[task.key] = outcome

    try:
        ex.submit(Task("ok/seed0", RunConfig().override(SLOW)))
        poll_until(lambda: "ok/seed0" in trained, "the healthy run trains an epoch")
        if death == "a run exits its process":
            ex.submit(Task("dies/seed0", RunConfig().override(DIES)))
            poll_until(lambda: "dies/seed0" in done, "the dying run fails")
        else:
            ex.submit(Task("quick/seed0", RunConfig().override(QUICK)))
            poll_until(lambda: "quick/seed0" in done, "the quick run finishes")
            running = ex._where["ok/seed0"]  # which process runs which run (the executor's STARTED events)
            idle = next(pid for pid in ex._pool._processes if pid != running)
            os.kill(idle, signal.SIGKILL)
            poll_until(lambda: ex.restarts == 1, "the pool is rebuilt")
        assert "ok/seed0" not in done, done["ok/seed0"].reason  # a bystander: started again, not failed
        if death == "a run exits its process":  # the run whose process died: charged, and told how
            assert done["dies/seed0"].reason == f"{died_reason(2)}; started 1 times"
        trained.clear()
        poll_until(lambda: "ok/seed0" in trained, "the healthy run trains again")
        ex.stop("ok/seed0")
        poll_until(lambda: "ok/seed0" in done, "the healthy run stops")
        assert done["ok/seed0"].status is RunStatus.PRUNED and ex.restarts == 1
    finally:
        ex.close()
