"""Every registered optimizer and schedule, tested the same way (a newly registered one is picked up).

Optimizers: one step lowers a convex loss, two identical runs give identical parameters and state,
no optimizer adds weight decay of its own, the factory's settings are ones the engine supplies.
Schedules: the first epoch runs at the base rate, every rate is positive and finite, and each
built-in schedule matches its formula. Unknown names list the valid choices, in the registries and
in the config; the config's choices and JSON schema follow the registries.
"""

from __future__ import annotations

import inspect
import itertools
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from reglab.config import RunConfig, TrainConfig
from reglab.errors import ConfigError
from reglab.optim import OPTIMIZERS, SCHEDULES, create_optimizer, create_schedule

OPT_NAMES = OPTIMIZERS.names()
SCHED_NAMES = SCHEDULES.names()
# what the engine offers the factories (reglab.training.engine)
OPT_SETTINGS = {"lr": 0.05, "momentum": 0.9}
SCHED_SETTINGS: dict[str, Any] = {"lr": 0.5, "epochs": 20, "step_size": 5, "decay": None}
EPOCHS = (0, 1, 4, 5, 9, 10, 19)

# the formula of each built-in schedule (lr 0.5, 20 epochs, step size 5; decay defaults per schedule)
FORMULAS: dict[str, Callable[[int], float]] = {
    "constant": lambda e: 0.5,
    "step": lambda e: 0.5 * 0.1 ** (e // 5),
    "exponential": lambda e: 0.5 * 0.95**e,
    "cosine": lambda e: 0.25 * (1 + math.cos(math.pi * e / 20)),
    "inverse-time": lambda e: 0.5 / (1 + 0.1 * e),
}


def _problem() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Parameter]:
    """A convex least-squares problem ||A w - b||^2 / n and a starting point."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(32, 5, generator=gen)
    b = torch.randn(32, generator=gen)
    w = torch.nn.Parameter(torch.randn(5, generator=gen))
    return a, b, w


def _loss(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (a @ w - b).pow(2).mean()


def _train(name: str, steps: int, lr: float = 0.01) -> tuple[torch.Tensor, list[float], torch.optim.Optimizer]:
    a, b, w = _problem()
    opt = create_optimizer(name, [w], **{**OPT_SETTINGS, "lr": lr})
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = _loss(a, b, w)
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    losses.append(float(_loss(a, b, w).detach()))
    return w.detach().clone(), losses, opt


def test_registries_hold_the_builtins_in_order() -> None:
    assert OPT_NAMES[:6] == ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"]
    assert SCHED_NAMES[:5] == list(FORMULAS)


@pytest.mark.parametrize("name", OPT_NAMES)
def test_optimizer_steps_lower_a_convex_loss(name: str) -> None:
    _, losses, _ = _train(name, steps=5)
    assert losses[1] < losses[0], losses
    assert losses[-1] < losses[0], losses
    assert all(math.isfinite(v) for v in losses)


@pytest.mark.parametrize("name", OPT_NAMES)
def test_optimizer_is_deterministic(name: str) -> None:
    w1, l1, o1 = _train(name, steps=4)
    w2, l2, o2 = _train(name, steps=4)
    assert torch.equal(w1, w2) and l1 == l2
    s1, s2 = o1.state_dict()["state"], o2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for k in s1:
        assert s1[k].keys() == s2[k].keys()
        for key, v in s1[k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2[k][key])), (name, key)


@pytest.mark.parametrize("name", OPT_NAMES)
def test_optimizer_has_one_group_at_the_given_lr_and_no_decay_of_its_own(name: str) -> None:
    params = [torch.nn.Parameter(torch.ones(3, 2)), torch.nn.Parameter(torch.ones(2))]
    opt = create_optimizer(name, params, **OPT_SETTINGS)
    assert isinstance(opt, torch.optim.Optimizer)
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["lr"] == OPT_SETTINGS["lr"]
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in params]
    # decoupled decay is the weight_decay regularizer's, coupled decay is l2: never the optimizer's
    assert opt.param_groups[0].get("weight_decay", 0) == 0


@pytest.mark.parametrize("name", OPT_NAMES)
def test_optimizer_settings_are_ones_the_engine_supplies(name: str) -> None:
    params = list(inspect.signature(OPTIMIZERS.get(name)).parameters.values())
    assert params[0].name == "params"
    wanted = {p.name for p in params[1:]}
    assert wanted <= set(OPT_SETTINGS), f"{name} wants {wanted - set(OPT_SETTINGS)}"
    assert wanted <= set(TrainConfig.model_fields)


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0, "nesterov": False}),
        ("momentum", torch.optim.SGD, {"momentum": 0.8, "nesterov": False}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0}),
        ("adam", torch.optim.Adam, {}),
        ("adamw", torch.optim.AdamW, {}),
    ],
)
def test_builtin_optimizers_build_the_right_torch_class(name: str, cls: type, expected: dict[str, Any]) -> None:
    opt = create_optimizer(name, [torch.nn.Parameter(torch.ones(2))], lr=0.03, momentum=0.8)
    assert type(opt) is cls
    assert opt.defaults["lr"] == 0.03
    for k, v in expected.items():
        assert opt.defaults[k] == v, k


def test_nesterov_differs_from_momentum() -> None:
    assert not torch.equal(_train("momentum", 3, lr=0.05)[0], _train("nesterov", 3, lr=0.05)[0])


@pytest.mark.parametrize("name", SCHED_NAMES)
def test_schedule_starts_at_the_base_rate_and_stays_positive_and_finite(name: str) -> None:
    schedule = create_schedule(name, **SCHED_SETTINGS)
    assert schedule(0) == SCHED_SETTINGS["lr"]
    lrs = [schedule(e) for e in range(SCHED_SETTINGS["epochs"])]
    assert all(math.isfinite(v) and 0 < v <= SCHED_SETTINGS["lr"] for v in lrs), lrs
    assert [create_schedule(name, **SCHED_SETTINGS)(e) for e in range(20)] == lrs  # deterministic


@pytest.mark.parametrize("name", SCHED_NAMES)
def test_schedule_settings_are_ones_the_engine_supplies(name: str) -> None:
    params = inspect.signature(SCHEDULES.get(name)).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    assert {p.name for p in params} <= set(SCHED_SETTINGS)


@pytest.mark.parametrize("name", list(FORMULAS))
def test_schedule_matches_its_formula(name: str) -> None:
    schedule = create_schedule(name, **SCHED_SETTINGS)
    for e in EPOCHS:
        assert schedule(e) == pytest.approx(FORMULAS[name](e), rel=1e-12), (name, e)


@pytest.mark.parametrize(
    ("name", "decay", "epoch", "lr"),
    [
        ("step", 0.5, 5, 0.25),
        ("step", 0.5, 12, 0.125),
        ("exponential", 0.5, 3, 0.0625),
        ("inverse-time", 1.0, 3, 0.125),
    ],
)
def test_explicit_decay_overrides_the_default(name: str, decay: float, epoch: int, lr: float) -> None:
    assert create_schedule(name, **{**SCHED_SETTINGS, "decay": decay})(epoch) == pytest.approx(lr)


def test_cosine_decreases_to_half_at_mid_training() -> None:
    lrs = [create_schedule("cosine", **SCHED_SETTINGS)(e) for e in range(20)]
    assert lrs[10] == pytest.approx(0.25)
    assert all(a > b for a, b in itertools.pairwise(lrs))


@pytest.mark.parametrize(
    ("create", "registry"),
    [(lambda: create_optimizer("lion", []), OPTIMIZERS), (lambda: create_schedule("linear", lr=1.0), SCHEDULES)],
)
def test_unknown_names_list_the_valid_choices(create: Callable[[], Any], registry: Any) -> None:
    with pytest.raises(ConfigError, match=r"^unknown (optimizer 'lion'|schedule 'linear'); valid choices: ") as e:
        create()
    assert str(e.value).endswith(", ".join(registry.names()))


@pytest.mark.parametrize(
    ("field", "family", "registry"), [("optimizer", "optimizer", OPTIMIZERS), ("schedule", "schedule", SCHEDULES)]
)
def test_config_validates_against_the_registry(field: str, family: str, registry: Any) -> None:
    for name in registry.names():
        assert getattr(RunConfig().override({field: name}).train, field) == name
    with pytest.raises(ConfigError) as e:
        RunConfig().override({field: "foo"})
    assert (
        str(e.value)
        == f"train.{field}: unknown {family} 'foo'; valid choices: {', '.join(registry.names())} (got 'foo')"
    )
    assert TrainConfig.model_json_schema()["properties"][field]["enum"] == registry.names()


@pytest.fixture
def lion() -> Iterator[str]:
    """A test-only optimizer registered after import (sign of the gradient, Chen et al. 2023 without
    momentum), unregistered afterwards."""

    def factory(params: Any, *, lr: float) -> torch.optim.Optimizer:
        class SignSGD(torch.optim.Optimizer):
            def __init__(self, params: Any, lr: float) -> None:
                super().__init__(params, {"lr": lr})

            @torch.no_grad()
            def step(self, closure: Any = None) -> None:  # type: ignore[override]
                for g in self.param_groups:
                    for p in g["params"]:
                        if p.grad is not None:
                            p.add_(p.grad.sign(), alpha=-g["lr"])

        return SignSGD(params, lr)

    OPTIMIZERS.add("signsgd", factory)
    yield "signsgd"
    OPTIMIZERS.remove("signsgd")


def test_an_optimizer_registered_after_import_is_configurable_and_trains(lion: str, tiny_cfg: RunConfig) -> None:
    from reglab.training.engine import fit

    cfg = tiny_cfg.override({"optimizer": lion, "lr": 0.01, "epochs": 2})
    assert lion in TrainConfig.model_json_schema()["properties"]["optimizer"]["enum"]
    result = fit(cfg)
    assert result.status == "completed"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] * 1.5
    losses = _train(lion, steps=5)[1]
    assert losses[-1] < losses[0]


def test_importing_optim_and_config_does_not_import_torch() -> None:
    code = "import sys, reglab.optim, reglab.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_optim_does_not_import_the_config() -> None:
    code = "import sys, reglab.optim; print('reglab.config' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
