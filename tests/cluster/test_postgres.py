"""Workers sharing a study through a real PostgreSQL server: every run stored exactly once, an
exact tuning budget, dead workers' runs taken over, and the password never shown or written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from clusterlib import REGLAB, load_study, reglab_env, run_reglab, small_study, trials_by_key

from reglab.study.results.outcome import RunOutcome

pytestmark = pytest.mark.servers

KEYS = {(arm, seed) for arm in ("none", "l2") for seed in range(3)}


def _start_worker(study: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*REGLAB, "worker", str(study), "--storage", url, "--jobs", "1", *extra],
        cwd=study.parent,
        env=reglab_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            stdout, stderr = p.communicate()
            pytest.fail(f"worker did not finish in {timeout}s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
        out.append((p.returncode, stdout, stderr))
    return out


def _no_secret(password: str, texts: list[str], folder: Path) -> None:
    for text in texts:
        assert password not in text
    for f in folder.rglob("*"):
        if f.is_file():
            assert password.encode() not in f.read_bytes(), f"password written into {f}"


def _exactly_once(url: str, name: str, keys: set[tuple[str, int]]) -> dict[tuple[str, int], list[Any]]:
    import optuna

    by_key = trials_by_key(url, name)
    assert set(by_key) == keys
    for key, trials in by_key.items():
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(complete) == 1, f"{key}: {[(t.number, t.state.name) for t in trials]}"
    return by_key


def test_two_workers_store_every_run_once(pg_url: str, postgres: Any, study_dir: Any, tmp_path: Path) -> None:
    import optuna

    study = study_dir(small_study())
    results = _finish([_start_worker(study, pg_url), _start_worker(study, pg_url, "--no-report")])
    for rc, stdout, stderr in results:
        assert rc == 0, stdout[-3000:] + stderr[-3000:]

    by_key = _exactly_once(pg_url, "cluster-small", KEYS)
    assert sum(len(v) for v in by_key.values()) == 6  # not a single duplicate or abandoned claim
    assert all(t.state == optuna.trial.TrialState.COMPLETE for v in by_key.values() for t in v)
    workers = {t.user_attrs["worker"] for v in by_key.values() for t in v}
    assert len(workers) == 2, "both workers should have trained runs"

    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert {a: summary["arms"][a]["n_completed"] for a in ("none", "l2")} == {"none": 3, "l2": 3}
    assert summary["storage"].startswith("postgresql://reglab:***@127.0.0.1")
    assert (out / "config.resolved.yaml").is_file() and (out / "report.html").is_file()
    assert not list(out.glob(".reglab-worker-*")), "staging folders are removed"

    # a driver on the same storage afterwards: nothing to run, writes the summary again
    again = run_reglab(["run", str(study), "--storage", pg_url, "--no-progress"], cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "6 runs already stored" in again.stdout
    assert sum(len(v) for v in trials_by_key(pg_url, "cluster-small").values()) == 6

    texts = [s for _, o, e in results for s in (o, e)] + [again.stdout, again.stderr]
    _no_secret(postgres.password, texts, out)


def test_two_workers_share_the_tuning_budget_exactly(
    pg_url: str, postgres: Any, study_dir: Any, tmp_path: Path
) -> None:
    import optuna

    doc = small_study(
        name="cluster-tune",
        seeds=2,
        search={"sampler": "random", "trials": 4, "seed": 1},
        arms={
            "none": {"lr": {"low": 0.01, "high": 0.3, "log": True}},
            "l2": {"l2": {"low": 1e-5, "high": 1e-2, "log": True}},
        },
    )
    study = study_dir(doc)
    results = _finish([_start_worker(study, pg_url, "--no-report"), _start_worker(study, pg_url, "--no-report")])
    for rc, stdout, stderr in results:
        assert rc == 0, stdout[-3000:] + stderr[-3000:]

    S = optuna.trial.TrialState
    askers = set()
    for arm in ("none", "l2"):
        trials = load_study(f"cluster-tune/tune/{arm}", pg_url).get_trials()
        assert len(trials) == 4, [(t.number, t.state.name) for t in trials]  # the budget, exactly
        assert all(t.state in (S.COMPLETE, S.PRUNED) for t in trials)
        askers |= {t.user_attrs["worker"] for t in trials}
    assert len(askers) == 2, "both workers should have run trials"
    _exactly_once(pg_url, "cluster-tune", {(a, s) for a in ("none", "l2") for s in range(2)})

    out = tmp_path / "out"
    tuning = json.loads((out / "tuning.json").read_text())
    assert {a: r["n_trials"] for a, r in tuning["arms"].items()} == {"none": 4, "l2": 4}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["tuning"]) == {"none", "l2"}
    _no_secret(postgres.password, [s for _, o, e in results for s in (o, e)], out)


def test_a_dead_workers_runs_are_taken_over(pg_url: str, postgres: Any, study_dir: Any, tmp_path: Path) -> None:
    import optuna

    # a claim is a RUNNING trial from before training starts, so killing the worker as soon as one
    # shows up kills it mid-run
    doc = small_study(name="cluster-dead", seeds=2)
    study = study_dir(doc)
    victim = _start_worker(study, pg_url)
    deadline = time.monotonic() + 600  # a worker starting (torch, Optuna, the database) is slow on a busy machine
    running: list[Any] = []
    while time.monotonic() < deadline and not running:
        time.sleep(0.5)
        try:
            running = [
                t
                for v in trials_by_key(pg_url, "cluster-dead").values()
                for t in v
                if t.state == optuna.trial.TrialState.RUNNING
            ]
        except KeyError:  # the study is not created yet
            continue
    assert running, "the first worker never claimed a run"
    os.killpg(victim.pid, signal.SIGKILL)  # the worker and its training processes, mid-run
    victim.communicate()
    S = optuna.trial.TrialState
    running = [t for v in trials_by_key(pg_url, "cluster-dead").values() for t in v if t.state == S.RUNNING]
    assert running, "the worker should have died holding a claim"

    rescuer = _start_worker(study, pg_url, "--stale-after", "3", "--no-report")
    [(rc, stdout, stderr)] = _finish([rescuer], timeout=300)
    assert rc == 0, stdout[-3000:] + stderr[-3000:]

    by_key = _exactly_once(pg_url, "cluster-dead", {(a, s) for a in ("none", "l2") for s in range(2)})
    abandoned = [t for v in by_key.values() for t in v if t.state != optuna.trial.TrialState.COMPLETE]
    assert [t.user_attrs["status"] for t in abandoned] == ["interrupted"] * len(running)
    assert {t.number for t in abandoned} == {t.number for t in running}
    _no_secret(postgres.password, [stdout, stderr], tmp_path / "out")


def test_concurrent_claims_never_collide(pg_url: str) -> None:
    """Eight threads, each with its own connection, claim 20 runs: each run is claimed once."""
    from reglab.study.results.storage import RunStore

    keys = [(f"arm{i % 4}", i // 4) for i in range(20)]
    RunStore(pg_url, "claims", "fp")  # create the study once
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        store = RunStore(pg_url, "claims", "fp")
        while (c := store.claim(keys, f"t{n}")) is not None:
            with lock:
                claimed.append((c.arm, c.seed))
            assert store.heartbeat(c)
            assert store.finish(c, RunOutcome(status="completed", final={"val_acc": 0.5}), 0.5)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(claimed) == sorted(keys)
    store = RunStore(pg_url, "claims", "fp")
    assert len(store.done()) == 20 and store.claim(keys, "late") is None
    assert store.claim_state(keys).settled


def test_stale_claims_are_reclaimed_and_late_results_dropped(pg_url: str) -> None:
    from reglab.study.results.storage import RunStore

    store = RunStore(pg_url, "stale", "fp")
    keys = [("a", 0)]
    first = store.claim(keys, "w1")
    assert first is not None and store.claim(keys, "w2") is None  # claimed and fresh
    time.sleep(1.2)
    second = store.claim(keys, "w2", stale_after=1.0)  # the first looks dead now
    assert second is not None and second.trial_id != first.trial_id
    assert not store.heartbeat(first)  # the first worker learns it lost the run ...
    assert not store.finish(first, RunOutcome(status="completed"), 0.9)  # ... and stores nothing
    assert store.finish(second, RunOutcome(status="completed"), 0.8)
    assert {k: r.worker for k, r in store.done().items()} == {("a", 0): "w2"}


def test_storage_errors_never_show_the_password(postgres: Any, study_dir: Any, tmp_path: Path) -> None:
    secret = "Wr0ngSecret" + os.urandom(4).hex()
    url = f"postgresql://{postgres.user}:{secret}@127.0.0.1:{postgres.port}/{postgres.database}"
    study = study_dir(small_study(name="bad-password"))
    for args in (["worker", str(study), "--storage", url], ["run", str(study), "--storage", url, "--no-progress"]):
        res = run_reglab(args, cwd=tmp_path, timeout=300)
        assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
        assert "error:" in res.stderr and "***" in res.stderr
        assert secret not in res.stdout + res.stderr


def test_the_study_lease_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """One driver or many workers (advisory locks held by a connection); a killed holder releases it."""
    from reglab.study.protocol.lease import StudyBusy, study_lease

    def refusal(url: str, name: str, shared: bool = False) -> str:
        try:
            with study_lease(url, name, shared=shared):
                return ""
        except StudyBusy as err:
            return str(err)

    with study_lease(pg_url, "s"):
        assert re.search("is already being run by another process", refusal(pg_url, "s"))
        assert re.search("workers can join only", refusal(pg_url, "s", shared=True))
        with study_lease(pg_url, "other"):
            pass
    with study_lease(pg_url, "s", shared=True), study_lease(pg_url, "s", shared=True):
        assert re.search("is being worked on by `reglab worker` processes", refusal(pg_url, "s"))
    holder = (
        "import sys, time\nfrom reglab.study.protocol.lease import study_lease\n"
        "with study_lease(sys.argv[1], 's'):\n    open(sys.argv[2], 'w').close()\n    time.sleep(600)\n"
    )
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", holder, pg_url, str(ready)], env=env)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert refusal(pg_url, "s")
        proc.kill()  # the server drops the lock with the connection
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 120
    while True:
        try:
            with study_lease(pg_url, "s"):
                break
        except StudyBusy:
            assert time.monotonic() < deadline, "the killed holder's lock was not released"
            time.sleep(0.1)
