"""Benchmark: random search vs TPE vs GP (Bayesian optimization) at an equal number of trials.

Every sampler tunes the same MLP on digits over the same space - ``lr`` (log 1e-3..0.5), ``l2``
(default range, log 1e-6..1e-1), ``dropout`` (0..0.7) - through reglab's own driver
(``reglab.study.protocol.protocol.tune_study`` with ``search.sampler`` random / tpe / gp), for several sampler
seeds. Seed ``s`` also fixes the tuning runs' data split and initialization (``1000 + s``), so
for each seed the three samplers optimize the very same function and the comparison is paired.

Printed: the best validation accuracy after k trials (mean over seeds with its 95 % Student-t
interval), and each model-based sampler's paired difference to random search at the full budget.

Run: ``.venv/bin/python benchmarks/samplers.py`` (a few minutes on one core); ``--quick`` for a
smoke run (numbers not meaningful).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import env_line, pin_threads, table
from _tuning_common import make_spec, mean_ci, run_search, workdir

SAMPLERS = ("random", "tpe", "gp")
SPACE = {"lr": {"low": 1e-3, "high": 0.5, "log": True}, "l2": "tune", "dropout": "tune"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 6 trials, 3 epochs")
    ap.add_argument("--trials", type=int, default=20, help="trials per sampler and seed")
    ap.add_argument("--seeds", type=int, default=5, help="sampler seeds (>= 5 for a useful interval)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--n-train", type=int, default=500, help="digits training examples")
    args = ap.parse_args()
    trials = 6 if args.quick else args.trials
    seeds = list(range(2 if args.quick else args.seeds))
    epochs = 3 if args.quick else args.epochs

    pin_threads(1)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    print(env_line())
    print(
        f"digits (n_train {args.n_train}, validation 216), MLP [32], {epochs} epochs, momentum SGD; "
        f"{trials} trials per sampler x {len(seeds)} seeds; space lr log 1e-3..0.5, l2 log 1e-6..1e-1, "
        "dropout 0..0.7; no pruning"
    )
    print(
        "note: TPE and GP start with 10 random trials (Optuna's n_startup_trials), the same draws as random "
        "search with the same seed; they differ from trial 11 on"
    )
    t0 = time.perf_counter()
    curves: dict[str, list[list[float]]] = {s: [] for s in SAMPLERS}  # sampler -> per seed best-so-far
    walls = {s: 0.0 for s in SAMPLERS}
    with workdir("reglab-bench-samplers-") as tmp:
        for seed in seeds:
            for sampler in SAMPLERS:
                spec = make_spec(
                    f"samplers-{seed}-{sampler}",
                    data={"name": "digits", "n_train": args.n_train},
                    model={"hidden": [32]},
                    train={"optimizer": "momentum", "epochs": epochs, "batch_size": 32},
                    search={"sampler": sampler, "trials": trials, "seed": seed, "space": SPACE},
                    output=Path(tmp) / f"{seed}-{sampler}",
                )
                insight, wall = run_search(spec)
                walls[sampler] += wall
                curve = [v if v is not None else 0.0 for v in insight["best_so_far"]]
                assert len(curve) == trials, f"{sampler} seed {seed}: {len(curve)} trials"
                curves[sampler].append(curve)
            line = "  ".join(f"{s} {curves[s][-1][-1]:.4f}" for s in SAMPLERS)
            print(f"  seed {seed}: best val acc  {line}")

    checkpoints = sorted({max(1, trials // 4), max(1, trials // 2), trials})
    rows = []
    for sampler in SAMPLERS:
        cells = [sampler]
        for k in checkpoints:
            m, h = mean_ci([c[k - 1] for c in curves[sampler]])
            cells.append(f"{m:.4f} ± {h:.4f}")
        cells.append(f"{walls[sampler]:.0f}")
        rows.append(cells)
    print("\nbest validation accuracy after k trials: mean ± 95 % CI half-width over seeds")
    print(table(["sampler", *(f"k={k}" for k in checkpoints), "wall s"], rows))

    print(f"\npaired difference to random search at k={trials} (percentage points, mean ± 95 % CI):")
    base = [c[-1] for c in curves["random"]]
    for sampler in SAMPLERS[1:]:
        diffs = [100 * (c[-1] - b) for c, b in zip(curves[sampler], base, strict=True)]
        m, h = mean_ci(diffs)
        wins = sum(d > 0 for d in diffs)
        ties = sum(d == 0 for d in diffs)
        print(f"  {sampler:6s} {m:+.2f} ± {h:.2f} pp   better on {wins}, tied on {ties} of {len(diffs)} seeds")
    if args.quick:
        print("--quick: smoke run, numbers not meaningful")
    print(f"total wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
