"""Optimizers and learning-rate schedules by name, as registries of factories.

The factories take plain keyword arguments (``lr``, ``momentum``, ``step_size``, ...), never config
objects, so this package does not depend on :mod:`reglab.config` (the config validates its
``optimizer``/``schedule`` names against these registries). Importing it does not import torch.
Decoupled weight decay is not an optimizer setting here: the ``weight_decay`` regularizer applies it
for every optimizer (see :mod:`reglab.regularizers.weight_decay`).
"""

from __future__ import annotations

from reglab.optim.optimizers import OPTIMIZERS, create_optimizer
from reglab.optim.schedules import SCHEDULES, Schedule, create_schedule

__all__ = ["OPTIMIZERS", "SCHEDULES", "Schedule", "create_optimizer", "create_schedule"]
