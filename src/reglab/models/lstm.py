"""An LSTM classifier (Hochreiter & Schmidhuber 1997) that reads its input as a sequence.

An image (C, H, W) is read row by row: H steps of C*W features (sequential MNIST: 28 steps of 28
pixels, as in Le et al. 2015's row-wise variant); in general an input (C, T, *rest) gives T steps
of C*prod(rest) features, and a flat (D,) input (tabular data) D steps of one feature each. The
classifier reads the last step of the top layer (with ``bidirectional``, the backward direction's
output at the first step, i.e. both directions' final states).

Sites for structural regularizers: ``input`` (the sequence, before the first layer),
``post_activation`` after each layer's output (dropout between layers; after the last layer it acts
on the classifier's input, as in the MLP), ``recurrent`` and ``recurrent_weight`` per layer (see
:mod:`reglab.models.hooks`: variational dropout, Gal & Ghahramani 2016, and weight drop, Merity et
al. 2018). There is no ``pre_activation`` site, so batch norm is refused here. Without recurrent
masks a layer is torch's fused ``nn.LSTM``; with weight masks alone the fused kernel runs on the
masked weights; with per-sequence state masks it runs the readable step loop of :func:`lstm_steps`.
``model.init`` reaches the classifier layer; the LSTM weights keep torch's initialization.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reglab.models.hooks import LayerHooks

if TYPE_CHECKING:
    from reglab.models.config import ModelConfig


def build_lstm(model: ModelConfig, input_shape: tuple[int, ...], n_classes: int, hooks: LayerHooks) -> nn.Module:
    steps, features = sequence_shape(input_shape)
    if steps < 1 or features < 1:
        from reglab.errors import ConfigError

        raise ConfigError(f"model.arch: lstm cannot read inputs of shape {input_shape} as a sequence")
    layers: list[nn.Module] = [SequenceView(), *hooks.at("input", ["input"], features)]
    kinds = ["lstm"] * model.lstm_layers
    width = features
    out = model.lstm_hidden * (2 if model.bidirectional else 1)
    for i in range(model.lstm_layers):
        state = hooks.at("recurrent", kinds, model.lstm_hidden, i)
        weight = hooks.at("recurrent_weight", kinds, model.lstm_hidden, i)
        layers.append(LSTMLayer(width, model.lstm_hidden, model.bidirectional, state, weight))
        if i == model.lstm_layers - 1:
            layers.append(LastStep(model.lstm_hidden, model.bidirectional))
        layers += hooks.at("post_activation", kinds, out, i)
        width = out
    layers.append(nn.Linear(out, n_classes))
    return nn.Sequential(*layers)


def sequence_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(steps, features per step) of an input of this shape (see the module docstring)."""
    if len(input_shape) == 1:
        return input_shape[0], 1
    return input_shape[1], input_shape[0] * math.prod(input_shape[2:])


class SequenceView(nn.Module):
    """(N, C, T, *rest) -> (N, T, C*prod(rest)); (N, D) -> (N, D, 1)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            return x.unsqueeze(-1)
        return x.movedim(2, 1).flatten(2)


class LastStep(nn.Module):
    """(N, T, D*H) -> (N, D*H): the forward direction's last output and, bidirectional, the
    backward direction's first (each direction's final state)."""

    def __init__(self, hidden: int, bidirectional: bool) -> None:
        super().__init__()
        self.hidden, self.bidirectional = hidden, bidirectional

    def forward(self, x: Tensor) -> Tensor:
        if not self.bidirectional:
            return x[:, -1]
        return torch.cat([x[:, -1, : self.hidden], x[:, 0, self.hidden :]], dim=1)


class LSTMLayer(nn.Module):
    """One LSTM layer (both directions when ``bidirectional``), (N, T, F) -> (N, T, D*H).

    ``state``: modules applied, in training, once per forward pass to ones of shape (N, F) and
    (N, H) per direction, giving each sequence one input mask and one hidden-state mask used at
    every time step (Gal & Ghahramani 2016). ``weight``: modules applied, in training, to each
    direction's hidden-to-hidden weights once per forward pass (Merity et al. 2018). In
    evaluation, and with neither, the layer is torch's fused ``nn.LSTM``."""

    def __init__(
        self, in_features: int, hidden: int, bidirectional: bool, state: list[nn.Module], weight: list[nn.Module]
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden, batch_first=True, bidirectional=bidirectional)
        self.state = nn.Sequential(*state) if state else None
        self.weight = nn.Sequential(*weight) if weight else None
        self.directions = ("", "_reverse") if bidirectional else ("",)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or (self.state is None and self.weight is None):
            return self.lstm(x)[0]
        params: dict[str, Tensor] = dict(self.lstm.named_parameters())
        if self.weight is not None:  # one DropConnect mask per direction and forward pass
            for d in self.directions:
                params[f"weight_hh_l0{d}"] = self.weight(params[f"weight_hh_l0{d}"])
        if self.state is None:  # the fused kernel with the masked weights
            from torch.func import functional_call

            out: Tensor = functional_call(self.lstm, params, (x,))[0]
            return out
        n, hidden = x.shape[0], self.lstm.hidden_size
        outs = []
        for d in self.directions:
            mask_x = self.state(x.new_ones(n, x.shape[2]))  # one mask per sequence, all steps
            mask_h = self.state(x.new_ones(n, hidden))
            w_ih, w_hh, b_ih, b_hh = (params[f"{k}_l0{d}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            seq = x if d == "" else x.flip(1)
            y = lstm_steps(seq, w_ih, w_hh, b_ih, b_hh, mask_x, mask_h)
            outs.append(y if d == "" else y.flip(1))
        return torch.cat(outs, dim=2)


def lstm_steps(
    x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, mask_x: Tensor, mask_h: Tensor
) -> Tensor:
    """The LSTM recursion step by step (torch's gate order i, f, g, o), the inputs and the previous
    hidden state multiplied by the same per-sequence masks at every step (Gal & Ghahramani 2016).
    x: (N, T, F); masks (N, F) and (N, H); returns the hidden states (N, T, H)."""
    gx = F.linear(x * mask_x.unsqueeze(1), w_ih, b_ih)  # the input part of every step at once
    n, hidden = x.shape[0], w_hh.shape[1]
    h = x.new_zeros(n, hidden)
    c = x.new_zeros(n, hidden)
    out = []
    for t in range(x.shape[1]):
        i, f, g, o = (gx[:, t] + F.linear(h * mask_h, w_hh, b_hh)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out, dim=1)
