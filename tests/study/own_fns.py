"""Training functions for the tests of ``objective.function`` studies (tests/study/test_own_function.py):
each a plain function ``run(settings, ctx) -> metrics`` that trains nothing, so a study of them takes
well under a second per run; which behaviour a run shows is chosen by its settings."""

from __future__ import annotations

import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

if _log := os.environ.get("REGLAB_TEST_IMPORT_LOG"):  # which processes import this module (a test reads it)
    import multiprocessing

    with open(_log, "a") as _f:
        _f.write("driver\n" if multiprocessing.parent_process() is None else "worker\n")


def scripted(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    """val_acc = ``x`` (a tuned value) every epoch, so the median pruner stops the low ones; the
    settings switch on a failure: ``raise_in`` ("tune" | "confirm"), ``nan``, ``quiet`` (no
    report), ``test_in_tuning`` ("return" | "report" | "read"), ``no_train`` (no train_acc),
    ``crash_marker`` (the process kills itself the first time)."""
    x = float(settings.get("x", 0.5))
    epochs = int(settings.get("epochs", 5))
    if settings.get("raise_in") == ctx.phase:
        raise ValueError(f"boom in {ctx.phase} at seed {ctx.seed}")
    marker = settings.get("crash_marker")
    if marker and not Path(marker).exists():
        Path(marker).write_text("crashed once")
        os.kill(os.getpid(), signal.SIGKILL)
    mode = settings.get("test_in_tuning")
    if mode == "read":
        _ = ctx.data().x_test
    noise = float(np.random.default_rng(ctx.seed).normal(0, 0.01))
    for epoch in range(1, epochs + 1):
        if not settings.get("quiet"):
            extra = {"test_acc": 0.5} if mode == "report" else {}
            ctx.report(epoch, train_acc=x + 0.05, val_acc=x + noise, **extra)
    out = {"val_acc": math.nan if settings.get("nan") else x + noise}
    if not settings.get("no_train"):
        out["train_acc"] = min(1.0, x + 0.05)
    if ctx.may_use_test or mode == "return":
        out["test_acc"] = x + noise / 2
    return out


def uses_data(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    """Nearest class mean on reglab's split: reads ``ctx.data()`` and the test split when allowed."""
    d = ctx.data()
    if d.streamed:  # a folder larger than data.memory_budget_mb: torch Datasets, read here whole
        if settings.get("peek_test"):
            _ = d.test
        return _uses_streamed(d, ctx)
    x, y = d.x_train.reshape(len(d.y_train), -1), d.y_train
    means = np.stack([x[y == c].mean(0) for c in range(d.n_classes)])

    def acc(xs: np.ndarray, ys: np.ndarray) -> float:
        dist = ((xs.reshape(len(ys), -1)[:, None, :] - means[None]) ** 2).sum(-1)
        return float((dist.argmin(1) == ys).mean())

    out = {"train_acc": acc(d.x_train, d.y_train), "val_acc": acc(d.x_val, d.y_val)}
    if ctx.may_use_test:
        out["test_acc"] = acc(d.x_test, d.y_test)
    return out


def _uses_streamed(d: Any, ctx: Any) -> dict[str, float]:
    """:func:`uses_data` on streamed data: the same nearest class mean, reading the Datasets."""
    from types import SimpleNamespace

    def arrays(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        items = [ds[i] for i in range(len(ds))]
        return np.stack([np.asarray(x) for x, _ in items]), np.array([int(y) for _, y in items])

    (xt, yt), (xv, yv) = arrays(d.train), arrays(d.val)
    data = SimpleNamespace(x_train=xt, y_train=yt, x_val=xv, y_val=yv, n_classes=d.n_classes, streamed=False)
    if ctx.may_use_test:
        data.x_test, data.y_test = arrays(d.test)
    return uses_data({}, SimpleNamespace(data=lambda: data, may_use_test=ctx.may_use_test))


class Settings(BaseModel):
    """A pydantic declaration: arms are checked against its names and values."""

    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    epochs: int = 5


def declared(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    return {"train_acc": 0.9, "val_acc": 0.8 - settings.get("dropout", 0.0) / 10, "test_acc": 0.8}


def keywords(settings: dict[str, Any], ctx: Any, *, lr: float, mixup_alpha: float = 0.0) -> dict[str, float]:
    """Settings declared by keyword-only parameters (``lr`` required): reglab passes them."""
    return {"train_acc": 0.9, "val_acc": lr - mixup_alpha, "test_acc": lr}


@dataclass
class DataclassSettings:
    width: int = 8
    dropout: float = 0.0


def annotated(settings: DataclassSettings, ctx: Any) -> dict[str, float]:
    """Declared by its annotation: receives an instance of the dataclass."""
    assert isinstance(settings, DataclassSettings)
    return {"train_acc": 0.9, "val_acc": settings.width / 100, "test_acc": 0.5}


class Trainer:
    """A class objective: built with ``init_args`` once per run, then called."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, settings: dict[str, Any], ctx: Any) -> dict[str, float]:
        return {"train_acc": 0.9, "val_acc": self.scale * settings.get("x", 1.0), "test_acc": self.scale}


def exits(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    """A training script's ``sys.exit``: fails the run, not the worker process."""
    raise SystemExit(3)


def regression(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    """RMSE metrics, and R² (the diagnosis' metric for regression) when ``r2`` is set."""
    shift = float(settings.get("shift", 0.0))
    out = {"train_rmse": 40.0 + shift, "val_rmse": 50.0 + shift}
    if settings.get("r2"):
        out |= {"train_r2": 0.6 - shift, "val_r2": 0.5 - shift}
    if ctx.may_use_test:
        out["test_rmse"] = 52.0 + shift
    return out
