"""Benchmark: does pruning save epochs without losing the best configuration?

Random search over ``lr`` (log 1e-3..0.5), ``l2`` (its default range, log 1e-6..1e-1) and
``dropout`` (0..0.7) for an MLP, run three times through reglab's own tuning driver
(``reglab.study.protocol.protocol.tune_study``) with the same RandomSampler seed - so every variant samples
exactly the same configurations in the same order - and

* no pruning,
* the median pruner (``pruner: median``: Optuna's MedianPruner after ``startup_trials`` trials and
  the first quarter of the epochs),
* Hyperband (``pruner: hyperband``, reduction factor 3).

Training is deterministic (one torch thread, fixed tuning seed), so a configuration that is not
pruned reaches exactly the same validation accuracy in every variant: the best validation accuracy
with pruning is at most the unpruned one, and equal when the best configuration survived.

Printed per sampler seed and in total: best validation accuracy, epochs spent, and the ratios
(epochs pruned / unpruned, difference in best validation accuracy in percentage points).
Target: within 0.2 pp of the unpruned best with <= 50 % of the epochs.

Run: ``.venv/bin/python benchmarks/pruning.py`` (digits, a few minutes on one core);
``--mnist`` adds MNIST from ../shared/data (small n_train) when present; ``--quick`` for a smoke
run (numbers not meaningful, target not judged).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, env_line, pin_threads, table, verdict
from _tuning_common import make_spec, run_search, workdir

PRUNERS = ("none", "median", "hyperband")
SPACE = {"lr": {"low": 1e-3, "high": 0.5, "log": True}, "l2": "tune", "dropout": "tune"}
TARGET_PP = 0.2
TARGET_RATIO = 0.5


def workloads(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = [
        {
            "name": "digits",
            "data": {"name": "digits"},
            "model": {"hidden": [64]},
            "train": {"optimizer": "momentum", "epochs": 6 if args.quick else args.epochs, "batch_size": 64},
            "source": "scikit-learn digits (1,222 train / 216 val)",
        }
    ]
    if args.mnist:
        files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
        if all((SHARED_DATA / "mnist" / f).exists() for f in files):
            n = 1000 if args.quick else args.mnist_n
            out.append(
                {
                    "name": "mnist",
                    "data": {"name": "mnist", "data_dir": str(SHARED_DATA), "download": False, "n_train": n},
                    "model": {"hidden": [128]},
                    "train": {"optimizer": "momentum", "epochs": 6 if args.quick else args.epochs, "batch_size": 64},
                    "source": f"MNIST from {SHARED_DATA / 'mnist'} (n_train {n:,}, validation 9,000)",
                }
            )
        else:
            print(f"--mnist: MNIST not found under {SHARED_DATA / 'mnist'}; skipped")
    return out


def kept(r: dict[str, Any], base: dict[str, Any]) -> str:
    """How many of the unpruned run's best configurations (ties included) finished unpruned."""
    best = {t["number"] for t in base["trials"] if t["value"] == base["best_value"]}
    done = {t["number"] for t in r["trials"] if t["state"] == "COMPLETE"}
    return f"{len(best & done)}/{len(best)}"


