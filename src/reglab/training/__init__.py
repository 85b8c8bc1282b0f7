"""Training: the engine (``fit``), optimizers, learning-rate schedules, gradient checking."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reglab.training.engine import RunResult, fit

__all__ = ["RunResult", "fit"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from reglab.training import engine

        return getattr(engine, name)
    raise AttributeError(name)
