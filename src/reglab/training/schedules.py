"""Per-epoch learning-rate schedules (epoch counted from 0)."""

from __future__ import annotations

import math

from reglab.config import TrainConfig

DEFAULT_DECAY = {"step": 0.1, "exponential": 0.95, "inverse-time": 0.1}


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """constant; step (x decay every step_size epochs); exponential (x decay per epoch);
    cosine (Loshchilov & Hutter 2017, no restarts); inverse-time lr / (1 + decay * epoch)."""
    s, lr = cfg.schedule, cfg.lr
    d = cfg.decay if cfg.decay is not None else DEFAULT_DECAY.get(s, 0.0)
    if s == "constant":
        return lr
    if s == "step":
        return lr * d ** (epoch // cfg.step_size)
    if s == "exponential":
        return lr * d**epoch
    if s == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
    if s == "inverse-time":
        return lr / (1 + d * epoch)
    raise ValueError(f"unknown schedule {s!r}")
