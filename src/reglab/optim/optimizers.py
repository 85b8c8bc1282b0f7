"""Optimizers by name: SGD, momentum (Polyak 1964), Nesterov (Sutskever et al. 2013),
RMSprop (Tieleman & Hinton 2012), Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019).

A factory takes the parameters and keyword settings (``lr``, ``momentum``) and returns a torch
optimizer; torch is imported inside the factories. No factory adds weight decay: decoupled decay
is the ``weight_decay`` regularizer's job (for every optimizer), coupled decay is ``l2``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from reglab.optim._kwargs import accepted
from reglab.registry import Registry

if TYPE_CHECKING:
    import torch

    Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


@OPTIMIZERS.register("sgd")
def sgd(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """Plain stochastic gradient descent (Robbins & Monro 1951)."""
    import torch

    return torch.optim.SGD(params, lr=lr)


@OPTIMIZERS.register("momentum")
def momentum(params: Params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with heavy-ball momentum (Polyak 1964)."""
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=momentum)


@OPTIMIZERS.register("nesterov")
def nesterov(params: Params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, in the form of Sutskever et al. (2013)."""
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """RMSprop (Tieleman & Hinton 2012, lecture 6.5), torch's defaults otherwise."""
    import torch

    return torch.optim.RMSprop(params, lr=lr)


@OPTIMIZERS.register("adam")
def adam(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015), torch's default betas and eps."""
    import torch

    return torch.optim.Adam(params, lr=lr)


@OPTIMIZERS.register("adamw")
def adamw(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019): Adam whose weight decay is decoupled from the gradient.
    The decay itself comes from the ``weight_decay`` setting, applied by its regularizer before the
    step exactly as torch's AdamW would (``w *= 1 - lr * wd``), so the optimizer gets none."""
    import torch

    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def create_optimizer(name: str, params: Params, **settings: Any) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params`` (one group), given the settings its factory names."""
    factory = OPTIMIZERS.get(name)
    return factory(params, **accepted(factory, settings))
