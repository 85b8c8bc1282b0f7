"""Every population-capable regularizer x every optimizer with a per-member step, written once and
parametrized from the registries (issue 24): a population whose members differ in their
strengths (and seeds and learning rates) trains each member exactly as its single run -
per-epoch losses and accuracies, final weights and buffers to 1e-5. A newly registered regularizer
(``RegularizerSpec.members``) or optimizer (``@members``) is picked up with no new test code; so
is every learning-rate schedule.

The members: the regularizer at its registry ``example``, the same made stronger where its
per-member settings allow (floats doubled, integers plus one), and - where every setting of the
example may differ between members - a member without it (its rows must be untouched by the
others' terms).

The suite runs in float64. In float32 the population's batched products sum in another order than
a single run's, and an adaptive optimizer (Adam, RMSprop) divides each gradient by its own
magnitude: a gradient that is zero in exact arithmetic (the bias of a layer followed by batch
norm) or nearly so is float noise, and such noise becomes steps of random sign - the maths agrees
and the weights still drift apart by 1e-4. In float64 that noise (1e-16) stays far below the
optimizers' eps (1e-8). ``test_population.py`` checks float32 members against single runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from reglab.config import RunConfig
from reglab.data.base import DataSplits, TestSplit
from reglab.errors import ConfigError
from reglab.optim import OPTIMIZERS, SCHEDULES
from reglab.optim.optimizers import member_step
from reglab.regularizers import REGULARIZERS, Regularizer, RegularizerSpec
from reglab.regularizers.base import Stacked
from reglab.training.engine import RunResult, fit
from reglab.training.population import fit_population, population_key

CAPABLE = [name for name, spec in REGULARIZERS.items() if spec.members is not None]
OPTIMIZERS_WITH_MEMBERS = [name for name in OPTIMIZERS.names() if member_step(name) is not None]
BASE = {"n_train": 150, "hidden": (32,), "epochs": 3, "batch_size": 32, "device": "cpu", "population": "auto"}
LR = 0.01  # one rate for every optimizer: moves SGD visibly, keeps Adam and RMSprop far from chaos
TOL = 1e-5
PER_EPOCH = ("train_loss", "train_acc", "val_loss", "val_acc", "penalty", "lr")


@pytest.fixture(autouse=True)
def float64() -> Any:
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def as_float64(data: DataSplits) -> DataSplits:
    x_te, y_te = data.test.read()
    return DataSplits(
        data.name,
        data.x_train.double(),
        data.y_train,
        data.x_val.double(),
        data.y_val,
        TestSplit(x_te.double(), y_te),
        data.n_classes,
        data.image,
        list(data.classes),
        data.source,
    )


def _stronger(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | dict):
        return value
    if isinstance(value, dict):
        return {k: _stronger(v) for k, v in value.items()}
    return value + 1 if isinstance(value, int) else value * 2


def members(spec: RegularizerSpec[Any], optimizer: str, extra: dict[str, Any] | None = None) -> list[RunConfig]:
    """The population's configs: the example, a stronger one, and (where allowed) one without it."""
    assert spec.members is not None
    base = RunConfig().override({**BASE, "optimizer": optimizer, "lr": LR, **(extra or {})})
    cfgs = [base.override({"seed": 0, "split_seed": 0, **spec.example})]
    varying = {k: v for k, v in spec.example.items() if k in spec.members.settings}
    try:
        cfgs.append(base.override({"seed": 1, "lr": LR / 2, **spec.example, **_stronger(varying)}))
    except ConfigError:  # doubling left the setting's range: the example once more, another seed
        cfgs.append(base.override({"seed": 1, "lr": LR / 2, **spec.example}))
    if set(spec.example) <= set(spec.members.settings):
        cfgs.append(base.override({"seed": 2, "split_seed": 2}))
    assert len({population_key(c) for c in cfgs}) == 1 and population_key(cfgs[0]) is not None
    return cfgs


def check_members_match_single_runs(cfgs: list[RunConfig], load: Callable[..., DataSplits]) -> None:
    data = [as_float64(load(n_train=BASE["n_train"], split_seed=c.data.split_seed)) for c in cfgs]
    pops = fit_population(cfgs, data, keep_model=True, evaluate_test=False)
    for c, d, pop in zip(cfgs, data, pops, strict=True):
        single = fit(c, d, keep_model=True, evaluate_test=False)
        assert pop.status == single.status == "completed"
        assert len(pop.history) == len(single.history)
        for key in PER_EPOCH:
            got, want = [h[key] for h in pop.history], [h[key] for h in single.history]
            assert got == pytest.approx(want, rel=TOL, abs=TOL), f"{key}: population {got} vs single run {want}"
        assert pop.final == pytest.approx(single.final, rel=TOL, abs=TOL)
        check_same_state(pop, single)


def check_same_state(pop: RunResult, single: RunResult) -> None:
    assert pop.model is not None and single.model is not None
    got, want = pop.model.state_dict(), single.model.state_dict()
    assert list(got) == list(want)
    for name, t in want.items():
        torch.testing.assert_close(got[name].to(t.dtype), t, rtol=TOL, atol=TOL, msg=name)


