"""Optimizers by name: SGD, momentum (Polyak 1964), Nesterov (Sutskever et al. 2013),
RMSprop (Tieleman & Hinton 2012), Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from reglab.config import RegularizationConfig, TrainConfig
from reglab.registry import Registry

Params = list[dict[str, object]]
OPTIMIZERS: Registry[Callable[[Params, TrainConfig], torch.optim.Optimizer]] = Registry("optimizer")

OPTIMIZERS.add("sgd", lambda p, c: torch.optim.SGD(p, lr=c.lr))
OPTIMIZERS.add("momentum", lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum))
OPTIMIZERS.add("nesterov", lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum, nesterov=True))
OPTIMIZERS.add("rmsprop", lambda p, c: torch.optim.RMSprop(p, lr=c.lr))
OPTIMIZERS.add("adam", lambda p, c: torch.optim.Adam(p, lr=c.lr))
OPTIMIZERS.add("adamw", lambda p, c: torch.optim.AdamW(p, lr=c.lr, weight_decay=0.0))


def build_optimizer(
    model: nn.Module, penalized: list[nn.Parameter], train: TrainConfig, reg: RegularizationConfig
) -> torch.optim.Optimizer:
    """With ``adamw`` the decoupled ``weight_decay`` goes to torch's AdamW for the penalized
    parameters only; every other optimizer gets it from the weight-decay regularizer's hook."""
    params = [p for p in model.parameters() if p.requires_grad]
    if train.optimizer != "adamw" or reg.weight_decay == 0:
        return OPTIMIZERS.get(train.optimizer)([{"params": params}], train)  # one group: cheapest step
    ids = {id(p) for p in penalized}
    rest = [p for p in params if id(p) not in ids]
    groups: Params = [{"params": penalized, "weight_decay": reg.weight_decay}, {"params": rest}]
    return OPTIMIZERS.get(train.optimizer)([g for g in groups if g["params"]], train)
