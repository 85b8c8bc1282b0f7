"""Benchmark: a whole reglab study against the tools users would pick instead, side by side.

The workload (issue 13): a 20-trial random search on ``digits`` (scikit-learn's bundled data, reglab's
default split: test 20 % carved out with a fixed seed, validation 15 % of the rest), the default MLP
64-256-128-10 (ReLU, dropout after each hidden layer), plain SGD, 20 epochs at batch 32, tuning
``lr``, ``l2`` and ``dropout`` over reglab's default ranges (read from reglab: ``lr`` log 1e-4..1,
``l2`` log 1e-6..1e-1, ``dropout`` 0..0.7), then one training run of the best configuration
evaluated once on the test split. Every contender is a fresh child process (so interpreter start,
imports and data loading count) running with one torch thread:

* ``reglab run``           -- ``reglab run study.yaml -j 1 --no-progress`` on a study file this script
  writes (``search: {sampler: random, trials: 20, pruner: none, seed: 0}``, one arm, ``seeds: 1``):
  search, 1-seed confirmation, statistics and the HTML report, as a user runs it;
* ``optuna + slices``      -- plain Optuna (in-memory study, ``RandomSampler(seed=0)``) and a
  hand-written loop over slices of a per-epoch permutation of in-memory tensors (the fast limit),
  the same ``nn.Sequential`` MLP, ``torch.optim.SGD`` and L2 as reglab applies it (``l2 * sum w^2``
  over the weight matrices, added to the loss: coupled, biases not penalized), validation accuracy
  after every epoch, the last epoch's value returned, no early stopping; then the confirmation run;
* ``optuna + DataLoader``  -- the same with the classic ``DataLoader(TensorDataset(x, y),
  shuffle=True)`` loop;
* ``Keras Tuner``          -- ``keras_tuner.RandomSearch(seed=0)`` on Keras 3 with the torch backend
  (``Dense`` layers with ``kernel_regularizer=L2(l2)``: the same penalty), then the confirmation run;
  only when ``--keras-python`` can import keras and keras_tuner (a separate virtual environment:
  see benchmarks/README.md), skipped with a message otherwise;
* ``Ray Tune``             -- ``ray.tune.Tuner`` with ``OptunaSearch(RandomSampler(seed=0))``, one trial
  at a time on a local Ray instance (``num_cpus=1``), the slice loop as the trainable reporting
  every epoch, then the confirmation run in the driver; only when Ray imports.

Also measured: the search alone (reglab: ``reglab.study.protocol.protocol.tune_study``, the tuning phase of
``reglab run``, in a child process - the CLI has no search-only command; Optuna: the same child with
``--phase search``), a 1-trial x 1-epoch study (reglab and Optuna + slices), and ``reglab --help``.

Same work: like reglab's tuning runs (seed ``1000 + search.seed``) the peers tune on the split of
seed 1000 and confirm on the split of seed 0, with their own copy of reglab's split rule; the script
checks that every contender trained on the same split sizes as reglab, that the peers' labels and
inputs equal reglab's (``reglab.data.load_data``), and that the Optuna-based contenders (plain Optuna,
Ray's OptunaSearch) trained exactly reglab's 20 (lr, l2, dropout) points (reglab's sampler is
Optuna's ``RandomSampler`` seeded with ``search.seed``, suggesting lr, l2, dropout in that order).
Keras Tuner has its own random sampler: its points are checked to lie in the same ranges.

Timing: contenders run one after the other in rotating order for ``--rounds`` interleaved rounds
(default 5); wall time from start to exit of the child, CPU time (user + system) of the child and
every process below it (reglab's worker pool, Ray's daemons and workers): ``getrusage`` of all that
is reaped into this process (the child subreaper: orphaned grandchildren are reaped and counted
here too), plus the CPU time of processes whose parent ignores SIGCHLD - Ray's raylet does, so the
kernel reaps its workers and their time reaches no rusage - sampled from /proc every 50 ms (the
last few milliseconds of each such process are missed: Ray's figure is a slight underestimate).
Medians are compared. All output folders and storages live in ``--workdir`` (default: a temporary
folder in /dev/shm, where there is one).

Targets (issue 13): reglab CPU / (Optuna + slices) CPU <= 1.15 for the whole study and <= 1.05 for
the search alone; a 1-trial x 1-epoch reglab study <= 3 s of CPU; ``reglab --help`` <= 0.5 s wall.

Run: ``nice -n 10 .venv/bin/python benchmarks/peers.py`` (15-30 minutes on 2 cores);
``--quick`` for a smoke run (4 trials x 3 epochs, 1 round, targets not judged).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, load_line, median, overloaded, pin_threads, table, verdict

SCRIPT = Path(__file__).resolve()
SAMPLER_SEED = 0  # search.seed: the sampler's seed; tuning runs use split and init seed 1000 + it
TUNE_SEED = 1000 + SAMPLER_SEED
CONFIRM_SEED = 0  # the study's first (only) seed
HIDDEN = (256, 128)
BATCH = 32
PARAMS = ("lr", "l2", "dropout")  # suggested in this order, as reglab's search space lists them
TARGET_STUDY, TARGET_SEARCH, TARGET_TINY_CPU, TARGET_HELP_WALL = 1.15, 1.05, 3.0, 0.5
HELP_REPS = 5  # `reglab --help` calls per round

KERAS_INSTALL = (
    "a separate virtual environment (not the project's): python3.11 -m venv /tmp/kt-venv && /tmp/kt-venv/bin/pip "
    "install keras keras-tuner torch optuna scikit-learn, then --keras-python /tmp/kt-venv/bin/python "
    "(benchmarks/README.md, peers.py)"
)
RAY_INSTALL = (
    "reglab's cluster extra (pip install -e '.[cluster]'), or ray[tune] in another environment and --ray-python"
)


# ================================================================================================
# Children: the peers' own code (no reglab import). Each writes a JSON result file.
# ================================================================================================


def stratified_split(y: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """reglab's split rule (``reglab.data.base.stratified_split``), re-typed: per class, a seeded
    shuffle and ``round(n * fraction)`` held out (at least one, at most n - 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = round(len(idx) * fraction)
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def digits_splits(split_seed: int) -> dict[str, Any]:
    """digits as reglab splits it: test 20 % (fixed seed 10007), validation 15 % of the rest
    (``split_seed``), standardized with the training split's mean and standard deviation; numpy
    arrays, inputs flattened to 64 columns."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images.astype(np.float32)[:, None, :, :], d.target.astype(np.int64)
    rest, te = stratified_split(y, 0.2, 10_007)
    tr, va = stratified_split(y[rest], 0.15, split_seed)
    tr, va = rest[tr], rest[va]
    mean = x[tr].mean(axis=(0, 2, 3), keepdims=True)
    std = x[tr].std(axis=(0, 2, 3), keepdims=True)
    std = np.where(std < 1e-8, 1.0, std).astype(np.float32)

    def norm(a: Any) -> Any:
        return np.ascontiguousarray(((a - mean) / std).reshape(len(a), -1))

    return {
        "x_train": norm(x[tr]),
        "y_train": y[tr],
        "x_val": norm(x[va]),
        "y_val": y[va],
        "x_test": norm(x[te]),
        "y_test": y[te],
    }


def split_check(s: dict[str, Any]) -> dict[str, Any]:
    """Sizes, a hash of the labels and the inputs' sum of absolute values, per split: compared
    with reglab's own splits by the parent."""
    import numpy as np

    out = {}
    for part in ("train", "val", "test"):
        x, y = np.asarray(s[f"x_{part}"]), np.asarray(s[f"y_{part}"])
        out[part] = {
            "n": len(y),
            "y_sha": hashlib.sha256(np.ascontiguousarray(y.astype(np.int64)).tobytes()).hexdigest()[:16],
            "x_abs": float(np.abs(x.astype(np.float64)).sum()),
        }
    return out


def as_tensors(s: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {k: torch.from_numpy(v) for k, v in s.items()}


def torch_mlp(n_in: int, n_out: int, dropout: float) -> Any:
    """The MLP reglab builds by default: Linear-ReLU-Dropout per hidden layer, then Linear."""
    from torch import nn

    layers: list[nn.Module] = []
    width = n_in
    for h in HIDDEN:
        layers += [nn.Linear(width, h), nn.ReLU(), *([nn.Dropout(dropout)] if dropout > 0 else [])]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def train_torch(
    p: dict[str, float],
    data: dict[str, Any],
    *,
    epochs: int,
    seed: int,
    loop: str,
    test: bool = False,
    report: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """One run: SGD at ``p['lr']``, ``p['l2'] * sum w^2`` (weight matrices) added to the loss,
    validation loss and accuracy after each epoch; stops after a non-finite training or
    validation loss (as reglab's engine does). ``loop``: ``slice`` (per-epoch permutation of the
    in-memory tensors) or ``dataloader`` (``DataLoader(TensorDataset)``, shuffled)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    x, y, xv, yv = data["x_train"], data["y_train"], data["x_val"], data["y_val"]
    model = torch_mlp(x.shape[1], 10, p["dropout"])
    opt = torch.optim.SGD(model.parameters(), lr=p["lr"])
    weights = [w for w in model.parameters() if w.ndim > 1]
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    loader = (
        DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, generator=gen) if loop == "dataloader" else None
    )
    rec: dict[str, float] = {}
    status = "completed"
    for epoch in range(epochs):
        model.train()
        if loader is None:
            perm = torch.randperm(n, generator=gen)
            batches: Any = ((x[idx], y[idx]) for idx in (perm[i : i + BATCH] for i in range(0, n, BATCH)))
        else:
            batches = loader
        loss_sum, correct = 0.0, 0
        for xb, yb in batches:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            total = loss + p["l2"] * torch.stack([w.pow(2).sum() for w in weights]).sum() if p["l2"] > 0 else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
        model.eval()
        with torch.no_grad():
            out = model(xv)
            val_loss = float(F.cross_entropy(out, yv))
            val_acc = int((out.argmax(1) == yv).sum()) / len(yv)
        rec = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / n,
            "train_acc": correct / n,
            "val_loss": val_loss,
            "val_acc": val_acc,
        }
        if report is not None:
            report(rec)
        if not (math.isfinite(rec["train_loss"]) and math.isfinite(val_loss)):
            status = "diverged"
            break
    result: dict[str, Any] = {"status": status, "val_acc": rec.get("val_acc"), "epochs": int(rec.get("epoch", 0))}
    if test:
        with torch.no_grad():
            model.eval()
            result["test_acc"] = int((model(data["x_test"]).argmax(1) == data["y_test"]).sum()) / len(data["y_test"])
    return result


def _suggest(trial: Any, ranges: dict[str, Any]) -> dict[str, float]:
    return {k: trial.suggest_float(k, ranges[k]["low"], ranges[k]["high"], log=ranges[k]["log"]) for k in PARAMS}


def child_optuna(args: argparse.Namespace, ranges: dict[str, Any], loop: str) -> dict[str, Any]:
    import optuna

    pin_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    raw = digits_splits(TUNE_SEED)
    tune_data = as_tensors(raw)
    points: list[list[float]] = []

    def objective(trial: optuna.Trial) -> float:
        p = _suggest(trial, ranges)
        points.append([p[k] for k in PARAMS])
        r = train_torch(p, tune_data, epochs=args.epochs, seed=TUNE_SEED, loop=loop)
        return float(r["val_acc"]) if r["status"] == "completed" else float("nan")  # nan: a failed trial

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=SAMPLER_SEED))
    study.optimize(objective, n_trials=args.trials)
    out: dict[str, Any] = {
        "points": points,
        "values": [t.value for t in study.trials],
        "best_value": study.best_value,
        "best": study.best_params,
        "checks": {"tune": split_check(raw)},
    }
    if args.phase == "study":
        raw0 = digits_splits(CONFIRM_SEED)
        r = train_torch(
            study.best_params, as_tensors(raw0), epochs=args.epochs, seed=CONFIRM_SEED, loop=loop, test=True
        )
        out["test_acc"] = r["test_acc"]
        out["checks"]["confirm"] = split_check(raw0)
    return out


def child_keras(args: argparse.Namespace, ranges: dict[str, Any]) -> dict[str, Any]:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import keras_tuner

    pin_threads(1)
    raw = digits_splits(TUNE_SEED)

    def build(hp: Any) -> Any:
        v = {
            k: hp.Float(k, ranges[k]["low"], ranges[k]["high"], sampling="log" if ranges[k]["log"] else "linear")
            for k in PARAMS
        }
        reg = keras.regularizers.L2(v["l2"])  # l2 * sum w^2 in the loss, kernels only: reglab's l2
        layers: list[Any] = [keras.Input((64,))]
        for h in HIDDEN:
            layers += [
                keras.layers.Dense(h, activation="relu", kernel_regularizer=reg),
                keras.layers.Dropout(v["dropout"]),
            ]
        layers.append(keras.layers.Dense(10, kernel_regularizer=reg))
        model = keras.Sequential(layers)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=v["lr"]),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    keras.utils.set_random_seed(TUNE_SEED)
    tuner = keras_tuner.RandomSearch(
        build,
        objective="val_accuracy",
        max_trials=args.trials,
        seed=SAMPLER_SEED,
        overwrite=True,
        directory=args.workdir,
        project_name="keras-tuner",
    )
    fit = {"epochs": args.epochs, "batch_size": BATCH, "verbose": 0, "callbacks": [keras.callbacks.TerminateOnNaN()]}
    tuner.search(raw["x_train"], raw["y_train"], validation_data=(raw["x_val"], raw["y_val"]), **fit)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    best = tuner.get_best_hyperparameters(1)[0]
    out: dict[str, Any] = {
        "points": [[t.hyperparameters.values[k] for k in PARAMS] for t in trials],
        "best_value": tuner.oracle.get_best_trials(1)[0].score,
        "best": {k: best.values[k] for k in PARAMS},
        "checks": {"tune": split_check(raw)},
    }
    if args.phase == "study":
        raw0 = digits_splits(CONFIRM_SEED)
        keras.utils.set_random_seed(CONFIRM_SEED)
        model = build(best)
        model.fit(raw0["x_train"], raw0["y_train"], validation_data=(raw0["x_val"], raw0["y_val"]), **fit)
        out["test_acc"] = float(model.evaluate(raw0["x_test"], raw0["y_test"], verbose=0, return_dict=True)["accuracy"])
        out["checks"]["confirm"] = split_check(raw0)
    return out


class DefineByRun:
    """Ray's OptunaSearch space: the same suggestions in the same order (a class: Ray pickles it)."""

    def __init__(self, ranges: dict[str, Any]) -> None:
        self.ranges = ranges

    def __call__(self, trial: Any) -> None:
        _suggest(trial, self.ranges)


def child_ray(args: argparse.Namespace, ranges: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import optuna
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    pin_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    raw = digits_splits(TUNE_SEED)
    epochs = args.epochs

    def trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)
        train_torch(config, data, epochs=epochs, seed=TUNE_SEED, loop="slice", report=tune.report)

    ray.init(num_cpus=1, include_dashboard=False)
    try:
        searcher = OptunaSearch(
            space=DefineByRun(ranges),
            metric="val_acc",
            mode="max",
            sampler=optuna.samplers.RandomSampler(seed=SAMPLER_SEED),
        )
        tuner = tune.Tuner(
            tune.with_parameters(trainable, data=as_tensors(raw)),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=args.trials, max_concurrent_trials=1),
            run_config=tune.RunConfig(name="ray-tune", storage_path=str(Path(args.workdir).resolve()), verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()

    def started(r: Any) -> tuple[int, int]:  # trial folders are <trainable>_<id>_<n>_<params>_<date>: n-th trial
        tail = Path(r.path).name.split(f"_{r.metrics['trial_id']}_", 1)[-1]
        return (int(tail.split("_", 1)[0]) if tail.split("_", 1)[0].isdigit() else 0, int(r.metrics["timestamp"]))

    ordered = sorted(results, key=started)
    best = results.get_best_result(metric="val_acc", mode="max", scope="last")
    out: dict[str, Any] = {
        "points": [[r.config[k] for k in PARAMS] for r in ordered],
        "values": [r.metrics.get("val_acc") for r in ordered],
        "best_value": best.metrics["val_acc"],
        "best": {k: best.config[k] for k in PARAMS},
        "checks": {"tune": split_check(raw)},
    }
    if args.phase == "study":
        raw0 = digits_splits(CONFIRM_SEED)
        r = train_torch(out["best"], as_tensors(raw0), epochs=epochs, seed=CONFIRM_SEED, loop="slice", test=True)
        out["test_acc"] = r["test_acc"]
        out["checks"]["confirm"] = split_check(raw0)
    return out


def child_main(args: argparse.Namespace) -> int:
    ranges = json.loads(args.ranges)
    run = {
        "optuna-slice": lambda: child_optuna(args, ranges, "slice"),
        "optuna-dataloader": lambda: child_optuna(args, ranges, "dataloader"),
        "keras-tuner": lambda: child_keras(args, ranges),
        "ray-tune": lambda: child_ray(args, ranges),
    }[args.child]
    out = run()
    Path(args.out).write_text(json.dumps(out))
    return 0


# ================================================================================================
# Parent: study files, child processes, CPU accounting, checks, table.
# ================================================================================================


@dataclass
class Contender:
    key: str
    label: str
    group: str  # "study" | "search" | "tiny" | "help"
    cmd: Callable[[Path], list[str]]  # run folder -> command line
    env: dict[str, str] = field(default_factory=dict)
    kind: str = "peer"  # "reglab" | "peer"
    reps: int = 1
    out: Path | None = None  # a reglab study's output folder (its study file's ``output``)


@dataclass
class Sample:
    wall: float
    cpu: float
    result: dict[str, Any] | None = None
    sampled: float = 0.0  # part of ``cpu`` seen only by sampling /proc (processes no rusage counts)


def set_subreaper() -> bool:
    """Make this process the reaper of orphaned descendants (Linux), so that a grandchild whose
    parent exits first (a daemon of Ray, a worker of a pool) is waited for - and counted - here."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _own_children() -> list[int]:
    me, pids = os.getpid(), []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                    pids.append(int(d.name))
    return pids


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, start time, CPU ticks of the process and of the children it waited for) from
    /proc/PID/stat; None when it is gone."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(f[1]), int(f[19]), int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    except (OSError, IndexError, ValueError):
        return None


def _ignores_sigchld(pid: int) -> bool:
    """Whether ``pid`` ignores SIGCHLD: its children are then reaped by the kernel, and their CPU
    time reaches nobody's ``getrusage``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGCHLD - 1)))
    return False


@dataclass
class _Proc:
    start: int
    ppid: int
    ticks: int  # its own and its waited-for children's CPU time when last seen
    unreaped: bool  # its parent ignores SIGCHLD: no rusage will ever count it
    reaped_here: bool = False


class TreeWatch:
    """Samples the CPU time of this process's descendants from /proc every ``interval`` seconds,
    to count what ``getrusage`` cannot: processes whose parent ignores SIGCHLD (Ray's raylet does,
    so its workers' CPU time is lost to every rusage). Counts nothing where /proc is missing."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.me, self.interval = os.getpid(), interval
        self.procs: dict[int, _Proc] = {}
        self.gone: list[_Proc] = []  # records of descendants whose pid was reused
        self.others: set[int] = set()  # pids that are not descendants (forgotten every second)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.enabled = Path(f"/proc/{self.me}/stat").exists()

    def __enter__(self) -> TreeWatch:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()

    def _run(self) -> None:
        last_reset = time.monotonic()
        while not self._stop.is_set():
            self.scan()
            if time.monotonic() - last_reset > 1.0:
                self.others.clear()  # a pid seen before may be a new process now
                last_reset = time.monotonic()
            self._stop.wait(self.interval)
        self.scan()

    def scan(self) -> None:
        try:
            pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
        except OSError:
            return
        for pid in pids:
            if pid == self.me or pid in self.others:
                continue
            st = _stat(pid)
            if st is None:
                continue
            ppid, start, ticks = st
            rec = self.procs.get(pid)
            if rec is not None and rec.start == start:
                rec.ticks, rec.ppid = max(rec.ticks, ticks), ppid
                continue
            if ppid == self.me or (ppid in self.procs and self.procs[ppid].start <= start):
                if rec is not None:
                    self.gone.append(rec)
                unreaped = ppid != self.me and _ignores_sigchld(ppid)
                self.procs[pid] = _Proc(start, ppid, ticks, unreaped)
            else:
                self.others.add(pid)

    def reaped(self, pid: int) -> None:
        if pid in self.procs:
            self.procs[pid].reaped_here = True

    def lost_cpu(self) -> float:
        """CPU seconds of the descendants that no rusage counts (as last seen: up to ``interval``
        of each one's end is missed)."""
        tick = os.sysconf("SC_CLK_TCK")
        recs = [*self.procs.values(), *self.gone]
        return sum(r.ticks for r in recs if r.unreaped and not r.reaped_here and r.ppid != self.me) / tick


def reap(watch: TreeWatch, grace: float = 60.0) -> int:
    """Wait for every remaining descendant (orphans re-parented here); after ``grace`` seconds,
    terminate those still running (only processes a contender started). Returns how many were ended."""
    deadline, ended = time.monotonic() + grace, 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid:
            watch.reaped(pid)
            continue
        if time.monotonic() > deadline:
            for pid in _own_children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    ended += 1
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def run_child(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> tuple[float, float, float, int, int]:
    """(wall s, CPU s of the child and all its descendants, of which sampled from /proc, exit
    code, leftover processes ended). CPU: ``getrusage`` of everything reaped into this process,
    plus what :class:`TreeWatch` saw of descendants that no rusage counts."""
    import resource

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with TreeWatch() as watch, log.open("wb") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
        rc = p.wait()
        wall = time.perf_counter() - t0
        ended = reap(watch)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    lost = watch.lost_cpu()
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) + lost
    return wall, cpu, lost, rc, ended


def reglab_ranges() -> dict[str, dict[str, Any]]:
    """reglab's default tuning ranges (``tune``) of lr, l2 and dropout."""
    from reglab.space import Dim, default_range

    out = {}
    for k in PARAMS:
        d = Dim.model_validate(default_range(k))
        out[k] = {"low": float(d.low or 0.0), "high": float(d.high or 0.0), "log": bool(d.log)}
    return out


def study_doc(name: str, out: Path, trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": name,
        "data": {"name": "digits"},
        "model": {"arch": "mlp", "hidden": list(HIDDEN)},
        "train": {"optimizer": "sgd", "epochs": epochs, "batch_size": BATCH, "device": "cpu"},
        "search": {
            "sampler": "random",
            "trials": trials,
            "pruner": "none",
            "seed": SAMPLER_SEED,
            "space": {k: "tune" for k in PARAMS},
        },
        "arms": {"tuned": {}},
        "seeds": 1,
        "output": str(out),
    }


TUNE_ONLY = (
    "import sys\n"
    "from reglab.study.protocol.protocol import tune_study\n"
    "from reglab.study.definition.spec import load_study\n"
    "tune_study(load_study(sys.argv[1]), jobs=1, new=True, progress=False)\n"
)


def reglab_command() -> list[str]:
    exe = Path(sys.executable).parent / "reglab"
    return (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "import sys; from reglab.cli import main; sys.exit(main())"]
    )


def importable(python: str, modules: str, env: dict[str, str]) -> tuple[bool, str]:
    try:
        p = subprocess.run([python, "-c", f"import {modules}"], env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, str(err)
    last = (p.stderr.strip().splitlines() or [""])[-1]
    return p.returncode == 0, last


def reglab_results(out: Path) -> dict[str, Any]:
    """Points, best value and test accuracy of a reglab study from its outputs (tuning.json,
    finals.csv)."""
    import csv

    res: dict[str, Any] = {}
    tuning = json.loads((out / "tuning.json").read_text())
    arm = next(iter(tuning["arms"].values()))
    trials = sorted(arm["trials"], key=lambda t: t["number"])
    res["points"] = [[t["params"][k] for k in PARAMS] for t in trials]
    res["values"] = [t.get("value") for t in trials]
    res["best_value"], res["best"] = arm["best_value"], arm["best_params"]
    finals = out / "finals.csv"
    if finals.exists():
        with finals.open() as f:
            rows = list(csv.DictReader(f))
        if rows:
            res["test_acc"] = float(rows[0]["test_acc"])
    sizes = stored_sizes(out / "study.db")
    if sizes:
        res["stored_sizes"] = sizes
    return res


def stored_sizes(db: Path) -> dict[str, int] | None:
    """The confirmation run's split sizes as reglab stored them (its ``info.data_sizes``), if found."""
    import sqlite3

    if not db.exists():
        return None
    with (
        contextlib.suppress(sqlite3.Error, ValueError, KeyError, TypeError),
        contextlib.closing(sqlite3.connect(db)) as c,
    ):
        for (value,) in c.execute("SELECT value_json FROM trial_user_attributes WHERE key = 'info'"):
            sizes = json.loads(value).get("data_sizes")
            if sizes:
                return {k: int(v) for k, v in sizes.items()}
    return None


def reglab_checks() -> dict[str, Any]:
    """The split checks of reglab's own data (``reglab.data.load_data``) for the tuning and the
    confirmation seeds, computed like the children's."""
    from reglab.data import load_data
    from reglab.data.config import DataConfig

    out = {}
    for phase, seed in (("tune", TUNE_SEED), ("confirm", CONFIRM_SEED)):
        s = load_data(DataConfig(name="digits", split_seed=seed))
        out[phase] = split_check(
            {
                "x_train": s.x_train.numpy(),
                "y_train": s.y_train.numpy(),
                "x_val": s.x_val.numpy(),
                "y_val": s.y_val.numpy(),
                "x_test": s.test.read()[0].numpy(),
                "y_test": s.test.read()[1].numpy(),
            }
        )
    return out


def compare_splits(mine: dict[str, Any], ref: dict[str, Any]) -> tuple[bool, bool]:
    """(same sizes, same labels and inputs) of a contender's split checks vs reglab's."""
    sizes = all(mine[ph][p]["n"] == ref[ph][p]["n"] for ph in mine for p in ("train", "val", "test"))
    same = all(
        mine[ph][p]["y_sha"] == ref[ph][p]["y_sha"]
        and math.isclose(mine[ph][p]["x_abs"], ref[ph][p]["x_abs"], rel_tol=1e-6)
        for ph in mine
        for p in ("train", "val", "test")
    )
    return sizes, same


def same_points(a: list[list[float]], b: list[list[float]]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15)
        for pa, pb in zip(a, b, strict=True)
        for x, y in zip(pa, pb, strict=True)
    )


def same_values(a: list[float | None], b: list[float | None]) -> bool:
    """Trial values equal (None and nan: a failed trial)."""

    def norm(v: float | None) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-6))
        for x, y in ((norm(u), norm(v)) for u, v in zip(a, b, strict=True))
    )


def in_ranges(points: list[list[float]], ranges: dict[str, Any]) -> bool:
    return all(ranges[k]["low"] <= v <= ranges[k]["high"] for p in points for k, v in zip(PARAMS, p, strict=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 trials x 3 epochs, 1 round")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; 1 with --quick)")
    ap.add_argument("--trials", type=int, default=None, help="trials of the search (default 20)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20)")
    ap.add_argument("--workdir", default=None, help="outputs and storages (default: a temporary folder in /dev/shm)")
    ap.add_argument("--keras-python", default=sys.executable, help="a Python that imports keras and keras_tuner")
    ap.add_argument("--ray-python", default=sys.executable, help="a Python that imports ray[tune] and optuna")
    ap.add_argument("--only", default=None, help="comma-separated contender keys (default: all)")
    # child mode (internal)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--phase", default="study", help=argparse.SUPPRESS)
    ap.add_argument("--ranges", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)

    trials = args.trials or (4 if args.quick else 20)
    epochs = args.epochs or (3 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 5)
    judged = not args.quick and trials == 20 and epochs == 20

    sys.path.insert(0, str(REPO_ROOT / "src"))  # this checkout's reglab, here and in the children
    import reglab

    env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
    ranges = reglab_ranges()
    subreaper = set_subreaper()

    import torch

    print(
        f"reglab vs peers -- python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"reglab from {Path(reglab.__file__).parent}"
    )
    print(
        f"workload: digits (reglab's split), MLP 64-{'-'.join(map(str, HIDDEN))}-10, SGD, {epochs} epochs, "
        f"batch {BATCH}, "
        f"random search over {trials} trials (sampler seed {SAMPLER_SEED}) + 1-seed confirmation on the test split; "
        "ranges (reglab's defaults): "
        + ", ".join(f"{k} {'log ' if r['log'] else ''}{r['low']:g}..{r['high']:g}" for k, r in ranges.items())
    )
    print(
        f"one torch thread per process; {rounds} interleaved round(s), medians; wall = start to exit of the child, "
        "CPU = user + system of the child and every process below it"
        + ("" if subreaper else " (WARNING: no child subreaper here: orphaned grandchildren may be missed)")
        + (" [QUICK smoke run: targets not judged]" if args.quick else "")
        + ("" if judged or args.quick else " [not the issue's workload: targets not judged]")
    )
    print(f"at start: {load_line()}")

    shm = Path("/dev/shm")
    tmp = tempfile.TemporaryDirectory(prefix="reglab-peers-", dir=shm if shm.is_dir() else None)
    work = Path(args.workdir).resolve() if args.workdir else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work}")

    import yaml

    for kind, (t, e) in {"study": (trials, epochs), "tiny": (1, 1)}.items():
        doc = study_doc(f"peers-{kind}", work / f"reglab-{kind}", t, e)
        (work / f"peers-{kind}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        if kind == "study":
            (work / "peers-search.yaml").write_text(
                yaml.safe_dump(study_doc("peers-search", work / "reglab-search", t, e), sort_keys=False)
            )

    rj = json.dumps(ranges)
    # a local Ray instance of its own, with a short temporary root (Ray's socket paths are limited)
    ray_tmp = tempfile.mkdtemp(prefix="rp", dir="/tmp" if Path("/tmp").is_dir() else None)
    reglab_cmd = reglab_command()

    def peer(
        key: str, python: str, phase: str = "study", t: int = trials, e: int = epochs
    ) -> Callable[[Path], list[str]]:
        def cmd(d: Path) -> list[str]:
            opts = {"--child": key, "--phase": phase, "--trials": t, "--epochs": e, "--ranges": rj,
                    "--out": d / "result.json", "--workdir": d}  # fmt: skip
            return [python, str(SCRIPT), *(str(x) for kv in opts.items() for x in kv)]

        return cmd

    def reglab_run(study: str) -> Callable[[Path], list[str]]:
        return lambda d: [*reglab_cmd, "run", str(work / study), "-j", "1", "--no-progress"]

    contenders = [
        Contender(
            "reglab",
            "reglab run (search + confirmation + report)",
            "study",
            reglab_run("peers-study.yaml"),
            kind="reglab",
            out=work / "reglab-study",
        ),
        Contender(
            "optuna-slice", "Optuna + slices of a permuted tensor", "study", peer("optuna-slice", sys.executable)
        ),
        Contender(
            "optuna-dataloader",
            "Optuna + DataLoader(TensorDataset)",
            "study",
            peer("optuna-dataloader", sys.executable),
        ),
        Contender(
            "keras-tuner",
            "Keras Tuner (Keras 3, torch backend)",
            "study",
            peer("keras-tuner", args.keras_python),
            env={"KERAS_BACKEND": "torch"},
        ),
        Contender(
            "ray-tune",
            "Ray Tune + OptunaSearch",
            "study",
            peer("ray-tune", args.ray_python),
            env={"RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": ray_tmp, "RAY_ADDRESS": ""},
        ),
        Contender(
            "reglab-search",
            "reglab search alone (tune_study)",
            "search",
            lambda d: [sys.executable, "-c", TUNE_ONLY, str(work / "peers-search.yaml")],
            kind="reglab",
            out=work / "reglab-search",
        ),
        Contender(
            "optuna-slice-search",
            "Optuna + slices, search alone",
            "search",
            peer("optuna-slice", sys.executable, "search"),
        ),
        Contender(
            "reglab-tiny",
            "reglab run, 1 trial x 1 epoch",
            "tiny",
            reglab_run("peers-tiny.yaml"),
            kind="reglab",
            out=work / "reglab-tiny",
        ),
        Contender(
            "optuna-slice-tiny",
            "Optuna + slices, 1 trial x 1 epoch",
            "tiny",
            peer("optuna-slice", sys.executable, "study", 1, 1),
        ),
        Contender(
            "reglab-help", "reglab --help", "help", lambda d: [*reglab_cmd, "--help"], kind="reglab", reps=HELP_REPS
        ),
    ]
    if args.only:
        keep = set(args.only.split(","))
        contenders = [c for c in contenders if c.key in keep]
    skipped: dict[str, str] = {}
    for c, python, modules, how in (
        ("keras-tuner", args.keras_python, "keras, keras_tuner, torch, sklearn", KERAS_INSTALL),
        (
            "ray-tune",
            args.ray_python,
            "ray.tune, optuna, torch, sklearn; from ray.tune.search.optuna import OptunaSearch",
            RAY_INSTALL,
        ),
    ):
        if any(x.key == c for x in contenders):
            ok, why = importable(python, modules, {**env, "KERAS_BACKEND": "torch"})
            if not ok:
                skipped[c] = f"skipped: not importable by {python} ({why}); install with: {how}"
                print(f"{c}: {skipped[c]}")
    labels = {c.key: c.label for c in contenders}
    contenders = [c for c in contenders if c.key not in skipped]

    samples: dict[str, list[Sample]] = {c.key: [] for c in contenders}
    failed: dict[str, str] = {}
    leftovers = 0
    t_start = time.perf_counter()
    for r in range(rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for c in order:
            if c.key in failed:
                continue
            d = work / f"run-{c.key}"
            for p in (d, c.out):  # each run starts afresh (no stored trials to resume)
                if p is not None:
                    shutil.rmtree(p, ignore_errors=True)
            d.mkdir(parents=True)
            for _ in range(c.reps):
                wall, cpu, lost, rc, ended = run_child(c.cmd(d), {**env, **c.env}, d / "log.txt", work)
                leftovers += ended
                if rc != 0:
                    tail = (d / "log.txt").read_text(errors="replace").strip().splitlines()[-15:]
                    failed[c.key] = f"exit {rc}; last lines:\n      " + "\n      ".join(tail)
                    print(f"  round {r + 1}: {c.key} FAILED ({failed[c.key]})")
                    break
                result = None
                if c.group in ("study", "search", "tiny"):
                    try:
                        result = reglab_results(c.out) if c.out else json.loads((d / "result.json").read_text())
                    except (OSError, ValueError, KeyError, StopIteration) as err:
                        print(f"  round {r + 1}: {c.key}: could not read its results ({err!r})")
                samples[c.key].append(Sample(wall, cpu, result, lost))
            else:
                last = samples[c.key][-c.reps :]
                print(
                    f"  round {r + 1}/{rounds}  {c.key:<20} wall {median([s.wall for s in last]):7.2f} s  "
                    f"cpu {median([s.cpu for s in last]):7.2f} s"
                    + (f" (of which {last[-1].sampled:.2f} s sampled from /proc)" if last[-1].sampled else ""),
                    flush=True,
                )

    # -- same work? ----------------------------------------------------------------------------
    print("\nsame work?")
    try:
        ref_checks = reglab_checks()
    except Exception as err:  # the check is informative; a changed API must not lose the timings
        ref_checks = None
        print(f"  (reglab's own splits could not be loaded for the check: {err!r})")
    if ref_checks:
        sz = {ph: "/".join(str(ref_checks[ph][p]["n"]) for p in ("train", "val", "test")) for ph in ref_checks}
        print(
            f"  reglab's splits (train/val/test): tuning (split seed {TUNE_SEED}) {sz['tune']}, "
            f"confirmation (split seed {CONFIRM_SEED}) {sz['confirm']}"
        )
    ref_key, ref_points, ref_values = next(
        (
            (k, s.result["points"], s.result.get("values"))
            for k in ("reglab", "reglab-search")
            for s in samples.get(k, [])
            if s.result and "points" in s.result
        ),
        ("", None, None),
    )
    problems = 0
    for c in contenders:
        results = [s.result for s in samples[c.key] if s.result]
        if c.group not in ("study", "search") or not results:
            continue
        notes = []
        pts = results[0]["points"]
        stable = all(same_points(x["points"], pts) for x in results)
        notes.append(f"{len(pts)} points" + ("" if stable else " (DIFFER between rounds)"))
        ref = ref_points if c.key != ref_key else None
        if ref is not None:
            if c.key == "keras-tuner":
                ok = in_ranges(pts, ranges) and len(pts) == len(ref)
                notes.append(f"own sampler: {'all in the same ranges' if ok else 'OUT OF RANGE or a different count'}")
            else:
                ok = same_points(pts, ref)
                notes.append("identical to reglab's" if ok else "NOT reglab's points")
                if ok and ref_values and results[0].get("values") and c.kind != "reglab":
                    same = same_values(results[0]["values"], ref_values)
                    notes.append("every trial's val acc equal to reglab's (same training)" if same else "own val accs")
            problems += not ok
        elif c.key == ref_key:
            notes.append("the reference")
        if c.kind == "reglab":
            stored = results[0].get("stored_sizes")
            if ref_checks and stored:
                ok = stored == {p: ref_checks["confirm"][p]["n"] for p in ("train", "val", "test")}
                notes.append(f"stored confirmation sizes {'match' if ok else 'DIFFER'}")
                problems += not ok
        elif ref_checks:
            sizes, same = compare_splits(results[0]["checks"], ref_checks)
            notes.append(f"split sizes {'match' if sizes else 'DIFFER'}; data {'identical' if same else 'DIFFERS'}")
            problems += not (sizes and same)
        bv = median([float(x["best_value"]) for x in results if x.get("best_value") is not None] or [math.nan])
        ta = [float(x["test_acc"]) for x in results if x.get("test_acc") is not None]
        notes.append(f"best val acc {bv:.4f}" + (f", test acc {median(ta):.4f}" if ta else ""))
        print(f"  {c.key:<20} " + "; ".join(notes))
    print(
        "  (objective: the last epoch's validation accuracy, as reglab's trials; Keras Tuner scores a trial by its "
        "best epoch, and Ray's OptunaSearch by the last report)"
    )

    # -- table -----------------------------------------------------------------------------------
    def med(key: str, clock: str) -> float | None:
        xs = [getattr(s, clock) for s in samples.get(key, [])]
        return median(xs) if xs and key not in failed else None

    base = {"study": "reglab", "search": "reglab-search", "tiny": "reglab-tiny", "help": "reglab-help"}
    rows = []
    for c in [*contenders, *(x for x in ("keras-tuner", "ray-tune") if x in skipped)]:
        if isinstance(c, str):
            rows.append([f"{labels[c]}: skipped (not importable)", "-", "-", "-", "0"])
            continue
        w, cpu, b = med(c.key, "wall"), med(c.key, "cpu"), med(base[c.group], "cpu")
        if w is None or cpu is None:
            rows.append([c.label, "FAILED" if c.key in failed else "-", "", "", ""])
            continue
        ratio = f"{cpu / b:.2f}" if b else "-"
        rows.append([c.label, f"{w:.2f}", f"{cpu:.2f}", ratio, f"{len(samples[c.key])}"])
    print("\nmedians over the rounds (CPU ÷ reglab: against reglab's row of the same kind: study, search, 1x1, help)")
    print(table(["contender", "wall s", "CPU s", "CPU ÷ reglab", "n"], rows))

    def ratio(a: str, b: str) -> float | None:
        x, y = med(a, "cpu"), med(b, "cpu")
        return x / y if x is not None and y else None

    checks = [
        ("reglab CPU ÷ Optuna+slices CPU, whole study", ratio("reglab", "optuna-slice"), TARGET_STUDY, "<="),
        (
            "reglab CPU ÷ Optuna+slices CPU, search alone",
            ratio("reglab-search", "optuna-slice-search"),
            TARGET_SEARCH,
            "<=",
        ),
        ("reglab 1 trial x 1 epoch, CPU s", med("reglab-tiny", "cpu"), TARGET_TINY_CPU, "<="),
        ("reglab --help, wall s", med("reglab-help", "wall"), TARGET_HELP_WALL, "<="),
    ]
    print("\ntargets:")
    for what, value, target, _ in checks:
        if value is None:
            print(f"   n/a   {what} (not measured)")
            continue
        mark = verdict(value <= target) if judged or "help" in what else "n/a"
        print(f"   {mark:<4}  {what}: {value:.2f} (target <= {target:g})")
    for key, why in failed.items():
        print(f"failed: {key}: {why}")
    for why in skipped.values():
        print(f"note: {why}")
    if problems:
        print(f"WARNING: {problems} same-work check(s) failed (see above)")
    if leftovers:
        print(f"note: {leftovers} process(es) left running by contenders were ended after 60 s")
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_start:.0f} s; at end: {load_line()}")
    if overloaded():
        print(
            "NOTE: more runnable processes than CPUs during this run: the wall-clock figures are disturbed by "
            "other processes; the CPU-time figures much less so."
        )
    shutil.rmtree(ray_tmp, ignore_errors=True)
    if not args.workdir:
        tmp.cleanup()
    return 1 if failed or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
