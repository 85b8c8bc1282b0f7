"""Benchmark: one training epoch of reglab's engine vs a hand-written loop vs a DataLoader loop.

Three ways of running the same epochs (same model from ``reglab.models.build_model``, same
initialization seed, plain SGD at the same learning rate, same batch size), on CPU. Each run trains
a fresh model for two epochs; the first is the warm-up, the second is timed:

* ``reglab``       -- ``reglab.training.engine.fit(cfg, data)`` with ``epochs=2``. Wall time:
  ``history[1]["time"]`` as the engine records it. That figure also contains the end-of-epoch
  validation pass, so the benchmark gives ``fit`` a 10-example validation set (and test set); the
  cost of that pass is measured separately and printed, *not* subtracted (the reglab figure is, if
  anything, slightly pessimistic). CPU time: process CPU time between the epoch-end callbacks of
  epochs 1 and 2, less the engine's ``weight_stats`` call in that window (measured separately).
* ``hand-written`` -- the loop one would write by hand over the same in-memory tensors: a
  per-epoch ``torch.randperm`` (seeded generator), slices of it as batches, forward, cross-entropy,
  ``zero_grad``/``backward``/``step``, and typical tracking of the epoch's loss and accuracy
  (``loss.item()`` and the number of correct predictions per step).
* ``DataLoader``   -- the classic ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True)``
  loop (``num_workers=0``) with the same step body and tracking.

The hand-written loop draws the same permutations as the engine, so its epoch loss must equal
reglab's (checked and printed: both did the same work). Runs are interleaved in rotating order and
the per-epoch medians compared, by the wall clock and by process CPU time (which is much less
disturbed than the wall clock when other processes compete for the CPUs; the load average is
printed). torch runs on one intra-op thread (``--threads`` to change it).

Targets: reglab / hand-written <= 1.05 on both workloads; DataLoader / reglab >= 1.3 on the
MNIST-shaped MLP and >= 3 on the tabular MLP; judged on both clocks.

Run: ``.venv/bin/python benchmarks/engine.py`` (a few minutes at most); ``--quick`` for a smoke run
on small subsets (numbers not meaningful, targets not judged).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torch.nn.functional as F
from _common import (
    SHARED_DATA,
    env_line,
    load_line,
    median,
    overloaded,
    pin_threads,
    table,
    timed,
    verdict,
)
from torch.utils.data import DataLoader, TensorDataset

from reglab.config import DataConfig, RunConfig
from reglab.data.base import DataSplits, TestSplit
from reglab.models import build_model
from reglab.regularizers.base import penalized_parameters
from reglab.training.engine import fit
from reglab.training.metrics import evaluate, weight_stats

SEED = 0
LR = 0.05
TINY = 10  # size of the validation and test sets handed to fit


@dataclass
class Workload:
    name: str
    hidden: tuple[int, ...]
    batch_size: int
    dataloader_target: float  # DataLoader / reglab must be at least this
    data: DataSplits
    source: str


def _tiny_splits(name: str, x: torch.Tensor, y: torch.Tensor, n_classes: int, image: bool) -> DataSplits:
    """All of ``x``/``y`` for training; the first TINY examples double as validation and test
    (the benchmark times training, not generalization)."""
    x, y = x.contiguous(), y.contiguous()
    xv, yv = x[:TINY].clone(), y[:TINY].clone()
    return DataSplits(name, x, y, xv, yv, TestSplit(xv.clone(), yv.clone()), n_classes, image)


def mnist_workload(quick: bool) -> Workload:
    n = 4096 if quick else 60_000
    data_dir = SHARED_DATA
    files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    if all((data_dir / "mnist" / f).exists() for f in files):
        from reglab.data import load_data

        splits = load_data(DataConfig(name="mnist", data_dir=str(data_dir), download=False))
        # reglab carves 15% validation out of the 60,000 training images; put it back
        x = torch.cat([splits.x_train, splits.x_val])[:n]
        y = torch.cat([splits.y_train, splits.y_val])[:n]
        source = f"real MNIST from {data_dir / 'mnist'} ({len(y):,} training images, normalized)"
    else:
        g = torch.Generator().manual_seed(SEED)
        x = torch.randn(n, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        source = f"RANDOM tensors {n:,}x1x28x28 (MNIST not found under {data_dir / 'mnist'})"
    return Workload(
        "MNIST MLP 784-256-128-10, batch 64",
        (256, 128),
        64,
        1.3,
        _tiny_splits("mnist", x, y, 10, True),
        source,
    )


def tabular_workload(quick: bool) -> Workload:
    from reglab.data import load_data

    n_samples = 10_000 if quick else 200_000
    cfg = DataConfig(
        name="synthetic",
        synthetic={"n_samples": n_samples, "n_features": 20, "n_informative": 10, "n_classes": 2},
    )
    splits = load_data(cfg)
    # all non-test examples (train + validation) for training
    x = torch.cat([splits.x_train, splits.x_val])
    y = torch.cat([splits.y_train, splits.y_val])
    source = f"reglab 'synthetic' (make_classification), {len(y):,} training rows x 20 features"
    return Workload(
        "tabular MLP 20-64-64-2, batch 512",
        (64, 64),
        512,
        3.0,
        _tiny_splits("synthetic", x, y, 2, False),
        source,
    )


def digits_workload(quick: bool) -> Workload:
    """The default study's network on the default data (issue 13's workload): per-step costs at
    batch 32 dominate. Digits' 1,527 non-test examples are repeated so that one epoch is long
    enough to time; every step still sees a batch of 32 rows of 64 features."""
    from reglab.data import load_data

    splits = load_data(DataConfig(name="digits"))
    x = torch.cat([splits.x_train, splits.x_val])
    y = torch.cat([splits.y_train, splits.y_val])
    reps = 2 if quick else 20
    x, y = x.repeat(reps, *([1] * (x.dim() - 1))), y.repeat(reps)
    source = f"sklearn digits (train + validation) repeated {reps}x: {len(y):,} rows x 64 features"
    return Workload(
        "digits MLP 64-256-128-10, batch 32",
        (256, 128),
        32,
        1.0,
        _tiny_splits("digits", x, y, 10, splits.image),
        source,
    )


def run_config(w: Workload) -> RunConfig:
    return RunConfig().override(
        {
            "arch": "mlp",
            "hidden": list(w.hidden),
            "optimizer": "sgd",
            "lr": LR,
            "schedule": "constant",
            "epochs": 2,
            "batch_size": w.batch_size,
            "seed": SEED,
            "device": "cpu",
            "eval_batch_size": 4096,
        }
    )


# --- the three contenders ----------------------------------------------------------------------
# Each trains a fresh model (same seed) for two epochs and reports the second one, timed both by
# the wall clock and by the CPU time of the process (which is far less disturbed by other
# processes competing for the CPUs than the wall clock is).


@dataclass
class Timing:
    wall: float  # seconds
    cpu: float  # process CPU seconds
    loss: float  # the epoch's mean training loss, to check that the contenders did the same work


def epoch_reglab(cfg: RunConfig, data: DataSplits, overhead_cpu: float) -> Timing:
    """``history[1]["time"]`` of ``fit`` (wall); CPU time between the epoch-end callbacks of
    epochs 1 and 2, less ``overhead_cpu`` (the engine's ``weight_stats`` of that window, which
    ``history["time"]`` does not contain)."""
    marks: list[float] = []
    result = fit(cfg, data, callbacks=[lambda _rec: marks.append(time.process_time())])
    rec = result.history[1]
    return Timing(rec["time"], marks[1] - marks[0] - overhead_cpu, rec["train_loss"])


def _fresh_model(cfg: RunConfig, data: DataSplits) -> torch.nn.Module:
    torch.manual_seed(SEED)
    from reglab.regularizers import build_regularizers

    return build_model(cfg.model, data.input_shape, data.n_classes, build_regularizers(cfg))


def epoch_hand(cfg: RunConfig, data: DataSplits) -> Timing:
    model = _fresh_model(cfg, data)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    x, y, bs = data.x_train, data.y_train, cfg.train.batch_size
    n = len(y)
    for _epoch in range(cfg.train.epochs):
        w0, c0 = time.perf_counter(), time.process_time()
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb, yb = x[idx], y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return Timing(wall, cpu, loss_sum / n)


def epoch_dataloader(cfg: RunConfig, data: DataSplits) -> Timing:
    model = _fresh_model(cfg, data)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
    )
    n = len(data.y_train)
    for _epoch in range(cfg.train.epochs):
        w0, c0 = time.perf_counter(), time.process_time()
        model.train()
        loss_sum, correct = 0.0, 0
        for xb, yb in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return Timing(wall, cpu, loss_sum / n)


NAMES = ("reglab", "hand-written", "DataLoader")


def _cpu_cost(fn: Callable[[], object], reps: int = 7) -> float:
    costs = []
    for _ in range(reps):
        c0 = time.process_time()
        fn()
        costs.append(time.process_time() - c0)
    return median(costs)


def bench(w: Workload, rounds: int) -> dict[str, Any]:
    cfg = run_config(w)
    model = _fresh_model(cfg, w.data)
    weights = penalized_parameters(model, include_biases=False)
    overhead = _cpu_cost(lambda: weight_stats(weights))  # in reglab's CPU window, not in its "time"
    val_wall = median([timed(lambda: evaluate(model, w.data.x_val, w.data.y_val, 4096)) for _ in range(7)])
    run = {
        "reglab": lambda: epoch_reglab(cfg, w.data, overhead),
        "hand-written": lambda: epoch_hand(cfg, w.data),
        "DataLoader": lambda: epoch_dataloader(cfg, w.data),
    }
    out: dict[str, list[Timing]] = {k: [] for k in NAMES}
    for r in range(rounds):
        order = NAMES[r % len(NAMES) :] + NAMES[: r % len(NAMES)]  # rotate to spread order effects
        for k in order:
            gc.collect()
            out[k].append(run[k]())
    return {"timings": out, "val_wall": val_wall, "overhead_cpu": overhead}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smoke run on small subsets, 1 round")
    ap.add_argument("--rounds", type=int, default=None, help="timed epochs per contender (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    threads = pin_threads(args.threads)

    print(f"reglab engine benchmark -- {env_line()}")
    print(
        f"device cpu, torch threads {threads}, SGD lr {LR}, seed {SEED}; each contender trains a fresh "
        f"model for 2 epochs (the 1st a warm-up) and the 2nd is timed; {rounds} interleaved rounds, medians"
        + (" [QUICK smoke run: small subsets, targets not judged]" if args.quick else "")
    )
    print(
        "reglab wall = fit(...).history[1]['time'] (the epoch plus the validation pass over a "
        f"{TINY}-example validation set, not subtracted); reglab cpu = process CPU time between the "
        "epoch-end callbacks, less the engine's weight_stats (measured); hand-written/DataLoader: "
        "timers around the epoch loop"
    )
    print(f"at start: {load_line()}")
    t_start = time.perf_counter()
    tables: dict[str, list[list[str]]] = {"wall": [], "cpu": []}
    checks = []
    for make in (mnist_workload, digits_workload, tabular_workload):
        w = make(args.quick)
        print(f"\n== {w.name}: {w.source}")
        res = bench(w, rounds)
        tm: dict[str, list[Timing]] = res["timings"]
        ratios = {}
        for clock in ("wall", "cpu"):
            med = {k: median([getattr(t, clock) for t in tm[k]]) for k in NAMES}
            r_hand = med["reglab"] / med["hand-written"]
            r_dl = med["DataLoader"] / med["reglab"]
            ratios[clock] = (r_hand, r_dl)
            row = [w.name, *(f"{med[k]:.3f}" for k in NAMES), f"{r_hand:.3f}", f"{r_dl:.2f}"]
            tables[clock].append(row)
            for k in NAMES:
                print(f"   {clock:<4} {k:<13} " + ", ".join(f"{getattr(t, clock):.3f}" for t in tm[k]) + " s")
        print(
            f"   inside reglab's figures: validation pass {res['val_wall'] * 1e3:.2f} ms wall ({TINY} examples, "
            f"kept); weight_stats {res['overhead_cpu'] * 1e3:.2f} ms cpu (subtracted from cpu only)"
        )
        lr_, lh, ld = (tm[k][-1].loss for k in NAMES)
        same = math.isclose(lr_, lh, rel_tol=1e-4)
        print(
            f"   same work? epoch-2 train loss reglab {lr_:.6f} vs hand-written {lh:.6f} "
            f"({'match' if same else 'DIFFER'}); DataLoader {ld:.6f} (own shuffle order)"
        )
        checks.append((w.name, "reglab / hand-written <= 1.05", [ratios[c][0] <= 1.05 for c in ratios], ratios, 0))
        target = w.dataloader_target
        checks.append(
            (w.name, f"DataLoader / reglab >= {target:g}", [ratios[c][1] >= target for c in ratios], ratios, 1)
        )

    headers = ["workload", "reglab s", "hand s", "DataLoader s", "reglab/hand", "DataLoader/reglab"]
    for clock, title in (("wall", "wall-clock"), ("cpu", "process CPU")):
        print(f"\nper-epoch {title} seconds (median) and ratios, measured in this run:")
        print(table(headers, tables[clock]))
    print("\ntargets (wall-clock / CPU time):")
    for name, what, oks, ratios, i in checks:
        marks = "n/a (quick)" if args.quick else " / ".join(verdict(ok) for ok in oks)
        print(f"   {marks:<11}  {name}: {what} (wall {ratios['wall'][i]:.3f}, cpu {ratios['cpu'][i]:.3f})")
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_start:.1f} s; at end: {load_line()}")
    if overloaded():
        print(
            "NOTE: more runnable processes than CPUs during this run: the wall-clock figures are "
            "disturbed by other processes; the CPU-time figures much less so."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
