"""Populations: many runs of one network trained at once as one vectorized model (issue 14).

Runs that differ only in per-member settings (seeds, learning rates, strengths) train as one model
whose parameters carry a leading member dimension (:mod:`reglab.models.stacked` runs the built-in
networks, ``torch.func`` your own): one batched forward, backward and update per step for all P
members, so Python's, the dispatcher's and the optimizer's per-step cost is paid once.

Nothing here restates a regularizer or an optimizer (issue 24): each declares in its registry entry
whether it trains in a population and which of its settings may differ between members
(``RegularizerSpec.members``, an optimizer's ``@members`` step), and brings its maths - stacked
hooks (:class:`~reglab.regularizers.base.Stacked`) over the kernels of
:mod:`reglab.regularizers.functional`, a per-member step beside the torch factory; what runs per
member (batch transforms, epoch ends) is the member's own hook object, called as its single run
calls it. Each member is the run it stands for (its initial weights, batch order, random draws and
split are its single run's); one that stops leaves the population, its rows dropped from every
stacked tensor. Results are one :class:`~reglab.training.engine.RunResult` per member, ``info``
adding ``population`` (size, index, wall time). Runs this cannot vectorize are refused with the
reason (:func:`population_check`, :class:`PopulationRefused`); callers train them one at a time.
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

from reglab.models import stacked as pn
from reglab.models.stacked import Compiled
from reglab.status import RunStatus
from reglab.training.population_rules import population_check, population_key

__all__ = ["PopulationRefused", "fit_population", "population_check", "population_key"]

if TYPE_CHECKING:
    from reglab.config import RunConfig
    from reglab.data.base import DataSplits
    from reglab.data.streaming import StreamSplits
    from reglab.regularizers import Regularizer, TrainContext
    from reglab.regularizers.base import StackedHooks
    from reglab.training.engine import RunResult

MemberCallback = Callable[[int, dict[str, float]], bool | None]  # (member, epoch record) -> True: stop it


class PopulationRefused(ValueError):
    """The runs cannot train as one population (found only once the data is loaded: streamed
    data, a task other than classification, members whose splits differ in size); train them
    one at a time."""


@dataclass
class _Member:
    """What one member keeps outside the stacked tensors."""

    index: int
    row: int  # which distinct split (of the population's) it trains on
    data: DataSplits
    net: nn.Module  # built as the single run builds it; holds the final weights when kept
    regs: list[Regularizer]  # its own hook objects (batch transforms, epoch ends run per member)
    layout: Compiled  # its network as a program (the names of its parameters and buffers)
    mask_gen: torch.Generator  # the network's random masks
    schedule: Callable[[int], float]
    ctx: TrainContext  # what its hooks read (its generator, the best epoch)
    history: list[dict[str, float]] = field(default_factory=list)
    status: RunStatus | None = None  # None while it trains
    reason: str | None = None
    diverged_epoch: int | None = None
    final_weights: list[Tensor] | None = None  # its rows of the stacked parameters and buffers
    restored: bool = False  # an on_train_end hook gave other weights (early stopping's best)

    def hooks(self, name: str) -> list[Regularizer]:
        from reglab.training.engine import _overriding

        return _overriding(self.regs, name)


@dataclass
class _Epoch:
    """The live members' per-step values of one epoch, each (P,), summed at its end."""

    losses: list[Tensor] = field(default_factory=list)
    hits: list[Tensor] = field(default_factory=list)
    norms: list[Tensor] = field(default_factory=list)
    pens: list[Tensor] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


