"""Decoupled weight decay is decided in one place (the weight_decay regularizer's hook) for every
optimizer, and reglab's ``adamw`` path trains bitwise like torch's own AdamW with decay."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from reglab.config import RunConfig
from reglab.data.base import DataSplits
from reglab.optim import OPTIMIZERS, create_optimizer
from reglab.regularizers.base import TrainContext, penalized_parameters
from reglab.regularizers.weight_decay import DecoupledWeightDecay
from reglab.training.engine import fit

LR, WD, STEPS = 0.01, 0.3, 6


def _net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net, torch.randn(20, 6, generator=gen), torch.randint(0, 3, (20,), generator=gen)


def _ctx(penalized: list[nn.Parameter], x: torch.Tensor) -> TrainContext:
    return TrainContext(
        gen=torch.Generator(), n_classes=3, image=False, epochs=1, penalized=penalized, x_train=x, batch_size=20
    )


def _steps(net: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, hook: Any = None) -> None:
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        if hook is not None:
            hook()
        opt.step()


@pytest.mark.parametrize("penalize_biases", [False, True])
def test_adamw_path_is_bitwise_torch_adamw(penalize_biases: bool) -> None:
    """torch's AdamW with weight decay on the penalized parameters (a second group without decay)
    vs reglab: ``adamw`` (no decay in the optimizer) + the weight_decay hook before each step."""
    ref, x, y = _net()
    penalized = penalized_parameters(ref, penalize_biases)
    rest = [p for p in ref.parameters() if all(p is not q for q in penalized)]
    groups = [{"params": penalized, "weight_decay": WD}, {"params": rest, "weight_decay": 0.0}]
    _steps(ref, x, y, torch.optim.AdamW([g for g in groups if g["params"]], lr=LR))

    ours, _, _ = _net()
    hook = DecoupledWeightDecay(WD)
    ctx = _ctx(penalized_parameters(ours, penalize_biases), x)
    opt = create_optimizer("adamw", list(ours.parameters()), lr=LR, momentum=0.9)
    _steps(ours, x, y, opt, hook=lambda: hook.before_step(ours, LR, ctx))

    for a, b in zip(ref.parameters(), ours.parameters(), strict=True):
        assert torch.equal(a, b)
    # and the decay mattered: without it the weights end elsewhere
    plain, _, _ = _net()
    _steps(plain, x, y, create_optimizer("adamw", list(plain.parameters()), lr=LR))
    assert not torch.equal(plain[0].weight, ours[0].weight)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_the_hook_decays_the_penalized_parameters_for_every_optimizer(name: str) -> None:
    """With a zero gradient every built-in optimizer leaves the weights alone, so one step with the
    hook multiplies exactly the penalized ones by (1 - lr * decay)."""
    net, x, _ = _net()
    penalized = penalized_parameters(net, include_biases=False)
    before = [p.detach().clone() for p in net.parameters()]
    opt = create_optimizer(name, list(net.parameters()), lr=LR, momentum=0.9)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    DecoupledWeightDecay(WD).before_step(net, LR, _ctx(penalized, x))
    opt.step()
    for p, b in zip(net.parameters(), before, strict=True):
        expected = b * (1 - LR * WD) if p.ndim > 1 else b
        assert torch.equal(p.detach(), expected), name


def test_fit_adamw_equals_adam_with_weight_decay_exactly(
    tiny_cfg: RunConfig, tiny_digits: DataSplits, helpers: Any
) -> None:
    """One decay rule for all optimizers: ``adamw`` + weight_decay and ``adam`` + weight_decay are
    the same algorithm, so their runs agree to the last bit (before, AdamW decayed inside its step)."""
    cfg = tiny_cfg.override({"lr": 0.01, "weight_decay": 0.5})
    a = fit(cfg.override({"optimizer": "adamw"}), tiny_digits)
    b = fit(cfg.override({"optimizer": "adam"}), helpers.fresh_copy(tiny_digits))
    assert helpers.history_without_time(a.history) == helpers.history_without_time(b.history)
    assert a.final == b.final
    none = fit(tiny_cfg.override({"lr": 0.01, "optimizer": "adamw"}), helpers.fresh_copy(tiny_digits))
    assert a.final["weight_l2"] < none.final["weight_l2"]
