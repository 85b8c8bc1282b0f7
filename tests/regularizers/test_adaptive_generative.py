"""Adaptive augmentation (Karras et al. 2020) and generative augmentation (a conditional VAE,
Kingma & Welling 2014; Sohn et al. 2015): what they do, measured on runs that take milliseconds."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

import reglab.training.engine as engine
from reglab.config import RunConfig
from reglab.data.base import DataSplits, TestSplit
from reglab.errors import ConfigError
from reglab.regularizers import TrainContext, build_regularizers
from reglab.regularizers import functional as Fn
from reglab.regularizers.adaptive_augment import AdaptiveAugment
from reglab.regularizers.generative_augment import GenerativeAugment, n_generated
from reglab.training.engine import fit

# --- adaptive augmentation ---------------------------------------------------------------------

ADAPTIVE = {"adaptive_augment": {"target": 0.05, "ramp_epochs": 5}}
RUN = {"batch_size": 32, "device": "cpu", "lr": 0.1, "epochs": 12}


def _p(result: Any) -> list[float]:
    return [h["adaptive_augment_p"] for h in result.history]


def test_the_controller_steps_towards_the_target_and_stays_in_0_1() -> None:
    assert Fn.ada_update(0.0, 0.2, 0.05, 0.25) == 0.25
    assert Fn.ada_update(0.5, 0.0, 0.05, 0.25) == 0.25
    assert Fn.ada_update(0.5, 0.05, 0.05, 0.25) == 0.5  # at the target: unchanged
    assert Fn.ada_update(0.9, 1.0, 0.05, 0.25) == 1.0
    assert Fn.ada_update(0.1, -1.0, 0.05, 0.25) == 0.0


def test_with_probability_transforms_about_p_of_the_examples() -> None:
    x = torch.zeros(4000, 3)
    gen = torch.Generator().manual_seed(0)
    out = Fn.with_probability(x, 0.3, gen, lambda t: t + 1)
    share = float((out[:, 0] == 1).float().mean())
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)
    assert torch.equal(x, torch.zeros(4000, 3))  # the input is not changed in place
    assert torch.equal(Fn.with_probability(x, 0.0, gen, lambda t: t + 1), x)


@pytest.mark.parametrize("target, expected", [(-1.0, 1.0), (1.0, 0.0)])
def test_p_is_recorded_per_epoch_and_bounded(
    target: float, expected: float, tiny_cfg: RunConfig, tiny_digits: DataSplits
) -> None:
    """A target the gap always exceeds drives p to 1 and keeps it there, one it never reaches keeps
    it at 0: p is recorded for every epoch with the signal it reacted to, and never leaves [0, 1]."""
    cfg = tiny_cfg.override({"epochs": 5, "adaptive_augment": {"target": target, "ramp_epochs": 0.5, "p_init": 0.5}})
    r = fit(cfg, tiny_digits)
    ps = _p(r)
    assert len(ps) == len(r.history) == 5
    assert ps[0] == 0.5 and all(p == expected for p in ps[1:])
    assert all("adaptive_augment_signal" in h for h in r.history)
    signal = r.history[0]["train_acc"] - r.history[0]["val_acc"]
    assert r.history[0]["adaptive_augment_signal"] == pytest.approx(signal)


def test_p_rises_when_the_network_overfits_and_stays_low_when_it_does_not(load: Callable[..., DataSplits]) -> None:
    """A wide network on 100 digits over-fits (train accuracy far above validation): p rises. A
    network of 8 hidden units on all 1,222 training digits does not: p stays near 0."""
    small, full = load(n_train=100), load()
    overfit, fine = [], []
    for seed in range(3):
        cfg = RunConfig().override(RUN).override(ADAPTIVE).override({"seed": seed})
        overfit.append(_p(fit(cfg.override({"n_train": 100, "hidden": (256,)}), load(n_train=100))))
        fine.append(_p(fit(cfg.override({"hidden": (8,)}), load())))
    assert small.test.reads == 0 and full.test.reads == 0
    mean_over = sum(map(sum, overfit)) / sum(map(len, overfit))
    mean_fine = sum(map(sum, fine)) / sum(map(len, fine))
    assert mean_over > 0.15, overfit
    assert max(max(p) for p in overfit) >= 0.4, overfit
    assert mean_fine < 0.05 and max(max(p) for p in fine) <= 0.2, fine


def test_p_scales_how_many_examples_are_augmented() -> None:
    aug = AdaptiveAugment(RunConfig().override({"adaptive_augment": {"noise": 1.0}}).regularization.adaptive_augment)
    x = torch.zeros(2000, 1, 8, 8)
    ctx = TrainContext(torch.Generator().manual_seed(0), 10, True, 3, [], x, 2000)
    for p in (0.0, 0.25, 0.75):
        aug.p = p
        out, _ = aug.transform_batch(x, torch.zeros(2000, dtype=torch.long), ctx)
        changed = float((out.flatten(1) != 0).any(1).float().mean())
        assert abs(changed - p) < 0.05, (p, changed)


def test_adaptive_augment_refuses_no_transform_and_plain_augment() -> None:
    with pytest.raises(ConfigError, match=r"regularization\.adaptive_augment: set at least one transform"):
        RunConfig().override({"adaptive_augment": {"shift": 0, "rotation": 0, "scale": 0}})
    with pytest.raises(ConfigError, match="augment and adaptive_augment cannot be combined"):
        RunConfig().override({"adaptive_augment": True, "augment": {"shift": 0.1}})


def test_acc_gap_needs_accuracy() -> None:
    aug = AdaptiveAugment(RunConfig().override({"adaptive_augment": True}).regularization.adaptive_augment)
    with pytest.raises(ConfigError, match=r"adaptive_augment\.signal: acc_gap needs accuracy"):
        aug.signal({"train_loss": 1.0, "val_loss": 2.0})


# --- generative augmentation -------------------------------------------------------------------

GEN = {"generative_augment": {"ratio": 0.5, "vae_epochs": 3, "hidden": 32, "latent": 4}}


class ValGuardedSplits(DataSplits):
    """Counts reads of the validation split, as :class:`TestSplit` counts those of the test split."""

    val_reads: int = 0

    def __getattribute__(self, name: str) -> Any:
        if name in ("x_val", "y_val"):
            object.__setattr__(self, "val_reads", object.__getattribute__(self, "val_reads") + 1)
        return object.__getattribute__(self, name)


def _guarded(data: DataSplits) -> ValGuardedSplits:
    return ValGuardedSplits(**{f.name: getattr(data, f.name) for f in dataclasses.fields(data)})


def test_the_vae_learns_from_the_training_split_only(
    tiny_cfg: RunConfig, load: Callable[..., DataSplits], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the VAE trains neither validation nor test split is read (both guards count), and its
    samples do not change when the validation and test data are replaced by noise - but they do
    when the training data change."""
    cfg = tiny_cfg.override(GEN)
    seen: list[tuple[int, int]] = []
    setup = GenerativeAugment.setup

    def spy(self: GenerativeAugment, model: torch.nn.Module, ctx: TrainContext) -> None:
        setup(self, model, ctx)
        seen.append((data.val_reads, data.test.reads))

    monkeypatch.setattr(GenerativeAugment, "setup", spy)
    data = _guarded(load(n_train=cfg.data.n_train))
    a = fit(cfg, data)
    assert seen == [(0, 0)]
    assert data.val_reads > 0 and data.test.reads == 1  # the guards see the run's later reads

    noisy = load(n_train=cfg.data.n_train)
    g = torch.Generator().manual_seed(1)
    noisy.x_val = torch.randn(noisy.x_val.shape, generator=g)
    noisy.y_val = torch.randint(0, 10, noisy.y_val.shape, generator=g)
    noisy.test = TestSplit(torch.randn(noisy.test._x.shape, generator=g), noisy.test._y)
    data = _guarded(noisy)
    b = fit(cfg, data)
    assert b.info["generative_samples"] == a.info["generative_samples"]
    assert b.info["generative_vae_loss"] == a.info["generative_vae_loss"]

    other = load(n_train=cfg.data.n_train)
    other.x_train = other.x_train.flip(3)
    data = _guarded(other)
    c = fit(cfg, data)
    assert c.info["generative_samples"] != a.info["generative_samples"]


