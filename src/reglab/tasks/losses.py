"""The built-in losses as torch callables ``(outputs, targets) -> mean loss``.

Targets arrive as the engine's objective shapes them: class indices or (N, K) soft targets for
cross-entropy, P(class 1) as floats (N,) for BCE, standardized floats shaped like the outputs for
regression losses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

Loss = Callable[[Tensor, Tensor], Tensor]


def cross_entropy() -> Loss:
    return F.cross_entropy


def bce() -> Loss:
    return F.binary_cross_entropy_with_logits


def mse() -> Loss:
    return F.mse_loss


def huber() -> Loss:
    return F.huber_loss