@pytest.mark.parametrize("optimizer", OPTIMIZERS_WITH_MEMBERS)
@pytest.mark.parametrize("name", CAPABLE)
def test_each_member_trains_as_its_single_run(name: str, optimizer: str, load: Callable[..., DataSplits]) -> None:
    check_members_match_single_runs(members(REGULARIZERS.get(name), optimizer), load)


@pytest.mark.parametrize("schedule", [s for s in SCHEDULES.names() if s != "constant"])
def test_every_schedule_reaches_each_member(schedule: str, load: Callable[..., DataSplits]) -> None:
    extra = {"schedule": schedule, "step_size": 1, "decay": 0.5} if schedule != "cosine" else {"schedule": schedule}
    cfgs = members(REGULARIZERS.get("l2"), "momentum", extra)
    check_members_match_single_runs(cfgs, load)
    assert len({h["lr"] for h in fit(cfgs[0], as_float64(load(n_train=BASE["n_train"]))).history}) > 1


def _overrides(obj: object, base: type, hook: str) -> bool:
    return getattr(type(obj), hook) is not getattr(base, hook)


@pytest.mark.parametrize("name", CAPABLE)
def test_a_capable_regularizer_declares_what_runs_stacked(name: str) -> None:
    """What its single-run object does on the whole model each step (a penalty, a change of the
    labels, an update before or after the optimizer's) must have a stacked form; only batch
    transforms and epoch and end hooks run per member, and structural ones are in the network.
    Its per-member settings are its own fields."""
    spec = REGULARIZERS.get(name)
    assert spec.members is not None
    assert set(spec.members.settings) <= set(spec.fields)
    reg = spec.build(RunConfig().override(spec.example))
    assert isinstance(reg, Regularizer)
    whole_model = [h for h in ("penalty", "before_step", "after_step", "adjust_lr") if _overrides(reg, Regularizer, h)]
    label_change = name == "label_smoothing"
    if whole_model or label_change:
        assert spec.members.stacked is not None, f"{name} overrides {whole_model} but declares no stacked hooks"
        stacked = spec.members.stacked([RunConfig().override(spec.example).regularization], torch.device("cpu"))
        assert isinstance(stacked, Stacked)
    assert "adjust_lr" not in whole_model, "per-member learning-rate changes are not stacked"


@pytest.mark.parametrize("optimizer", OPTIMIZERS_WITH_MEMBERS)
def test_a_per_member_step_equals_its_torch_optimizer(optimizer: str) -> None:
    """Three members with their own learning rates, stepped together, against three torch
    optimizers over the same tensors (20 steps of random gradients)."""
    from reglab.optim import create_optimizer
    from reglab.optim._kwargs import accepted

    step = member_step(optimizer)
    assert step is not None
    gen = torch.Generator().manual_seed(0)
    lrs = torch.tensor([0.1, 0.01, 0.0])
    stacked = [torch.randn(3, 5, 4, generator=gen), torch.randn(3, 4, generator=gen)]
    singles = [[t[k].clone().requires_grad_(True) for t in stacked] for k in range(3)]
    opts = [create_optimizer(optimizer, ps, lr=float(lr), momentum=0.9) for ps, lr in zip(singles, lrs, strict=True)]
    state: dict[str, list[torch.Tensor]] = {}
    for t in range(1, 21):
        grads = [torch.randn(s.shape, generator=gen) for s in stacked]
        step(state, stacked, grads, lrs, t, **accepted(step, {"momentum": 0.9}))
        for k, (ps, opt) in enumerate(zip(singles, opts, strict=True)):
            for p, g in zip(ps, grads, strict=True):
                p.grad = g[k].clone()
            opt.step()
    for k, ps in enumerate(singles):
        for p, s in zip(ps, stacked, strict=True):
            torch.testing.assert_close(s[k], p.detach(), rtol=TOL, atol=1e-6)


def _stacked(name: str) -> Stacked | None:
    spec = REGULARIZERS.get(name)
    assert spec.members is not None
    if spec.members.stacked is None:
        return None
    sections = [RunConfig().override(spec.example).regularization] * 2
    return spec.members.stacked(sections, torch.device("cpu"))


WRITTEN = [n for n in CAPABLE if (s := _stacked(n)) is not None and _overrides(s, Stacked, "penalty_grad_")]


@pytest.mark.parametrize("name", WRITTEN)
def test_a_written_penalty_derivative_equals_autograds(name: str) -> None:
    """A unit that writes its penalty's derivative next to the kernel (for speed) must write
    autograd's: on random stacked weights the two gradients agree."""
    stacked = _stacked(name)
    assert stacked is not None
    gen = torch.Generator().manual_seed(0)
    rows = [
        torch.randn(2, 5, 4, generator=gen, dtype=torch.float64),
        torch.randn(2, 4, generator=gen, dtype=torch.float64),
    ]
    written = [torch.zeros_like(r) for r in rows]
    assert stacked.penalty_grad_(rows, written)
    leaves = [r.clone().requires_grad_(True) for r in rows]
    values = stacked.penalty(leaves)
    assert values is not None and values.shape == (2,)
    for w, a in zip(written, torch.autograd.grad(values.sum(), leaves), strict=True):
        torch.testing.assert_close(w, a)
