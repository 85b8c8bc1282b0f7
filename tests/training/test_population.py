"""Populations (training/population.py): members train as the single runs they stand for, each
with its own scalars, early stopping and stop requests; same seeds give the same population."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from reglab.config import RunConfig
from reglab.data.base import DataSplits
from reglab.errors import ConfigError
from reglab.training.engine import RunResult, fit
from reglab.training.population import PopulationRefused, fit_population, population_check, population_key

TINY = {"n_train": 300, "hidden": [32], "epochs": 2, "batch_size": 32, "device": "cpu", "population": "auto"}


def cfg(**over: Any) -> RunConfig:
    return RunConfig().override({**TINY, **over})


def losses(r: RunResult) -> list[float]:
    return [h["train_loss"] for h in r.history]


def timeless(r: RunResult) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "time"} for h in r.history]


def test_each_member_trains_as_its_single_run() -> None:
    """Same init, batch order, split, noise and dropout draws as fit: the histories agree."""
    cfgs = [
        cfg(seed=0, split_seed=0),
        cfg(seed=1, split_seed=1, lr=0.1, dropout=0.3, input_noise=0.2, l2=1e-3),
        cfg(seed=2, split_seed=2, label_smoothing=0.1, max_norm=1.0, weight_decay=1e-2, l1=1e-4),
    ]
    pops = fit_population(cfgs)
    for c, p in zip(cfgs, pops, strict=True):
        s = fit(c)
        assert p.status == s.status == "completed"
        assert losses(p) == pytest.approx(losses(s), rel=1e-4)
        for key in ("val_loss", "val_acc", "weight_l2", "penalty", "lr"):
            assert [h[key] for h in p.history] == pytest.approx([h[key] for h in s.history], rel=1e-4, abs=1e-7)
        assert set(p.final) == set(s.final) and set(p.history[0]) == set(s.history[0])
        assert set(s.info) <= set(p.info)
        assert p.final["test_acc"] == pytest.approx(s.final["test_acc"], abs=2 / 360)
        assert p.test_probs is not None and s.test_probs is not None and p.test_probs.shape == s.test_probs.shape


@pytest.mark.parametrize("opt", ["adam", "nesterov"])
def test_adaptive_and_momentum_optimizers_match_torch(opt: str) -> None:
    cfgs = [cfg(optimizer=opt, lr=1e-3 if opt == "adam" else 0.05, seed=s, grad_clip=0.5) for s in range(2)]
    for c, p in zip(cfgs, fit_population(cfgs), strict=True):
        assert losses(p) == pytest.approx(losses(fit(c)), rel=1e-4)


def test_same_seeds_give_identical_populations_and_members_ignore_their_company() -> None:
    cfgs = [cfg(seed=s, split_seed=s, dropout=0.2, input_noise=0.1) for s in range(3)]
    a, b = fit_population(cfgs), fit_population(cfgs)
    for x, y in zip(a, b, strict=True):
        assert timeless(x) == timeless(y) and x.final == y.final
    alone = fit_population(cfgs[1:2])[0]
    assert losses(alone) == pytest.approx(losses(a[1]), rel=1e-6)


def test_a_member_with_zero_lr_and_no_dropout_does_not_change() -> None:
    from reglab.training.network import build_network
    from reglab.training.rng import seeded_global_rng

    still = cfg(seed=3)
    still = still.model_copy(update={"train": still.train.model_copy(update={"lr": 0.0})})
    moving = cfg(seed=3, dropout=0.5, lr=0.1)
    res = fit_population([still, moving], keep_model=True)
    from reglab.data.streaming import open_data

    with seeded_global_rng(3):
        init = build_network(still, open_data(still.data).input_shape, 10)
    for w0, w1 in zip(init.parameters(), res[0].model.parameters(), strict=True):  # type: ignore[union-attr]
        assert torch.equal(w0, w1)
    moved = [p for p in res[1].model.parameters() if p.ndim == 2]  # type: ignore[union-attr]
    assert not torch.equal(moved[0], next(p for p in init.parameters() if p.ndim == 2))


def test_per_member_l2_and_lr_reach_their_member() -> None:
    """Members that differ only in l2 (or lr): the strong-l2 members end with smaller weights;
    the lr each member records is its own."""
    cfgs = [cfg(seed=0, l2=0.5), cfg(seed=0), cfg(seed=0, l2=0.5, lr=0.01)]
    r = fit_population(cfgs)
    assert r[0].final["weight_l2"] < 0.8 * r[1].final["weight_l2"] < 0.8 * r[2].final["weight_l2"] * 1.25
    assert [h["lr"] for h in r[2].history] == [0.01, 0.01]
    assert r[0].history[0]["penalty"] > 0 and r[1].history[0]["penalty"] == 0


def test_early_stopping_freezes_a_member_and_keeps_its_best_weights() -> None:
    """min_delta so large that no epoch after the first counts as better: each member stops at
    epoch 2 and is evaluated with its epoch-1 weights; an identical single run agrees."""
    es = {"early_stopping": {"patience": 1, "min_delta": 100.0}, "epochs": 5}
    cfgs = [cfg(seed=s, **es) for s in range(2)]
    for c, r in zip(cfgs, fit_population(cfgs), strict=True):
        assert r.info["epochs_run"] == 2 and r.final["best_epoch"] == 1
        assert r.info["early_stopping_stopped_epoch"] == 2
        assert r.final["weight_l2"] == pytest.approx(r.history[0]["weight_l2"], rel=1e-6)
        assert r.final["val_loss"] == pytest.approx(r.history[0]["val_loss"], rel=1e-5)
        s = fit(c)
        assert r.final["test_acc"] == pytest.approx(s.final["test_acc"], abs=1e-9)


def test_a_stop_request_reaches_only_its_member() -> None:
    """Member 0 pruned after epoch 1; the others go on to the end, unchanged by its leaving."""
    cfgs = [cfg(seed=s, epochs=3) for s in range(3)]
    full = fit_population(cfgs)
    seen: list[tuple[int, int]] = []

    def prune(i: int, rec: dict[str, float]) -> bool:
        seen.append((i, int(rec["epoch"])))
        return i == 0

    res = fit_population(cfgs, on_epoch=prune)
    assert res[0].status == "pruned" and len(res[0].history) == 1 and res[0].final == {}
    assert (0, 2) not in seen and (1, 3) in seen and (2, 3) in seen
    for a, b in zip(full[1:], res[1:], strict=True):
        assert losses(a) == losses(b) and a.final == b.final


def test_dropout_is_off_in_evaluation() -> None:
    """The final validation loss is the trained network's in eval mode (no dropout masks)."""
    from reglab.data.streaming import open_data

    c = cfg(dropout=0.5, input_dropout=0.2)
    r = fit_population([c, cfg(seed=1)], keep_model=True)[0]
    data = open_data(c.data)
    assert isinstance(data, DataSplits)
    assert r.model is not None and not r.model.training
    with torch.no_grad():
        logits = r.model(data.x_val)
    val_loss = float(torch.nn.functional.cross_entropy(logits, data.y_val))
    assert r.final["val_loss"] == pytest.approx(val_loss, rel=1e-5)
    again = fit_population([c, cfg(seed=1)])[0]
    assert timeless(again) == timeless(r)