def _trained(data: DataSplits, seed: int = 0, **settings: Any) -> tuple[GenerativeAugment, TrainContext]:
    cfg = RunConfig().override({"generative_augment": {"vae_epochs": 1, "hidden": 16, "latent": 2, **settings}})
    reg = build_regularizers(cfg)[0]
    assert isinstance(reg, GenerativeAugment)
    ctx = TrainContext(
        torch.Generator().manual_seed(seed), data.n_classes, data.image, 3, [], data.x_train, 32, y_train=data.y_train
    )
    reg.setup(torch.nn.Linear(1, 1), ctx)
    return reg, ctx


@pytest.mark.parametrize("balance", ["uniform", "train"])
def test_generated_labels_have_the_asked_class_balance(balance: str, load: Callable[..., DataSplits]) -> None:
    """Training split made unbalanced (class k kept ~ (k + 1) / 10 of the time): ``uniform`` draws
    every class 1/K of the time, ``train`` with the split's frequencies (4-sigma binomial bounds)."""
    data = load(n_train=600)
    keep = torch.rand(len(data.y_train), generator=torch.Generator().manual_seed(0)) < (data.y_train + 1) / 10
    data.x_train, data.y_train = data.x_train[keep], data.y_train[keep]
    reg, ctx = _trained(data, balance=balance)
    n = 20_000
    _, labels = reg.generate(n, ctx, "cpu")
    freq = torch.bincount(labels, minlength=10).double() / n
    train = torch.bincount(data.y_train, minlength=10).double() / len(data.y_train)
    expected = torch.full((10,), 0.1, dtype=torch.float64) if balance == "uniform" else train
    assert ((freq - expected).abs() <= 4 * (expected * (1 - expected) / n).sqrt() + 1e-12).all(), (freq, expected)
    assert (train - torch.full((10,), 0.1, dtype=torch.float64)).abs().max() > 0.05  # the split is unbalanced


