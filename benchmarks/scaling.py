"""Benchmark: how a study's runs scale with workers - the local executor with 1 and 2 worker
processes, and (when Ray is installed) a local Ray instance with 1 and 2 runs at a time.

The same small study (digits, 1,000 training examples, a 256-256 MLP, 2 arms x 6 seeds) runs
through ``run_tasks`` - the loop ``run_study`` uses - in this one process, so the speed-up is a
ratio of times measured side by side on the same machine:

- each executor is started once with 2 slots and warmed up (one short run per slot: processes
  spawned, torch imported, data cached); its start-up time is printed as *cold*;
- then rounds alternate 1 slot and 2 slots (``executor.slots``) over the whole study, and the
  speed-up is best(1 slot) / best(2 slots) over the rounds - alternating and taking the best
  keeps bursts of other processes on the machine from landing on one side only.

Storage writes and the summary's statistics (serial, a few seconds) are not part of it.

Target: local executor, 2 workers on 2 cores >= 1.7x. Other processes competing for the CPU
lower the ratio; the load average is printed before and after to show that.

Run: ``.venv/bin/python benchmarks/scaling.py`` (a few minutes); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import env_line, table, verdict

from reglab.study.definition.spec import StudySpec, parse_study
from reglab.study.execution.executors import LocalExecutor
from reglab.study.execution.task import Executor, Task, run_tasks
from reglab.study.protocol.protocol import make_task

TARGET = 1.7


def study(quick: bool) -> StudySpec:
    return parse_study(
        {
            "name": "scaling",
            "data": {"name": "digits", "n_train": 300 if quick else 1000},
            "model": {"hidden": [64] if quick else [256, 256]},
            "train": {"epochs": 2 if quick else 6, "batch_size": 8, "device": "cpu"},
            "arms": {"none": {}, "l2": {"l2": 1.0e-4}},
            "seeds": 2 if quick else 6,
        }
    )


def tasks(spec: StudySpec) -> list[Task]:
    return [make_task(spec.arm(arm), seed) for seed in spec.seed_list for arm in spec.arms]


def warmups(spec: StudySpec, n: int) -> list[Task]:
    """One single-epoch run per slot: starts every worker, imports torch there and caches the data."""
    one_epoch = spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": 1}), "seeds": n})
    return [make_task(one_epoch.arm_list[0], seed) for seed in range(n)]


def measure(make: Callable[[], Executor], spec: StudySpec, rounds: int) -> tuple[float, dict[int, list[float]]]:
    """(start-up seconds, {slots: seconds per round}) of an executor started with 2 slots."""
    t0 = time.perf_counter()
    ex = make()
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        for _, outcome in run_tasks(ex, warmups(spec, 2)):
            assert outcome.status == "completed", outcome.reason
        cold = time.perf_counter() - t0
        for _ in range(rounds):
            for n in (1, 2):
                ex.slots = n
                t1 = time.perf_counter()
                results = list(run_tasks(ex, tasks(spec)))
                times[n].append(time.perf_counter() - t1)
                bad = [t.key for t, p in results if p["status"] != "completed"]
                assert not bad, f"runs did not complete: {bad}"
    finally:
        ex.close()
    return cold, times


def load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs: a smoke test, numbers not meaningful")
    parser.add_argument("--no-ray", action="store_true", help="skip Ray even when it is installed")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of 1 and 2 slots (default 3)")
    args = parser.parse_args(argv)

    spec = study(args.quick)
    n_runs = len(tasks(spec))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(env_line())
    print(
        f"{cores} cores; study: {n_runs} runs ({len(spec.arms)} arms x {len(spec.seed_list)} seeds), "
        f"{spec.train.epochs} epochs each, one torch thread per run"
    )
    print(f"load average before: {load()}")

    configs: list[tuple[str, Callable[[], Executor]]] = [("local", lambda: LocalExecutor(2))]
    try:
        import ray  # noqa: F401

        has_ray = not args.no_ray
    except ImportError:
        has_ray = False
    if has_ray:
        # a private local instance; with token authentication off it leaves no token in ~/.ray
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        from reglab.study.execution.ray_executor import RayExecutor

        configs.append(("ray", lambda: RayExecutor("local", num_cpus=2)))

    rows = []
    ok = True
    for name, make in configs:
        cold, times = measure(make, spec, args.rounds)
        print(
            f"  {name}: start-up + warm-up {cold:.1f}s; rounds (s): "
            + ", ".join(f"{n} slot{'s' * (n > 1)} " + " ".join(f"{t:.1f}" for t in ts) for n, ts in times.items()),
            flush=True,
        )
        best = {n: min(ts) for n, ts in times.items()}
        for n in (1, 2):
            speedup = best[1] / best[n]
            judged = name == "local" and n == 2 and not args.quick
            if judged:
                ok = speedup >= TARGET
            rows.append(
                [
                    f"{name} executor",
                    str(n),
                    f"{best[n]:.1f}",
                    f"{sorted(times[n])[len(times[n]) // 2]:.1f}",
                    f"{n_runs / best[n]:.2f}",
                    f"{speedup:.2f}x",
                    (f">= {TARGET}x " + verdict(speedup >= TARGET)) if judged else "",
                ]
            )
    print()
    print(table(["executor", "workers", "best s", "median s", "runs/s", "speed-up", "target"], rows))
    print(f"load average after: {load()}  (a load above the core count means other processes competed)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