def run_workload(w: dict[str, Any], args: argparse.Namespace, root: Path) -> dict[str, Any]:
    trials = 8 if args.quick else args.trials
    seeds = [0] if args.quick else list(range(args.seeds))
    print(f"\n== {w['name']}: {w['source']}")
    print(
        f"   MLP {w['model']['hidden']}, {w['train']['epochs']} epochs, {trials} random trials per variant, "
        f"sampler seeds {seeds}; space lr log 1e-3..0.5, l2 log 1e-6..1e-1, dropout 0..0.7"
    )
    totals = {p: {"epochs": 0, "best": [], "wall": 0.0} for p in PRUNERS}
    rows = []
    for seed in seeds:
        res: dict[str, dict[str, Any]] = {}
        for pruner in PRUNERS:
            spec = make_spec(
                f"prune-{w['name']}-{seed}-{pruner}",
                data=w["data"],
                model=w["model"],
                train=w["train"],
                search={
                    "sampler": "random",
                    "trials": trials,
                    "pruner": pruner,
                    "startup_trials": args.startup,
                    "seed": seed,
                    "space": SPACE,
                },
                output=root / f"{w['name']}-{seed}-{pruner}",
            )
            insight, wall = run_search(spec)
            res[pruner] = insight
            totals[pruner]["epochs"] += insight["epochs_spent"]
            totals[pruner]["best"].append(insight["best_value"])
            totals[pruner]["wall"] += wall
        # the same sampler seed must give the same configurations in every variant
        params = {p: [t["params"] for t in res[p]["trials"]] for p in PRUNERS}
        assert params["none"] == params["median"] == params["hyperband"], "variants sampled different configs"
        base = res["none"]
        for pruner in PRUNERS:
            r = res[pruner]
            rows.append(
                [
                    f"seed {seed} {pruner}",
                    f"{r['best_value']:.4f}",
                    f"{100 * (r['best_value'] - base['best_value']):+.2f}",
                    str(r["epochs_spent"]),
                    f"{r['epochs_spent'] / base['epochs_spent']:.2f}",
                    f"{r['n_complete']}/{r['n_pruned']}",
                    kept(r, base),
                ]
            )
    print(table(["variant", "best val acc", "diff pp", "epochs", "ratio", "done/pruned", "best configs kept"], rows))
    summary = {}
    base_best = sum(totals["none"]["best"]) / len(seeds)
    for pruner in PRUNERS:
        t = totals[pruner]
        mean_best = sum(t["best"]) / len(seeds)
        summary[pruner] = {
            "ratio": t["epochs"] / totals["none"]["epochs"],
            "diff_pp": 100 * (mean_best - base_best),
            "worst_pp": 100 * min(b - n for b, n in zip(t["best"], totals["none"]["best"], strict=True)),
            "epochs": t["epochs"],
            "wall": t["wall"],
            "best": mean_best,
        }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 trials, 6 epochs, one seed")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3, help="sampler seeds (each: all three variants)")
    ap.add_argument("--startup", type=int, default=5, help="startup trials of the median pruner")
    ap.add_argument("--mnist", action="store_true", help="also MNIST from ../shared/data (when present)")
    ap.add_argument("--mnist-n", type=int, default=2000, help="MNIST training examples")
    args = ap.parse_args()

    pin_threads(1)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(env_line())
    t0 = time.perf_counter()
    verdicts = []
    with workdir("reglab-bench-pruning-") as tmp:
        for w in workloads(args):
            s = run_workload(w, args, Path(tmp))
            print(f"\n   {w['name']} totals over seeds (epochs, mean best val acc, wall s):")
            for pruner in PRUNERS:
                x = s[pruner]
                line = (
                    f"   {pruner:9s} epochs {x['epochs']:5d}  ratio {x['ratio']:.2f}  best {x['best']:.4f}  "
                    f"diff {x['diff_pp']:+.2f} pp (worst seed {x['worst_pp']:+.2f} pp)  wall {x['wall']:.1f}s"
                )
                if pruner != "none":
                    ok = x["ratio"] <= TARGET_RATIO and x["diff_pp"] >= -TARGET_PP
                    line += "" if args.quick else f"  {verdict(ok)}"
                    verdicts.append((w["name"], pruner, ok))
                print(line)
    print(
        f"\ntarget: best val acc within {TARGET_PP} pp of no pruning (mean over seeds) "
        f"with <= {TARGET_RATIO:.0%} of its epochs"
    )
    if args.quick:
        print("--quick: smoke run, targets not judged")
    else:
        for name, pruner, ok in verdicts:
            print(f"  {name} {pruner}: {verdict(ok)}")
    print(f"total wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
