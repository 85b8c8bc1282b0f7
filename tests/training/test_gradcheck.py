"""Gradient checking: every registered penalty passes, and a wrong gradient is caught."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from reglab.config import RunConfig
from reglab.regularizers import REGULARIZERS, Regularizer
from reglab.training.gradcheck import GradcheckResult, check_gradients, check_registered


def test_check_registered_passes_and_covers_every_penalty() -> None:
    results = check_registered()
    assert all(r.ok for r in results), [(r.name, r.max_rel_error) for r in results]
    names = {r.name for r in results}
    assert "cross_entropy" in names
    for name, spec in REGULARIZERS.items():
        reg = spec.build(RunConfig().override(spec.example))
        if reg is not None and type(reg).penalty is not Regularizer.penalty:
            assert f"{name} (+ loss)" in names
    assert {"l1 (+ loss)", "l2 (+ loss)", "elastic_net (+ loss)"} <= names
    for r in results:
        assert r.n_checked > 0 and r.max_rel_error < 1e-5


class _WrongSquare(torch.autograd.Function):
    """f(x) = x^2 with a backward that returns 3x instead of 2x."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * 3 * x


def test_a_wrong_backward_is_detected() -> None:
    w = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    wrong, n = check_gradients(lambda: _WrongSquare.apply(w).sum(), [w])
    assert n == 20
    assert wrong > 0.1  # |3x - 2x| / (|3x| + |2x|) = 0.2
    assert not GradcheckResult("wrong", wrong, n, 1e-5).ok
    right, _ = check_gradients(lambda: (w * w).sum(), [w])
    assert right < 1e-6


def test_check_gradients_samples_per_parameter() -> None:
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(10, 10, dtype=torch.float64, requires_grad=True)
    err, n = check_gradients(lambda: a.sin().sum() + (b**3).sum(), [a, b], per_param=7)
    assert n == 3 + 7
    assert err < 1e-6
    assert a.grad is not None  # autograd ran


def test_gradcheck_result_tolerance() -> None:
    assert GradcheckResult("x", 1e-6, 3, 1e-5).ok
    assert not GradcheckResult("x", 2e-5, 3, 1e-5).ok
    assert GradcheckResult("x", 1e-5, 3, 1e-5).ok


@pytest.mark.parametrize("seed", [1, 2])
def test_check_registered_other_seeds(seed: int) -> None:
    assert all(r.ok for r in check_registered(seed=seed))


def test_check_registered_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(3)
    state = torch.get_rng_state()
    first = check_registered(seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(4)
    assert [(r.name, r.max_rel_error) for r in check_registered(seed=0)] == [(r.name, r.max_rel_error) for r in first]
