"""The training engine: one readable loop over in-memory tensors.

Batches are slices of a per-epoch permutation (no per-sample DataLoader). Every source of
randomness comes from ``cfg.train.seed`` (initialization, batch order, augmentation, dropout), the
data split from ``cfg.data.split_seed``: the same config gives the same history on CPU. Batch order
and augmentation draw from the run's own ``torch.Generator``; initialization and dropout, which
only have torch's global RNG, run inside :func:`seeded_global_rng` (the caller's state is restored).
The test split is read once, after training, and never for any selection. Metrics: ``metrics.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reglab.config import RunConfig
from reglab.data.base import DataSplits, TestSplit
from reglab.data.streaming import StreamSplits, StreamTestSplit
from reglab.errors import ConfigError
from reglab.models import ModelCallable
from reglab.models.user import wrong_output
from reglab.optim import create_optimizer, create_schedule
from reglab.regularizers import TrainContext, build_regularizers
from reglab.regularizers.base import Regularizer, penalized_parameters
from reglab.status import RunStatus
from reglab.training.feed import Feed, make_feed
from reglab.training.metrics import (
    EpochStats,
    close_final,
    epoch_record,
    evaluate_batches,
    run_info,
    split_metrics,
    weight_histograms,
    weight_stats,
)
from reglab.training.network import build_network, resolve_device
from reglab.training.objective import build_objective, compute, run_metrics
from reglab.training.rng import seeded_global_rng

EpochCallback = Callable[[dict[str, float]], None]
GRAD_NORM_EVERY = 8  # gradient norm measured on steps 0, 8, 16, ... (every step when clipping)


@dataclass
class RunResult:
    """Outcome of one run. ``history`` has one dict per epoch; ``final`` the end-of-run metrics
    (train/val/test loss and accuracy of the final model, best epoch, weight statistics)."""

    status: RunStatus  # completed | diverged (a population member's also pruned)
    history: list[dict[str, float]]
    final: dict[str, float]
    info: dict[str, Any]
    reason: str | None = None
    diverged_epoch: int | None = None
    test_probs: np.ndarray | None = field(default=None, repr=False)  # test scores (see Objective.scores)
    model: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "diverged_epoch": self.diverged_epoch,
            "final": self.final,
            "info": self.info,
            "history": self.history,
        }


def _overriding(regs: Sequence[Regularizer], hook: str) -> list[Regularizer]:
    return [r for r in regs if getattr(type(r), hook) is not getattr(Regularizer, hook)]


def fit(
    cfg: RunConfig,
    data: DataSplits | Any = None,
    *,
    callbacks: Sequence[EpochCallback] = (),
    keep_model: bool = False,
    evaluate_test: bool = True,
    model: ModelCallable | None = None,
) -> RunResult:
    """Train one model as ``cfg`` says and return its history and final metrics.

    ``model``: your own network, ``model(**hyperparameters) -> nn.Module`` (instead of
    ``cfg.model``'s; ``cfg.model.init_args`` and the structural settings are its arguments, see
    :mod:`reglab.models.user`). Any callable works here, a lambda included.

    A NaN/inf loss ends the run with status "diverged" (no exception). Exceptions raised by
    ``callbacks`` (e.g. a pruner's) propagate. ``evaluate_test=False`` (tuning trials) never
    reads the test split: ``final`` then has no test metrics and ``test_probs`` is None.
    ``data``: prepared splits, or the user's own data - ``(X, y)`` arrays or tensors, a dict of
    splits ``{"train": (X, y), "test": (X, y)}`` or a map-style torch ``Dataset`` - split by
    ``cfg.data`` like every dataset (:mod:`reglab.data.arrays`); None loads ``cfg.data``.
    """
    t_start = time.perf_counter()
    tc = cfg.train
    device = resolve_device(tc.device)
    if data is None:  # in memory, or streamed when larger than the memory budget
        from reglab.data.streaming import open_data

        data = open_data(cfg.data)
    elif not isinstance(data, DataSplits | StreamSplits):
        from reglab.data.streaming import open_python_data

        data = open_python_data(data, cfg.data)
    test = data.test
    if device.type != "cpu":
        data = data.to(device)
    with seeded_global_rng(tc.seed, device):  # initialization and dropout masks
        return _train(cfg, data, test, device, callbacks, keep_model, evaluate_test, t_start, model)


def _train(
    cfg: RunConfig,
    data: DataSplits | StreamSplits,
    test: TestSplit | StreamTestSplit,
    device: torch.device,
    callbacks: Sequence[EpochCallback],
    keep_model: bool,
    evaluate_test: bool,
    t_start: float,
    factory: ModelCallable | None = None,
) -> RunResult:
    """The run itself: set up, the epoch loop, the final evaluation (inside :func:`fit`'s RNG block)."""
    tc = cfg.train
    gen = torch.Generator().manual_seed(tc.seed)  # batch order and augmentation
    regs = build_regularizers(cfg)  # structural ones (dropout, batch norm) add layers to the model
    # -- task: loss, outputs and metrics (training/objective.py) --
    task = getattr(data, "task", "classification")
    objective = build_objective(task, data.n_classes, tc.loss, data.y_train)
    if task == "regression" and cfg.regularization.label_smoothing > 0:
        raise ConfigError("label_smoothing: needs classes, and this is a regression task; remove it or set data.task")
    names, watch, select = run_metrics(cfg, task)  # final; every epoch on validation; picks the best epoch
    # -- end task --
    feed: Feed = make_feed(data, device)
    model = build_network(cfg, data.input_shape, objective.out_dim, regs, factory, feed.example()).to(device)
    weights = penalized_parameters(model, include_biases=False)
    penalized = penalized_parameters(model, cfg.regularization.penalize_biases)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = create_optimizer(tc.optimizer, params, lr=tc.lr, momentum=tc.momentum)
    schedule = create_schedule(tc.schedule, lr=tc.lr, epochs=tc.epochs, step_size=tc.step_size, decay=tc.decay)
    ctx = TrainContext(
        gen=gen,
        n_classes=data.n_classes,
        image=data.image,
        epochs=tc.epochs,
        penalized=penalized,
        x_train=data.x_train if isinstance(data, DataSplits) else None,
        batch_size=tc.batch_size,
        train_inputs=feed.inputs,
        y_train=data.y_train if isinstance(data, DataSplits) else None,
        train_examples=lambda size: feed.split("train", size),
    )
    for r in regs:
        r.setup(model, ctx)
    # hooks left at their no-op defaults are skipped in the hot loop
    transforms = _overriding(regs, "transform_batch")
    penalties = _overriding(regs, "penalty")
    before = _overriding(regs, "before_step")
    after = _overriding(regs, "after_step")

    n = feed.n_train
    bs = min(tc.batch_size, n)
    model_ref = cfg.model.class_path or cfg.model.arch
    history: list[dict[str, float]] = []
    status, reason, diverged_epoch = RunStatus.COMPLETED, None, None

    for epoch in range(tc.epochs):
        t0 = time.perf_counter()
        ctx.epoch = epoch
        lr = schedule(epoch)
        for r in regs:
            lr = r.adjust_lr(epoch, lr, ctx)
        for g in optimizer.param_groups:
            g["lr"] = lr
        model.train()
        pen_sum = torch.zeros((), device=device)
        stats = EpochStats()
        steps = 0
        for xb, yb in feed.train(bs, gen):
            for r in transforms:
                xb, yb = r.transform_batch(xb, yb, ctx)
            size = len(yb)  # generated examples mixed into the batch count as trained on
            logits = model(xb)
            if steps == 0 and epoch == 0:  # the check before the study ran the model in eval mode only
                problem = wrong_output(logits, tuple(xb.shape), objective.out_dim, model_ref, " in training mode")
                if problem is not None:
                    raise problem
            loss = objective.loss(logits, yb)
            total = loss
            for r in penalties:
                pen = r.penalty(ctx)
                if pen is not None:
                    total = total + pen
                    pen_sum += pen.detach()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if tc.grad_clip is not None:  # returns the pre-clip norm anyway
                stats.add_norm(torch.nn.utils.clip_grad_norm_(params, tc.grad_clip))
            elif steps % GRAD_NORM_EVERY == 0:
                grads = [p.grad for p in params if p.grad is not None]
                stats.add_norm(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
            for r in before:
                r.before_step(model, lr, ctx)
            optimizer.step()
            for r in after:
                r.after_step(model, ctx)
            stats.add(loss.detach(), size, objective.hits(logits.detach(), yb))
            steps += 1
        stats.flush()

        seen = stats.n  # n, or more when a regularizer adds examples to its batches
        train_loss = float(stats.loss_sum) / seen
        if not math.isfinite(train_loss) or not math.isfinite(float(pen_sum)):
            status, diverged_epoch = RunStatus.DIVERGED, epoch + 1
            reason = f"non-finite training loss ({train_loss}) in epoch {epoch + 1}"
            break
        val_loss, val_acc, val_scores = evaluate_batches(
            model, feed.split("val", tc.eval_batch_size), probs=bool(watch), objective=objective
        )
        if not math.isfinite(val_loss):
            status, diverged_epoch = RunStatus.DIVERGED, epoch + 1
            reason = f"non-finite validation loss in epoch {epoch + 1}"
            break
        acc = objective.has_accuracy
        record = epoch_record(
            epoch + 1,
            (train_loss, stats.correct / seen if acc else None),
            (val_loss, val_acc if acc else None),
            compute(watch, objective, data.y_val, val_scores) if val_scores is not None else {},
            lr,
            stats.grad_norm,
            float(pen_sum) / max(steps, 1),
            time.perf_counter() - t0,
            weight_stats(weights),
        )
        history.append(record)
        stop = False
        for r in regs:
            stop = r.on_epoch_end(model, record, ctx) or stop
        for cb in callbacks:
            cb(record)
        if stop:
            break

    info = run_info(device, model, regs, len(history), data)
    if status is not RunStatus.COMPLETED:
        info["wall_time"] = time.perf_counter() - t_start
        return RunResult(status, history, {}, info, reason, diverged_epoch)

    final_model = model
    for r in regs:
        final_model = r.on_train_end(final_model, ctx)
    ebs = tc.eval_batch_size
    final: dict[str, float] = {}
    te_probs: Tensor | None = None
    for split, y_s in (("train", data.y_train), ("val", data.y_val)):
        final.update(split_metrics(final_model, feed.split(split, ebs), y_s.to(device), objective, names, split)[0])
    if evaluate_test:
        te_batches, y_te = feed.test(test, ebs)  # type: ignore[arg-type]  # the only read of the test split
        test_metrics, te_probs = split_metrics(final_model, te_batches, y_te, objective, names)
        final.update(test_metrics)
    close_final(final, history, names, select, ctx.best_epoch, evaluate_test)  # the gap, the best epoch
    final.update(weight_stats(penalized_parameters(final_model, include_biases=False)))
    info["wall_time"] = time.perf_counter() - t_start
    info["weight_histogram"] = weight_histograms(penalized_parameters(final_model, include_biases=False))
    return RunResult(
        status,
        history,
        final,
        info,
        test_probs=None if te_probs is None else te_probs.float().cpu().numpy(),
        model=final_model if keep_model else None,
    )