def test_a_diverging_member_leaves_the_others_alone() -> None:
    cfgs = [cfg(seed=0), cfg(seed=0, lr=1e5)]
    ok, bad = fit_population(cfgs)
    single = fit(cfgs[1])
    assert bad.status == single.status == "diverged" and "non-finite" in (bad.reason or "")
    assert bad.diverged_epoch == single.diverged_epoch and bad.final == {}
    assert ok.status == "completed" and losses(ok) == pytest.approx(losses(fit(cfgs[0])), rel=1e-4)


def test_no_test_read_without_evaluate_test() -> None:
    from reglab.data.streaming import open_data

    cfgs = [cfg(seed=s) for s in range(2)]
    data = [open_data(cfgs[0].data)] * 2
    res = fit_population(cfgs, data, evaluate_test=False)
    assert data[0].test.reads == 0 and all("test_acc" not in r.final and r.test_probs is None for r in res)
    fit_population(cfgs, data)
    assert data[0].test.reads == 1  # once for both members, after training


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"population": "off"}, "train.population is off"),
        ({"arch": "lstm"}, "model.arch is lstm"),
        ({"mixup": 0.2}, "regularization.mixup"),
        ({"swa": True, "epochs": 4}, "regularization.swa"),
        ({"residual": True, "stochastic_depth": 0.2}, "regularization.stochastic_depth"),
        ({"task": "binary", "name": "breast_cancer"}, "data.task binary"),
    ],
)
def test_not_capable_configs_say_why(over: dict[str, Any], why: str) -> None:
    c = cfg(**over)
    key, reason = population_check(c)
    assert key is None and population_key(c) is None
    assert reason is not None and why in reason


