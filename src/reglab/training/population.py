"""Populations: many runs of one network trained at once as one vectorized model (issue 14).

A study is mostly many small runs of one network: the seeds of an arm, arms or tuning trials that
differ only in a learning rate or a penalty strength. Such runs train here as one model whose
parameters carry a leading member dimension (:mod:`reglab.training.population_net`: the built-in
mlp and cnn, plain or residual, with dropout and batch norm, read into one program run for all
members - batched products for linear layers, grouped convolutions, batch norm with each member's
own statistics): each step is one batched forward and backward and one update over the stacked
tensors, so the per-step cost of Python, the dispatcher and the optimizer is paid once for all P
members instead of P times, and the per-epoch validation and the final evaluation are batched too.
Per-step work is O(1) in P except the members' own random draws (dropout masks, input noise),
which stay per member so that each member draws exactly what its single run draws; passes that
only some members need (a penalty, weight decay, max-norm) touch only their rows.

Each member is the run it stands for:

- its network is built exactly as :func:`reglab.training.engine.fit` builds it from its seed (the
  same initial weights), then stacked;
- its batch order and input noise come from its own ``torch.Generator`` seeded as the single run's,
  its dropout masks from a generator of its own in the state the single run's global RNG has after
  initialization (the same Bernoulli draws on CPU), its train/validation split from its own
  ``data.split_seed``;
- its scalars are its own: learning rate (and schedule), L1 / L2 / elastic-net / decoupled
  weight-decay strengths, dropout rates, label smoothing, input-noise level, max-norm bound;
- its early stopping and pruning are its own: a member that stops (early stopping, a pruner's
  request, divergence) leaves the population - its rows are dropped from every stacked tensor, so
  it is frozen and costs nothing afterwards - and its weights (the best epoch's under early
  stopping) are kept for its final evaluation.

Nothing a member computes depends on the other members (the random draws are its own; only the
floating-point summation order of batched products differs from single runs'). Results are one
:class:`~reglab.training.engine.RunResult` per member with the single engine's keys; a member's
``info`` adds ``population`` (size, index, the population's wall time) and its ``wall_time`` is its
share of the population's. Your own model (``model.class_path``) trains as a population through
``torch.func`` (its parameters stacked, ``functional_call`` vmapped over the members) unless it
has buffers (batch-norm statistics change in place) or draws random numbers itself (its own
dropout: the draws would not be the member's). Runs this cannot vectorize (the lstm, mixup, SWA,
stochastic depth, ...) are refused by :func:`population_check` with the reason, those found only
once built (:class:`PopulationRefused`) by :func:`fit_population`; callers train them one at a
time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reglab.training import population_net as pn
from reglab.training.population_net import Compiled
from reglab.training.population_rules import population_check, population_key

__all__ = ["PopulationRefused", "fit_population", "population_check", "population_key"]

if TYPE_CHECKING:
    from reglab.config import RunConfig
    from reglab.data.base import DataSplits
    from reglab.data.streaming import StreamSplits
    from reglab.regularizers import Regularizer, TrainContext
    from reglab.training.engine import RunResult

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch's defaults, as reglab's adam/adamw use them
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8

MemberCallback = Callable[[int, dict[str, float]], bool | None]  # (member, epoch record) -> True: stop it


class PopulationRefused(ValueError):
    """The runs cannot train as one population (found only once the data is loaded: streamed
    data, a task other than classification, members whose splits differ in size); train them
    one at a time."""


# -- members ----------------------------------------------------------------------------------------


@dataclass
class _Member:
    """What one member keeps outside the stacked tensors."""

    index: int
    row: int  # which distinct split (of the population's) it trains on
    cfg: RunConfig
    data: DataSplits
    net: nn.Module  # built as the single run builds it; holds the final weights when kept
    regs: list[str]
    layout: Compiled  # its network as a program (the names of its parameters and buffers)
    gen: torch.Generator  # batch order and augmentation (input noise included)
    drop_gen: torch.Generator  # dropout masks
    schedule: Callable[[int], float]
    transforms: list[Regularizer]  # its per-batch input transforms (augmentation, input noise)
    ctx: TrainContext  # what its transforms read (its generator)
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "running"  # running | completed | diverged | pruned
    reason: str | None = None
    diverged_epoch: int | None = None
    best: float | None = None  # early stopping
    best_epoch: int | None = None
    stopped_epoch: int | None = None
    bad: int = 0
    best_weights: list[Tensor] | None = None  # its rows of the stacked parameters and buffers
    final_weights: list[Tensor] | None = None


def _compile(net: nn.Module) -> Compiled:
    try:
        return pn.compile_network(net)
    except pn.NotStackable as why:
        raise PopulationRefused(str(why)) from None


def _user_layout(net: nn.Module) -> tuple[Compiled, dict[int, tuple[int, ...]]]:
    try:
        return pn.user_layout(net)
    except pn.NotStackable as why:
        raise PopulationRefused(str(why)) from None


def _named(items: Iterable[tuple[str, Tensor]], names: Sequence[str]) -> list[Tensor]:
    found = dict(items)
    return [found[n] for n in names]


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """The ``(start, stop)`` ranges of consecutive True flags."""
    out: list[tuple[int, int]] = []
    for i, f in enumerate(flags):
        if f:
            if out and out[-1][1] == i:
                out[-1] = (out[-1][0], i + 1)
            else:
                out.append((i, i + 1))
    return out


def _order_key(cfg: RunConfig) -> tuple[int, ...]:
    """Members are ordered by what they use, so each per-member pass (the L1 and L2 terms, weight
    decay, max-norm) covers a few contiguous row ranges - views, not gathered copies: L1-only,
    L1 + L2 (elastic net), L2-only, then neither."""
    rc = cfg.regularization
    l1 = rc.l1 > 0 or (rc.elastic_net > 0 and rc.l1_ratio > 0)
    l2 = rc.l2 > 0 or (rc.elastic_net > 0 and rc.l1_ratio < 1)
    return (0 if l1 and not l2 else 1 if l1 else 2 if l2 else 3, rc.weight_decay == 0, rc.max_norm is None)


# -- the population ---------------------------------------------------------------------------------


def fit_population(
    cfgs: Sequence[RunConfig],
    data: Sequence[DataSplits | StreamSplits] | None = None,
    *,
    on_epoch: MemberCallback | None = None,
    evaluate_test: bool = True,
    keep_model: bool = False,
) -> list[RunResult]:
    """Train the runs ``cfgs`` (equal :func:`population_check` keys) as one population and return
    one result per run, in order. ``data``: each run's prepared splits (None: loaded from its
    ``cfg.data``). ``on_epoch(i, record)`` gets each member's epoch record and returns True to stop
    member ``i`` (it finishes with status ``pruned``). ``evaluate_test=False``: the test split is
    never read. Raises :class:`PopulationRefused` when the runs cannot share a population."""
    if not cfgs:
        return []
    keys = {population_check(c, switch=False) for c in cfgs}
    if len(keys) != 1 or next(iter(keys))[0] is None:
        reasons = sorted({r for _, r in keys if r}) or ["their shared settings differ"]
        raise PopulationRefused("; ".join(reasons))
    t_start = time.perf_counter()
    from reglab.training.network import resolve_device

    device = resolve_device(cfgs[0].train.device)
    splits = list(data) if data is not None else _load(cfgs)
    order = sorted(range(len(cfgs)), key=lambda i: _order_key(cfgs[i]))
    pop = _Population([cfgs[i] for i in order], [splits[i] for i in order], device, order)
    pop.train(on_epoch)
    results = pop.results(evaluate_test, keep_model, time.perf_counter() - t_start)
    return [r for _, r in sorted(zip(order, results, strict=True), key=lambda t: t[0])]


def _load(cfgs: Sequence[RunConfig]) -> list[DataSplits | StreamSplits]:
    from reglab.data.streaming import open_data

    loaded: dict[str, Any] = {}
    out = []
    for c in cfgs:
        k = c.data.model_dump_json()
        if k not in loaded:
            loaded[k] = open_data(c.data)
        out.append(loaded[k])
    return out


class _Population:
    def __init__(
        self, cfgs: Sequence[RunConfig], splits: Sequence[Any], device: torch.device, index: Sequence[int]
    ) -> None:
        """``index``: each run's position in the caller's list (what ``on_epoch`` calls it)."""
        from reglab.data.base import DataSplits
        from reglab.optim import create_schedule
        from reglab.regularizers import TrainContext, build_regularizers
        from reglab.training.engine import _overriding
        from reglab.training.network import build_network
        from reglab.training.objective import build_objective, metric_names, monitored, selection_metric
        from reglab.training.rng import seeded_global_rng

        self.device = device
        first = splits[0]
        for s in splits:
            if not isinstance(s, DataSplits):
                raise PopulationRefused("streamed data (larger than data.memory_budget_mb)")
            if getattr(s, "task", "classification") != "classification":
                raise PopulationRefused(f"a {s.task} task: populations train classification")
            if len(s.y_train) != len(first.y_train) or len(s.y_val) != len(first.y_val):
                raise PopulationRefused("the members' train/validation splits differ in size")
            if s.n_classes != first.n_classes or s.input_shape != first.input_shape:
                raise PopulationRefused("the members' data differ in shape")
        # -- the members' data: each distinct split once; a member reads its own --
        uniq: dict[int, int] = {}
        self.unique: list[DataSplits] = []
        rows = []
        for s in splits:
            if id(s) not in uniq:
                uniq[id(s)] = len(self.unique)
                self.unique.append(s.to(device) if device.type != "cpu" else s)
            rows.append(uniq[id(s)])
        # the splits are not copied: each member's batches are gathered from its own split's tensors
        self.x_train = [u.x_train.reshape(len(u.y_train), -1) for u in self.unique]  # U x (n, D)
        self.y_train = [u.y_train for u in self.unique]
        self.x_val = [u.x_val.reshape(len(u.y_val), -1) for u in self.unique]
        self.y_val = [u.y_val for u in self.unique]
        self.n = len(first.y_train)
        cfg0 = cfgs[0]
        tc, rc = cfg0.train, cfg0.regularization
        self.objective = build_objective("classification", first.n_classes, tc.loss, first.y_train)
        es = rc.early_stopping
        requested = [*tc.metrics, *([es.monitor.partition("_")[2]] if es else [])]
        self.names = metric_names("classification", requested)
        self.watch = monitored("classification", requested)
        self.select = f"val_{selection_metric('classification', tc.metrics)}"
        self.es = es
        self.tc, self.penalize_biases = tc, rc.penalize_biases
        # -- the members: built as single runs build them, then stacked --
        self.members: list[_Member] = []
        self.user = cfg0.model.class_path is not None  # your own model: run with torch.func
        units: dict[int, tuple[int, ...]] = {}
        for i, (c, s) in enumerate(zip(cfgs, splits, strict=True)):
            regs = build_regularizers(c)
            with seeded_global_rng(c.train.seed, device):  # (the output check draws no random numbers)
                example = s.x_train[:2].cpu() if self.user else None
                net = build_network(c, s.input_shape, self.objective.out_dim, regs, example=example)
                if device.type == "cpu":  # the single run's dropout draws continue from here
                    drop_gen = torch.Generator()
                    drop_gen.set_state(torch.random.get_rng_state())
                else:
                    drop_gen = torch.Generator(device=device).manual_seed(c.train.seed)
            net = net.to(device)
            sched = create_schedule(
                c.train.schedule, lr=c.train.lr, epochs=c.train.epochs, step_size=c.train.step_size, decay=c.train.decay
            )
            gen = torch.Generator().manual_seed(c.train.seed)
            layout, units = _user_layout(net) if self.user else (_compile(net), units)
            ctx = TrainContext(gen, s.n_classes, s.image, c.train.epochs, [], None, c.train.batch_size)
            self.members.append(
                _Member(
                    index[i],
                    rows[i],
                    c,
                    s,
                    net,
                    [r.name for r in regs],
                    layout,
                    gen,
                    drop_gen,
                    sched,
                    _overriding(regs, "transform_batch"),
                    ctx,
                )
            )

        first_layout = self.members[0].layout
        for mb in self.members:
            # built-in networks: the same program (their parameter names differ where dropout
            # layers shift them); your own model: the same parameters
            if mb.layout.ops != first_layout.ops or (self.user and mb.layout.params != first_layout.params):
                raise PopulationRefused("the members' networks differ")
        self.ops = first_layout.ops
        self.flip = pn.transposed(self.ops)
        self.units = units if self.user else pn.unit_dims(self.ops)
        self.shape = first.input_shape
        self.user_net = pn.UserNet(self.members[0].net, first_layout.params, self.shape) if self.user else None
        self.params: list[Tensor] = [
            t.requires_grad_(True)
            for t in pn.stack([_named(mb.net.named_parameters(), mb.layout.params) for mb in self.members], self.flip)
        ]
        self.buffers: list[Tensor] = pn.stack(
            [_named(mb.net.named_buffers(), mb.layout.buffers) for mb in self.members], set()
        )
        self.n_params = len(self.params)
        self.weights = [j for j, t in enumerate(self.params) if t.ndim > 2]  # linear and conv (not biases, norms)
        # dropout slots: where any member drops (its rate there, else 0)
        self.slots = sorted({k for mb in self.members for k, v in mb.layout.rates.items() if v > 0})
        self.widths: dict[int, int] = {}
        with torch.no_grad():  # one example through the network: each slot's width; can it run?
            x1 = torch.zeros((len(self.members), 1, self.x_train[0].shape[-1]), device=device)
            try:
                self._forward(self.params, self.buffers, x1, train=self.user, widths=self.widths)
            except Exception as err:
                if not self.user:
                    raise
                why = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
                raise PopulationRefused(
                    f"torch.func cannot vectorize your own model: {type(err).__name__}: {why}"
                ) from None
        self.live = list(range(len(self.members)))
        self.rows = rows  # which distinct split each live member trains on
        self.scalars = self._scalars()
        self.state: dict[str, list[Tensor]] = {}
        self.step_count = 0  # optimizer steps taken (Adam's bias correction, the momentum buffer's start)
        self.steps = 0
        self._flags()
        if self.has["max_norm"]:
            self._max_norm()  # the constraint holds from the start, as in single runs

    # -- per-member scalars -------------------------------------------------------------------------

    def _scalars(self) -> dict[str, Tensor]:
        def col(get: Callable[[_Member], float]) -> Tensor:
            return torch.tensor([float(get(m)) for m in self.members], dtype=torch.float32, device=self.device)

        out = {
            "l1": col(lambda m: m.cfg.regularization.l1),
            "l2": col(lambda m: m.cfg.regularization.l2),
            "elastic_net": col(lambda m: m.cfg.regularization.elastic_net),
            "l1_ratio": col(lambda m: m.cfg.regularization.l1_ratio),
            "weight_decay": col(lambda m: m.cfg.regularization.weight_decay),
            "label_smoothing": col(lambda m: m.cfg.regularization.label_smoothing),
            "max_norm": col(lambda m: m.cfg.regularization.max_norm or math.inf),
        }
        for slot in self.slots:
            out[f"rate{slot}"] = torch.tensor(
                [m.layout.rates.get(slot, 0.0) for m in self.members], dtype=torch.float32, device=self.device
            )
        return out

    def _flags(self) -> None:
        """What any live member uses (Python booleans, read once per epoch and not per step) and
        the members' dropout rates as Python floats."""
        sc = self.scalars
        l1, l2, en, r = sc["l1"], sc["l2"], sc["elastic_net"], sc["l1_ratio"]
        wanted = {
            "abs": (l1 > 0) | ((en > 0) & (r > 0)),
            "sq": (l2 > 0) | ((en > 0) & (r < 1)),
            "weight_decay": sc["weight_decay"] > 0,
            "label_smoothing": sc["label_smoothing"] > 0,
            "max_norm": torch.isfinite(sc["max_norm"]),
        }
        self.has = {k: bool(v.any()) for k, v in wanted.items()}
        # the rows a per-member pass touches (a few ranges: members are ordered by _order_key)
        self.sel = {k: _runs(v.tolist()) for k, v in wanted.items()}
        # d(penalty)/dw = a * sign(w) + 2 c * w, per member
        self.pen_abs = l1 + en * r
        self.pen_sq = l2 + en * (1 - r)
        self.rates = {s: [float(v) for v in sc[f"rate{s}"].tolist()] for s in self.slots}
        self._buffers: dict[tuple[str, int, int], Tensor] = {}  # masks and batches, per batch size

    # -- training -----------------------------------------------------------------------------------

    @property
    def penalized(self) -> list[Tensor]:
        return self.params if self.penalize_biases else [self.params[j] for j in self.weights]

    def train(self, on_epoch: MemberCallback | None) -> None:
        from reglab.training.engine import GRAD_NORM_EVERY

        tc = self.tc
        bs = min(tc.batch_size, self.n)
        for epoch in range(tc.epochs):
            if not self.live:
                break
            t0 = time.perf_counter()
            members = [self.members[i] for i in self.live]
            for m in members:
                m.ctx.epoch = epoch
            lrs = [m.schedule(epoch) for m in members]
            lr = torch.tensor(lrs, dtype=torch.float32, device=self.device)
            perms = torch.stack([torch.randperm(self.n, generator=m.gen) for m in members]).to(self.device)
            losses: list[Tensor] = []
            hits: list[Tensor] = []
            norms: list[Tensor] = []
            pens: list[Tensor] = []
            sizes: list[int] = []
            steps = 0
            for i in range(0, self.n, bs):
                idx = perms[:, i : i + bs]
                xb, yb = self._batch(idx)
                b = idx.shape[1]
                if any(m.transforms for m in members):
                    self._transform(members, xb, yb)
                masks = {s: self._masks(members, s, b) for s in self.slots}
                logits = self._forward(self.params, self.buffers, xb, masks, train=True)
                loss = self._loss(logits, yb)  # (P,)
                grads = list(torch.autograd.grad(loss.sum(), self.params))
                pen = self._penalty(grads)
                if pen is not None:
                    pens.append(pen)
                if tc.grad_clip is not None or steps % GRAD_NORM_EVERY == 0:
                    norm = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
                    norms.append(norm)
                    if tc.grad_clip is not None:
                        coef = (tc.grad_clip / (norm + 1e-6)).clamp(max=1.0)
                        grads = [g * coef.view(-1, *([1] * (g.ndim - 1))) for g in grads]
                self._step(grads, lr)
                losses.append(loss.detach())
                hits.append((logits.detach().argmax(-1) == yb).sum(1))
                sizes.append(b)
                steps += 1
            self.steps += steps
            self._epoch_end(epoch, members, lrs, losses, hits, norms, pens, sizes, steps, t0, on_epoch)

    def _forward(
        self,
        params: Sequence[Tensor],
        buffers: Sequence[Tensor],
        x: Tensor,
        masks: dict[int, Tensor | None] | None = None,
        train: bool = False,
        widths: dict[int, int] | None = None,
    ) -> Tensor:
        """Logits (P, B, K) of every member for ``x`` (P, B, D)."""
        if self.user_net is not None:
            return self.user_net(params, x, train)
        return pn.run(self.ops, params, buffers, x, self.shape, masks, train, widths)

    def _batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Member k's examples ``idx[k]`` of its own split: (P, b, D) inputs and (P, b) labels."""
        if len(self.unique) == 1:
            return self.x_train[0][idx], self.y_train[0][idx]
        b = idx.shape[1]
        x = self._buffer("x", b, self.x_train[0].shape[1], 0.0)
        y = torch.empty(idx.shape, dtype=self.y_train[0].dtype, device=self.device)
        for k, r in enumerate(self.rows):
            torch.index_select(self.x_train[r], 0, idx[k], out=x[k])
            torch.index_select(self.y_train[r], 0, idx[k], out=y[k])
        return x, y

    def _buffer(self, kind: str, b: int, width: int, fill: float) -> Tensor:
        """A (P, b, width) tensor kept between steps: rows of members that draw nothing stay ``fill``."""
        key = (kind, b, width)
        if key not in self._buffers:
            self._buffers[key] = torch.full((len(self.live), b, width), fill, device=self.device)
        return self._buffers[key]

    def _transform(self, members: list[_Member], x: Tensor, y: Tensor) -> None:
        """Each member's augmentation and input noise, drawn by its own regularizers from its own
        generator (so exactly its single run's draws), written over its rows of ``x`` (a batch
        gathered for this step). The transforms allowed here keep the labels."""
        b = x.shape[1]
        for k, m in enumerate(members):
            if not m.transforms:
                continue
            xk, yk = x[k].reshape(b, *self.shape), y[k]
            for r in m.transforms:
                xk, yk = r.transform_batch(xk, yk, m.ctx)
            x[k].copy_(xk.reshape(b, -1))

    def _masks(self, members: list[_Member], slot: int, b: int) -> Tensor | None:
        """Inverted-dropout masks (P, b, width), drawn as ``nn.Dropout`` draws them (Bernoulli(1 -
        p) / (1 - p)) from each member's own generator, in place; None when no member drops here."""
        rates = self.rates[slot]
        if not any(rates):
            return None
        out = self._buffer(f"mask{slot}", b, self.widths[slot], 1.0)
        for k, (m, p) in enumerate(zip(members, rates, strict=True)):
            if p > 0:
                out[k].bernoulli_(1 - p, generator=m.drop_gen).div_(1 - p)
        return out

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Each member's mean cross-entropy over its batch (with its label smoothing)."""
        p, b, k = logits.shape
        if not self.has["label_smoothing"]:
            return F.cross_entropy(logits.reshape(p * b, k), y.reshape(-1), reduction="none").view(p, b).mean(1)
        eps = self.scalars["label_smoothing"].unsqueeze(1)
        logp = logits.log_softmax(-1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        # (1 - eps) onehot + eps / K against log-probabilities (Szegedy et al. 2016)
        return ((1 - eps) * nll - eps * logp.mean(-1)).mean(1)

    @torch.no_grad()
    def _penalty(self, grads: list[Tensor]) -> Tensor | None:
        """Each member's L1 + L2 + elastic-net term (P,) - None when no member has one - with its
        gradient ``a sign(w) + 2 c w`` added to ``grads`` in place: written out rather than
        differentiated (the same gradient as autograd's, one pass fewer), on the rows of the
        members that have the term only."""
        if not (self.has["abs"] or self.has["sq"]):
            return None
        pen = torch.zeros(len(self.live), device=self.device)
        grad_of = {id(p): g for p, g in zip(self.params, grads, strict=True)}
        for w in self.penalized:
            g = grad_of[id(w)]
            shape = (-1, *([1] * (w.ndim - 1)))
            for a, b in self.sel["abs"]:
                ws, cs = w[a:b], self.pen_abs[a:b]
                pen[a:b] += cs * ws.abs().flatten(1).sum(1)
                g[a:b].addcmul_(ws.sign(), cs.view(shape))
            for a, b in self.sel["sq"]:
                ws, cs = w[a:b], self.pen_sq[a:b]
                pen[a:b] += cs * ws.pow(2).flatten(1).sum(1)
                g[a:b].addcmul_(ws, cs.view(shape), value=2.0)
        return pen

    @torch.no_grad()
    def _step(self, grads: list[Tensor], lr: Tensor) -> None:
        """Decoupled weight decay, the optimizer's update with each member's learning rate, then
        the max-norm projection: the single engine's before_step -> step -> after_step. One
        update per stacked tensor (a handful), never one per member."""
        opt = self.tc.optimizer
        params = self.params
        neg = [(-lr).view(-1, *([1] * (w.ndim - 1))) for w in params]
        if self.has["weight_decay"]:
            factor = 1.0 - lr * self.scalars["weight_decay"]
            for w in self.penalized:
                for a, b in self.sel["weight_decay"]:
                    w[a:b].mul_(factor[a:b].view(-1, *([1] * (w.ndim - 1))))
        self.step_count += 1
        step = self.step_count
        directions: Sequence[Tensor]
        if opt == "sgd":
            directions = grads
        elif opt in ("momentum", "nesterov"):
            mom = self.tc.momentum
            if step == 1:
                self.state["momentum"] = [g.clone() for g in grads]
            else:  # buf <- g + mom * buf in one pass
                for buf, g in zip(self.state["momentum"], grads, strict=True):
                    torch.add(g, buf, alpha=mom, out=buf)
            bufs = self.state["momentum"]
            directions = torch._foreach_add(grads, bufs, alpha=mom) if opt == "nesterov" else bufs
        elif opt == "rmsprop":
            sq = self.state.setdefault("square_avg", [torch.zeros_like(q) for q in params])
            torch._foreach_mul_(sq, RMSPROP_ALPHA)
            torch._foreach_addcmul_(sq, grads, grads, value=1 - RMSPROP_ALPHA)
            denom = torch._foreach_sqrt(sq)
            torch._foreach_add_(denom, RMSPROP_EPS)
            directions = torch._foreach_div(grads, denom)
        else:  # adam, adamw (its decay is the weight_decay regularizer's, applied above)
            b1, b2 = ADAM_BETAS
            m1 = self.state.setdefault("exp_avg", [torch.zeros_like(q) for q in params])
            m2 = self.state.setdefault("exp_avg_sq", [torch.zeros_like(q) for q in params])
            torch._foreach_lerp_(m1, grads, 1 - b1)
            torch._foreach_mul_(m2, b2)
            torch._foreach_addcmul_(m2, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(m2)
            torch._foreach_div_(denom, math.sqrt(1 - b2**step))
            torch._foreach_add_(denom, ADAM_EPS)
            directions = torch._foreach_div(m1, denom)
            neg = [v / (1 - b1**step) for v in neg]
        for w, d, n in zip(params, directions, neg, strict=True):
            w.addcmul_(d, n)
        if self.has["max_norm"]:
            self._max_norm()

    @torch.no_grad()
    def _max_norm(self) -> None:
        """Each unit's incoming weights (a column of a linear W (P, in, out), a conv filter)
        onto the L2 ball of its member's radius (torch.renorm's rule)."""
        for j, dims in self.units.items():
            w = self.params[j]
            for a, b in self.sel["max_norm"]:
                ws, c = w[a:b], self.scalars["max_norm"][a:b].view(-1, *([1] * (w.ndim - 1)))
                norm = ws.pow(2).sum(dims, keepdim=True).sqrt_()  # 10x faster than linalg.vector_norm here
                ws.mul_(torch.where(norm > c, c / (norm + 1e-7), 1.0))

    # -- epoch end ----------------------------------------------------------------------------------

    def _epoch_end(
        self,
        epoch: int,
        members: list[_Member],
        lrs: list[float],
        losses: list[Tensor],
        hits: list[Tensor],
        norms: list[Tensor],
        pens: list[Tensor],
        sizes: list[int],
        steps: int,
        t0: float,
        on_epoch: MemberCallback | None,
    ) -> None:
        from reglab.tasks import higher_is_better
        from reglab.training.objective import compute

        seen = sum(sizes)
        w = torch.tensor(sizes, dtype=torch.float32, device=self.device).unsqueeze(1)
        train_loss = ((torch.stack(losses) * w).sum(0) / seen).tolist()
        train_acc = (torch.stack(hits).sum(0).double() / seen).tolist()
        grad_norm = torch.stack(norms).mean(0).tolist() if norms else [0.0] * len(members)
        pen = (torch.stack(pens).sum(0) / max(steps, 1)).tolist() if pens else [0.0] * len(members)
        val_loss, val_acc, val_scores = self._evaluate(self.x_val, self.y_val, scores=bool(self.watch))
        stats = self._weight_stats([self.params[j] for j in self.weights])
        elapsed = time.perf_counter() - t0
        leave: list[int] = []
        for r, m in enumerate(members):
            if not math.isfinite(train_loss[r]) or not math.isfinite(pen[r]):
                m.status, m.diverged_epoch = "diverged", epoch + 1
                m.reason = f"non-finite training loss ({train_loss[r]}) in epoch {epoch + 1}"
                leave.append(r)
                continue
            if not math.isfinite(val_loss[r]):
                m.status, m.diverged_epoch = "diverged", epoch + 1
                m.reason = f"non-finite validation loss in epoch {epoch + 1}"
                leave.append(r)
                continue
            record: dict[str, float] = {
                "epoch": epoch + 1,
                "train_loss": train_loss[r],
                "train_acc": train_acc[r],
                "val_loss": val_loss[r],
                "val_acc": val_acc[r],
                **(
                    {f"val_{k}": v for k, v in compute(self.watch, self.objective, m.data.y_val, val_scores[r]).items()}
                    if val_scores is not None
                    else {}
                ),
                "lr": lrs[r],
                "grad_norm": grad_norm[r],
                "penalty": pen[r],
                "time": elapsed / len(members),  # this member's share of the population's epoch
                **{k: v[r] for k, v in stats.items()},
            }
            m.history.append(record)
            stop = False
            if self.es is not None:  # as EarlyStopping.on_epoch_end (Prechelt 1998)
                value, es = record[self.es.monitor], self.es
                better = m.best is None or (
                    value > m.best + es.min_delta if higher_is_better(es.monitor) else value < m.best - es.min_delta
                )
                if better:
                    m.best, m.best_epoch, m.bad = value, epoch + 1, 0
                    if es.restore_best:
                        m.best_weights = [t[r].detach().clone() for t in (*self.params, *self.buffers)]
                else:
                    m.bad += 1
                    if m.bad >= es.patience:
                        m.stopped_epoch, stop = epoch + 1, True
            if on_epoch is not None and on_epoch(m.index, record):
                m.status, m.reason = "pruned", f"pruned after epoch {len(m.history)}"
                leave.append(r)
                continue
            if stop:
                m.status = "completed"
                leave.append(r)
        for r in leave:
            m = members[r]
            if m.status == "completed":
                m.final_weights = [t[r].detach().clone() for t in (*self.params, *self.buffers)]
        if leave:
            self._keep([r for r in range(len(members)) if r not in set(leave)])

    def _keep(self, rows: list[int]) -> None:
        """Only ``rows`` go on: every stacked tensor loses the others' rows (they are frozen)."""
        sel = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.params = [p.detach()[sel].requires_grad_(True) for p in self.params]
        self.buffers = [t[sel] for t in self.buffers]
        for name, tensors in self.state.items():
            self.state[name] = [t[sel] for t in tensors]
        self.scalars = {k: v[sel] for k, v in self.scalars.items()}
        self.rows = [self.rows[r] for r in rows]
        self.live = [self.live[r] for r in rows]
        self._flags()

    @torch.no_grad()
    def _evaluate(
        self,
        x: Sequence[Tensor],
        y: Sequence[Tensor],
        scores: bool,
        state: list[Tensor] | None = None,
        rows: Sequence[int] | None = None,
    ) -> tuple[list[float], list[float], list[Tensor] | None]:
        """Mean loss, accuracy (and softmax scores) of each member on its own copy of a split:
        ``x``, ``y`` one (N, D) and (N,) per distinct data, ``rows`` which one each member uses;
        ``state``: the stacked parameters and buffers to evaluate (default: the live members')."""
        state = [*self.params, *self.buffers] if state is None else state
        params, buffers = state[: self.n_params], state[self.n_params :]
        rows = self.rows if rows is None else rows
        ebs = self.tc.eval_batch_size
        n = len(y[0])
        shared = len(set(rows)) == 1  # every member reads the same examples: one copy, broadcast
        loss = torch.zeros(len(rows), dtype=torch.float64, device=self.device)
        correct = torch.zeros(len(rows), dtype=torch.long, device=self.device)
        chunks = []
        for i in range(0, n, ebs):
            if shared:
                xb = x[rows[0]][i : i + ebs].expand(len(rows), -1, -1)
                yb = y[rows[0]][i : i + ebs].expand(len(rows), -1)
            else:
                xb = torch.stack([x[r][i : i + ebs] for r in rows])
                yb = torch.stack([y[r][i : i + ebs] for r in rows])
            logits = self._forward(params, buffers, xb)
            p, b, k = logits.shape
            loss += F.cross_entropy(logits.reshape(p * b, k), yb.reshape(-1), reduction="none").view(p, b).sum(1)
            correct += (logits.argmax(-1) == yb).sum(1)
            if scores:
                chunks.append(logits.softmax(-1))
        sc = list(torch.cat(chunks, 1).unbind(0)) if chunks else None
        return (loss / max(n, 1)).tolist(), (correct.double() / max(n, 1)).tolist(), sc

    @staticmethod
    @torch.no_grad()
    def _weight_stats(weights: Sequence[Tensor]) -> dict[str, list[float]]:
        """:func:`reglab.training.metrics.weight_stats` of every member at once."""
        from reglab.training.metrics import SPARSITY_THRESHOLD

        flat = torch.cat([w.detach().flatten(1) for w in weights], 1)
        return {
            "weight_l1": flat.abs().sum(1).tolist(),
            "weight_l2": flat.norm(dim=1).tolist(),
            "sparsity": (flat.abs() < SPARSITY_THRESHOLD).float().mean(1).tolist(),
        }

    def _export(self, m: _Member, state: list[Tensor]) -> nn.Module:
        """The member's own network (as its single run builds it) holding ``state`` (its rows of
        the stacked parameters and buffers), in evaluation mode."""
        net = m.net
        params = state[: self.n_params]
        with torch.no_grad():
            own = dict(net.named_parameters())
            for j, name in enumerate(m.layout.params):
                own[name].copy_(params[j].t() if j in self.flip else params[j])
            bufs = dict(net.named_buffers())
            for j, name in enumerate(m.layout.buffers):
                bufs[name].copy_(state[self.n_params + j])
            epochs = m.best_epoch if m.best_weights is not None and m.best_epoch else len(m.history)
            steps = math.ceil(self.n / min(self.tc.batch_size, self.n)) * epochs
            for name, t in bufs.items():
                if name.endswith("num_batches_tracked"):
                    t.fill_(steps)
        return net.eval()

    # -- results ------------------------------------------------------------------------------------

    def results(self, evaluate_test: bool, keep_model: bool, wall: float) -> list[RunResult]:
        from reglab.tasks import higher_is_better
        from reglab.training.engine import RunResult
        from reglab.training.metrics import weight_histograms
        from reglab.training.objective import compute

        for r, i in enumerate(self.live):  # trained to the last epoch
            m = self.members[i]
            m.status = "completed"
            m.final_weights = [t[r].detach().clone() for t in (*self.params, *self.buffers)]
        done = [m for m in self.members if m.status == "completed"]
        finals: dict[int, dict[str, float]] = {m.index: {} for m in done}
        test_scores: dict[int, Tensor] = {}
        if done:
            for m in done:  # early stopping restores the best epoch's weights at the end
                if m.best_weights is not None:
                    m.final_weights = m.best_weights
            assert all(m.final_weights is not None for m in done)
            n_state = self.n_params + len(self.buffers)
            state = [torch.stack([m.final_weights[j] for m in done]) for j in range(n_state)]  # type: ignore[index]
            rows = [m.row for m in done]
            x_tr, y_tr = self.x_train, self.y_train
            for split, x, y in (("train", x_tr, y_tr), ("val", self.x_val, self.y_val)):
                losses, accs, scores = self._evaluate(x, y, True, state, rows)
                assert scores is not None
                for k, m in enumerate(done):
                    ys = y[rows[k]]
                    extra = compute(self.names, self.objective, ys, scores[k])
                    finals[m.index].update(
                        {
                            f"{split}_loss": losses[k],
                            f"{split}_acc": accs[k],
                            **{f"{split}_{n}": v for n, v in extra.items()},
                        }
                    )
            if evaluate_test:  # the only read of the test split: once per distinct split, after training
                used = sorted(set(rows))
                tests = {}
                for u in used:
                    tx, ty = self.unique[u].test.read()
                    tests[u] = (tx.to(self.device).reshape(len(ty), -1), ty.to(self.device))
                for u in used:
                    sel = [k for k in range(len(done)) if rows[k] == u]
                    sub = [t[sel] for t in state]
                    tx, ty = tests[u]
                    losses, accs, scores = self._evaluate([tx], [ty], True, sub, [0] * len(sel))
                    assert scores is not None
                    for j, k in enumerate(sel):
                        m = done[k]
                        extra = compute(self.names, self.objective, ty, scores[j])
                        finals[m.index].update(
                            {"test_loss": losses[j], "test_acc": accs[j], **{f"test_{n}": v for n, v in extra.items()}}
                        )
                        test_scores[m.index] = scores[j]
            wstats = self._weight_stats([state[j] for j in self.weights])
        out = []
        for m in self.members:
            info: dict[str, Any] = {
                "device": str(self.device),
                "n_params": sum(p.numel() for p in m.net.parameters()),
                "regularizers": m.regs,
                "epochs_run": len(m.history),
                "data_sizes": m.data.sizes(),
                "wall_time": wall / len(self.members),
                "population": {"size": len(self.members), "index": m.index, "wall_time": wall},
            }
            if self.es is not None:
                info["early_stopping_best_epoch"] = m.best_epoch if m.best_epoch is not None else -1
                info["early_stopping_stopped_epoch"] = m.stopped_epoch
            if m.status != "completed":
                out.append(RunResult(m.status, m.history, {}, info, m.reason, m.diverged_epoch))
                continue
            final = finals[m.index]
            if evaluate_test:
                main = self.names[0]
                tr_m, te_m = final[f"train_{main}"], final[f"test_{main}"]
                final["gap"] = tr_m - te_m if higher_is_better(main) else te_m - tr_m
            pick = max if higher_is_better(self.select) else min
            best = m.best_epoch or int(pick(m.history, key=lambda h: h[self.select])["epoch"])
            final["best_epoch"] = float(best)
            k = done.index(m)
            final.update({name: v[k] for name, v in wstats.items()})
            assert m.final_weights is not None
            info["weight_histogram"] = weight_histograms([m.final_weights[j] for j in self.weights])
            model = None
            if keep_model:
                model = self._export(m, m.final_weights)
            ts = test_scores.get(m.index)
            out.append(
                RunResult(
                    "completed",
                    m.history,
                    final,
                    info,
                    test_probs=None if ts is None else ts.float().cpu().numpy(),
                    model=model,
                )
            )
        return out
