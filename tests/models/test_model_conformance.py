"""Every registered model (and the residual variants of the MLP and CNN) and initialization, tested
the same way (a newly registered one is picked up here): the output shape for each input shape the
model supports (others are refused with a ConfigError naming the shape), the same weights for the
same seed, and every initialization applied to every linear and conv layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reglab.config import ModelConfig, RunConfig
from reglab.errors import ConfigError
from reglab.models import MODELS, build_model
from reglab.models.init import INITIALIZATIONS

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (20,)]
SMALL = {"hidden": (16, 8), "channels": (4, 8), "fc": 12, "lstm_hidden": 6, "lstm_layers": 2}
# every registered arch, and the built-in variants: residual MLP/CNN, bidirectional LSTM
VARIANTS = [*MODELS.names(), "mlp+residual", "cnn+residual", "lstm+bidirectional"]


def _build(arch: str, shape: tuple[int, ...], init: str = "default", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    name, _, option = arch.partition("+")
    return build_model(ModelConfig(arch=name, init=init, **SMALL, **({option: True} if option else {})), shape, 5)


def test_the_config_accepts_exactly_the_registered_names() -> None:
    schema = ModelConfig.model_json_schema()["properties"]
    assert schema["arch"]["enum"] == MODELS.names() and schema["init"]["enum"] == INITIALIZATIONS.names()
    for arch in MODELS.names():
        assert ModelConfig(arch=arch).arch == arch
    with pytest.raises(ConfigError, match=r"model\.arch: unknown model 'rnn'; valid choices: mlp, cnn, lstm"):
        RunConfig().override({"arch": "rnn"})
    with pytest.raises(ConfigError, match=r"model\.init: unknown initialization 'lecun'"):
        RunConfig().override({"init": "lecun"})


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown model 'rnn'; valid choices: mlp, cnn, lstm"):
        MODELS.get("rnn")
    with pytest.raises(ConfigError, match="unknown initialization 'lecun'; valid choices: default, he, xavier"):
        INITIALIZATIONS.get("lecun")


@pytest.mark.parametrize("arch", VARIANTS)
def test_output_shape_for_every_supported_input(arch: str) -> None:
    supported = 0
    for shape in SHAPES:
        try:
            model = _build(arch, shape)
        except ConfigError as err:
            assert str(shape) in str(err)
            continue
        supported += 1
        model.eval()
        assert model(torch.randn(3, *shape)).shape == (3, 5)
    assert supported >= 1


@pytest.mark.parametrize("arch", VARIANTS)
def test_same_seed_same_weights_other_seed_other_weights(arch: str) -> None:
    a, b, c = _build(arch, (1, 8, 8)), _build(arch, (1, 8, 8)), _build(arch, (1, 8, 8), seed=1)
    pa, pb, pc = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb)
    assert not torch.equal(pa, pc)


@pytest.mark.parametrize("arch", VARIANTS)
@pytest.mark.parametrize("init", INITIALIZATIONS.names())
def test_every_initialization_reaches_every_layer(arch: str, init: str) -> None:
    base = _build(arch, (1, 8, 8))
    model = _build(arch, (1, 8, 8), init)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    base_layers = [m for m in base.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    assert layers
    for layer, ref in zip(layers, base_layers, strict=True):
        assert torch.isfinite(layer.weight).all()
        if init == "default":
            assert torch.equal(layer.weight, ref.weight)
        else:  # a different distribution than torch's, and zero biases
            assert not torch.equal(layer.weight, ref.weight)
            assert layer.bias is None or not layer.bias.any()