def test_keys_ignore_member_scalars_but_not_shared_settings() -> None:
    a = population_key(cfg(seed=1, lr=0.3, l2=1e-3, dropout=0.2, split_seed=4, max_norm=2.0))
    assert a is not None and a == population_key(cfg())
    assert population_key(cfg(batch_size=64)) != a and population_key(cfg(epochs=3)) != a
    with pytest.raises(PopulationRefused):
        fit_population([cfg(), cfg(batch_size=64)])


def test_population_settings_stay_out_of_dumps_at_their_defaults() -> None:
    assert "population" not in RunConfig().model_dump()["train"]
    assert RunConfig().override({"population": "auto"}).model_dump()["train"]["population"] == "auto"
    with pytest.raises(ConfigError, match=r"train\.population:"):
        RunConfig().override({"population": "always"})
    with pytest.raises(ConfigError, match=r"train\.population_size"):
        RunConfig().override({"population_size": 0})


def _mean_ci(xs: list[float]) -> tuple[float, float]:
    m, s = statistics.mean(xs), statistics.stdev(xs)
    return m, 2.262 * s / math.sqrt(len(xs))  # t(0.975, 9)


def test_ten_seeds_single_and_population_agree_statistically() -> None:
    """10 seeds of the digits MLP trained one at a time and as one population: the mean
    validation accuracies agree within their 95 % confidence intervals."""
    cfgs = [cfg(seed=s, split_seed=s, n_train=None, hidden=[64], epochs=4, dropout=0.2) for s in range(10)]
    single = [fit(c, evaluate_test=False).final["val_acc"] for c in cfgs]
    pop = [r.final["val_acc"] for r in fit_population(cfgs, evaluate_test=False)]
    (m1, h1), (m2, h2) = _mean_ci(single), _mean_ci(pop)
    assert abs(m1 - m2) <= max(h1, h2)
    assert m1 > 0.8


CNN = {"arch": "cnn", "channels": [4, 8], "fc": 16}


@pytest.mark.parametrize(
    "net",
    [
        pytest.param(CNN, id="cnn"),
        pytest.param({**CNN, "residual": True, "batch_norm": True}, id="residual-cnn-bn"),
        pytest.param({"hidden": [32, 32], "residual": True}, id="residual-mlp"),
        pytest.param({"hidden": [32], "batch_norm": True}, id="mlp-bn"),
    ],
)
def test_cnn_residual_and_batch_norm_members_train_as_their_single_runs(net: dict[str, Any]) -> None:
    """Grouped convolutions, residual blocks and per-member batch-norm statistics: each member's
    history is its single run's; the kept network (batch-norm running statistics included) is."""
    cfgs = [
        cfg(seed=0, split_seed=0, **net),
        cfg(seed=1, split_seed=1, dropout=0.3, max_norm=1.0, l2=1e-3, lr=0.05, **net),
        cfg(seed=2, split_seed=2, input_dropout=0.2, weight_decay=1e-2, l1=1e-4, **net),
    ]
    pops = fit_population(cfgs, keep_model=True)
    for c, p in zip(cfgs, pops, strict=True):
        s = fit(c, keep_model=True)
        assert p.status == s.status == "completed"
        for key in ("train_loss", "val_loss", "weight_l2", "penalty"):
            assert [h[key] for h in p.history] == pytest.approx([h[key] for h in s.history], rel=1e-4, abs=1e-7)
        assert p.final["test_acc"] == pytest.approx(s.final["test_acc"], abs=2 / 360)
        assert p.model is not None and s.model is not None
        mine, theirs = p.model.state_dict(), s.model.state_dict()
        assert mine.keys() == theirs.keys()
        for k, v in theirs.items():
            assert torch.allclose(mine[k].float(), v.float(), rtol=1e-3, atol=1e-5), k


