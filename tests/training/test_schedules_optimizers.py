"""Learning-rate schedules against their formulas; optimizers by name build the right torch class."""

from __future__ import annotations

import itertools
import math
import typing

import pytest
import torch
from torch import nn

from reglab.config import RegularizationConfig, TrainConfig
from reglab.training.optimizers import OPTIMIZERS, build_optimizer
from reglab.training.schedules import lr_at

EPOCHS = 20


def _lrs(**kw: object) -> list[float]:
    cfg = TrainConfig(lr=0.5, epochs=EPOCHS, **kw)  # type: ignore[arg-type]
    return [lr_at(cfg, e) for e in range(EPOCHS)]


def test_constant() -> None:
    assert _lrs() == [0.5] * EPOCHS


def test_step() -> None:
    assert _lrs(schedule="step", step_size=5) == pytest.approx([0.5 * 0.1 ** (e // 5) for e in range(EPOCHS)])
    lrs = _lrs(schedule="step", step_size=3, decay=0.5)
    assert lrs[:7] == pytest.approx([0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125])


def test_exponential() -> None:
    assert _lrs(schedule="exponential") == pytest.approx([0.5 * 0.95**e for e in range(EPOCHS)])
    assert _lrs(schedule="exponential", decay=0.5)[3] == pytest.approx(0.0625)


def test_cosine() -> None:
    lrs = _lrs(schedule="cosine")
    assert lrs == pytest.approx([0.25 * (1 + math.cos(math.pi * e / EPOCHS)) for e in range(EPOCHS)])
    assert lrs[0] == 0.5
    assert lrs[EPOCHS // 2] == pytest.approx(0.25)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert lrs[-1] > 0


def test_inverse_time() -> None:
    assert _lrs(schedule="inverse-time") == pytest.approx([0.5 / (1 + 0.1 * e) for e in range(EPOCHS)])
    assert _lrs(schedule="inverse-time", decay=1.0)[3] == pytest.approx(0.125)


def test_every_configurable_schedule_is_implemented() -> None:
    names = typing.get_args(TrainConfig.model_fields["schedule"].annotation)
    assert set(names) == {"constant", "step", "exponential", "cosine", "inverse-time"}
    for s in names:
        assert lr_at(TrainConfig(schedule=s), 0) == TrainConfig().lr


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def _opt(
    name: str, weight_decay: float = 0.0, penalize_biases: bool = False
) -> tuple[torch.optim.Optimizer, nn.Module]:
    model = _model()
    penalized = [p for p in model.parameters() if penalize_biases or p.ndim > 1]
    train = TrainConfig(optimizer=name, lr=0.03, momentum=0.8)  # type: ignore[arg-type]
    reg = RegularizationConfig(weight_decay=weight_decay)
    return build_optimizer(model, penalized, train, reg), model


@pytest.mark.parametrize(
    ("name", "cls", "defaults"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0, "nesterov": False}),
        ("momentum", torch.optim.SGD, {"momentum": 0.8, "nesterov": False}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0}),
        ("adam", torch.optim.Adam, {"weight_decay": 0}),
        ("adamw", torch.optim.AdamW, {}),
    ],
)
def test_optimizer_classes(name: str, cls: type, defaults: dict) -> None:
    opt, model = _opt(name)
    assert type(opt) is cls
    assert opt.defaults["lr"] == 0.03
    for k, v in defaults.items():
        assert opt.defaults[k] == v, k
    # every trainable parameter exactly once, in one group (the cheapest step) when nothing decays
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert len(opt.param_groups) == 1
    # the optimizer itself never adds coupled or decoupled decay unless it is adamw
    assert all(g["weight_decay"] == 0 for g in opt.param_groups)


def test_optimizer_registry_matches_the_config_choices() -> None:
    names = typing.get_args(TrainConfig.model_fields["optimizer"].annotation)
    assert set(OPTIMIZERS.names()) == set(names)


def test_adamw_decays_only_the_penalized_group() -> None:
    opt, _ = _opt("adamw", weight_decay=0.3)
    assert opt.param_groups[0]["weight_decay"] == 0.3
    assert all(p.ndim > 1 for p in opt.param_groups[0]["params"])
    assert opt.param_groups[1]["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in opt.param_groups[1]["params"])


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "rmsprop"])
def test_weight_decay_is_not_given_to_other_optimizers(name: str) -> None:
    opt, _ = _opt(name, weight_decay=0.3)
    assert all(g["weight_decay"] == 0 for g in opt.param_groups)


def test_penalize_biases_puts_everything_in_one_decayed_group() -> None:
    opt, model = _opt("adamw", weight_decay=0.3, penalize_biases=True)
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["weight_decay"] == 0.3
    assert len(opt.param_groups[0]["params"]) == len(list(model.parameters()))


def test_adamw_step_applies_the_decoupled_decay() -> None:
    """With a zero gradient Adam's update is 0, so one AdamW step only multiplies the penalized
    weights by (1 - lr * decay) and leaves the biases alone."""
    opt, model = _opt("adamw", weight_decay=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        expected = b * (1 - 0.03 * 0.5) if p.ndim > 1 else b
        assert torch.allclose(p.detach(), expected)


def test_nesterov_differs_from_momentum_after_two_steps() -> None:
    results = []
    for name in ("momentum", "nesterov"):
        opt, model = _opt(name)
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        for _ in range(2):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.allclose(results[0], results[1])
