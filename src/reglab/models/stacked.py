"""The built-in networks as one stacked network for a population's members (issue 14).

It lives with the models because it is their forward pass, for many members at once; the
population (:mod:`reglab.training.population`) trains it.

Each member's network is built as its single run builds it; :func:`compile_network` reads its
layers into a small program of :class:`Op` s (linear, conv, max-pool, activation, flatten, batch
norm, residual block), and :func:`run` executes that program for all P members at once on
tensors with a leading member dimension:

- linear layers are one batched product (``baddbmm``) with the weights stored (P, in, out) - the
  transpose of ``nn.Linear``'s, so the forward and both backward products read and write
  contiguous tensors;
- convolutions are one grouped convolution: the members' channels side by side on the channel
  axis ((B, P*C, H, W), ``groups=P``; the trick of "Grouped convolutions for ensembles", as in
  ``torch.func`` 's vmap of ``conv2d``), so max-pooling and the activations act per member for free;
- batch norm keeps each member's own running statistics: with the members' channels (or
  features) side by side, one ``F.batch_norm`` over P*C channels normalizes every member with its
  own batch statistics and updates its own running mean and variance (Ioffe & Szegedy 2015);
- dropout is not a layer of the program but a *slot* before an op, filled with each member's
  own mask (members without dropout there pass a mask of ones).

Activations flow as :class:`Flow`: flat (P, B, F) for linear layers and masks, or as image
channels (B, P*C, H, W) for convolutions; the conversions are views where possible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NotStackable(ValueError):
    """A layer the stacked network cannot run (the reason names it)."""


@dataclass(frozen=True)
class Op:
    """One layer of the program. ``w``/``b``: indices of its weight and bias in the stacked
    parameters (-1: none); ``stat``: index of its running mean in the stacked buffers (the
    variance follows); ``conf``: what else it needs (conv: stride, padding; pool: kernel, stride,
    padding; act: the function's name; norm: eps, momentum); ``branch``/``skip``: a residual
    block's two paths (``conf`` then holds the block's activation)."""

    kind: str  # linear | conv | pool | act | flatten | norm | residual
    w: int = -1
    b: int = -1
    stat: int = -1
    conf: tuple[Any, ...] = ()
    branch: tuple[Op, ...] = ()
    skip: tuple[Op, ...] = ()


@dataclass(frozen=True)
class Compiled:
    """A network read as a program: its ops, the names of the parameters and buffers they use
    (in the network's own ``named_parameters`` / ``named_buffers`` terms, in index order), and
    each dropout slot's rate (slot i: before top-level op i)."""

    ops: tuple[Op, ...]
    params: tuple[str, ...]
    buffers: tuple[str, ...]
    rates: dict[int, float]


_ACTS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.GELU: "gelu"}
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu}


def compile_network(net: nn.Module) -> Compiled:
    """Read ``net`` (the built-in mlp or cnn, plain or residual, with dropout and batch norm)
    into a program; raises :class:`NotStackable` naming a layer it cannot run."""
    params: list[str] = []
    buffers: list[str] = []
    rates: dict[int, float] = {}
    ops: list[Op] = []
    _compile(net, "", ops, params, buffers, rates)
    return Compiled(tuple(ops), tuple(params), tuple(buffers), rates)


