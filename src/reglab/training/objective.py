"""What the model's output means for the task: the loss, training hits, scores and metrics.

One :class:`Objective` per run, built from the split's task and ``train.loss``:

- classification: K logits, softmax cross-entropy (the same ops as before tasks existed, so
  classification runs are unchanged to the bit); scores are softmax probabilities;
- binary: one logit, binary cross-entropy with logits; soft (N, 2) targets (label smoothing,
  mixup) use their class-1 column; scores are sigmoid probabilities of class 1;
- regression: one output per target column, the loss on targets standardized with the training
  split's mean and std (so the default learning rates work whatever the target's units); scores
  are predictions mapped back to the target's units, in which every metric is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from reglab.errors import ConfigError
from reglab.tasks import DEFAULT_LOSS, DEFAULT_METRIC, LOSSES, METRICS, applicable


@dataclass
class Objective:
    task: str
    n_classes: int  # classes (classification, binary) or target columns (regression)
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    builtin_ce: bool = False  # classification with the built-in cross-entropy: today's exact ops
    y_mean: Tensor | None = None
    y_std: Tensor | None = None

    @property
    def out_dim(self) -> int:
        """Outputs the model must have."""
        return output_size(self.task, self.n_classes)

    @property
    def has_accuracy(self) -> bool:
        return self.task != "regression"

    def _target(self, out: Tensor, y: Tensor) -> Tensor:
        if self.task == "binary":
            return (y[:, 1] if y.ndim == 2 else y).to(out.dtype)
        if self.task == "regression":
            assert self.y_mean is not None and self.y_std is not None
            return ((y.to(out.dtype) - self.y_mean) / self.y_std).reshape(out.shape)
        return y

    def _out(self, out: Tensor) -> Tensor:
        return out[:, 0] if self.task == "binary" else out

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Mean loss of a batch (``y``: labels, soft targets or target values)."""
        return self.loss_fn(self._out(out), self._target(out, y))

    def member_losses(self, out: Tensor, y: Tensor) -> Tensor:
        """Each population member's mean loss over its batch (P,) from its outputs (P, B, ...): one
        batched call for the built-in cross-entropy (hard or soft targets), else vectorized."""
        if not self.builtin_ce:
            return torch.func.vmap(self.loss)(out, y)
        p, b, k = out.shape
        flat = y.reshape(p * b, k) if y.ndim == 3 else y.reshape(-1)
        return F.cross_entropy(out.reshape(p * b, k), flat, reduction="none").view(p, b).mean(1)

    def loss_sum(self, out: Tensor, y: Tensor) -> float:
        """Summed loss of an evaluation batch."""
        if self.builtin_ce:
            return float(F.cross_entropy(out, y, reduction="sum"))
        return float(self.loss(out, y)) * len(y)

    def hits(self, out: Tensor, y: Tensor) -> Tensor:
        """Correct predictions in a batch (a zero for regression)."""
        if self.task == "regression":
            return torch.zeros((), dtype=torch.long, device=out.device)
        if self.task == "binary":
            labels = (y[:, 1] >= 0.5).long() if y.ndim == 2 else y
            return ((out[:, 0] > 0).long() == labels).sum()
        labels = y if y.dtype == torch.long else y.argmax(1)
        return (out.argmax(1) == labels).sum()

    def scores(self, out: Tensor) -> Tensor:
        """Probabilities (classification: (N, K); binary: P(class 1), (N,)) or predictions in the
        target's units (regression)."""
        if self.task == "binary":
            return torch.sigmoid(out[:, 0])
        if self.task == "regression":
            assert self.y_mean is not None and self.y_std is not None
            pred = out * self.y_std + self.y_mean
            return pred[:, 0] if pred.shape[1] == 1 else pred
        return out.softmax(1)


def output_size(task: str, n_classes: int) -> int:
    """The model's outputs for a task: one logit for binary, else one per class (or target)."""
    return 1 if task == "binary" else n_classes


