"""DropConnect, stochastic depth, variational dropout and weight drop do what their papers say
(measured on the masks and outputs), and the networks without them are exactly as before."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from reglab.config import ModelConfig, RunConfig
from reglab.data.base import DataSplits
from reglab.errors import ConfigError
from reglab.models import build_model
from reglab.models.lstm import LSTMLayer, lstm_steps
from reglab.regularizers import REGULARIZERS, Regularizer, TrainContext, build_regularizers
from reglab.regularizers import functional as Fn
from reglab.regularizers.dropconnect import DropConnect, connection_layers
from reglab.regularizers.layers import DropConnectWeight, DropPath
from reglab.training.engine import fit

ROOT = Path(__file__).resolve().parents[2]


def _hooks(**reg: Any) -> list[Regularizer]:
    """The regularizers of these settings, from the regularization section alone (a run config
    would refuse those that do not fit its model before a builder could)."""
    section = type(RunConfig().regularization).model_validate(reg)
    return [r for _, spec in REGULARIZERS.items() if (r := spec.from_section(section)) is not None]


def _binomial_tol(p: float, n: int) -> float:
    """4.5 standard deviations of a share of n Bernoulli(p) draws (false alarm ~1e-5)."""
    return 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9


def _ctx(x: Tensor) -> TrainContext:
    return TrainContext(torch.Generator(), 10, x.ndim == 4, 2, [], x, len(x))


# --- DropConnect -------------------------------------------------------------------------------


def test_dropconnect_masks_at_rate_p_and_rescales_the_kept_weights() -> None:
    w = torch.randn(400, 500)
    p = 0.3
    out = Fn.dropconnect(w, p, torch.Generator().manual_seed(0))
    dropped = out == 0
    assert float(dropped.float().mean()) == pytest.approx(p, abs=_binomial_tol(p, w.numel()))
    assert torch.allclose(out[~dropped], w[~dropped] / (1 - p))
    # the generator decides the mask: same seed same mask, other seed other mask
    again = Fn.dropconnect(w, p, torch.Generator().manual_seed(0))
    other = Fn.dropconnect(w, p, torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and not torch.equal(out, other)
    assert Fn.dropconnect(w, 0.0) is w


def _mlp_and_copy(arch: str = "mlp") -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, hidden=(64, 32), channels=(4, 8), fc=16), (1, 8, 8), 10)
    return model, copy.deepcopy(model)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_dropconnect_masks_weights_only_in_training(arch: str) -> None:
    model, plain = _mlp_and_copy(arch)
    x = torch.randn(32, 1, 8, 8)
    reg = DropConnect(0.4)
    reg.setup(model, _ctx(x))
    layers = connection_layers(model)
    assert len(layers) == len(connection_layers(plain)) >= 3  # every linear and conv layer
    model.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))  # evaluation: the plain weights
    model.train()
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
        torch.manual_seed(2)
        c = model(x)
    assert torch.equal(a, b) and not torch.equal(a, c)  # a fresh mask per pass, from the RNG
    for layer, ref in zip(layers, connection_layers(plain), strict=True):
        w = layer.weight  # a masked draw
        dropped = w == 0
        assert float(dropped.float().mean()) == pytest.approx(0.4, abs=_binomial_tol(0.4, w.numel()) + 0.02)
        assert torch.allclose(w[~dropped], ref.weight[~dropped] / 0.6)
        assert layer.bias is None or torch.equal(layer.bias, ref.bias)  # biases are not masked


def test_dropconnect_trains_the_original_weights_and_leaves_a_plain_model() -> None:
    model, plain = _mlp_and_copy()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    params = list(model.parameters())
    reg = DropConnect(0.5)
    reg.setup(model, _ctx(x))
    assert {id(p) for p in model.parameters()} == {id(p) for p in params}  # the optimizer's tensors
    nn.functional.cross_entropy(model(x), y).backward()
    first = connection_layers(model)[0]
    grad = first.parametrizations.weight.original.grad  # type: ignore[union-attr]
    assert grad is not None and float((grad == 0).float().mean()) > 0.3  # dropped weights get no gradient
    out = reg.on_train_end(model, _ctx(x))
    assert set(out.state_dict()) == set(plain.state_dict())  # the network it was built as
    for k, v in out.state_dict().items():
        assert torch.equal(v, plain.state_dict()[k])
    assert all(type(m) in (nn.Linear, nn.Flatten, nn.ReLU) for m in out.modules() if m is not out)


@pytest.mark.parametrize(
    "extra", [{}, {"early_stopping": {"patience": 1}}, {"swa": {"start": 0.5}}, {"snapshot": True}]
)
def test_dropconnect_in_a_run_returns_a_plain_model(
    extra: dict[str, Any], load: Callable[..., DataSplits], tiny_cfg: RunConfig
) -> None:
    cfg = tiny_cfg.override({"dropconnect": 0.3, "epochs": 4, **extra})
    result = fit(cfg, load(n_train=150), keep_model=True)
    assert result.status == "completed" and "dropconnect" in result.info["regularizers"]
    model = result.model
    assert model is not None
    assert not any(hasattr(m, "parametrizations") for m in model.modules())
    assert not any(".parametrizations." in k for k in model.state_dict())


# --- stochastic depth --------------------------------------------------------------------------


def _residual(p_last: float = 0.0, arch: str = "mlp", **model: Any) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, residual=True, **{"hidden": (8, 8, 8, 8), "channels": (4, 8), **model})
    return build_model(cfg, (1, 8, 8), 10, _hooks(stochastic_depth=p_last) if p_last else [])


def test_stochastic_depth_rates_grow_linearly_with_depth() -> None:
    model = _residual(0.8)
    assert [m.p for m in model.modules() if isinstance(m, DropPath)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    cnn = _residual(0.5, arch="cnn")
    assert [m.p for m in cnn.modules() if isinstance(m, DropPath)] == pytest.approx([0.25, 0.5])


def test_stochastic_depth_drops_each_block_at_its_rate() -> None:
    model = _residual(0.8)
    drops = [m for m in model.modules() if isinstance(m, DropPath)]
    counts = {id(d): [0, 0] for d in drops}  # dropped rows, rows

    def count(module: nn.Module, inputs: tuple[Tensor], output: Tensor) -> None:
        (x,) = inputs
        gone = (output == 0).all(1) & (x != 0).any(1)
        kept = ~gone
        assert torch.allclose(output[kept], x[kept] / (1 - module.p))  # type: ignore[operator]
        counts[id(module)][0] += int(gone.sum())
        counts[id(module)][1] += len(x)

    for d in drops:
        d.register_forward_hook(count)
    model.train()
    with torch.no_grad():
        for _ in range(40):
            model(torch.randn(64, 1, 8, 8))
    for d in drops:
        dropped, n = counts[id(d)]
        assert n == 40 * 64
        assert dropped / n == pytest.approx(d.p, abs=_binomial_tol(d.p, n))


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_stochastic_depth_is_identity_plus_block_in_evaluation(arch: str) -> None:
    with_sd, plain = _residual(0.5, arch), _residual(0.0, arch)  # same seed: same weights
    x = torch.randn(16, 1, 8, 8)
    with_sd.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(with_sd(x), plain(x))
        with_sd.train()
        assert not torch.equal(with_sd(x), plain(x))
    # the block itself: act(skip(x) + branch(x)), the skip a projection where the width changes
    block = next(m for m in plain.modules() if type(m).__name__ == "ResidualBlock")
    h = torch.randn(5, 64) if arch == "mlp" else torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(h), torch.relu(block.skip(h) + block.branch(h)))
    assert not isinstance(block.skip, nn.Identity)


def test_drop_path_draws_per_example_from_the_generator() -> None:
    x = torch.ones(10_000, 3)
    out = Fn.drop_path(x, 0.25, torch.Generator().manual_seed(0))
    rows = out[:, 0]
    assert torch.equal(out, rows[:, None].expand_as(out))  # a whole example's branch at once
    assert float((rows == 0).float().mean()) == pytest.approx(0.25, abs=_binomial_tol(0.25, 10_000))
    assert torch.allclose(rows[rows != 0], torch.full_like(rows[rows != 0], 1 / 0.75))
    assert not torch.equal(out, Fn.drop_path(x, 0.25, torch.Generator().manual_seed(1)))


# --- the LSTM: variational dropout and weight drop ---------------------------------------------


def _lstm(bidirectional: bool = False, **reg: Any) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="lstm", lstm_hidden=6, lstm_layers=2, bidirectional=bidirectional)
    return build_model(cfg, (1, 5, 4), 3, _hooks(**reg))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_step_loop_is_torchs_lstm(bidirectional: bool) -> None:
    """With masks of ones the readable loop computes what the fused nn.LSTM does."""
    layer = LSTMLayer(4, 6, bidirectional, [nn.Identity()], [])
    x = torch.randn(3, 7, 4)
    with torch.no_grad():
        assert torch.allclose(layer(x), layer.lstm(x)[0], atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_variational_masks_are_constant_over_time_and_differ_between_sequences(bidirectional: bool) -> None:
    model = _lstm(bidirectional, variational_dropout=0.5)
    layers = [m for m in model.modules() if isinstance(m, LSTMLayer)]
    masks: dict[int, list[Tensor]] = {id(layer): [] for layer in layers}
    for layer in layers:
        assert layer.state is not None
        layer.state.register_forward_hook(lambda m, i, out, key=id(layer): masks[key].append(out))
    x = torch.randn(8, 1, 5, 4)
    model.train()
    with torch.no_grad():
        y = model(x)
    # drawn once per forward pass: an input and a state mask per direction, each (N, width)
    directions = 2 if bidirectional else 1
    for layer in layers:
        drawn = masks[id(layer)]
        assert len(drawn) == 2 * directions
        for mask in drawn:
            assert set(mask.unique().tolist()) <= {0.0, 2.0}
            assert len({tuple(row.tolist()) for row in mask}) > 1  # sequences get different masks
    # and used at every step: the loop with those masks, run by hand, reproduces the output
    h = model[0](x)  # SequenceView: 5 steps of 4 features
    for layer in layers:
        drawn = masks[id(layer)]
        outs = []
        for k, d in enumerate(layer.directions):
            w = [getattr(layer.lstm, f"{n}_l0{d}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            seq = h if d == "" else h.flip(1)
            with torch.no_grad():
                o = lstm_steps(seq, *w, drawn[2 * k], drawn[2 * k + 1])
            outs.append(o if d == "" else o.flip(1))
        h = torch.cat(outs, 2)
    last = torch.cat([h[:, -1, :6], h[:, 0, 6:]], 1) if bidirectional else h[:, -1]
    with torch.no_grad():
        assert torch.allclose(model[-1](last), y, atol=1e-6)
    model.eval()
    plain = _lstm(bidirectional)
    plain.eval()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))  # evaluation: the plain LSTM


def test_weight_drop_masks_only_the_hidden_to_hidden_weights() -> None:
    model = _lstm(True, weight_drop=0.5)
    layers = [m for m in model.modules() if isinstance(m, LSTMLayer)]
    seen: list[tuple[Tensor, Tensor]] = []
    for layer in layers:
        assert layer.weight is not None and layer.state is None
        assert [type(m) for m in layer.weight] == [DropConnectWeight]
        layer.weight.register_forward_hook(lambda m, i, out: seen.append((i[0], out)))
    x = torch.randn(8, 1, 5, 4)
    model.train()
    with torch.no_grad():
        y = model(x)
    assert len(seen) == 4  # one mask per direction and layer, per forward pass
    hh = [getattr(layer.lstm, f"weight_hh_l0{d}") for layer in layers for d in layer.directions]
    for (w, masked), ref in zip(seen, hh, strict=True):
        assert w is ref  # only the recurrent weights go through the mask
        dropped = masked == 0
        assert float(dropped.float().mean()) == pytest.approx(0.5, abs=_binomial_tol(0.5, w.numel()))
        assert torch.allclose(masked[~dropped], 2 * w[~dropped])
    # the output is the plain LSTM's with the masked recurrent weights: inputs weights untouched
    h = model[0](x)
    it = iter(seen)
    for layer in layers:
        params = dict(layer.lstm.named_parameters())
        for d in layer.directions:
            params[f"weight_hh_l0{d}"] = next(it)[1]
        with torch.no_grad():
            h = functional_call(layer.lstm, params, (h,))[0]
    with torch.no_grad():
        assert torch.allclose(model[-1](torch.cat([h[:, -1, :6], h[:, 0, 6:]], 1)), y, atol=1e-6)
    model.eval()
    plain = _lstm(True)
    plain.eval()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


def test_dropout_sits_between_lstm_layers_and_before_the_classifier() -> None:
    model = _lstm(dropout=(0.1, 0.2), input_dropout=0.3)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["SequenceView", "Dropout", "LSTMLayer", "Dropout", "LSTMLayer", "LastStep", "Dropout", "Linear"]
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.3, 0.1, 0.2]
    fused = [m for m in model.modules() if isinstance(m, LSTMLayer)]
    assert all(m.state is None and m.weight is None for m in fused)  # dropout alone keeps the fused LSTM


REFUSED = [
    (
        {"arch": "mlp", "variational_dropout": 0.3},
        r"variational_dropout: acts on recurrent layers: set model\.arch: lstm",
    ),
    ({"arch": "cnn", "weight_drop": 0.3}, r"weight_drop: acts on recurrent layers: set model\.arch: lstm"),
    ({"arch": "mlp", "stochastic_depth": 0.3}, r"stochastic_depth: needs residual blocks: set model\.residual: true"),
    ({"arch": "lstm", "stochastic_depth": 0.3}, r"stochastic_depth: needs residual blocks"),
    ({"arch": "lstm", "batch_norm": True}, r"batch_norm: needs layers to normalize: arch mlp or cnn"),
]


@pytest.mark.parametrize(("settings", "message"), REFUSED)
def test_regularizers_for_other_networks_are_refused_when_the_config_is_read(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=f"regularization\\.{message}") as err:
        RunConfig().override(settings)
    assert f"(model.arch is {settings['arch']})" in str(err.value)


@pytest.mark.parametrize(("settings", "message"), REFUSED)
def test_and_by_the_builders_of_the_built_in_models(settings: dict[str, Any], message: str) -> None:
    """The safety net for networks whose sites the config cannot know: the build itself refuses."""
    model = ModelConfig(arch=settings.pop("arch"), lstm_hidden=4)
    with pytest.raises(ConfigError, match=message):
        build_model(model, (1, 8, 8), 10, _hooks(**settings))


def test_residual_is_refused_for_the_lstm() -> None:
    with pytest.raises(ConfigError, match=r"model: residual: residual blocks exist for arch mlp and cnn"):
        RunConfig().override({"arch": "lstm", "residual": True})


@pytest.mark.parametrize("reg", [{}, {"variational_dropout": 0.2, "weight_drop": 0.3, "dropout": 0.1}])
def test_the_lstm_learns_a_sequential_task(reg: dict[str, Any], load: Callable[..., DataSplits]) -> None:
    """Digits read row by row (8 steps of 8 pixels): far above chance (0.1) after a few epochs."""
    cfg = RunConfig().override(
        {"arch": "lstm", "lstm_hidden": 32, "n_train": 400, "epochs": 4, "optimizer": "adam", "lr": 0.01}
    )
    result = fit(cfg.override({"device": "cpu", **reg}), load(n_train=400))
    assert result.status == "completed"
    assert result.final["val_acc"] > 0.6, result.final


# --- nothing changes while the new options are off ---------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def test_dumps_and_fingerprints_are_as_before_the_new_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashes taken before the LSTM, residual networks and these regularizers existed (from the
    project's folder, as their paths were then fingerprinted relative to the working directory: the
    keys such a stored study is still recognised by - see ``StudySpec.located``)."""
    from reglab.study import load_study

    monkeypatch.chdir(ROOT)

    assert _digest(RunConfig().override({"arch": "mlp"}).model_dump(mode="json")) == "b5a9fd0126772ae4"
    assert _digest(RunConfig().override({"arch": "cnn"}).model_dump(mode="json")) == "2c9cbcd1c9d61fb9"
    before = {
        "examples/mnist_mlp_l2_dropout.yaml": "c5219c221fab13c5",
        "examples/mnist_cnn_l2_dropout_bn.yaml": "07aa38572b81d05a",
        "examples/fashion_mnist_mlp.yaml": "6c779f27dd6ed4a1",
        # the demo itself changed (issue 15: an over-fitting regime), so its fingerprint is not listed
    }
    for path, fingerprint in before.items():
        assert load_study(ROOT / path).located(None).fingerprint() == fingerprint, path
    on = RunConfig().override({"dropconnect": 0.1, "arch": "lstm", "lstm_hidden": 64})
    dumped = on.model_dump()
    assert dumped["regularization"]["dropconnect"] == 0.1 and dumped["model"]["lstm_hidden"] == 64
    assert RunConfig.model_validate(dumped) == on


