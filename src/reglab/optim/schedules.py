"""Per-epoch learning-rate schedules (epoch counted from 0).

A factory takes keyword settings (``lr``, ``epochs``, ``step_size``, ``decay``) and returns the
schedule: a function ``epoch -> lr``. ``decay=None`` means the schedule's own default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from reglab.optim._kwargs import accepted
from reglab.registry import Registry

Schedule = Callable[[int], float]

SCHEDULES: Registry[Callable[..., Schedule]] = Registry("schedule")


@SCHEDULES.register("constant")
def constant(*, lr: float) -> Schedule:
    """The same learning rate in every epoch."""
    return lambda epoch: lr


@SCHEDULES.register("step")
def step(*, lr: float, step_size: int, decay: float | None = None) -> Schedule:
    """Multiply by ``decay`` (default 0.1) every ``step_size`` epochs."""
    d = 0.1 if decay is None else decay
    return lambda epoch: lr * d ** (epoch // step_size)


@SCHEDULES.register("exponential")
def exponential(*, lr: float, decay: float | None = None) -> Schedule:
    """Multiply by ``decay`` (default 0.95) every epoch."""
    d = 0.95 if decay is None else decay
    return lambda epoch: lr * d**epoch


@SCHEDULES.register("cosine")
def cosine(*, lr: float, epochs: int) -> Schedule:
    """Half a cosine from ``lr`` towards 0 over ``epochs`` (Loshchilov & Hutter 2017, no restarts)."""
    return lambda epoch: lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


@SCHEDULES.register("inverse-time")
def inverse_time(*, lr: float, decay: float | None = None) -> Schedule:
    """``lr / (1 + decay * epoch)`` (default decay 0.1), the classic Robbins-Monro-style decay."""
    d = 0.1 if decay is None else decay
    return lambda epoch: lr / (1 + d * epoch)


def create_schedule(name: str, **settings: Any) -> Schedule:
    """The schedule ``name``, given the settings its factory names (others are ignored)."""
    factory = SCHEDULES.get(name)
    return factory(**accepted(factory, settings))
