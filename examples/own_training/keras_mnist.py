"""Your own Keras 3 code under reglab: the classic MNIST experiment - a fully-connected network
without regularization, with L2 (``kernel_regularizer``), with dropout, and with both - written as
a plain Keras ``model.fit`` inside ``run(settings, ctx)`` on the MNIST split reglab hands it
(``ctx.data()``).

How it meets the contract:

- Keras runs on the torch backend: ``KERAS_BACKEND`` must be set before the first ``import keras``
  (in every process: reglab's worker processes import this module, which sets it).
- ``ReglabReport`` (a ``keras.callbacks.Callback``) evaluates the training and validation splits
  at each epoch end in inference mode (dropout off, no L2 penalty in the loss) and calls
  ``ctx.report``: reglab's pruner, time budget and curves see every epoch, and the diagnosis gets
  a clean ``train_acc``. ``StopRun`` from ``ctx.report`` is a ``BaseException``, which Keras'
  ``fit`` does not catch: it ends the run.
- Determinism: ``keras.backend.clear_session()`` drops the state of earlier runs in the same worker
  process (layer name counters, the global seed generator), then ``reglab.seed_everything`` seeds
  Keras (``keras.utils.set_random_seed``: Python, NumPy, torch and Keras' seed generators, which
  drive weight initialization, dropout masks and ``fit``'s shuffling).

Install: ``pip install 'reglab[keras]'``.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before importing keras: the backend is fixed at import

import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

import reglab

# Keras' torch backend converts tensors with np.array(x, copy=False), which numpy 2 deprecates for torch
# tensors: one warning per prediction, nothing to act on.
warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword")


@dataclass
class Settings:
    """What ``run`` reads; reglab checks every arm of the study against it (``reglab validate``)."""

    lr: float = 0.05
    momentum: float = 0.9
    epochs: int = 10
    batch_size: int = 64
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    l2: float = 0.0  # kernel_regularizer=L2(l2) on every Dense layer: adds l2 * sum(w**2) to the loss
    dropout: float = 0.0  # after each hidden layer


def build(n_in: int, n_classes: int, s: Settings) -> keras.Model:
    reg = keras.regularizers.L2(s.l2) if s.l2 > 0 else None
    layers: list[keras.layers.Layer] = [keras.Input((n_in,))]
    for width in s.hidden:
        layers.append(keras.layers.Dense(width, activation="relu", kernel_regularizer=reg))
        if s.dropout > 0:
            layers.append(keras.layers.Dropout(s.dropout))
    layers.append(keras.layers.Dense(n_classes, kernel_regularizer=reg))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=s.lr, momentum=s.momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Cross-entropy and accuracy in inference mode (no dropout, no L2 penalty)."""
    logits = model.predict(x, batch_size=2048, verbose=0).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean()), float((logits.argmax(axis=1) == y).mean())


class ReglabReport(keras.callbacks.Callback):
    """Reports each epoch's train/validation metrics to reglab (pruning, time budget, curves)."""

    def __init__(self, ctx: Any, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]) -> None:
        super().__init__()
        self.ctx, self.train, self.val = ctx, train, val
        self.last: dict[str, float] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        train_loss, train_acc = evaluate(self.model, *self.train)
        val_loss, val_acc = evaluate(self.model, *self.val)
        self.last = {"train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc}
        self.ctx.report(epoch + 1, **self.last)  # Keras counts epochs from 0, reglab from 1


def _arrays(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(x, dtype=np.float32).reshape(len(x), -1), np.asarray(y, dtype=np.int64)


def run(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
    s = Settings(**settings)
    keras.backend.clear_session(free_memory=False)  # earlier runs in this worker process leave state
    reglab.seed_everything(ctx.seed)  # after clear_session: seeds Keras (keras.utils.set_random_seed)
    data = ctx.data()  # reglab's split of the study's data: the same for every arm at a seed
    train, val = _arrays(data.x_train, data.y_train), _arrays(data.x_val, data.y_val)
    model = build(train[0].shape[1], data.n_classes, s)
    report = ReglabReport(ctx, train, val)
    model.fit(*train, epochs=s.epochs, batch_size=s.batch_size, shuffle=True, verbose=0, callbacks=[report])

    out = dict(report.last)  # the last epoch's train/val metrics
    if ctx.may_use_test:  # confirmation runs only: the test split is locked while tuning
        out["test_loss"], out["test_acc"] = evaluate(model, *_arrays(data.x_test, data.y_test))
    return out
