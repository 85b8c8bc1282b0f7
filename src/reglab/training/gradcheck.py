"""Gradient checking by two-sided finite differences: (f(w + h) - f(w - h)) / 2h vs autograd.

Run in float64 on small networks; ``check_registered`` covers the data loss and every registered
regularizer that adds a penalty, so a new penalty is checked as soon as it is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reglab.training.rng import seeded_global_rng


@dataclass(frozen=True)
class GradcheckResult:
    name: str
    max_rel_error: float
    n_checked: int
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.tolerance


def check_gradients(
    f: Callable[[], Tensor], params: Sequence[Tensor], eps: float = 1e-6, per_param: int = 20, seed: int = 0
) -> tuple[float, int]:
    """Max relative error |g_auto - g_num| / max(|g_auto| + |g_num|, 1e-8) over up to ``per_param``
    random coordinates of each parameter (float64 recommended)."""
    for p in params:
        p.grad = None
    f().backward()
    auto = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    gen = torch.Generator().manual_seed(seed)
    worst, count = 0.0, 0
    with torch.no_grad():
        for p, g in zip(params, auto, strict=True):
            flat, gflat = p.view(-1), g.view(-1)
            picks = torch.randperm(flat.numel(), generator=gen)[:per_param]
            for i in picks.tolist():
                old = float(flat[i])
                flat[i] = old + eps
                up = float(f())
                flat[i] = old - eps
                down = float(f())
                flat[i] = old
                num = (up - down) / (2 * eps)
                err = abs(num - float(gflat[i])) / max(abs(num) + abs(float(gflat[i])), 1e-8)
                worst, count = max(worst, err), count + 1
    return worst, count


def _small_problem(seed: int) -> tuple[nn.Module, Tensor, Tensor]:
    """A float64 network and batch; module initialization only draws from the global RNG, which is
    seeded here and restored afterwards (the caller's random state is left as it was)."""
    with seeded_global_rng(seed):
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        gen = torch.Generator()
        gen.set_state(torch.get_rng_state())  # the data continue the seeded stream in a generator of their own
    # keep weights away from 0, where |w| has no derivative
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.sign(p) * 0.05)
    x = torch.randn(16, 12, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 3, (16,), generator=gen)
    return model, x, y


def check_registered(seed: int = 0, tolerance: float = 1e-5) -> list[GradcheckResult]:
    """Check the cross-entropy loss and each registered penalty (alone and added to the loss)."""
    import torch.nn.functional as F

    from reglab.config import RunConfig
    from reglab.regularizers import REGULARIZERS, TrainContext
    from reglab.regularizers.base import Regularizer, penalized_parameters

    results = []
    model, x, y = _small_problem(seed)
    params = list(model.parameters())
    worst, n = check_gradients(lambda: F.cross_entropy(model(x), y), params, seed=seed)
    results.append(GradcheckResult("cross_entropy", worst, n, tolerance))
    for name, spec in REGULARIZERS.items():
        reg = spec.build(RunConfig().override(spec.example))
        if reg is None or type(reg).penalty is Regularizer.penalty:
            continue
        ctx = TrainContext(
            gen=torch.Generator().manual_seed(seed),
            n_classes=3,
            image=False,
            epochs=1,
            penalized=penalized_parameters(model, include_biases=False),
            x_train=x,
            batch_size=16,
        )

        def total(reg: Regularizer = reg, ctx: TrainContext = ctx) -> Tensor:
            pen = reg.penalty(ctx)
            assert pen is not None
            return F.cross_entropy(model(x), y) + pen * 1e3  # scaled so the penalty matters

        worst, n = check_gradients(total, params, seed=seed)
        results.append(GradcheckResult(f"{name} (+ loss)", worst, n, tolerance))
    return results