def build_objective(task: str, n_classes: int, loss: Any, y_train: Tensor) -> Objective:
    """The run's objective; ``loss``: ``auto``, a built-in name, or ``{class_path, init_args}`` (a
    class or factory returning a callable ``(outputs, targets) -> scalar``)."""
    if task not in DEFAULT_LOSS:
        raise ConfigError(f"data.task: unknown task {task!r}; valid: classification, binary, regression")
    if task == "regression" and torch.is_floating_point(y_train) is False:
        y_train = y_train.float()
    name = DEFAULT_LOSS[task] if loss in (None, "auto") else loss
    if isinstance(name, str):
        info = LOSSES.get(name)
        if task not in info.tasks:
            raise ConfigError(f"train.loss: {name!r} does not fit a {task} task")
        fn, builtin_ce = info(), name == "cross_entropy"
    else:
        fn, builtin_ce = _custom_loss(name), False
    mean = std = None
    if task == "regression":
        yt = y_train.float().reshape(len(y_train), -1)
        mean = yt.mean(0)
        std = yt.std(0, unbiased=False) if len(yt) > 1 else torch.ones_like(mean)
        std = torch.where(std < 1e-12, torch.ones_like(std), std)
    return Objective(task, n_classes, fn, builtin_ce, mean, std)


def _custom_loss(spec: Any) -> Callable[[Tensor, Tensor], Tensor]:
    from reglab.imports import import_object

    if isinstance(spec, dict):
        path, init_args = spec.get("class_path", ""), dict(spec.get("init_args") or {})
    else:  # a LossSpec
        path, init_args = spec.class_path, dict(spec.init_args)
    obj = import_object(path, "train.loss.class_path", example="my_pkg.losses:FocalLoss")
    try:
        fn = obj(**init_args)
    except TypeError as e:
        raise ConfigError(f"train.loss: {path}({init_args}) failed: {e}") from None
    if not callable(fn):
        raise ConfigError(f"train.loss: {path} returned {type(fn).__name__}, not a callable (outputs, targets) -> loss")
    return fn


def metric_names(task: str, requested: Sequence[str]) -> list[str]:
    """The metrics of a run: classification keeps accuracy plus what was requested (so existing
    studies record exactly what they did); binary and regression record every applicable metric,
    the task's default first."""
    for m in requested:
        if m in METRICS and task not in METRICS.get(m).tasks:
            raise ConfigError(f"metric {m!r} does not apply to a {task} task; valid: {', '.join(applicable(task))}")
    if task == "classification":
        return list(dict.fromkeys(["acc", *(m for m in requested if m != "loss")]))
    default = DEFAULT_METRIC[task]
    return list(dict.fromkeys([default, *applicable(task)]))


def monitored(task: str, requested: Sequence[str]) -> list[str]:
    """Metrics measured on validation every epoch besides loss and accuracy: the requested ones,
    and for regression the default (RMSE)."""
    extra = [m for m in requested if m not in ("acc", "loss")]
    if task == "regression":
        extra = [DEFAULT_METRIC[task], *extra]
    return list(dict.fromkeys(extra))


def compute(names: Sequence[str], objective: Objective, y: Tensor, scores: Tensor) -> dict[str, float]:
    """Each metric of ``names`` (accuracy and loss excepted: the engine measures them) on the
    scores of one split, in numpy (scikit-learn's functions)."""
    yn = y.detach().cpu().numpy()
    sn = scores.detach().float().cpu().numpy()
    if objective.task != "regression" and yn.ndim == 2:
        yn = yn.argmax(1)
    return {m: METRICS.get(m)(yn, sn, objective.n_classes) for m in names if m not in ("acc", "loss")}


def selection_metric(task: str, requested: Sequence[str]) -> str:
    """The metric that picks a run's best epoch: the first requested one other than accuracy and
    loss (the study puts ``metric.select`` first), else the task's default."""
    extra = [m for m in requested if m not in ("acc", "loss")]
    return extra[0] if extra else DEFAULT_METRIC[task]


def run_metrics(cfg: Any, task: str) -> tuple[list[str], list[str], str]:
    """What both engines measure for one run of ``task``: the final metrics on train/val/test, the
    extra ones measured on validation every epoch (the requested ones and the stopping rule's
    monitor) and the validation metric that picks the best epoch (unless early stopping does)."""
    es = cfg.regularization.early_stopping
    requested = [*cfg.train.metrics, *([es.monitor.partition("_")[2]] if es else [])]
    select = f"val_{selection_metric(task, cfg.train.metrics)}"
    return metric_names(task, requested), monitored(task, requested), select