@pytest.mark.parametrize("ratio, n_real, n_gen", [(0.5, 32, 16), (0.25, 32, 8), (1.0, 7, 7), (2.0, 5, 10), (0.3, 5, 2)])
def test_a_batch_gets_the_asked_ratio_of_generated_examples(
    ratio: float, n_real: int, n_gen: int, tiny_digits: DataSplits
) -> None:
    assert n_generated(n_real, ratio) == n_gen
    reg, ctx = _trained(tiny_digits, ratio=ratio)
    x, y = tiny_digits.x_train[:n_real], tiny_digits.y_train[:n_real]
    xb, yb = reg.transform_batch(x, y, ctx)
    assert xb.shape == (n_real + n_gen, *x.shape[1:]) and yb.shape == (n_real + n_gen,)
    assert torch.equal(xb[:n_real], x) and torch.equal(yb[:n_real], y)  # the real examples come first, unchanged
    assert not any(torch.equal(g, r) for g in xb[n_real:] for r in tiny_digits.x_train)  # generated, not copied
    soft = Fn.one_hot(y, 10)
    _, ys = reg.transform_batch(x, soft, ctx)
    assert ys.shape == (n_real + n_gen, 10) and torch.equal(ys.sum(1), torch.ones(n_real + n_gen))


def test_the_engine_trains_on_the_mixed_batches(
    tiny_cfg: RunConfig, tiny_digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    build = engine.build_network

    def counting(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inp: sizes.append(len(inp[0])) if m.training else None)
        return model

    monkeypatch.setattr(engine, "build_network", counting)
    cfg = tiny_cfg.override({"epochs": 1, "generative_augment": {"ratio": 0.5, "vae_epochs": 1, "hidden": 16}})
    r = fit(cfg, tiny_digits)
    n = len(tiny_digits.y_train)
    real = [min(32, n - i) for i in range(0, n, 32)]
    assert sizes == [k + n_generated(k, 0.5) for k in real]
    assert 0.0 <= r.history[0]["train_acc"] <= 1.0


def test_the_vae_is_deterministic_per_seed_and_its_cost_is_in_the_run(
    tiny_cfg: RunConfig, load: Callable[..., DataSplits]
) -> None:
    cfg = tiny_cfg.override(GEN)
    a, b = fit(cfg, load(n_train=150)), fit(cfg, load(n_train=150))
    c = fit(cfg.override({"seed": 1}), load(n_train=150))
    assert a.info["generative_samples"] == b.info["generative_samples"]
    assert a.info["generative_samples"] != c.info["generative_samples"]
    assert a.info["generative_vae_epochs"] == 3
    assert 0 < a.info["generative_vae_seconds"] < a.info["wall_time"]
    assert a.info["generative_samples"]["shape"] == [10, 8, 1, 8, 8]


def test_generative_augment_needs_classes(load: Callable[..., DataSplits]) -> None:
    data = load()
    data.y_train = data.y_train.float()
    with pytest.raises(ConfigError, match="generative_augment: needs class labels"):
        _trained(data)


def test_tabular_data_gets_no_image_grid(tiny_cfg: RunConfig, tiny_synthetic: DataSplits) -> None:
    syn = {"n_samples": 300, "n_features": 12, "n_classes": 3}
    cfg = tiny_cfg.override({"name": "synthetic", "synthetic": syn, "n_train": None, **GEN})
    r = fit(cfg, tiny_synthetic)
    assert r.status == "completed" and "generative_samples" not in r.info and r.info["generative_vae_epochs"] == 3
