"""Each regularizer does what the literature says it does (measured, with margins checked by runs)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import reglab.training.engine as engine
from reglab.config import (
    AugmentConfig,
    EarlyStoppingConfig,
    ModelConfig,
    RunConfig,
    SnapshotConfig,
    SWAConfig,
)
from reglab.data.base import DataSplits
from reglab.models import build_model
from reglab.regularizers import REGULARIZERS, Regularizer, TrainContext, build_regularizers
from reglab.regularizers.augment import Augment
from reglab.regularizers.base import constrained_weights, penalized_parameters
from reglab.regularizers.cutout import Cutout
from reglab.regularizers.early_stopping import EarlyStopping
from reglab.regularizers.ensembles import SoftmaxEnsemble, recompute_batch_norm
from reglab.regularizers.input_noise import InputNoise
from reglab.regularizers.label_smoothing import LabelSmoothing
from reglab.regularizers.max_norm import MaxNorm
from reglab.regularizers.mixup import Mixup
from reglab.regularizers.snapshot import Snapshot
from reglab.regularizers.swa import SWA
from reglab.regularizers.weight_decay import DecoupledWeightDecay
from reglab.training.engine import fit


def _hooks(**reg: Any) -> list[Regularizer]:
    """The regularizers of a run with these settings: what ``build_model`` asks for layers."""
    return build_regularizers(RunConfig().override(reg))


# an MLP on 300 digits, plain SGD: long enough for the penalties to show, ~0.1 s per run
EFFECT: dict[str, Any] = {
    "n_train": 300,
    "hidden": (32,),
    "epochs": 10,
    "batch_size": 32,
    "lr": 0.1,
    "device": "cpu",
}


@pytest.fixture
def effect_run(load: Callable[..., DataSplits]) -> Callable[[dict[str, Any]], Any]:
    def run(overrides: dict[str, Any]) -> Any:
        cfg = RunConfig().override(EFFECT).override(overrides)
        result = fit(cfg, load(n_train=cfg.data.n_train), keep_model=True)
        assert result.status == "completed", result.reason
        return result

    return run


def _ctx(x: torch.Tensor, n_classes: int = 10, seed: int = 0, **kw: Any) -> TrainContext:
    return TrainContext(
        gen=torch.Generator().manual_seed(seed),
        n_classes=n_classes,
        image=x.ndim == 4,
        epochs=kw.pop("epochs", 4),
        penalized=kw.pop("penalized", []),
        x_train=x,
        batch_size=len(x),
        **kw,
    )


# --- penalties and weight decay ----------------------------------------------------------------


def test_l1_makes_weights_sparse(effect_run: Callable[[dict[str, Any]], Any]) -> None:
    none = effect_run({})
    l1 = effect_run({"l1": 1e-2})
    s0, s1 = none.final["sparsity"], l1.final["sparsity"]
    assert s1 > 3 * s0 and s1 > s0 + 0.2, (s0, s1)
    assert l1.history[-1]["penalty"] > 0 and none.history[-1]["penalty"] == 0


def test_l2_shrinks_the_weight_norm(effect_run: Callable[[dict[str, Any]], Any]) -> None:
    none = effect_run({})
    l2 = effect_run({"l2": 3e-2})
    assert l2.final["weight_l2"] < 0.85 * none.final["weight_l2"]
    # the recorded penalty is lambda * sum w^2 of the (changing) weights: same order as the end value
    end_penalty = 3e-2 * l2.final["weight_l2"] ** 2
    assert 0.5 * end_penalty < l2.history[-1]["penalty"] < 2 * end_penalty


@pytest.mark.parametrize(("optimizer", "lr", "decay"), [("sgd", 0.1, 0.1), ("adam", 0.01, 1.0)])
def test_decoupled_weight_decay_shrinks_the_norm(
    effect_run: Callable[[dict[str, Any]], Any], optimizer: str, lr: float, decay: float
) -> None:
    none = effect_run({"optimizer": optimizer, "lr": lr})
    wd = effect_run({"optimizer": optimizer, "lr": lr, "weight_decay": decay})
    assert wd.final["weight_l2"] < 0.8 * none.final["weight_l2"]
    assert wd.history[-1]["penalty"] == 0  # not a loss term


def test_adamw_applies_the_decay_once(effect_run: Callable[[dict[str, Any]], Any]) -> None:
    """The weight_decay hook decays before the step for both; Adam + hook and AdamW + hook are the
    same update in the same order (decay, then the Adam step), so both runs agree; a double decay or
    a missing one would not."""
    adam = effect_run({"optimizer": "adam", "lr": 0.01})
    adam_wd = effect_run({"optimizer": "adam", "lr": 0.01, "weight_decay": 1.0})
    adamw_wd = effect_run({"optimizer": "adamw", "lr": 0.01, "weight_decay": 1.0})
    for a, b in zip(adam_wd.history, adamw_wd.history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
        assert a["weight_l2"] == pytest.approx(b["weight_l2"], rel=1e-4)
    assert adamw_wd.final["weight_l2"] < 0.8 * adam.final["weight_l2"]


def test_weight_decay_hook_scales_penalized_params_with_every_optimizer() -> None:
    """The hook is the only place decoupled decay happens (adamw included: its optimizer gets none);
    the context does not even say which optimizer runs, so no optimizer can be special-cased."""
    w = nn.Parameter(torch.ones(3, 2))
    reg = DecoupledWeightDecay(0.5)
    reg.before_step(nn.Linear(1, 1), 0.1, _ctx(torch.zeros(2, 2), penalized=[w]))
    assert torch.allclose(w.detach(), torch.full((3, 2), 0.95))
    reg.before_step(nn.Linear(1, 1), 0.1, _ctx(torch.zeros(2, 2), penalized=[w]))
    assert torch.allclose(w.detach(), torch.full((3, 2), 0.95 * 0.95))


# --- max-norm ------------------------------------------------------------------------------------


def _row_norms(model: nn.Module) -> torch.Tensor:
    return torch.cat([w.detach().flatten(1).norm(dim=1) for w in constrained_weights(model)])


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_max_norm_holds_after_every_sgd_step(arch: str) -> None:
    c = 0.5
    torch.manual_seed(0)
    shape = (1, 8, 8)
    mcfg = ModelConfig(arch=arch, hidden=(16,), channels=(4, 8), fc=16)
    model = build_model(mcfg, shape, 10)
    x = torch.randn(64, *shape)
    y = torch.randint(0, 10, (64,))
    reg = MaxNorm(c)
    ctx = _ctx(x)
    reg.setup(model, ctx)
    assert torch.all(_row_norms(model) <= c + 1e-5)  # holds from the start
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    grew = 0.0
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        grew = max(grew, float(_row_norms(model).max()))  # before the projection
        reg.after_step(model, ctx)
        assert torch.all(_row_norms(model) <= c + 1e-5)
    assert grew > c  # the large steps do push the weights out of the ball


def test_max_norm_in_the_engine_after_every_step(
    monkeypatch: pytest.MonkeyPatch, load: Callable[..., DataSplits]
) -> None:
    c = 0.8
    checked: list[float] = []

    class Check(Regularizer):
        """Runs after MaxNorm in every step and records the largest unit norm."""

        name = "check"

        def after_step(self, model: nn.Module, ctx: TrainContext) -> None:
            checked.append(float(_row_norms(model).max()))

    real = engine.build_regularizers
    monkeypatch.setattr(engine, "build_regularizers", lambda cfg: [*real(cfg), Check()])
    cfg = RunConfig().override(EFFECT).override({"max_norm": c, "lr": 1.0, "epochs": 3})
    result = fit(cfg, load(n_train=300), keep_model=True)
    assert result.status == "completed"
    steps = 3 * math.ceil(300 / 32)
    assert len(checked) == steps
    assert max(checked) <= c + 1e-5
    assert float(_row_norms(result.model).max()) <= c + 1e-5

    monkeypatch.setattr(engine, "build_regularizers", real)
    free = fit(cfg.override({"max_norm": None}), load(n_train=300), keep_model=True)
    assert float(_row_norms(free.model).max()) > c  # without the constraint the bound is exceeded


# --- dropout and batch norm ------------------------------------------------------------------


def _dropout_model(p: float = 0.5, **reg: Any) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(64, 32)), (1, 8, 8), 10, _hooks(dropout=p, **reg))


def test_dropout_is_identity_in_eval_and_random_in_training() -> None:
    model = _dropout_model(0.5)
    x = torch.randn(16, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_dropout_scales_survivors_by_inverse_keep_probability() -> None:
    p = 0.3
    model = _dropout_model(p)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == p for d in drops)
    ones = torch.ones(200_000)
    d = drops[0]
    d.train()
    out = d(ones)
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))
    assert float((out == 0).float().mean()) == pytest.approx(p, abs=0.01)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.01)  # expectation preserved
    d.eval()
    assert torch.equal(d(ones), ones)


def test_input_and_per_layer_dropout_placement() -> None:
    model = build_model(ModelConfig(hidden=(16, 8)), (4,), 3, _hooks(dropout=(0.1, 0.2), input_dropout=0.25))
    layers = list(model)
    assert isinstance(layers[1], nn.Dropout) and layers[1].p == 0.25  # right after Flatten
    rates = [m.p for m in layers[2:] if isinstance(m, nn.Dropout)]
    assert rates == [0.1, 0.2]


def test_batch_norm_uses_batch_stats_in_training_and_running_stats_in_eval() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(16,)), (1, 8, 8), 10, _hooks(batch_norm=True))
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    seen: dict[str, torch.Tensor] = {}
    bn.register_forward_hook(lambda m, i, o: seen.update(inp=i[0].detach(), out=o.detach()))
    x = torch.randn(64, 1, 8, 8) * 3 + 5

    model.train()
    with torch.no_grad():
        model(x)
    inp, out = seen["inp"], seen["out"]
    assert torch.allclose(out.mean(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(out.var(0, unbiased=False), torch.ones(16), atol=1e-3)
    assert torch.allclose(bn.running_mean, 0.1 * inp.mean(0), atol=1e-5)  # momentum 0.1 from 0

    model.eval()
    with torch.no_grad():
        model(x)
    expected = (seen["inp"] - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    assert torch.allclose(seen["out"], expected, atol=1e-5)

    # eval: one example's output does not depend on its batch; training: it does
    with torch.no_grad():
        assert torch.allclose(model(x)[:4], model(x[:4]), atol=1e-6)
        model.train()
        assert not torch.allclose(model(x)[:4], model(x[:4]), atol=1e-3)


# --- early stopping --------------------------------------------------------------------------


def test_early_stopping_stops_and_restores_the_best_epoch(load: Callable[..., DataSplits]) -> None:
    # 50 training digits and a wide MLP with Adam: validation loss bottoms out after a few epochs
    cfg = RunConfig().override(
        {
            "n_train": 50,
            "hidden": (256,),
            "optimizer": "adam",
            "lr": 0.003,
            "epochs": 100,
            "batch_size": 16,
            "device": "cpu",
            "early_stopping": {"patience": 3},
        }
    )
    result = fit(cfg, load(n_train=50))
    hist = result.history
    assert result.status == "completed"
    assert len(hist) < 100
    stopped = result.info["early_stopping_stopped_epoch"]
    best = result.info["early_stopping_best_epoch"]
    assert stopped == len(hist) == best + 3
    best_loss = min(h["val_loss"] for h in hist)
    assert hist[best - 1]["val_loss"] == best_loss
    assert best > 1 and best_loss < hist[-1]["val_loss"]
    assert result.final["val_loss"] == pytest.approx(best_loss, abs=1e-6)
    assert result.final["best_epoch"] == best

    # without restoring, the final model is the last epoch's
    last = fit(cfg.override({"early_stopping": {"patience": 3, "restore_best": False}}), load(n_train=50))
    assert last.final["val_loss"] == pytest.approx(last.history[-1]["val_loss"], abs=1e-6)
    assert last.final["val_loss"] > best_loss


def _records(key: str, values: list[float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, key: v} for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("cfg", "values", "stop_at", "best"),
    [
        # min_delta 0.1: 0.95 and 0.9/0.8 are not improvements on 1.0/0.85 by more than 0.1
        (EarlyStoppingConfig(patience=2, min_delta=0.1), [1.0, 0.95, 0.85, 0.9, 0.8, 0.1], 5, 3),
        (EarlyStoppingConfig(patience=1), [1.0, 0.9, 0.9], 3, 2),
        (EarlyStoppingConfig(patience=2, monitor="val_acc"), [0.5, 0.7, 0.6, 0.8, 0.8, 0.75], 6, 4),
        (EarlyStoppingConfig(patience=3), [3.0, 2.0, 1.0, 0.5], None, 4),
    ],
)
def test_early_stopping_rule(cfg: EarlyStoppingConfig, values: list[float], stop_at: int | None, best: int) -> None:
    es = EarlyStopping(cfg)
    model = nn.Linear(1, 1, bias=False)
    ctx = _ctx(torch.zeros(1, 1))
    stopped = None
    for rec in _records(cfg.monitor, values):
        with torch.no_grad():
            model.weight.fill_(rec["epoch"])  # the weights "of" each epoch
        if es.on_epoch_end(model, rec, ctx):
            stopped = int(rec["epoch"])
            break
    assert stopped == stop_at
    assert es.summary() == {"early_stopping_best_epoch": best, "early_stopping_stopped_epoch": stop_at}
    restored = es.on_train_end(model, ctx)
    assert float(restored.weight.detach()) == best


# --- batch transforms ------------------------------------------------------------------------


def test_label_smoothing_targets() -> None:
    eps, k = 0.1, 10
    y = torch.arange(20) % k
    x = torch.randn(20, 1, 8, 8)
    x2, t = LabelSmoothing(eps).transform_batch(x, y, _ctx(x, k))
    assert x2 is x
    assert t.shape == (20, k)
    assert torch.allclose(t.sum(1), torch.ones(20))
    assert torch.allclose(t[torch.arange(20), y], torch.full((20,), 1 - eps + eps / k))
    others = t.clone()
    others[torch.arange(20), y] = eps / k
    assert torch.allclose(others, torch.full_like(t, eps / k))


def test_mixup_mixes_inputs_and_targets_with_one_lambda() -> None:
    n, k = 64, 10
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.arange(n) % k
    xm, t = Mixup(1.0).transform_batch(x, y, _ctx(x, k, seed=3))
    assert xm.shape == x.shape and t.shape == (n, k)
    assert torch.allclose(t.sum(1), torch.ones(n))
    assert not torch.all((t == 0) | (t == 1))  # soft targets
    # rows mixing two classes carry lambda on their own class and 1 - lambda on the partner's
    two = (t > 0).sum(1) == 2
    assert int(two.sum()) > n // 2
    lams = t[two][torch.arange(int(two.sum())), y[two]]
    lam = float(lams[0])
    assert torch.allclose(lams, torch.full_like(lams, lam))
    for i in torch.nonzero(two).flatten().tolist():
        partner = (xm[i] - lam * x[i]) / (1 - lam)
        matches = [j for j in range(n) if torch.allclose(partner, x[j], atol=1e-4)]
        assert len(matches) == 1 and t[i, y[matches[0]]] == pytest.approx(1 - lam, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 3.0])
def test_mixup_lambda_follows_beta_alpha_alpha(alpha: float) -> None:
    from scipy import stats

    n = 8
    x = torch.eye(n)  # row i of the mix is lam * e_i + (1 - lam) * e_perm(i)
    y = torch.arange(n)
    reg, ctx = Mixup(alpha), _ctx(x, n, seed=0)
    lams = [float(reg.transform_batch(x, y, ctx)[0].diagonal().min()) for _ in range(1000)]
    lams = [v for v in lams if v < 1.0]  # drop the rare identity permutations
    assert len(lams) > 950
    assert stats.kstest(lams, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert sum(lams) / len(lams) == pytest.approx(0.5, abs=0.05)


def test_mixup_accepts_smoothed_targets() -> None:
    x = torch.randn(8, 5)
    y = torch.arange(8) % 4
    ctx = _ctx(x, 4)
    x1, t1 = LabelSmoothing(0.2).transform_batch(x, y, ctx)
    _, t2 = Mixup(0.4).transform_batch(x1, t1, ctx)
    assert torch.allclose(t2.sum(1), torch.ones(8))
    assert float(t2.min()) >= 0.2 / 4 - 1e-6


def test_augment_changes_images_not_labels() -> None:
    x = torch.randn(32, 1, 8, 8)
    y = torch.arange(32) % 10
    reg = REGULARIZERS.get("augment").build(RunConfig().override(REGULARIZERS.get("augment").example))
    assert isinstance(reg, Augment)
    x2, y2 = reg.transform_batch(x, y, _ctx(x))
    assert x2.shape == x.shape
    assert y2 is y
    assert (x2 - x).flatten(1).abs().amax(1).min() > 1e-3  # every image changed


def test_augment_with_zero_settings_is_inactive() -> None:
    assert REGULARIZERS.get("augment").build(RunConfig()) is None
    x = torch.randn(8, 1, 8, 8)
    y = torch.arange(8)
    x2, y2 = Augment(AugmentConfig()).transform_batch(x, y, _ctx(x))
    assert x2 is x and y2 is y


def test_augment_on_tabular_data_only_adds_noise() -> None:
    x = torch.randn(16, 6)
    y = torch.arange(16) % 2
    geometric = AugmentConfig(shift=0.2, rotation=15, scale=0.1, crop_padding=2, hflip=True)
    assert Augment(geometric).transform_batch(x, y, _ctx(x))[0] is x
    noisy, y2 = Augment(AugmentConfig(noise=0.5)).transform_batch(x, y, _ctx(x))
    assert y2 is y
    assert (noisy - x).std().item() == pytest.approx(0.5, rel=0.3)


def test_augment_hflip_and_crop() -> None:
    x = torch.rand(40, 3, 8, 8) + 0.5
    y = torch.arange(40)
    flipped, _ = Augment(AugmentConfig(hflip=True)).transform_batch(x, y, _ctx(x))
    kinds = [torch.equal(f, i) or torch.equal(f, i.flip(2)) for f, i in zip(flipped, x, strict=True)]
    assert all(kinds)
    assert 0 < sum(torch.equal(f, i.flip(2)) for f, i in zip(flipped, x, strict=True)) < 40
    cropped, _ = Augment(AugmentConfig(crop_padding=2)).transform_batch(x, y, _ctx(x))
    # padding only shifts: every output row of pixels is zeros or a run of input values
    assert cropped.shape == x.shape
    moved = [not torch.equal(c, i) for c, i in zip(cropped, x, strict=True)]
    assert any(moved)
    for c, i in zip(cropped, x, strict=True):
        nonzero = c[c != 0]
        assert len(nonzero) >= 6 * 6 * 3  # at most 2 rows and 2 columns are shifted out
        assert torch.isin(nonzero, i).all()


def test_cutout_regularizer_zeros_a_square_on_images_only() -> None:
    size = 3
    x = torch.ones(50, 1, 8, 8)
    y = torch.arange(50) % 10
    out, y2 = Cutout(size).transform_batch(x, y, _ctx(x))
    assert y2 is y
    zeros = (out == 0).flatten(1).sum(1)
    assert torch.all((zeros >= 1) & (zeros <= size * size))
    assert int((zeros == size * size).sum()) > 0
    tab = torch.ones(5, 4)
    assert Cutout(size).transform_batch(tab, y[:5], _ctx(tab))[0] is tab


def test_input_noise_changes_inputs_not_labels() -> None:
    x = torch.zeros(100, 20)
    y = torch.arange(100) % 3
    out, y2 = InputNoise(0.3).transform_batch(x, y, _ctx(x))
    assert y2 is y
    assert out.std().item() == pytest.approx(0.3, rel=0.05)


# --- ensembles -------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "averaged"), [(0.5, [2, 3, 4]), (0.75, [3, 4]), (1.0, [4])])
def test_swa_averages_the_weights_of_the_last_epochs(start: float, averaged: list[int]) -> None:
    swa = SWA(SWAConfig(start=start))
    model = nn.Linear(2, 2)
    ctx = _ctx(torch.zeros(4, 2), epochs=4)
    for epoch in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        swa.on_epoch_end(model, {"epoch": epoch}, ctx)
    out = swa.on_train_end(model, ctx)
    assert out is not model
    assert not out.training
    mean = sum(averaged) / len(averaged)
    for p in out.parameters():
        assert torch.allclose(p, torch.full_like(p, mean))
    assert swa.summary() == {"swa_epochs_averaged": len(averaged)}


def test_recompute_batch_norm_sets_the_data_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(100, 3) * 2 + 1
    with torch.no_grad():
        h = model[0](x)
    recompute_batch_norm(model, x, batch_size=1000)
    bn = model[1]
    assert torch.allclose(bn.running_mean, h.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, h.var(0, unbiased=True), atol=1e-4)
    assert bn.momentum == 0.1  # restored


def test_swa_end_to_end(load: Callable[..., DataSplits]) -> None:
    cfg = RunConfig().override(EFFECT).override({"epochs": 4, "swa": {"start": 0.5, "lr": 0.01}})
    result = fit(cfg, load(n_train=300), keep_model=True)
    assert result.info["swa_epochs_averaged"] == 3
    assert [h["lr"] for h in result.history] == [0.1, 0.01, 0.01, 0.01]
    assert not result.model.training


def test_snapshot_returns_an_ensemble_of_log_probabilities(load: Callable[..., DataSplits]) -> None:
    cfg = RunConfig().override(EFFECT).override({"epochs": 6, "snapshot": {"cycles": 3}})
    data = load(n_train=300)
    result = fit(cfg, data, keep_model=True)
    assert result.info["snapshots"] == 3
    ens = result.model
    assert isinstance(ens, SoftmaxEnsemble) and len(ens.members) == 3
    # the cyclic cosine schedule restarts every 2 epochs
    assert [h["lr"] for h in result.history] == pytest.approx([0.1, 0.05, 0.1, 0.05, 0.1, 0.05])
    with torch.no_grad():
        out = ens(data.x_val)
        assert torch.allclose(out.exp().sum(1), torch.ones(len(data.x_val)), atol=1e-5)
        # and it is the log of the members' mean softmax
        mean = torch.stack([m(data.x_val).softmax(1) for m in ens.members]).mean(0)
        assert torch.allclose(out, mean.log(), atol=1e-5)
        members = [m(data.x_val) for m in ens.members]
    assert not torch.equal(members[0], members[1])  # different snapshots


def test_snapshot_lr_and_members() -> None:
    snap = Snapshot(SnapshotConfig(cycles=2))
    ctx = _ctx(torch.zeros(2, 2), epochs=4)
    lrs = [snap.adjust_lr(e, 1.0, ctx) for e in range(4)]
    assert lrs == pytest.approx([1.0, 0.5, 1.0, 0.5])
    model = nn.Linear(2, 2)
    for epoch in range(1, 5):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        snap.on_epoch_end(model, {"epoch": epoch}, ctx)
    ens = snap.on_train_end(model, ctx)
    assert isinstance(ens, SoftmaxEnsemble)
    assert [float(m.weight[0, 0].detach()) for m in ens.members] == [2.0, 4.0]


def test_penalized_parameters_exclude_biases_by_default() -> None:
    model = build_model(ModelConfig(hidden=(8,)), (4,), 3, _hooks(batch_norm=True))
    weights = penalized_parameters(model, include_biases=False)
    assert all(p.ndim > 1 for p in weights) and len(weights) == 2
    assert len(penalized_parameters(model, include_biases=True)) == len(list(model.parameters()))