def test_the_gpu_layout_with_grouped_convolutions_computes_what_the_cpu_layout_does() -> None:
    """The stacked image layout (grouped convolutions, batch norm over P*C channels; the GPU's)
    run here on the CPU: the same logits, gradients and running statistics as the per-member
    layout, and as each member's own network."""
    from reglab.models import stacked as pn
    from reglab.training.network import build_network

    c = cfg(**CNN, residual=True, batch_norm=True)
    nets = [build_network(c.override({"seed": s}), (1, 8, 8), 10) for s in range(3)]
    comp = [pn.compile_network(n) for n in nets]
    flip = pn.transposed(comp[0].ops)
    x = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(0))
    got = []
    pairs = list(zip(nets, comp, strict=True))
    for split in (True, False):
        ps = [p.requires_grad_(True) for p in pn.stack([_named(n, k.params, True) for n, k in pairs], flip)]
        bufs = pn.stack([_named(n, k.buffers, False) for n, k in pairs], set())
        out = pn.run(comp[0].ops, ps, bufs, x, (1, 8, 8), train=True, split=split)
        got.append((out, torch.autograd.grad(out.square().sum(), ps), bufs))
    (o1, g1, b1), (o2, g2, b2) = got
    assert torch.allclose(o1, o2, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g1, g2, strict=True))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(b1, b2, strict=True))
    for k, net in enumerate(nets):
        assert torch.allclose(net.train()(x[k].view(5, 1, 8, 8)), o1[k], atol=1e-5)


def _named(net: torch.nn.Module, names: Sequence[str], params: bool) -> list[torch.Tensor]:
    found = dict(net.named_parameters() if params else net.named_buffers())
    return [found[n].detach().clone() for n in names]


def test_augmentation_is_drawn_by_each_member_as_its_single_run_draws_it() -> None:
    """Random affine, pad-and-crop, cutout and input noise: each member's own regularizers draw
    from its own generator, members without augmentation share the population unchanged."""
    aug = {"augment": {"shift": 0.1, "rotation": 10.0, "crop_padding": 1}}
    cfgs = [
        cfg(seed=0, **CNN, **aug),
        cfg(seed=1, **CNN, cutout=3, input_noise=0.1),
        cfg(seed=2, **CNN),
        cfg(seed=3, hidden=[32], **aug),
    ]
    assert population_key(cfgs[0]) == population_key(cfgs[1]) == population_key(cfgs[2])
    pops = fit_population(cfgs[:3]) + fit_population(cfgs[3:])
    for c, p in zip(cfgs, pops, strict=True):
        assert losses(p) == pytest.approx(losses(fit(c)), rel=1e-4)


def test_a_cnn_member_stops_early_on_its_own_and_populations_repeat() -> None:
    """Member 0 (a learning rate too small to improve by min_delta) stops after epoch 2 with its
    epoch-1 weights; member 1 trains on; the same seeds give the same population."""
    es = {"epochs": 4, "early_stopping": {"patience": 1, "min_delta": 1e-4}}
    cfgs = [cfg(seed=0, lr=1e-9, **es, **CNN), cfg(seed=1, lr=0.05, dropout=0.2, **es, **CNN)]
    a, b = fit_population(cfgs), fit_population(cfgs)
    assert [timeless(r) for r in a] == [timeless(r) for r in b] and [r.final for r in a] == [r.final for r in b]
    stopped, going = a
    assert stopped.info["epochs_run"] == 2 and stopped.final["best_epoch"] == 1 and going.info["epochs_run"] == 4
    single = fit(cfgs[0])
    assert stopped.final["test_acc"] == pytest.approx(single.final["test_acc"], abs=1e-9)
    assert stopped.final["val_loss"] == pytest.approx(single.final["val_loss"], rel=1e-5)


