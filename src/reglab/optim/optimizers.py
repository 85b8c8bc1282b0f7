"""Optimizers by name: SGD, momentum (Polyak 1964), Nesterov (Sutskever et al. 2013),
RMSprop (Tieleman & Hinton 2012), Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019).

A factory takes the parameters and keyword settings (``lr``, ``momentum``) and returns a torch
optimizer; torch is imported inside the factories. No factory adds weight decay: decoupled decay
is the ``weight_decay`` regularizer's job (for every optimizer), coupled decay is ``l2``.

Each optimizer declares its per-member form beside its factory (``@members(step)``, issue 24): one
update of a population's stacked tensors (a leading member dimension) with each member's learning
rate, torch's algorithm with torch's defaults written for tensors that carry many runs (torch's
optimizers take one learning rate per parameter group, and a member is a row of a tensor). The
optimizer conformance suite checks every per-member form against its torch optimizer; an optimizer
registered without one trains one run at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from reglab.optim._kwargs import accepted
from reglab.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")

# (state, params, grads, lr, step, **settings): one in-place update of stacked ``params`` (each
# (P, ...)) by their ``grads``; ``lr`` (P,) each member's rate, ``step`` counted from 1, ``state``
# the optimizer's stacked buffers by name (kept between steps; rows follow the members)
MemberStep = Callable[..., None]
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch's defaults, as reglab's adam and adamw use them
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8


def members(step: MemberStep) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare ``step`` as the decorated factory's per-member form (see the module docstring)."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        factory.members = step  # type: ignore[attr-defined]
        return factory

    return deco


def member_step(name: str) -> MemberStep | None:
    """The per-member form of the optimizer ``name``, None when it has none (populations refuse it)."""
    step: MemberStep | None = getattr(OPTIMIZERS.get(name), "members", None)
    return step


def _per_member(lr: Tensor, like: Tensor) -> Tensor:
    return lr.view(-1, *([1] * (like.ndim - 1)))


def _descend(params: list[Tensor], directions: list[Tensor], lr: Tensor) -> None:
    for w, d in zip(params, directions, strict=True):
        w.addcmul_(d, _per_member(-lr, w))


def _sgd_members(
    state: dict[str, list[Tensor]], params: list[Tensor], grads: list[Tensor], lr: Tensor, step: int
) -> None:
    _descend(params, grads, lr)


def _momentum_members(
    state: dict[str, list[Tensor]],
    params: list[Tensor],
    grads: list[Tensor],
    lr: Tensor,
    step: int,
    *,
    momentum: float,
    nesterov: bool = False,
) -> None:
    """torch's SGD with momentum (no dampening): buf <- g at the first step, else mom * buf + g;
    the direction is buf, or g + mom * buf with Nesterov."""
    import torch

    if step == 1:
        state["momentum"] = [g.clone() for g in grads]
    else:
        for buf, g in zip(state["momentum"], grads, strict=True):
            torch.add(g, buf, alpha=momentum, out=buf)
    bufs = state["momentum"]
    _descend(
        params, [torch.add(g, b, alpha=momentum) for g, b in zip(grads, bufs, strict=True)] if nesterov else bufs, lr
    )


def _nesterov_members(
    state: dict[str, list[Tensor]], params: list[Tensor], grads: list[Tensor], lr: Tensor, step: int, *, momentum: float
) -> None:
    _momentum_members(state, params, grads, lr, step, momentum=momentum, nesterov=True)


def _rmsprop_members(
    state: dict[str, list[Tensor]], params: list[Tensor], grads: list[Tensor], lr: Tensor, step: int
) -> None:
    """torch's RMSprop: sq <- alpha sq + (1 - alpha) g^2, w <- w - lr g / (sqrt(sq) + eps)."""
    import torch

    sq = state.setdefault("square_avg", [torch.zeros_like(g) for g in grads])
    for s, g in zip(sq, grads, strict=True):
        s.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
    _descend(params, [g / (s.sqrt() + RMSPROP_EPS) for g, s in zip(grads, sq, strict=True)], lr)


def _adam_members(
    state: dict[str, list[Tensor]], params: list[Tensor], grads: list[Tensor], lr: Tensor, step: int
) -> None:
    """torch's Adam (and AdamW without decay of its own): bias-corrected first and second moments,
    w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    import math

    import torch

    b1, b2 = ADAM_BETAS
    m1 = state.setdefault("exp_avg", [torch.zeros_like(g) for g in grads])
    m2 = state.setdefault("exp_avg_sq", [torch.zeros_like(g) for g in grads])
    directions = []
    for m, v, g in zip(m1, m2, grads, strict=True):
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        directions.append(m / (v.sqrt() / math.sqrt(1 - b2**step) + ADAM_EPS))
    _descend(params, directions, lr / (1 - b1**step))


@OPTIMIZERS.register("sgd")
@members(_sgd_members)
def sgd(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """Plain stochastic gradient descent (Robbins & Monro 1951)."""
    import torch

    return torch.optim.SGD(params, lr=lr)


@OPTIMIZERS.register("momentum")
@members(_momentum_members)
def momentum(params: Params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with heavy-ball momentum (Polyak 1964)."""
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=momentum)


@OPTIMIZERS.register("nesterov")
@members(_nesterov_members)
def nesterov(params: Params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, in the form of Sutskever et al. (2013)."""
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)


@OPTIMIZERS.register("rmsprop")
@members(_rmsprop_members)
def rmsprop(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """RMSprop (Tieleman & Hinton 2012, lecture 6.5), torch's defaults otherwise."""
    import torch

    return torch.optim.RMSprop(params, lr=lr)


@OPTIMIZERS.register("adam")
@members(_adam_members)
def adam(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015), torch's default betas and eps."""
    import torch

    return torch.optim.Adam(params, lr=lr)


@OPTIMIZERS.register("adamw")
@members(_adam_members)
def adamw(params: Params, *, lr: float) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019): Adam whose weight decay is decoupled from the gradient.
    The decay itself comes from the ``weight_decay`` setting, applied by its regularizer before the
    step exactly as torch's AdamW would (``w *= 1 - lr * wd``), so the optimizer gets none."""
    import torch

    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def clip_grad_norm_members_(grads: list[Tensor], max_norm: float | None) -> Tensor:
    """Each population member's global gradient norm (P,) over its rows of the stacked ``grads``;
    with ``max_norm``, its rows scaled in place as ``torch.nn.utils.clip_grad_norm_`` scales a run's
    gradients (by max_norm / (norm + 1e-6) where that is below 1). Returns the norms before clipping."""
    import torch

    norm = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
    if max_norm is not None:
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(_per_member(coef, g))
    return norm


def create_optimizer(name: str, params: Params, **settings: Any) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params`` (one group), given the settings its factory names."""
    factory = OPTIMIZERS.get(name)
    return factory(params, **accepted(factory, settings))
