"""What the engine measures: evaluation (loss, accuracy, probabilities), per-epoch training
statistics, and statistics of the weights (norms, sparsity, histograms on fixed bins)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from reglab.training.objective import Objective

SPARSITY_THRESHOLD = 1e-3
HIST_LINEAR = (-0.3, 0.3, 60)  # signed weights
HIST_LOG = (-7.0, 1.0, 48)  # log10 |w|: L1's exact-zero mass shows up at the left edge


def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int, probs: bool = False, objective: Objective | None = None
) -> tuple[float, float, Tensor | None]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode (see :func:`evaluate_batches`)."""
    batches = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size))
    return evaluate_batches(model, batches, probs, objective)


@torch.no_grad()
def evaluate_batches(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], probs: bool = False, objective: Objective | None = None
) -> tuple[float, float, Tensor | None]:
    """Mean loss and accuracy of ``model`` in eval mode over ``batches``, and its scores when
    ``probs`` (softmax probabilities for classification; see :class:`Objective`). Without
    ``objective``: softmax cross-entropy. Regression has no accuracy (NaN)."""
    model.eval()
    loss, correct, n, chunks = 0.0, 0, 0, []
    for xb, yb in batches:
        logits = model(xb)
        if objective is None:
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        else:
            loss += objective.loss_sum(logits, yb)
            correct += int(objective.hits(logits, yb))
        n += len(yb)
        if probs:
            chunks.append(logits.softmax(1) if objective is None else objective.scores(logits))
    acc = correct / max(n, 1) if objective is None or objective.has_accuracy else math.nan
    return loss / max(n, 1), acc, torch.cat(chunks) if chunks else None


@torch.no_grad()
def weight_histograms(params: Sequence[Tensor]) -> dict[str, list[float]]:
    """Counts of the final weights on fixed bins (comparable across arms and seeds); values
    outside the range are clamped into the edge bins. The bins travel with the counts
    (``*_range``: low, high, bins), so readers need not import these constants (nor torch)."""
    flat = torch.cat([p.detach().reshape(-1) for p in params]).float().cpu()
    lo, hi, n = HIST_LINEAR
    lin = torch.histc(flat.clamp(lo, hi), bins=n, min=lo, max=hi)
    llo, lhi, ln = HIST_LOG
    logs = torch.log10(flat.abs().clamp_min(10**llo)).clamp(llo, lhi)
    log = torch.histc(logs, bins=ln, min=llo, max=lhi)
    return {
        "linear": lin.tolist(),
        "log10_abs": log.tolist(),
        "linear_range": [lo, hi, n],
        "log10_abs_range": [llo, lhi, ln],
    }


@torch.no_grad()
def weight_stats(params: Sequence[Tensor], members: bool = False) -> dict[str, Any]:
    """L1 and L2 norms of the weights and their sparsity (share with |w| < 1e-3). ``members``: the
    tensors are a population's, stacked along a leading member dimension: a list, a value per member."""
    flat = torch.cat([p.detach().flatten(int(members)) for p in params], int(members))
    dim: dict[str, Any] = {"dim": 1} if members else {}
    stats = {
        "weight_l1": flat.abs().sum(**dim),
        "weight_l2": flat.norm(**dim),
        "sparsity": (flat.abs() < SPARSITY_THRESHOLD).float().mean(**dim),
    }
    return {k: v.tolist() for k, v in stats.items()}


def epoch_record(
    epoch: int,
    train: tuple[float, float | None],
    val: tuple[float, float | None],
    val_metrics: dict[str, float],
    lr: float,
    grad_norm: float,
    penalty: float,
    seconds: float,
    weights: dict[str, float],
) -> dict[str, float]:
    """One epoch of a run's history, as both engines record it (``train``/``val``: loss and
    accuracy, None without one)."""
    return {
        "epoch": epoch,
        "train_loss": train[0],
        **({"train_acc": train[1]} if train[1] is not None else {}),
        "val_loss": val[0],
        **({"val_acc": val[1]} if val[1] is not None else {}),
        **{f"val_{k}": v for k, v in val_metrics.items()},
        "lr": lr,
        "grad_norm": grad_norm,
        "penalty": penalty,
        "time": seconds,
        **weights,
    }


def run_info(device: torch.device, model: nn.Module, regs: Sequence[Any], epochs_run: int, data: Any) -> dict[str, Any]:
    """The facts both engines record with a run: where it ran, its trainable parameters, its
    regularizers (and their own summaries), its epochs and the sizes of its splits."""
    info: dict[str, Any] = {
        "device": str(device),
        "n_params": sum(p.numel() for p in model.parameters() if p.requires_grad),  # trainable ones
        "regularizers": [r.name for r in regs],
        "epochs_run": epochs_run,
        "data_sizes": data.sizes(),
    }
    for r in regs:
        info.update(r.summary())
    return info


def close_final(
    final: dict[str, float],
    history: Sequence[dict[str, float]],
    names: Sequence[str],
    select: str,
    best_epoch: int | None,
    tested: bool,
) -> None:
    """The end-of-run entries of ``final`` both engines add: the gap - how much better the model
    does on train than on test in the task's main metric (when tested) - and the best epoch (the
    stopping rule's, else the best ``select`` value's)."""
    from reglab.tasks import gap, higher_is_better

    if tested:
        main = names[0]
        final["gap"] = gap(main, final[f"train_{main}"], final[f"test_{main}"])
    pick = max if higher_is_better(select) else min
    final["best_epoch"] = float(best_epoch or int(pick(history, key=lambda h: h[select])["epoch"]))


class EpochStats:
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
        self.n = 0  # examples trained on

    def add(self, loss: Tensor, size: int, hits: Tensor) -> None:
        self._losses.append(loss)
        self._sizes.append(size)
        self._hits.append(hits)
        self.n += size
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


def split_metrics(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    y: Tensor,
    objective: Objective,
    names: Sequence[str],
    split: str = "test",
) -> tuple[dict[str, float], Tensor]:
    """``<split>_loss``, ``<split>_acc`` (not for regression) and ``<split>_<name>`` of one split,
    and the model's scores on it."""
    from reglab.training.objective import compute

    loss, acc, scores = evaluate_batches(model, batches, probs=True, objective=objective)
    assert scores is not None
    out = {"loss": loss, **({"acc": acc} if objective.has_accuracy else {}), **compute(names, objective, y, scores)}
    return {f"{split}_{k}": v for k, v in out.items()}, scores