def _children(m: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    if isinstance(m, nn.Sequential):
        return [(f"{prefix}{n}.", c) for n, c in m.named_children()]
    return [(prefix, m)]


def _compile(
    m: nn.Module, prefix: str, ops: list[Op], params: list[str], buffers: list[str], rates: dict[int, float] | None
) -> None:
    """Append ``m``'s layers to ``ops`` (``rates`` None: inside a residual block, no dropout slots)."""
    from reglab.models.blocks import ResidualBlock

    for name, layer in _children(m, prefix):
        if isinstance(layer, nn.Sequential):
            _compile(layer, name, ops, params, buffers, rates)
            continue
        kind = type(layer)
        if kind is nn.Dropout:
            if rates is None:
                raise NotStackable("dropout inside a residual block")
            rates[len(ops)] = float(layer.p)  # type: ignore[arg-type]
        elif kind is nn.Identity:
            continue
        elif kind is nn.Flatten:
            ops.append(Op("flatten"))
        elif kind in _ACTS:
            if kind is nn.GELU and layer.approximate != "none":
                raise NotStackable("a tanh-approximated GELU")
            ops.append(Op("act", conf=(_ACTS[kind],)))
        elif kind is nn.Linear:
            ops.append(Op("linear", *_weights(layer, name, params)))
        elif kind is nn.Conv2d:
            conv: nn.Conv2d = layer  # type: ignore[assignment]
            if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
                raise NotStackable("a grouped, dilated or non-zero-padded convolution")
            ops.append(Op("conv", *_weights(conv, name, params), conf=(conv.stride, conv.padding)))
        elif kind is nn.MaxPool2d:
            pool: nn.MaxPool2d = layer  # type: ignore[assignment]
            if pool.dilation not in (1, (1, 1)) or pool.ceil_mode or pool.return_indices:
                raise NotStackable("a dilated or ceil-mode max-pool")
            ops.append(Op("pool", conf=(pool.kernel_size, pool.stride, pool.padding)))
        elif kind in (nn.BatchNorm1d, nn.BatchNorm2d):
            bn: nn.BatchNorm1d = layer  # type: ignore[assignment]
            if not (bn.affine and bn.track_running_stats and bn.momentum is not None):
                raise NotStackable("batch norm without affine parameters, running statistics or a momentum")
            w, b = _weights(bn, name, params)
            stat = len(buffers)
            buffers += [f"{name}running_mean", f"{name}running_var"]
            ops.append(Op("norm", w, b, stat, conf=(float(bn.eps), float(bn.momentum))))
        elif isinstance(layer, ResidualBlock) and kind is ResidualBlock:
            if len(layer.drop) or type(layer.act) not in _ACTS:
                raise NotStackable("a residual block with stochastic depth")
            branch: list[Op] = []
            skip: list[Op] = []
            _compile(layer.branch, f"{name}branch.", branch, params, buffers, None)
            _compile(layer.skip, f"{name}skip.", skip, params, buffers, None)
            ops.append(Op("residual", conf=(_ACTS[type(layer.act)],), branch=tuple(branch), skip=tuple(skip)))
        else:
            raise NotStackable(f"a {kind.__name__} layer")


def _weights(layer: nn.Module, name: str, params: list[str]) -> tuple[int, int]:
    w = len(params)
    params.append(f"{name}weight")
    if getattr(layer, "bias", None) is None:
        return w, -1
    params.append(f"{name}bias")
    return w, w + 1


def walk(ops: Sequence[Op]) -> list[Op]:
    """Every op, residual blocks' insides included."""
    out: list[Op] = []
    for op in ops:
        out.append(op)
        out += walk(op.branch) + walk(op.skip)
    return out


def transposed(ops: Sequence[Op]) -> set[int]:
    """Indices of the parameters stored transposed (linear weights: (P, in, out))."""
    return {op.w for op in walk(ops) if op.kind == "linear"}


def unit_dims(ops: Sequence[Op]) -> dict[int, tuple[int, ...]]:
    """For max-norm: each linear or conv weight -> the dims of one unit's incoming weights in
    the stacked layout (linear (P, in, out): dim 1; conv (P, out, C, k, k): dims 2, 3, 4)."""
    return {op.w: (1,) if op.kind == "linear" else (2, 3, 4) for op in walk(ops) if op.kind in ("linear", "conv")}


def stack(member_tensors: Sequence[Sequence[Tensor]], flip: set[int]) -> list[Tensor]:
    """The members' tensors (one list per member, in index order) -> the stacked layout."""
    out = []
    for j in range(len(member_tensors[0])):
        t = torch.stack([m[j].detach() for m in member_tensors])
        out.append(t.transpose(1, 2).contiguous() if j in flip else t)
    return out


def unstack(net: nn.Module, layout: Compiled, state: Sequence[Tensor], flip: set[int], steps: int) -> None:
    """Copy one member's rows of the stacked state (``state``: its parameters, then its buffers,
    in ``layout`` 's order) into its own network ``net``: the inverse of :func:`stack`. The layers'
    counts of training batches (``num_batches_tracked``, not stacked) are set to ``steps``."""
    n = len(layout.params)
    with torch.no_grad():
        own = dict(net.named_parameters())
        for j, name in enumerate(layout.params):
            own[name].copy_(state[j].t() if j in flip else state[j])
        bufs = dict(net.named_buffers())
        for j, name in enumerate(layout.buffers):
            bufs[name].copy_(state[n + j])
        for name, t in bufs.items():
            if name.endswith("num_batches_tracked"):
                t.fill_(steps)


Images = Tensor | list[Tensor]  # stacked (P, B, C, H, W), or one (B, C, H, W) per member


class Flow:
    """The activation of every member: flat (P, B, F), or images - on a GPU stacked
    (P, B, C, H, W), on a CPU one tensor per member (there a loop of per-member convolutions,
    activations and poolings on contiguous batches runs 1.1-2x faster than grouped convolutions,
    and the members are stacked again only at the flatten, after pooling has made them small).
    ``shape``: one example's shape in one member."""

    __slots__ = ("img", "p", "shape", "split", "t")

    def __init__(self, t: Tensor | list[Tensor], img: bool, shape: tuple[int, ...], p: int, split: bool) -> None:
        self.t, self.img, self.shape, self.p, self.split = t, img, shape, p, split

    def flat(self) -> Tensor:
        t = self.t
        if isinstance(t, list):
            return torch.stack(t).reshape(self.p, t[0].shape[0], -1)
        return t.reshape(self.p, t.shape[1], -1) if self.img else t

    def image(self) -> Images:
        if self.img:
            return self.t
        if len(self.shape) != 3:
            raise NotStackable(f"a convolution of inputs shaped {self.shape}")
        assert isinstance(self.t, Tensor)
        x = self.t.reshape(self.p, self.t.shape[1], *self.shape)
        return list(x.unbind(0)) if self.split else x

    def as_flat(self, t: Tensor, shape: tuple[int, ...]) -> Flow:
        return Flow(t, False, shape, self.p, self.split)

    def as_image(self, t: Images) -> Flow:
        return Flow(t, True, tuple(t[0].shape[1:] if isinstance(t, list) else t.shape[2:]), self.p, self.split)


def _each(x: Images, fn: Callable[[Tensor], Tensor]) -> Images:
    """``fn`` of every member's images (one call on stacked ones)."""
    return [fn(t) for t in x] if isinstance(x, list) else fn(x)


def run(
    ops: Sequence[Op],
    params: Sequence[Tensor],
    buffers: Sequence[Tensor],
    x: Tensor,
    shape: tuple[int, ...],
    masks: dict[int, Tensor | None] | None = None,
    train: bool = False,
    widths: dict[int, int] | None = None,
    split: bool | None = None,
) -> Tensor:
    """Logits (P, B, K) of every member for ``x`` (P, B, D), one batch per member (``shape``: one
    example's shape). ``masks``: slot -> dropout masks (P, B, width) (training only); ``train``:
    batch norm with batch statistics (updating the running ones) rather than running ones;
    ``widths``: filled with each slot's width (one example's numel there); ``split``: image
    layers per member (default on a CPU) rather than stacked, with grouped convolutions."""
    split = not x.is_cuda if split is None else split
    flow = _run(ops, params, buffers, Flow(x, False, shape, x.shape[0], split), masks or {}, train, widths)
    return flow.flat()


def _run(
    ops: Sequence[Op],
    params: Sequence[Tensor],
    buffers: Sequence[Tensor],
    flow: Flow,
    masks: dict[int, Tensor | None],
    train: bool,
    widths: dict[int, int] | None = None,
) -> Flow:
    for i, op in enumerate(ops):
        if widths is not None:
            widths[i] = math.prod(flow.shape)
        mask = masks.get(i)
        if mask is not None:
            flow = flow.as_flat(flow.flat() * mask, flow.shape)
        kind = op.kind
        if kind == "linear":
            w = params[op.w]
            h = flow.flat()
            h = torch.bmm(h, w) if op.b < 0 else torch.baddbmm(params[op.b].unsqueeze(1), h, w)
            flow = flow.as_flat(h, (w.shape[2],))
        elif kind == "act":
            fn = ACTIVATIONS[op.conf[0]]
            flow = flow.as_image(_each(flow.t, fn)) if flow.img else flow.as_flat(fn(flow.flat()), flow.shape)
        elif kind == "conv":
            flow = flow.as_image(_conv(op, params, flow.image()))
        elif kind == "pool":
            flow = flow.as_image(_pool(op, flow.image()))
        elif kind == "flatten":
            flow = flow.as_flat(flow.flat(), (math.prod(flow.shape),))
        elif kind == "norm":
            flow = _norm(op, params, buffers, flow, train)
        elif kind == "residual":
            out = _run(op.branch, params, buffers, flow, {}, train)
            skip = _run(op.skip, params, buffers, flow, {}, train)
            act = ACTIVATIONS[op.conf[0]]
            if not out.img:
                flow = flow.as_flat(act(skip.flat() + out.flat()), out.shape)
            else:
                a, c = skip.image(), out.image()
                if isinstance(a, list) and isinstance(c, list):
                    flow = flow.as_image([act(u + v) for u, v in zip(a, c, strict=True)])
                else:
                    assert isinstance(a, Tensor) and isinstance(c, Tensor)
                    flow = flow.as_image(act(a + c))
        else:  # pragma: no cover - compile_network makes no other kinds
            raise NotStackable(f"op {kind}")
    return flow


def _conv(op: Op, params: Sequence[Tensor], x: Images) -> Images:
    """Every member's convolution of its images."""
    w = params[op.w]
    stride, padding = op.conf
    if isinstance(x, list):
        biases: Sequence[Tensor | None] = [None] * len(x) if op.b < 0 else params[op.b].unbind(0)
        return [F.conv2d(t, w[k], biases[k], stride, padding) for k, t in enumerate(x)]
    # one grouped convolution: the members' channels side by side, groups=P
    p, b = x.shape[:2]
    bias = None if op.b < 0 else params[op.b].reshape(-1)
    g = x.transpose(0, 1).reshape(b, p * x.shape[2], *x.shape[3:])
    h = F.conv2d(g, w.reshape(-1, *w.shape[2:]), bias, stride, padding, 1, p)
    return h.view(b, p, -1, *h.shape[2:]).transpose(0, 1)


def _pool(op: Op, x: Images) -> Images:
    if isinstance(x, list):
        return [F.max_pool2d(t, *op.conf) for t in x]
    h = F.max_pool2d(x.reshape(-1, *x.shape[2:]), *op.conf)
    return h.view(x.shape[0], x.shape[1], *h.shape[1:])


def _norm(op: Op, params: Sequence[Tensor], buffers: Sequence[Tensor], flow: Flow, train: bool) -> Flow:
    """Batch norm of every member with its own statistics: a member's images with its rows of
    the stacked running statistics (updated in place), or - stacked - the members' channels
    (features) side by side as P*C channels of one ``F.batch_norm``."""
    eps, momentum = op.conf
    mean, var, w, b = buffers[op.stat], buffers[op.stat + 1], params[op.w], params[op.b]
    h = flow.t
    if isinstance(h, list):
        return flow.as_image(
            [F.batch_norm(t, mean[k], var[k], w[k], b[k], train, momentum, eps) for k, t in enumerate(h)]
        )
    p, bsz = h.shape[:2]  # (P, B, C, ...) -> (B, P*C, ...)
    side = h.transpose(0, 1).reshape(bsz, -1, *h.shape[3:])
    out = F.batch_norm(side, mean.view(-1), var.view(-1), w.reshape(-1), b.reshape(-1), train, momentum, eps)
    out = out.view(bsz, p, *h.shape[2:]).transpose(0, 1)
    return flow.as_image(out) if flow.img else flow.as_flat(out, flow.shape)


# -- your own model ----------------------------------------------------------------------------------


def user_layout(net: nn.Module, constrained: Sequence[Tensor]) -> tuple[Compiled, dict[int, tuple[int, ...]]]:
    """Your own model as a population runs it (``torch.func``: its parameters stacked, its forward
    vmapped): the parameter names, and for max-norm each ``constrained`` weight's unit dims in the
    stacked layout. Raises :class:`NotStackable` for a model with buffers (batch-norm statistics
    and the like change in place, which a vmapped forward cannot do per member) or frozen
    parameters."""
    buffers = [n for n, _ in net.named_buffers()]
    if buffers:
        raise NotStackable(f"your own model has buffers ({', '.join(buffers[:3])}) that change in place")
    named = list(net.named_parameters())
    if not all(p.requires_grad for _, p in named):
        raise NotStackable("your own model has frozen parameters")
    ids = {id(w) for w in constrained}
    units = {j: tuple(range(2, p.ndim + 1)) for j, (_, p) in enumerate(named) if id(p) in ids}
    return Compiled((), tuple(n for n, _ in named), (), {}), units


class UserNet:
    """Runs your own model for all members: ``torch.func.functional_call`` of one copy of the
    module (on the meta device: it holds no data) with each member's parameters, vectorized
    over the members with ``torch.func.vmap``. Random numbers inside the model (its own
    dropout) are refused (``randomness="error"``): a member's draws would not be its own."""

    def __init__(self, net: nn.Module, names: Sequence[str], shape: tuple[int, ...]) -> None:
        import copy

        self.base = copy.deepcopy(net).to("meta")
        self.names, self.shape = tuple(names), shape

    def __call__(self, params: Sequence[Tensor], x: Tensor, train: bool) -> Tensor:
        from torch.func import functional_call, vmap

        self.base.train(train)

        def one(ps: tuple[Tensor, ...], xb: Tensor) -> Tensor:
            out: Tensor = functional_call(
                self.base, dict(zip(self.names, ps, strict=True)), (xb.reshape(-1, *self.shape),)
            )
            return out

        return vmap(one, randomness="error")(tuple(params), x)
