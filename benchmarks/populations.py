"""Benchmark: populations (runs trained together as one vectorized model) vs one run at a time.

Both contenders run the same tasks (built by ``reglab.study.protocol.protocol.make_task`` from a study, as
``reglab run`` builds them) through the same number of worker processes, one torch thread each:

* ``one at a time`` -- ``LocalExecutor(jobs)`` with ``train.population: off``: every run is one
  task on one worker (today's path);
* ``population``    -- ``PopulationExecutor(LocalExecutor(jobs))`` with ``train.population: auto``:
  the capable runs are grouped into populations, one per worker.

Workloads (CPU):

1. the demo's digits workload as populations can train it: the MLP 64-256-128-10 on digits
   (600 training images, momentum SGD, batch 32), 5 seeds x 7 arms that differ only in per-member
   scalars (none, l1, l2, elastic net, weight decay, dropout, max-norm + dropout) = 35 runs;
2. 20 tuning-trial-like configurations of the same digits MLP: random lr, l2 and dropout drawn
   once (seeded), one seed, no test split read (as trials);
3. 5 seeds of the MNIST MLP 784-256-128-10 (batch 64): real MNIST from ``../shared/data/mnist``
   when the files are there (the output says which), else the workload is skipped;
4. 5 seeds of the MNIST CNN (conv 32 - conv 64 - fc 128, batch 64) on 2,000 training images
   and a 5 % validation split, one epoch (the same files; the final evaluation on the 10,000
   test images is most of its time).

Method: each contender keeps its worker pool for the whole benchmark; a first untimed round warms
the pools (processes spawned, torch imported, datasets cached). Then ``--rounds`` timed rounds,
the contenders interleaved in alternating order; per round the wall time from the first submit
to the last result, and the CPU time of the driver plus the pool's worker processes (read from
``/proc/<pid>/stat``, so Linux only). Medians are compared; ratio = one-at-a-time / population.
The mean final validation accuracy of both contenders is printed (the same runs: it must agree).

Targets: population >= 1.5x faster than one at a time on the digits workloads with 2 workers on 2
CPU cores (judged on the wall clock and on CPU time); the MNIST MLP and CNN are reported, not
judged (on a CPU their steps are dominated by the matrix products and convolutions, which a
population does not make cheaper; their targets are for GPUs).

Run: ``.venv/bin/python benchmarks/populations.py`` (5-7 minutes); ``--quick`` for a smoke run
(fewer epochs, one round, targets not judged); ``--only digits`` runs the workloads whose name
contains ``digits``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, env_line, load_line, median, overloaded, table, verdict

from reglab.study.definition.spec import parse_study
from reglab.study.execution.executors import LocalExecutor
from reglab.study.execution.population_executor import PopulationExecutor
from reglab.study.execution.task import Executor, Task, run_tasks
from reglab.study.protocol.protocol import make_task

DIGITS_ARMS = {
    "none": {},
    "l1": {"l1": 3.0e-4},
    "l2": {"l2": 1.0e-3},
    "elastic_net": {"elastic_net": 5.0e-4, "l1_ratio": 0.5},
    "weight_decay": {"weight_decay": 5.0e-2},
    "dropout": {"dropout": 0.5, "input_dropout": 0.1},
    "max_norm": {"max_norm": 1.5, "dropout": 0.3},
}
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")


@dataclass
class Workload:
    name: str
    make: Callable[[str], list[Task]]  # population setting ("off" | "auto") -> the tasks
    judged: bool
    source: str


def _study_tasks(doc: dict[str, Any], population: str, trials: bool = False) -> list[Task]:
    doc = {**doc, "train": {**doc["train"], "population": population}}
    spec = parse_study(doc)
    if not trials:
        return [make_task(spec.arm(a), s) for s in spec.seed_list for a in spec.arms]
    return [make_task(spec.arm(a), 0, trial=i) for i, a in enumerate(spec.arms)]


def digits_demo(epochs: int) -> Workload:
    doc = {
        "name": "bench-demo",
        "data": {"name": "digits", "n_train": 600, "val_fraction": 0.2},
        "model": {"arch": "mlp", "hidden": [256, 128]},
        "train": {"optimizer": "momentum", "lr": 0.05, "epochs": epochs, "batch_size": 32, "device": "cpu"},
        "arms": DIGITS_ARMS,
        "seeds": 5,
    }
    return Workload(
        f"digits demo: 7 arms x 5 seeds, {epochs} epochs",
        lambda pop: _study_tasks(doc, pop),
        True,
        "sklearn digits, 600 training images",
    )


def digits_trials(epochs: int) -> Workload:
    rng = random.Random(0)
    arms = {
        f"t{i}": {
            "lr": 10 ** rng.uniform(-2.5, -0.5),
            "l2": 10 ** rng.uniform(-6, -2),
            "dropout": round(rng.uniform(0.0, 0.6), 3),
        }
        for i in range(20)
    }
    doc = {
        "name": "bench-trials",
        "data": {"name": "digits", "n_train": 600, "val_fraction": 0.2},
        "model": {"arch": "mlp", "hidden": [256, 128]},
        "train": {"optimizer": "momentum", "epochs": epochs, "batch_size": 32, "device": "cpu"},
        "arms": arms,
        "seeds": 1,
    }
    return Workload(
        f"digits: 20 tuning trials (random lr/l2/dropout), {epochs} epochs",
        lambda pop: _study_tasks(doc, pop, trials=True),
        True,
        "sklearn digits, 600 training images; no test read",
    )


def _mnist_study(name: str, model: dict[str, Any], epochs: int, **data: Any) -> dict[str, Any]:
    """5 seeds of one network on real MNIST (plain SGD, batch 64)."""
    return {
        "name": name,
        "data": {"name": "mnist", "data_dir": str(SHARED_DATA), "download": False, **data},
        "model": model,
        "train": {"optimizer": "sgd", "lr": 0.05, "epochs": epochs, "batch_size": 64, "device": "cpu"},
        "arms": {"none": {}},
        "seeds": 5,
    }


def mnist_mlp(epochs: int) -> Workload | None:
    folder = SHARED_DATA / "mnist"
    if not all((folder / f).exists() for f in MNIST_FILES):
        return None
    doc = _mnist_study("bench-mnist", {"arch": "mlp", "hidden": [256, 128]}, epochs)
    return Workload(
        f"MNIST MLP 784-256-128-10: 5 seeds, {epochs} epoch(s)",
        lambda pop: _study_tasks(doc, pop),
        False,
        f"real MNIST from {folder}",
    )


def mnist_cnn(epochs: int) -> Workload | None:
    folder = SHARED_DATA / "mnist"
    if not all((folder / f).exists() for f in MNIST_FILES):
        return None
    model = {"arch": "cnn", "channels": [32, 64], "fc": 128}
    doc = _mnist_study("bench-mnist-cnn", model, epochs, n_train=2000, val_fraction=0.05)
    return Workload(
        f"MNIST CNN 32-64-128: 5 seeds, 2000 images, {epochs} epoch(s)",
        lambda pop: _study_tasks(doc, pop),
        False,
        f"real MNIST from {folder}: 2,000 training, 3,000 validation, 10,000 test images",
    )


def _pids(ex: Executor) -> list[int]:
    inner = ex.inner if isinstance(ex, PopulationExecutor) else ex
    pool = getattr(inner, "_pool", None)
    return list((getattr(pool, "_processes", None) or {}).keys())


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of this process and ``pids``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


@dataclass
class Round:
    wall: float
    cpu: float
    val_acc: float
    populations: int


def one_round(ex: Executor, tasks: list[Task]) -> Round:
    pids = _pids(ex)
    c0, w0 = _cpu(pids), time.perf_counter()
    out = list(run_tasks(ex, tasks))
    wall = time.perf_counter() - w0
    cpu = _cpu(pids or _pids(ex)) - c0
    accs = [o.final["val_acc"] for _, o in out if "val_acc" in o.final]
    bad = [f"{t.key}: {o.status} {o.reason}" for t, o in out if o.status.value != "completed"]
    if bad:
        raise SystemExit("runs did not complete: " + "; ".join(bad[:3]))
    pops = len(ex.populations) if isinstance(ex, PopulationExecutor) else 0
    if isinstance(ex, PopulationExecutor):
        ex.populations.clear()
    return Round(wall, cpu, statistics.mean(accs), pops)


NAMES = ("one at a time", "population")


def bench(w: Workload, jobs: int, rounds: int) -> dict[str, list[Round]]:
    executors: dict[str, Executor] = {
        "one at a time": LocalExecutor(jobs),
        "population": PopulationExecutor(LocalExecutor(jobs), size=32),
    }
    tasks = {"one at a time": w.make("off"), "population": w.make("auto")}
    out: dict[str, list[Round]] = {k: [] for k in NAMES}
    try:
        for k in NAMES:  # warm-up: processes, imports, data caches
            one_round(executors[k], tasks[k])
        for r in range(rounds):
            for k in NAMES if r % 2 == 0 else NAMES[::-1]:
                out[k].append(one_round(executors[k], tasks[k]))
    finally:
        for ex in executors.values():
            ex.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer epochs, 1 round")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per contender (default 3)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of both contenders (default 2)")
    ap.add_argument("--only", default="", help="run only the workloads whose name contains this text")
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    epochs = 2 if args.quick else 10
    print(f"reglab populations benchmark -- {env_line()}")
    print(
        f"{args.jobs} worker processes (one torch thread each) for both contenders; one warm-up round, then "
        f"{rounds} timed round(s) interleaved; medians; CPU = driver + workers (/proc)"
        + (" [QUICK smoke run: targets not judged]" if args.quick else "")
    )
    print(f"at start: {load_line()}; {os.cpu_count()} CPUs")
    t_start = time.perf_counter()
    workloads = [digits_demo(epochs), digits_trials(epochs)]
    mnist = [w for w in (mnist_mlp(1), mnist_cnn(1)) if w is not None]
    if not mnist:
        print(f"MNIST not found under {SHARED_DATA / 'mnist'}: the MNIST workloads are skipped")
    workloads += mnist
    workloads = [w for w in workloads if args.only in w.name]
    rows_w: list[list[str]] = []
    checks = []
    for w in workloads:
        print(f"\n== {w.name}: {w.source}")
        res = bench(w, args.jobs, rounds)
        ratios = {}
        meds = {}
        for clock in ("wall", "cpu"):
            med = {k: median([getattr(r, clock) for r in res[k]]) for k in NAMES}
            meds[clock] = med
            ratios[clock] = med["one at a time"] / med["population"]
            for k in NAMES:
                print(f"   {clock:<4} {k:<14} " + ", ".join(f"{getattr(r, clock):.2f}" for r in res[k]) + " s")
        accs = {k: res[k][-1].val_acc for k in NAMES}
        print(
            f"   populations per round: {res['population'][-1].populations}; mean final val_acc one at a time "
            f"{accs['one at a time']:.4f} vs population {accs['population']:.4f}"
        )
        rows_w.append(
            [
                w.name,
                f"{meds['wall']['one at a time']:.2f}",
                f"{meds['wall']['population']:.2f}",
                f"{ratios['wall']:.2f}",
                f"{meds['cpu']['one at a time']:.2f}",
                f"{meds['cpu']['population']:.2f}",
                f"{ratios['cpu']:.2f}",
            ]
        )
        if w.judged:
            checks.append((w.name, [ratios["wall"] >= 1.5, ratios["cpu"] >= 1.5], ratios))
        else:
            checks.append((w.name, None, ratios))
    headers = ["workload", "single wall s", "pop wall s", "wall ratio", "single cpu s", "pop cpu s", "cpu ratio"]
    print("\nmedian seconds per round and ratios (one at a time / population), measured in this run:")
    print(table(headers, rows_w))
    print(f"\ntargets (population >= 1.5x faster, {args.jobs} workers; wall / CPU):")
    for name, oks, ratios in checks:
        if oks is None:
            marks = "reported"
        elif args.quick:
            marks = "n/a (quick)"
        else:
            marks = " / ".join(verdict(ok) for ok in oks)
        print(f"   {marks:<11}  {name} (wall {ratios['wall']:.2f}x, cpu {ratios['cpu']:.2f}x)")
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_start:.1f} s; at end: {load_line()}")
    if overloaded():
        print("NOTE: more runnable processes than CPUs during this run: wall-clock figures are disturbed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
