"""The residual block of the residual MLP and CNN (``model.residual: true``; He et al. 2016):
``act(skip(x) + drop(branch(x)))``, where ``branch`` is two linear or conv layers, ``skip`` the
identity or, where the width changes, a projection (a bias-free linear layer or 1x1 convolution),
and ``drop`` what the ``residual`` site's hooks return (stochastic depth's random block drop;
Huang et al. 2016) - the identity when there are none."""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlock(nn.Module):
    def __init__(self, branch: nn.Module, skip: nn.Module, drop: list[nn.Module], act: nn.Module) -> None:
        super().__init__()
        self.branch, self.skip, self.act = branch, skip, act
        self.drop = nn.Sequential(*drop)  # empty: the identity

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.skip(x) + self.drop(self.branch(x)))