class _Rows:
    """A member's rows of the stacked state, seen as a module's ``state_dict`` by its own hook
    objects (early stopping snapshots the best epoch's weights and restores them at the end)."""

    def __init__(self, weights: list[Tensor]) -> None:
        self.weights = weights

    def state_dict(self) -> dict[str, Tensor]:
        return {str(j): t.detach().clone() for j, t in enumerate(self.weights)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.weights = [state[str(j)] for j in range(len(self.weights))]


def _named(items: Iterable[tuple[str, Tensor]], names: Sequence[str]) -> list[Tensor]:
    found = dict(items)
    return [found[n] for n in names]


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
    from reglab.regularizers.registry import stacked_unused

    order = sorted(range(len(cfgs)), key=lambda i: stacked_unused(cfgs[i].regularization))
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
        from reglab.optim._kwargs import accepted
        from reglab.optim.optimizers import member_step
        from reglab.regularizers import TrainContext, build_regularizers
        from reglab.regularizers.base import constrained_weights
        from reglab.regularizers.registry import stacked_hooks
        from reglab.training.network import build_network
        from reglab.training.objective import build_objective, run_metrics
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
        self.names, self.watch, self.select = run_metrics(cfg0, "classification")
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
                if device.type == "cpu":  # the single run's mask draws continue from here
                    mask_gen = torch.Generator()
                    mask_gen.set_state(torch.random.get_rng_state())
                else:
                    mask_gen = torch.Generator(device=device).manual_seed(c.train.seed)
            net = net.to(device)
            sched = create_schedule(
                c.train.schedule, lr=c.train.lr, epochs=c.train.epochs, step_size=c.train.step_size, decay=c.train.decay
            )
            gen = torch.Generator().manual_seed(c.train.seed)  # batch order and augmentation
            try:
                if self.user:
                    layout, units = pn.user_layout(net, constrained_weights(net))
                else:
                    layout = pn.compile_network(net)
            except pn.NotStackable as refused:  # the stacked forward cannot run it: it trains alone
                raise PopulationRefused(str(refused)) from None
            ctx = TrainContext(gen, s.n_classes, s.image, c.train.epochs, [], None, c.train.batch_size)
            self.members.append(_Member(index[i], rows[i], s, net, regs, layout, mask_gen, sched, ctx))

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
        # mask slots: where any member's network masks (its rate there, else 0)
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
        self.rates = {s: [m.layout.rates.get(s, 0.0) for m in self.members] for s in self.slots}
        self._buffers: dict[tuple[str, int, int], Tensor] = {}  # masks and batches, per batch size
        # -- the regularizers' stacked hooks and the optimizer's per-member step (their units') --
        self.stacked: StackedHooks = stacked_hooks([c.regularization for c in cfgs], device)
        step = member_step(tc.optimizer)
        assert step is not None, "population_check admits optimizers with a per-member step only"
        self.opt_step, self.opt_settings = step, accepted(step, {"momentum": tc.momentum})
        self.opt_state: dict[str, list[Tensor]] = {}
        self.step_count = 0  # optimizer steps taken (Adam's bias correction, the momentum buffer's start)
        self.stacked.setup(self.constrained)  # a constraint holds from the start, as in single runs

    def penalized(self, tensors: list[Tensor]) -> list[Tensor]:
        """Those of ``tensors`` (one per stacked parameter) that belong to penalized parameters."""
        return tensors if self.penalize_biases else [tensors[j] for j in self.weights]

    @property
    def constrained(self) -> list[tuple[Tensor, tuple[int, ...]]]:
        """The weights a constraint acts on, each with the dims of one unit's incoming weights."""
        return [(self.params[j], dims) for j, dims in self.units.items()]

    # -- training -----------------------------------------------------------------------------------

    def train(self, on_epoch: MemberCallback | None) -> None:
        from reglab.optim.optimizers import clip_grad_norm_members_
        from reglab.training.engine import GRAD_NORM_EVERY

        tc = self.tc
        bs = min(tc.batch_size, self.n)
        for epoch in range(tc.epochs):
            if not self.live:
                break
            t0 = time.perf_counter()
            members = [self.members[i] for i in self.live]
            transforms = [m.hooks("transform_batch") for m in members]
            for m in members:
                m.ctx.epoch = epoch
            lrs = [m.schedule(epoch) for m in members]
            lr = torch.tensor(lrs, dtype=torch.float32, device=self.device)
            perms = torch.stack([torch.randperm(self.n, generator=m.ctx.gen) for m in members]).to(self.device)
            ep = _Epoch()
            for i in range(0, self.n, bs):
                idx = perms[:, i : i + bs]
                xb, yb = self._batch(idx)
                b = idx.shape[1]
                if any(transforms):
                    self._transform(members, transforms, xb, yb)
                masks = {s: self._masks(members, s, b) for s in self.slots}
                logits = self._forward(self.params, self.buffers, xb, masks, train=True)
                loss = self.objective.member_losses(logits, self.stacked.targets(yb, self.objective.n_classes))
                grads = list(torch.autograd.grad(loss.sum(), self.params))
                pen = self.stacked.penalties_(self.penalized(self.params), self.penalized(grads), len(self.live))
                if pen is not None:
                    ep.pens.append(pen)
                if tc.grad_clip is not None or len(ep.sizes) % GRAD_NORM_EVERY == 0:
                    ep.norms.append(clip_grad_norm_members_(grads, tc.grad_clip))
                self._step(grads, lr)
                ep.losses.append(loss.detach())
                ep.hits.append((logits.detach().argmax(-1) == yb).sum(1))
                ep.sizes.append(b)
            self._epoch_end(epoch, members, lrs, ep, time.perf_counter() - t0, on_epoch)

    @torch.no_grad()
    def _step(self, grads: list[Tensor], lr: Tensor) -> None:
        """The single engine's before_step -> optimizer step -> after_step, on the stacked tensors:
        one update per stacked tensor (a handful), never one per member."""
        self.stacked.before_step(self.penalized(self.params), lr)
        self.step_count += 1
        self.opt_step(self.opt_state, self.params, grads, lr, self.step_count, **self.opt_settings)
        self.stacked.after_step(self.constrained)

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

    def _transform(self, members: list[_Member], transforms: list[list[Regularizer]], x: Tensor, y: Tensor) -> None:
        """Each member's batch transforms (augmentation, input noise): its own hook objects drawing
        from its own generator (exactly its single run's draws), written over its rows of ``x``
        (a batch gathered for this step). The transforms allowed here keep the labels."""
        b = x.shape[1]
        for k, (m, hooks) in enumerate(zip(members, transforms, strict=True)):
            if not hooks:
                continue
            xk, yk = x[k].reshape(b, *self.shape), y[k]
            for r in hooks:
                xk, yk = r.transform_batch(xk, yk, m.ctx)
            x[k].copy_(xk.reshape(b, -1))

    def _masks(self, members: list[_Member], slot: int, b: int) -> Tensor | None:
        """The masks (P, b, width) of one of the network's mask slots, each member's drawn by the
        unit's kernel from its own generator, in place; None when no member masks here."""
        from reglab.regularizers.functional import member_masks_

        rates = [self.rates[slot][i] for i in self.live]
        if not any(rates):
            return None
        out = self._buffer(f"mask{slot}", b, self.widths[slot], 1.0)
        return member_masks_(out, rates, [m.mask_gen for m in members])

    # -- epoch end ----------------------------------------------------------------------------------

    def _epoch_end(
        self,
        epoch: int,
        members: list[_Member],
        lrs: list[float],
        ep: _Epoch,
        secs: float,
        on: MemberCallback | None,
    ) -> None:
        from reglab.training.metrics import epoch_record, weight_stats
        from reglab.training.objective import compute

        seen, steps, n = sum(ep.sizes), len(ep.sizes), len(members)
        w = torch.tensor(ep.sizes, dtype=torch.float32, device=self.device).unsqueeze(1)
        train_loss = ((torch.stack(ep.losses) * w).sum(0) / seen).tolist()
        train_acc = (torch.stack(ep.hits).sum(0).double() / seen).tolist()
        grad_norm = torch.stack(ep.norms).mean(0).tolist() if ep.norms else [0.0] * n
        pen = (torch.stack(ep.pens).sum(0) / max(steps, 1)).tolist() if ep.pens else [0.0] * n
        val_loss, val_acc, val_scores = self._evaluate(self.x_val, self.y_val, scores=bool(self.watch))
        stats = weight_stats([self.params[j] for j in self.weights], members=True)
        leave: list[int] = []
        for r, m in enumerate(members):
            if not math.isfinite(train_loss[r]) or not math.isfinite(pen[r]) or not math.isfinite(val_loss[r]):
                m.status, m.diverged_epoch = RunStatus.DIVERGED, epoch + 1
                m.reason = (
                    f"non-finite validation loss in epoch {epoch + 1}"
                    if math.isfinite(train_loss[r]) and math.isfinite(pen[r])
                    else f"non-finite training loss ({train_loss[r]}) in epoch {epoch + 1}"
                )
                leave.append(r)
                continue
            record = epoch_record(
                epoch + 1,
                (train_loss[r], train_acc[r]),
                (val_loss[r], val_acc[r]),
                compute(self.watch, self.objective, m.data.y_val, val_scores[r]) if val_scores is not None else {},
                lrs[r],
                grad_norm[r],
                pen[r],
                secs / n,  # this member's share of the population's epoch
                {k: v[r] for k, v in stats.items()},
            )
            m.history.append(record)
            stop = False
            hooks = m.hooks("on_epoch_end")
            if hooks:  # its own hook objects (early stopping) see its rows as its model
                rows = _Rows([t[r] for t in (*self.params, *self.buffers)])
                for h in hooks:
                    stop = h.on_epoch_end(rows, record, m.ctx) or stop  # type: ignore[arg-type]
            if on is not None and on(m.index, record):
                m.status, m.reason = RunStatus.PRUNED, f"pruned after epoch {len(m.history)}"
                leave.append(r)
                continue
            if stop:
                m.status = RunStatus.COMPLETED
                m.final_weights = [t[r].detach().clone() for t in (*self.params, *self.buffers)]
                leave.append(r)
        if leave:
            self._keep([r for r in range(len(members)) if r not in set(leave)])

    def _keep(self, rows: list[int]) -> None:
        """Only ``rows`` go on: every stacked tensor loses the others' rows (they are frozen)."""
        sel = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.params = [p.detach()[sel].requires_grad_(True) for p in self.params]
        self.buffers = [t[sel] for t in self.buffers]
        for name, tensors in self.opt_state.items():
            self.opt_state[name] = [t[sel] for t in tensors]
        self.stacked.keep(sel)
        self.rows = [self.rows[r] for r in rows]
        self.live = [self.live[r] for r in rows]
        self._buffers = {}

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

    def _export(self, m: _Member, state: list[Tensor]) -> nn.Module:
        """The member's own network (as its single run builds it) holding ``state`` (its rows of
        the stacked parameters and buffers), in evaluation mode."""
        epochs = m.ctx.best_epoch if m.restored and m.ctx.best_epoch else len(m.history)
        pn.unstack(m.net, m.layout, state, self.flip, math.ceil(self.n / min(self.tc.batch_size, self.n)) * epochs)
        return m.net.eval()

    # -- results ------------------------------------------------------------------------------------

    def results(self, evaluate_test: bool, keep_model: bool, wall: float) -> list[RunResult]:
        from reglab.training.engine import RunResult
        from reglab.training.metrics import close_final, run_info, weight_histograms

        for r, i in enumerate(self.live):  # trained to the last epoch
            m = self.members[i]
            m.status = RunStatus.COMPLETED
            m.final_weights = [t[r].detach().clone() for t in (*self.params, *self.buffers)]
        done = [m for m in self.members if m.status is RunStatus.COMPLETED]
        for m in done:  # its own end hooks choose the weights to evaluate (early stopping's best)
            assert m.final_weights is not None
            for h in m.hooks("on_train_end"):
                rows = _Rows(m.final_weights)
                h.on_train_end(rows, m.ctx)  # type: ignore[arg-type]
                m.restored = m.restored or rows.weights is not m.final_weights
                m.final_weights = rows.weights
        finals, test_scores, wstats = self._final_metrics(done, evaluate_test) if done else ({}, {}, {})
        out = []
        for m in self.members:
            info = run_info(self.device, m.net, m.regs, len(m.history), m.data)
            info["wall_time"] = wall / len(self.members)
            info["population"] = {"size": len(self.members), "index": m.index, "wall_time": wall}
            if m.status is not RunStatus.COMPLETED:
                assert m.status is not None
                out.append(RunResult(m.status, m.history, {}, info, m.reason, m.diverged_epoch))
                continue
            final = finals[m.index]
            close_final(final, m.history, self.names, self.select, m.ctx.best_epoch, evaluate_test)
            k = done.index(m)
            final.update({name: v[k] for name, v in wstats.items()})
            assert m.final_weights is not None
            info["weight_histogram"] = weight_histograms([m.final_weights[j] for j in self.weights])
            ts = test_scores.get(m.index)
            out.append(
                RunResult(
                    RunStatus.COMPLETED,
                    m.history,
                    final,
                    info,
                    test_probs=None if ts is None else ts.float().cpu().numpy(),
                    model=self._export(m, m.final_weights) if keep_model else None,
                )
            )
        return out

    def _final_metrics(
        self, done: list[_Member], evaluate_test: bool
    ) -> tuple[dict[int, dict[str, float]], dict[int, Tensor], dict[str, list[float]]]:
        """The finished members' final metrics on train, validation (and test) with their final
        weights, their test scores and weight statistics, all members at once."""
        from reglab.training.metrics import weight_stats
        from reglab.training.objective import compute

        finals: dict[int, dict[str, float]] = {m.index: {} for m in done}
        test_scores: dict[int, Tensor] = {}
        n_state = self.n_params + len(self.buffers)
        state = [torch.stack([m.final_weights[j] for m in done]) for j in range(n_state)]  # type: ignore[index]
        rows = [m.row for m in done]
        everyone = list(range(len(done)))
        sets = [("train", self.x_train, self.y_train, everyone, rows), ("val", self.x_val, self.y_val, everyone, rows)]
        for u in sorted(set(rows)) if evaluate_test else ():  # the only read of the test split: once
            tx, ty = (t.to(self.device) for t in self.unique[u].test.read())  # per distinct split, after training
            sel = [k for k in everyone if rows[k] == u]
            sets.append(("test", [tx.reshape(len(ty), -1)], [ty], sel, [0] * len(sel)))
        for split, x, y, sel, own in sets:
            losses, accs, scores = self._evaluate(x, y, True, [t[sel] for t in state], own)
            assert scores is not None
            for j, k in enumerate(sel):
                extra = {"loss": losses[j], "acc": accs[j], **compute(self.names, self.objective, y[own[j]], scores[j])}
                finals[done[k].index].update({f"{split}_{n}": v for n, v in extra.items()})
                if split == "test":
                    test_scores[done[k].index] = scores[j]
        return finals, test_scores, weight_stats([state[j] for j in self.weights], members=True)
