"""A real ``reglab run`` (``python -m reglab.cli``, its own process group) survives the death of a
worker process, and stops cleanly on SIGINT / SIGTERM: within seconds, one line saying what is
stored, no traceback, no process left behind; the same command then resumes."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from studylib import complete_runs

from reglab.study import load_study, run_protocol

ARMS = {"none": {}, "dropout": {"dropout": 0.2}}
SEEDS = 6


def processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name: state, ppid, pgid, ...)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    return [p for p, fields in processes() if int(fields[1]) == pid]


def alive(pid: int) -> bool:
    """Running (not a zombie waiting for its reaper)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def has_torch(pid: int) -> bool:
    """A pool worker process (it imported torch), not the resource tracker."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"reglab run ended too early:\n{log.read_text()}")
        assert time.monotonic() < deadline, f"condition not met in time:\n{log.read_text()}"
        time.sleep(0.1)


@pytest.fixture
def study(tmp_path: Path, tiny_study: Callable[..., dict[str, Any]]) -> Path:
    # runs of about a second: all of digits, a 128-128 MLP, 4 epochs of batches of 16
    doc = tiny_study(name="signals", arms=ARMS, seeds=SEEDS, output=str(tmp_path / "out"))
    doc["data"] = {"name": "digits"}
    doc["model"] = {"hidden": [128, 128]}
    doc["train"] = {"epochs": 4, "batch_size": 16, "device": "cpu"}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def start(study: Path, log: Path, command: tuple[str, ...] = ("run", "--no-progress")) -> subprocess.Popen[bytes]:
    """``reglab run STUDY --jobs 2`` (or another ``command``) in its own process group; its output
    is appended to ``log`` (a resumed run's after the first one's)."""
    with log.open("a") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "reglab.cli", command[0], str(study), "--jobs", "2", *command[1:]],
            cwd=study.parent,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
        )


def stored_once(db: Path) -> Counter[tuple[str, int]]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name="signals/runs", storage=f"sqlite:///{db}").get_trials()
    return Counter(
        (t.user_attrs["arm"], t.user_attrs["seed"]) for t in trials if t.state == optuna.trial.TrialState.COMPLETE
    )


@pytest.mark.slow
def test_a_killed_worker_process_is_replaced_and_the_study_finishes(study: Path, tmp_path: Path) -> None:
    db, log = tmp_path / "out" / "study.db", tmp_path / "run.log"
    proc = start(study, log)
    try:
        wait_for(lambda: complete_runs(db) >= 1 and sum(map(has_torch, children(proc.pid))) == 2, proc, log)
        victim = next(p for p in children(proc.pid) if has_torch(p))
        os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer does
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "BrokenProcessPool" not in text
    assert stored_once(db) == {(a, s): 1 for a in ARMS for s in range(SEEDS)}
    assert (tmp_path / "out" / "runs.csv").exists() and (tmp_path / "out" / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "group"), [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_a_signal_stops_the_study_cleanly_and_the_same_command_resumes(
    study: Path, tmp_path: Path, sig: signal.Signals, group: bool, executor: Any
) -> None:
    db, log = tmp_path / "out" / "study.db", tmp_path / "run.log"
    proc = start(study, log)
    try:
        wait_for(lambda: complete_runs(db) >= 1 and sum(map(has_torch, children(proc.pid))) == 2, proc, log)
        kids = children(proc.pid)
        (os.killpg if group else os.kill)(proc.pid, sig)  # Ctrl-C reaches the group; `kill` the driver only
        t0 = time.monotonic()
        proc.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    text = log.read_text()
    assert took < 20, text
    assert proc.returncode == 128 + sig, text
    assert "Traceback" not in text, text
    line = next(x for x in text.splitlines() if x.startswith("interrupted:"))
    stored = complete_runs(db)
    assert line == (
        f"interrupted: {stored} of {len(ARMS) * SEEDS} runs stored in {tmp_path / 'out'}; "
        "run the same command to resume"
    )
    deadline = time.monotonic() + 30  # no process of the driver's outlives it
    while any(map(alive, kids)):
        assert time.monotonic() < deadline, [k for k in kids if alive(k)]
        time.sleep(0.2)

    resumed = run_protocol(load_study(study), progress=False, executor=executor)
    assert resumed.stats.skipped == stored and resumed.stats.new == len(ARMS) * SEEDS - stored
    assert stored_once(db) == {(a, s): 1 for a in ARMS for s in range(SEEDS)}


SECOND_SIGNAL = """
import os, signal, subprocess, sys, time
from reglab.cli import _catch_signals
from reglab.errors import Interrupted

