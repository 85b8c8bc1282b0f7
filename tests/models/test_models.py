"""The MLP and CNN builders: shapes, structure from the regularization settings, initialization."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reglab.config import ModelConfig, RunConfig
from reglab.errors import ConfigError
from reglab.models import build_model
from reglab.regularizers import build_regularizers


def _build(
    arch: str = "mlp",
    shape: tuple[int, ...] = (1, 8, 8),
    n_classes: int = 10,
    reg: dict | None = None,
    **model: object,
) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, **model)  # type: ignore[arg-type]
    return build_model(cfg, shape, n_classes, build_regularizers(RunConfig().override(reg or {})))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (20,)])
def test_mlp_forward_shapes(shape: tuple[int, ...]) -> None:
    model = _build("mlp", shape, hidden=(16, 8))
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(math.prod(shape), 16), (16, 8), (8, 10)]


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 9, 7)])
@pytest.mark.parametrize("reg", [{}, {"batch_norm": True, "dropout": (0.2, 0.3), "input_dropout": 0.1}])
def test_cnn_forward_shapes(shape: tuple[int, ...], reg: dict) -> None:
    model = _build("cnn", shape, n_classes=7, reg=reg, channels=(4, 8), fc=12)
    model.eval()
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(shape[0], 4), (4, 8)]
    fc = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert fc.in_features == 8 * (shape[1] // 4) * (shape[2] // 4)


def test_cnn_needs_images() -> None:
    with pytest.raises(ConfigError, match="cnn needs image inputs"):
        _build("cnn", (20,))


def test_batch_norm_layers_and_no_redundant_biases() -> None:
    mlp = _build("mlp", reg={"batch_norm": True}, hidden=(16, 8))
    assert sum(isinstance(m, nn.BatchNorm1d) for m in mlp.modules()) == 2
    hidden = [m for m in mlp.modules() if isinstance(m, nn.Linear)][:-1]
    assert all(m.bias is None for m in hidden)
    cnn = _build("cnn", reg={"batch_norm": True}, channels=(4, 8))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in cnn.modules()) == 2
    assert all(c.bias is None for c in cnn.modules() if isinstance(c, nn.Conv2d))
    plain = _build("mlp", hidden=(16,))
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())


def test_dropout_layers() -> None:
    assert not any(isinstance(m, nn.Dropout) for m in _build("mlp", hidden=(16, 8)).modules())
    rates = [m.p for m in _build("mlp", reg={"dropout": 0.4}, hidden=(16, 8)).modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.4, 0.4]
    cnn_single = [m.p for m in _build("cnn", reg={"dropout": 0.4}).modules() if isinstance(m, nn.Dropout)]
    assert cnn_single == [0.4]  # before the classifier only
    cnn_pair = [m.p for m in _build("cnn", reg={"dropout": (0.1, 0.5)}).modules() if isinstance(m, nn.Dropout)]
    assert cnn_pair == [0.1, 0.5]


def test_dropout_rates_must_match_the_layers() -> None:
    with pytest.raises(ConfigError, match="3 rates given for 2 hidden layers"):
        _build("mlp", reg={"dropout": (0.1, 0.2, 0.3)}, hidden=(16, 8))


@pytest.mark.parametrize("activation", [("relu", nn.ReLU), ("tanh", nn.Tanh), ("gelu", nn.GELU)])
def test_activation(activation: tuple[str, type]) -> None:
    name, cls = activation
    model = _build("mlp", hidden=(8, 8), activation=name)
    assert sum(isinstance(m, cls) for m in model.modules()) == 2


def _big_layer(init: str, activation: str = "relu", fan_in: int = 400, fan_out: int = 300) -> nn.Linear:
    model = _build("mlp", (fan_in,), n_classes=10, hidden=(fan_out,), init=init, activation=activation)
    return next(m for m in model.modules() if isinstance(m, nn.Linear))


def test_he_init_std() -> None:
    layer = _big_layer("he")
    assert float(layer.weight.detach().std()) == pytest.approx(math.sqrt(2 / 400), rel=0.03)
    assert float(layer.weight.detach().mean()) == pytest.approx(0.0, abs=0.002)
    assert torch.all(layer.bias == 0)


@pytest.mark.parametrize(("activation", "gain"), [("relu", math.sqrt(2)), ("tanh", 5 / 3)])
def test_xavier_init_std_and_bound(activation: str, gain: float) -> None:
    layer = _big_layer("xavier", activation)
    w = layer.weight.detach()
    assert float(w.std()) == pytest.approx(gain * math.sqrt(2 / (400 + 300)), rel=0.03)
    assert float(w.abs().max()) <= gain * math.sqrt(6 / (400 + 300)) + 1e-6
    assert torch.all(layer.bias == 0)


def test_default_init_is_torchs() -> None:
    w = _big_layer("default").weight.detach()
    assert float(w.std()) == pytest.approx(1 / math.sqrt(3 * 400), rel=0.03)  # U(-1/sqrt(fan_in), ..)
    assert float(w.abs().max()) <= 1 / math.sqrt(400)
    assert float(_big_layer("he").weight.detach().std()) > 2 * float(w.std())


def test_he_init_on_conv_uses_the_kernel_fan_in() -> None:
    model = _build("cnn", (3, 32, 32), channels=(64, 64), init="he")
    conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)


def test_same_seed_same_weights() -> None:
    a, b = _build("mlp", hidden=(16,)), _build("mlp", hidden=(16,))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


# --- residual MLP and CNN, LSTM ------------------------------------------------------------------


def test_residual_mlp_blocks_projections_and_sites() -> None:
    from reglab.models.blocks import ResidualBlock

    model = _build("mlp", reg={"batch_norm": True, "dropout": (0.1, 0.2, 0.3)}, hidden=(16, 16, 8), residual=True)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 3
    # a projection where the width changes (64 -> 16, 16 -> 8), the identity where it does not
    skips = [b.skip for b in blocks]
    assert isinstance(skips[0], nn.Linear) and skips[0].bias is None and skips[0].in_features == 64
    assert isinstance(skips[1], nn.Identity)
    assert isinstance(skips[2], nn.Linear) and (skips[2].in_features, skips[2].out_features) == (16, 8)
    for b in blocks:  # Linear-BN-act-Linear-BN; biases dropped before batch norm
        kinds = [type(m) for m in b.branch]
        assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d]
        assert all(m.bias is None for m in b.branch if isinstance(m, nn.Linear))
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.1, 0.2, 0.3]  # one rate per block
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)


def test_residual_cnn_blocks() -> None:
    from reglab.models.blocks import ResidualBlock

    model = _build("cnn", channels=(4, 4), residual=True)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2
    assert isinstance(blocks[0].skip, nn.Conv2d) and blocks[0].skip.kernel_size == (1, 1)
    assert isinstance(blocks[1].skip, nn.Identity)
    assert sum(isinstance(m, nn.Conv2d) for m in blocks[0].branch) == 2
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_lstm_reads_images_row_by_row_and_flat_inputs_one_feature_per_step() -> None:
    from reglab.models.lstm import SequenceView, sequence_shape

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)  # (N, C, H, W)
    seq = SequenceView()(x)
    assert seq.shape == (2, 4, 15) and sequence_shape((3, 4, 5)) == (4, 15)
    assert torch.equal(seq[1, 2], x[1, :, 2, :].flatten())  # step t: row t of every channel
    assert SequenceView()(torch.randn(2, 7)).shape == (2, 7, 1) and sequence_shape((7,)) == (7, 1)
    model = _build("lstm", (1, 28, 28), lstm_hidden=8)
    lstm = next(m for m in model.modules() if isinstance(m, nn.LSTM))
    assert (lstm.input_size, lstm.hidden_size) == (28, 8)  # sequential MNIST: 28 steps of 28 pixels


def test_new_model_fields_dump_only_when_set() -> None:
    assert set(ModelConfig(arch="cnn").model_dump()) == {"arch", "hidden", "activation", "channels", "fc", "init"}
    dumped = ModelConfig(arch="lstm", lstm_hidden=32, bidirectional=True).model_dump()
    assert dumped["lstm_hidden"] == 32 and dumped["bidirectional"] is True and "lstm_layers" not in dumped
    assert ModelConfig(residual=True).model_dump()["residual"] is True
    with pytest.raises(ConfigError, match=r"model\.lstm_layers: Input should be greater than or equal to 1"):
        RunConfig().override({"lstm_layers": 0})
    with pytest.raises(ConfigError, match="residual belongs to the built-in models"):
        RunConfig().override({"model": {"class_path": "m:N", "residual": True}})


@pytest.mark.parametrize(
    "model",
    [
        {"arch": "mlp"},
        {"arch": "cnn"},
        {"arch": "mlp", "residual": True},
        {"arch": "cnn", "residual": True},
        {"arch": "lstm", "lstm_layers": 2},
    ],
)
def test_offered_sites_are_the_sites_the_builders_ask_for(model: dict[str, object]) -> None:
    """What the config checks regularizers against (without building) is what the builder offers."""
    from reglab.models import MODELS, offered_sites
    from reglab.models.hooks import LayerHooks

    cfg = ModelConfig.model_validate({**model, "hidden": (8, 8), "channels": (4, 4), "lstm_hidden": 4})
    hooks = LayerHooks()
    MODELS.create(cfg.arch, cfg, (1, 8, 8), 10, hooks)
    assert offered_sites(cfg) == hooks.asked
