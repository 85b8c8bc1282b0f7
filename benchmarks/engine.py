"""Benchmark: one training epoch of reglab's engine vs a hand-written loop vs a DataLoader loop.

Three ways of running the same epoch (same model from ``reglab.models.build_model``, same
initialization seed, plain SGD at the same learning rate, same batch size), on CPU:

* ``reglab``       -- ``reglab.training.engine.fit(cfg, data)`` with ``epochs=1``; the epoch time is
  ``history[0]["time"]`` as the engine records it. That figure also contains the end-of-epoch
  validation pass, so the benchmark gives ``fit`` a 10-example validation set (and a 10-example
  test set); the cost of that validation pass is measured separately and printed. It is *not*
  subtracted, so the reglab figure is, if anything, slightly pessimistic.
* ``hand-written`` -- the loop one would write by hand over the same in-memory tensors: a
  per-epoch ``torch.randperm`` (seeded generator), slices of it as batches, forward, cross-entropy,
  ``zero_grad``/``backward``/``step``, and typical tracking of the epoch's loss and accuracy
  (``loss.item()`` and the number of correct predictions per step).
* ``DataLoader``   -- the classic ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True)``
  loop (``num_workers=0``) with the same step body and tracking.

Repetitions are interleaved (one warm-up round first, then rounds in rotating order), each one
a fresh model with the same seed, and the per-epoch medians are compared. torch runs on one
intra-op thread (``--threads`` to change it) so the numbers are stable.

Targets: reglab / hand-written <= 1.05 on both workloads; DataLoader / reglab >= 1.3 on the
MNIST-shaped MLP and >= 3 on the tabular MLP.

Run: ``.venv/bin/python benchmarks/engine.py`` (a few minutes at most); ``--quick`` for a smoke run
on small subsets (numbers not meaningful, targets not judged).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
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
    pin_threads,
    table,
    timed,
    verdict,
)
from torch.utils.data import DataLoader, TensorDataset

from reglab.config import DataConfig, RunConfig
from reglab.data.base import DataSplits, TestSplit
from reglab.models import build_model
from reglab.training.engine import evaluate, fit

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


def run_config(w: Workload) -> RunConfig:
    return RunConfig().override(
        {
            "arch": "mlp",
            "hidden": list(w.hidden),
            "optimizer": "sgd",
            "lr": LR,
            "schedule": "constant",
            "epochs": 1,
            "batch_size": w.batch_size,
            "seed": SEED,
            "device": "cpu",
            "eval_batch_size": 4096,
        }
    )


# --- the three contenders: each returns (epoch seconds, epoch mean training loss) ---------------


def epoch_reglab(cfg: RunConfig, data: DataSplits) -> tuple[float, float]:
    result = fit(cfg, data)
    rec = result.history[0]
    return rec["time"], rec["train_loss"]


def _fresh_model(cfg: RunConfig, data: DataSplits) -> torch.nn.Module:
    torch.manual_seed(SEED)
    return build_model(cfg.model, cfg.regularization, data.input_shape, data.n_classes)


def epoch_hand(cfg: RunConfig, data: DataSplits) -> tuple[float, float]:
    model = _fresh_model(cfg, data)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    x, y, bs = data.x_train, data.y_train, cfg.train.batch_size
    n = len(y)

    t0 = time.perf_counter()
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
    seconds = time.perf_counter() - t0
    return seconds, loss_sum / n


def epoch_dataloader(cfg: RunConfig, data: DataSplits) -> tuple[float, float]:
    model = _fresh_model(cfg, data)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
    )
    n = len(data.y_train)

    t0 = time.perf_counter()
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
    seconds = time.perf_counter() - t0
    return seconds, loss_sum / n


CONTENDERS = {"reglab": epoch_reglab, "hand-written": epoch_hand, "DataLoader": epoch_dataloader}


def bench(w: Workload, rounds: int) -> dict[str, Any]:
    cfg = run_config(w)
    times: dict[str, list[float]] = {k: [] for k in CONTENDERS}
    losses: dict[str, float] = {}
    names = list(CONTENDERS)
    for k in names:  # warm-up round, discarded
        CONTENDERS[k](cfg, w.data)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate to spread order effects
        for k in order:
            secs, loss = CONTENDERS[k](cfg, w.data)
            times[k].append(secs)
            losses[k] = loss
    # the cost of the validation pass contained in history["time"] (TINY examples)
    model = _fresh_model(cfg, w.data)
    val_secs = median([timed(lambda: evaluate(model, w.data.x_val, w.data.y_val, 4096)) for _ in range(max(rounds, 3))])
    return {"times": times, "losses": losses, "val_secs": val_secs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smoke run on small subsets, 1 round")
    ap.add_argument("--rounds", type=int, default=None, help="timed epochs per contender (default 7)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 7)
    threads = pin_threads(args.threads)

    print(f"reglab engine benchmark -- {env_line()}; {load_line()}")
    print(
        f"device cpu, torch threads {threads}, SGD lr {LR}, seed {SEED}, "
        f"1 warm-up + {rounds} interleaved timed epoch(s) per contender, medians"
        + (" [QUICK smoke run: small subsets, targets not judged]" if args.quick else "")
    )
    print(
        "reglab time = fit(...).history[0]['time']: the training epoch plus the validation pass "
        f"over a {TINY}-example validation set (its cost printed below, not subtracted)."
    )
    t_start = time.perf_counter()
    rows, checks = [], []
    for make in (mnist_workload, tabular_workload):
        w = make(args.quick)
        print(f"\n== {w.name}: {w.source}")
        res = bench(w, rounds)
        med = {k: median(v) for k, v in res["times"].items()}
        r_hand = med["reglab"] / med["hand-written"]
        r_dl = med["DataLoader"] / med["reglab"]
        t = res["times"]
        paired_hand = median([a / b for a, b in zip(t["reglab"], t["hand-written"], strict=True)])
        paired_dl = median([a / b for a, b in zip(t["DataLoader"], t["reglab"], strict=True)])
        for k, v in res["times"].items():
            print(f"   {k:<13} epochs: " + ", ".join(f"{t:.3f}" for t in v) + " s")
        print(f"   validation pass inside reglab's time: {res['val_secs'] * 1e3:.2f} ms ({TINY} examples)")
        print(
            f"   per-round paired ratios (median): reglab/hand {paired_hand:.3f}, "
            f"DataLoader/reglab {paired_dl:.2f}  (noise check; the targets use the ratio of medians)"
        )
        lr_, lh = res["losses"]["reglab"], res["losses"]["hand-written"]
        same = math.isclose(lr_, lh, rel_tol=1e-4)
        print(
            f"   same work? epoch train loss reglab {lr_:.6f} vs hand-written {lh:.6f} "
            f"({'match' if same else 'DIFFER'}); DataLoader {res['losses']['DataLoader']:.6f} "
            "(own shuffle order)"
        )
        rows.append(
            [
                w.name,
                f"{med['reglab']:.3f}",
                f"{med['hand-written']:.3f}",
                f"{med['DataLoader']:.3f}",
                f"{r_hand:.3f}",
                f"{r_dl:.2f}",
            ]
        )
        checks.append((w.name, "reglab / hand-written <= 1.05", r_hand, r_hand <= 1.05))
        checks.append((w.name, f"DataLoader / reglab >= {w.dataloader_target:g}", r_dl, r_dl >= w.dataloader_target))

    print("\nper-epoch seconds (median) and ratios, measured in this run:")
    print(
        table(
            ["workload", "reglab s", "hand s", "DataLoader s", "reglab/hand", "DataLoader/reglab"],
            rows,
        )
    )
    print("\ntargets:")
    for name, what, value, ok in checks:
        mark = "n/a (quick)" if args.quick else verdict(ok)
        print(f"   {mark:<11} {name}: {what} (measured {value:.3f})")
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_start:.1f} s; {load_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