_catch_signals()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(600)
except Interrupted:
    print("stopping gracefully", flush=True)
    os.kill(os.getpid(), signal.SIG{second})  # a second signal while the study still shuts down
    time.sleep(600)  # a shutdown that would take ten minutes
print("graceful shutdown finished", flush=True)
"""


@pytest.mark.parametrize(("second", "code"), [("INT", 130), ("TERM", 143)])
def test_a_second_signal_during_the_graceful_stop_exits_at_once_and_kills_the_children(
    second: str, code: int
) -> None:
    """The first Ctrl-C starts the graceful stop; a second one, arriving while it runs, exits at once
    with 128 + its number and SIGKILLs the children instead of waiting for them (the graceful
    path would print its last line only after ten minutes)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL.format(second=second)], capture_output=True, text=True, timeout=300
    )
    assert time.monotonic() - started < 120
    lines = proc.stdout.splitlines()
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert lines[1:] == ["stopping gracefully"], proc.stdout  # the graceful path never finished
    assert proc.stderr == "interrupted again: exiting now\n"
    child = int(lines[0])
    deadline = time.monotonic() + 60
    while alive(child):
        assert time.monotonic() < deadline, f"child {child} outlived the second signal"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once(study: Path, tmp_path: Path) -> None:
    """End to end on a real study: two Ctrl-C in a row (the second may arrive during the graceful
    stop or be merged with the first by the kernel - both must end in 130 with no child left)."""
    db, log = tmp_path / "out" / "study.db", tmp_path / "run.log"
    proc = start(study, log)
    try:
        wait_for(lambda: complete_runs(db) >= 1 and sum(map(has_torch, children(proc.pid))) == 2, proc, log)
        kids = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == 130, log.read_text()
    deadline = time.monotonic() + 30
    while any(map(alive, kids)):
        assert time.monotonic() < deadline, [k for k in kids if alive(k)]
        time.sleep(0.2)


def group(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (zombies are not alive)."""
    return [p for p, fields in processes() if int(fields[2]) == pgid and fields[0] != "Z"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "worker"])
def test_a_driver_killed_while_its_workers_start_leaves_no_process(study: Path, tmp_path: Path, command: str) -> None:
    """Issue 21, failure 4: a driver SIGKILLed in the first seconds after its pool started left
    its worker processes (they learnt the driver's pid only after importing torch) and
    multiprocessing's resource tracker (kept alive by their copies of its pipe) running for good.
    Kills at random moments from the first 100 ms on - half of them after the pool has started -
    must leave no process of the driver's group behind."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    args = ("run", "--no-progress") if command == "run" else ("worker", "--storage", f"sqlite:///{tmp_path / 'w.db'}")
    gone_after = []
    for i in range(4):
        log = tmp_path / f"kill{i}.log"
        proc = start(study, log, args)
        try:
            if i % 2:  # a random moment in the first 2 s after the pool started
                wait_for(lambda p=proc.pid: bool(children(p)), proc, log)
                at = time.monotonic() + rng.uniform(0.0, 2.0)
            else:  # a random moment from the first 100 ms on
                at = time.monotonic() + rng.uniform(0.1, 4.0)
            while time.monotonic() < at and proc.poll() is None:
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            killed = time.monotonic()
            deadline = killed + 90  # generous: the machine may be busy
            while left := group(proc.pid):
                why = f"random seed {seed}, kill {i}: {[_cmdline(p) for p in left]}"
                assert time.monotonic() < deadline, f"left behind after 90 s ({why})"
                time.sleep(0.1)
            gone_after.append(round(time.monotonic() - killed, 1))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    print(f"{command}: the killed driver's processes were gone after {gone_after} s")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return str(pid)
