"""A practitioner's own network, as reglab sees it: a small residual CNN (He et al. 2016) whose
constructor takes the hyperparameters a study compares and tunes.

reglab passes ``in_channels`` and ``num_classes`` (it fills parameters with these names from the
data), ``width``/``blocks`` from ``model.init_args``, and ``dropout``/``batch_norm`` from the arm's
regularization settings (structural regularizers reach your model through its constructor).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _norm(width: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(width) if batch_norm else nn.Identity()


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))), each conv followed by batch norm when asked."""

    def __init__(self, width: int, batch_norm: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm)
        self.norm1 = _norm(width, batch_norm)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm)
        self.norm2 = _norm(width, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(x + self.norm2(self.conv2(h)))


class ResNetish(nn.Module):
    """stem conv -> pool -> ``blocks`` residual blocks (pooling after each) -> global average pool
    -> dropout -> linear classifier."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 16,
        blocks: int = 2,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, padding=1, bias=not batch_norm),
            _norm(width, batch_norm),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        for _ in range(blocks):
            layers += [ResidualBlock(width, batch_norm), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x).mean(dim=(2, 3))  # global average pooling
        return self.classifier(self.dropout(h))


def make_net(width: int = 16, dropout: float = 0.0, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The same network from a factory function (``run_protocol(spec, model=make_net)``)."""
    return ResNetish(in_channels, num_classes, width=width, dropout=dropout)