def test_ten_cnn_seeds_single_and_population_agree_statistically() -> None:
    net = {**CNN, "channels": [8, 16], "fc": 32, "optimizer": "adam", "lr": 3e-3, "dropout": 0.2}
    cfgs = [cfg(seed=s, split_seed=s, n_train=None, epochs=3, **net) for s in range(10)]
    single = [fit(c, evaluate_test=False).final["val_acc"] for c in cfgs]
    pop = [r.final["val_acc"] for r in fit_population(cfgs, evaluate_test=False)]
    (m1, h1), (m2, h2) = _mean_ci(single), _mean_ci(pop)
    assert abs(m1 - m2) <= max(h1, h2)
    assert m1 > 0.7


OWN_NETS = """
from torch import nn


class Small(nn.Module):
    def __init__(self, in_features, n_classes, width=16, dropout=0.0):
        super().__init__()
        drop = [nn.Dropout(dropout)] if dropout else []
        layers = [nn.Flatten(), nn.Linear(in_features, width), nn.Tanh(), *drop, nn.Linear(width, n_classes)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class Normed(nn.Module):
    def __init__(self, in_features, n_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(in_features), nn.Linear(in_features, n_classes))

    def forward(self, x):
        return self.body(x)
"""


@pytest.fixture
def own_nets(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "popnets.py").write_text(OWN_NETS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "popnets", raising=False)
    return "popnets"


def own(name: str, **over: Any) -> RunConfig:
    base = {k: v for k, v in TINY.items() if k != "hidden"}
    return RunConfig().override({**base, "model": {"class_path": f"popnets:{name}"}, **over})


def test_your_own_model_trains_as_a_population_with_torch_func(own_nets: str) -> None:
    """vmap over functional_call: each member is its single run (its scalars, its kept weights);
    a model with buffers or its own dropout falls back, saying why."""
    cfgs = [own("Small", seed=0), own("Small", seed=1, l2=1e-3, lr=0.05, max_norm=1.0), own("Small", seed=2, l1=1e-4)]
    assert len({population_key(c) for c in cfgs}) == 1 and population_key(cfgs[0]) is not None
    for c, p in zip(cfgs, fit_population(cfgs, keep_model=True), strict=True):
        s = fit(c, keep_model=True)
        assert losses(p) == pytest.approx(losses(s), rel=1e-4)
        assert p.final["test_acc"] == pytest.approx(s.final["test_acc"], abs=2 / 360)
        assert p.model is not None and s.model is not None
        for k, v in s.model.state_dict().items():
            assert torch.allclose(p.model.state_dict()[k], v, rtol=1e-3, atol=1e-5), k
    with pytest.raises(PopulationRefused, match="buffers"):
        fit_population([own("Normed", seed=0), own("Normed", seed=1)])
    with pytest.raises(PopulationRefused, match=r"torch\.func cannot vectorize your own model"):
        fit_population([own("Small", seed=0, dropout=0.3), own("Small", seed=1, dropout=0.3)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "network",
    [{}, {"batch_norm": True, **CNN}],  # MLP; grouped convolutions and batch norm over P*C channels
    ids=["mlp", "cnn-bn"],
)
def test_population_on_cuda_matches_cpu(network: dict[str, Any]) -> None:
    cfgs = [cfg(seed=s, device="cuda", l2=1e-3 * s, **network) for s in range(3)]
    gpu = fit_population(cfgs)
    cpu = fit_population([c.override({"device": "cpu"}) for c in cfgs])
    for g, c in zip(gpu, cpu, strict=True):
        assert g.info["device"].startswith("cuda")
        assert losses(g) == pytest.approx(losses(c), rel=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_population_on_cuda_with_dropout_trains() -> None:
    cfgs = [cfg(seed=s, device="cuda", dropout=0.3, input_noise=0.1, epochs=3) for s in range(4)]
    res = fit_population(cfgs)
    assert all(r.status == "completed" and r.final["val_acc"] > 0.5 for r in res)
