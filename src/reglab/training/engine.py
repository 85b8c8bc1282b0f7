"""The training engine: one readable loop over in-memory tensors.

Batches are slices of a per-epoch permutation (no per-sample DataLoader). Every source of
randomness comes from ``cfg.train.seed`` (initialization, batch order, augmentation, dropout), the
data split from ``cfg.data.split_seed``: the same config gives the same history on CPU.
The test split is read once, after training, and never for any selection.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reglab.config import RunConfig
from reglab.data.base import DataSplits
from reglab.models import build_model
from reglab.regularizers import TrainContext, build_regularizers
from reglab.regularizers.base import Regularizer, penalized_parameters
from reglab.training.optimizers import build_optimizer
from reglab.training.schedules import lr_at

EpochCallback = Callable[[dict[str, float]], None]

SPARSITY_THRESHOLD = 1e-3


@dataclass
class RunResult:
    """Outcome of one run. ``history`` has one dict per epoch; ``final`` the end-of-run metrics
    (train/val/test loss and accuracy of the final model, best epoch, weight statistics)."""

    status: str  # "completed" | "diverged"
    history: list[dict[str, float]]
    final: dict[str, float]
    info: dict[str, Any]
    reason: str | None = None
    diverged_epoch: int | None = None
    test_probs: np.ndarray | None = field(default=None, repr=False)
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


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int, probs: bool = False
) -> tuple[float, float, Tensor | None]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode, and its softmax probabilities when
    ``probs`` (only the final test evaluation needs them, for seed ensembles)."""
    model.eval()
    loss, correct, chunks = 0.0, 0, []
    for i in range(0, len(y), batch_size):
        logits = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
        if probs:
            chunks.append(logits.softmax(1))
    n = max(len(y), 1)
    return loss / n, correct / n, torch.cat(chunks) if chunks else None


HIST_LINEAR = (-0.3, 0.3, 60)  # signed weights
HIST_LOG = (-7.0, 1.0, 48)  # log10 |w|: L1's exact-zero mass shows up at the left edge


@torch.no_grad()
def weight_histograms(params: Sequence[Tensor]) -> dict[str, list[float]]:
    """Counts of the final weights on fixed bins (comparable across arms and seeds); values
    outside the range are clamped into the edge bins."""
    flat = torch.cat([p.detach().reshape(-1) for p in params]).float().cpu()
    lo, hi, n = HIST_LINEAR
    lin = torch.histc(flat.clamp(lo, hi), bins=n, min=lo, max=hi)
    llo, lhi, ln = HIST_LOG
    logs = torch.log10(flat.abs().clamp_min(10**llo)).clamp(llo, lhi)
    log = torch.histc(logs, bins=ln, min=llo, max=lhi)
    return {"linear": lin.tolist(), "log10_abs": log.tolist()}


@torch.no_grad()
def weight_stats(params: Sequence[Tensor]) -> dict[str, float]:
    """L1 and L2 norms of the weights and their sparsity (share with |w| < 1e-3)."""
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    return {
        "weight_l1": float(flat.abs().sum()),
        "weight_l2": float(flat.norm()),
        "sparsity": float((flat.abs() < SPARSITY_THRESHOLD).float().mean()),
    }


GRAD_NORM_EVERY = 8  # gradient norm measured on steps 0, 8, 16, ... (every step when clipping)


class _EpochStats:
    """Training loss, accuracy and gradient norm of one epoch. The hot loop only appends each
    step's scalar tensors (no small tensor op or host sync per step); they are summed every
    ``CHUNK`` steps and at the end of the epoch. The recorded ``grad_norm`` is the mean global
    gradient norm over the measured steps: for spotting vanishing or exploding gradients a sample
    of every 8th step gives the same picture at an eighth of the cost."""

    CHUNK = 1024  # bounds the memory held by the lists

    def __init__(self) -> None:
        self._losses: list[Tensor] = []
        self._sizes: list[int] = []
        self._hits: list[Tensor] = []
        self._norms: list[Tensor] = []
        self.loss_sum, self.correct, self.norm_sum, self.n_norms = 0.0, 0, 0.0, 0

    def add(self, loss: Tensor, size: int, hits: Tensor) -> None:
        self._losses.append(loss)
        self._sizes.append(size)
        self._hits.append(hits)
        if len(self._losses) >= self.CHUNK:
            self.flush()

    def add_norm(self, norm: Tensor) -> None:
        self._norms.append(norm)

    def flush(self) -> None:
        if self._losses:
            sizes = torch.tensor(self._sizes, dtype=self._losses[0].dtype, device=self._losses[0].device)
            self.loss_sum += float((torch.stack(self._losses) * sizes).sum())
            self.correct += int(torch.stack(self._hits).sum())
        if self._norms:
            self.norm_sum += float(torch.stack(self._norms).sum())
            self.n_norms += len(self._norms)
        for buf in (self._losses, self._sizes, self._hits, self._norms):
            buf.clear()

    @property
    def grad_norm(self) -> float:
        return self.norm_sum / max(self.n_norms, 1)


def _overriding(regs: Sequence[Regularizer], hook: str) -> list[Regularizer]:
    return [r for r in regs if getattr(type(r), hook) is not getattr(Regularizer, hook)]