@pytest.mark.parametrize(
    ("overrides", "train_loss", "test_loss"),
    [  # measured before the new options existed, on one machine: another machine's float kernels (BLAS,
        # vector width) differ in the last bits, so the comparison allows 1e-6 relative - far below what
        # any change to the networks, the regularizers or the batch order moves (1e-3 and more)
        ({"arch": "mlp"}, 2.186617635091146, 2.1454107342988338),
        ({"arch": "cnn", "dropout": 0.3, "batch_norm": True}, 2.2529864501953125, 2.263690066536821),
        ({"arch": "mlp", "dropout": 0.3, "batch_norm": True, "max_norm": 2.0}, 1.8409065755208334, 1.841844309007225),
    ],
)
def test_training_results_are_as_before_the_new_options(
    overrides: dict[str, Any], train_loss: float, test_loss: float, tiny_cfg: RunConfig, load: Callable[..., DataSplits]
) -> None:
    result = fit(tiny_cfg.override(overrides), load(n_train=150))
    assert result.history[-1]["train_loss"] == pytest.approx(train_loss, rel=1e-6, abs=0)
    assert result.final["test_loss"] == pytest.approx(test_loss, rel=1e-6, abs=0)


def test_the_example_studies_use_the_new_networks_and_regularizers() -> None:
    from reglab.study import load_study

    lstm = load_study(ROOT / "examples" / "lstm-mnist-dropout.yaml")
    assert {a.name: a.config.model.arch for a in lstm.arm_list} == dict.fromkeys(lstm.arms, "lstm")
    built = {a.name: [r.name for r in build_regularizers(a.config)] for a in lstm.arm_list}
    assert built == {
        "none": [],
        "dropout": ["dropout"],
        "variational_dropout": ["variational_dropout"],
        "weight_drop": ["weight_drop"],
    }
    res = load_study(ROOT / "examples" / "residual-stochastic-depth.yaml")
    assert all(a.config.model.residual for a in res.arm_list)
    assert [a.config.regularization.stochastic_depth for a in res.arm_list] == [0.0, 0.2, 0.5]  # type: ignore[attr-defined]
    for spec in (lstm, res):
        assert Path(spec.data.data_dir).resolve() == (ROOT.parent / "shared" / "data").resolve()
        assert len(spec.seed_list) == 5