def fit(
    cfg: RunConfig,
    data: DataSplits | None = None,
    *,
    callbacks: Sequence[EpochCallback] = (),
    keep_model: bool = False,
    evaluate_test: bool = True,
) -> RunResult:
    """Train one model as ``cfg`` says and return its history and final metrics.

    A NaN/inf loss ends the run with status "diverged" (no exception). Exceptions raised by
    ``callbacks`` (e.g. a pruner's) propagate. ``evaluate_test=False`` (tuning trials) never
    reads the test split: ``final`` then has no test metrics and ``test_probs`` is None.
    """
    t_start = time.perf_counter()
    tc = cfg.train
    device = resolve_device(tc.device)
    if data is None:
        from reglab.data import load_data

        data = load_data(cfg.data)
    test = data.test
    if device.type != "cpu":
        data = data.to(device)

    torch.manual_seed(tc.seed)  # initialization and dropout masks
    gen = torch.Generator().manual_seed(tc.seed)  # batch order and augmentation
    model = build_model(cfg.model, cfg.regularization, data.input_shape, data.n_classes).to(device)
    weights = penalized_parameters(model, include_biases=False)
    penalized = penalized_parameters(model, cfg.regularization.penalize_biases)
    optimizer = build_optimizer(model, penalized, tc, cfg.regularization)
    regs = build_regularizers(cfg)
    ctx = TrainContext(
        gen=gen,
        n_classes=data.n_classes,
        image=data.image,
        epochs=tc.epochs,
        penalized=penalized,
        x_train=data.x_train,
        batch_size=tc.batch_size,
        optimizer_name=tc.optimizer,
    )
    for r in regs:
        r.setup(model, ctx)
    # hooks left at their no-op defaults are skipped in the hot loop
    transforms = _overriding(regs, "transform_batch")
    penalties = _overriding(regs, "penalty")
    before = _overriding(regs, "before_step")
    after = _overriding(regs, "after_step")
    params = [p for p in model.parameters() if p.requires_grad]

    x_tr, y_tr, n = data.x_train, data.y_train, len(data.y_train)
    bs = min(tc.batch_size, n)
    history: list[dict[str, float]] = []
    status, reason, diverged_epoch = "completed", None, None

    for epoch in range(tc.epochs):
        t0 = time.perf_counter()
        ctx.epoch = epoch
        lr = lr_at(tc, epoch)
        for r in regs:
            lr = r.adjust_lr(epoch, lr, ctx)
        for g in optimizer.param_groups:
            g["lr"] = lr
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        pen_sum = torch.zeros((), device=device)
        stats = _EpochStats()
        steps = 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb, yb = x_tr[idx], y_tr[idx]
            for r in transforms:
                xb, yb = r.transform_batch(xb, yb, ctx)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
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
            labels = yb if yb.dtype == torch.long else yb.argmax(1)
            stats.add(loss.detach(), len(idx), (logits.detach().argmax(1) == labels).sum())
            steps += 1
        stats.flush()

        train_loss = float(stats.loss_sum) / n
        if not math.isfinite(train_loss) or not math.isfinite(float(pen_sum)):
            status, diverged_epoch = "diverged", epoch + 1
            reason = f"non-finite training loss ({train_loss}) in epoch {epoch + 1}"
            break
        val_loss, val_acc, _ = evaluate(model, data.x_val, data.y_val, tc.eval_batch_size)
        if not math.isfinite(val_loss):
            status, diverged_epoch = "diverged", epoch + 1
            reason = f"non-finite validation loss in epoch {epoch + 1}"
            break
        record: dict[str, float] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": stats.correct / n,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr,
            "grad_norm": stats.grad_norm,
            "penalty": float(pen_sum) / max(steps, 1),
            "time": time.perf_counter() - t0,
            **weight_stats(weights),
        }
        history.append(record)
        stop = False
        for r in regs:
            stop = r.on_epoch_end(model, record, ctx) or stop
        for cb in callbacks:
            cb(record)
        if stop:
            break

    info: dict[str, Any] = {
        "device": str(device),
        "n_params": sum(p.numel() for p in model.parameters()),
        "regularizers": [r.name for r in regs],
        "epochs_run": len(history),
        "data_sizes": data.sizes(),
    }
    for r in regs:
        info.update(r.summary())
    if status != "completed":
        info["wall_time"] = time.perf_counter() - t_start
        return RunResult(status, history, {}, info, reason, diverged_epoch)

    final_model = model
    for r in regs:
        final_model = r.on_train_end(final_model, ctx)
    ebs = tc.eval_batch_size
    tr_loss, tr_acc, _ = evaluate(final_model, x_tr, y_tr, ebs)
    va_loss, va_acc, _ = evaluate(final_model, data.x_val, data.y_val, ebs)
    te_probs: Tensor | None = None
    test_metrics: dict[str, float] = {}
    if evaluate_test:
        x_te, y_te = test.read()  # the only read of the test split
        te_loss, te_acc, te_probs = evaluate(final_model, x_te.to(device), y_te.to(device), ebs, probs=True)
        test_metrics = {"test_loss": te_loss, "test_acc": te_acc, "gap": tr_acc - te_acc}
    best_epoch = info.get("early_stopping_best_epoch") or int(max(history, key=lambda h: h["val_acc"])["epoch"])
    final = {
        "train_loss": tr_loss,
        "train_acc": tr_acc,
        "val_loss": va_loss,
        "val_acc": va_acc,
        **test_metrics,
        "best_epoch": float(best_epoch),
        **weight_stats(penalized_parameters(final_model, include_biases=False)),
    }
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
