"""The training engine: reproducibility, divergence handling, recorded metrics, schedules, clipping."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from reglab.config import RunConfig
from reglab.data.base import DataSplits
from reglab.models import build_model
from reglab.optim import create_schedule
from reglab.regularizers import build_regularizers
from reglab.regularizers.base import penalized_parameters
from reglab.training.engine import RunResult, fit, resolve_device
from reglab.training.metrics import evaluate, weight_stats

HISTORY_KEYS = {
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "grad_norm",
    "time",
    "weight_l1",
    "weight_l2",
    "sparsity",
    "penalty",
}
FINAL_KEYS = {
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "gap",
    "best_epoch",
    "weight_l1",
    "weight_l2",
    "sparsity",
}


def test_same_seed_same_history_different_seed_different(
    tiny_cfg: RunConfig, tiny_digits: DataSplits, helpers: Any
) -> None:
    cfg = tiny_cfg.override({"dropout": 0.2, "optimizer": "momentum"})
    a = fit(cfg, tiny_digits)
    b = fit(cfg, helpers.fresh_copy(tiny_digits))
    c = fit(cfg.override({"seed": 1}), helpers.fresh_copy(tiny_digits))
    assert helpers.history_without_time(a.history) == helpers.history_without_time(b.history)
    assert a.final == b.final
    assert helpers.history_without_time(c.history) != helpers.history_without_time(a.history)
    assert c.history[0]["train_loss"] != a.history[0]["train_loss"]


def test_split_seed_changes_the_data_not_the_init(tiny_cfg: RunConfig, load: Callable[..., DataSplits]) -> None:
    a = load(n_train=150)
    b = load(n_train=150, split_seed=1)
    assert not torch.equal(a.x_train, b.x_train)
    ra, rb = fit(tiny_cfg, a), fit(tiny_cfg.override({"split_seed": 1}), b)
    assert ra.history[0]["train_loss"] != rb.history[0]["train_loss"]


@pytest.mark.parametrize("n", [10, 15, 37, 150])
def test_n_train_is_the_exact_training_size(n: int, tiny_cfg: RunConfig, load: Callable[..., DataSplits]) -> None:
    data = load(n_train=n)
    assert len(data.y_train) == n
    assert len(torch.unique(data.y_train)) == min(n, 10)  # stratified: every class while n allows
    result = fit(tiny_cfg.override({"n_train": n, "epochs": 1}), data)
    assert result.info["data_sizes"]["train"] == n


def test_history_final_and_info_contents(tiny_cfg: RunConfig, tiny_digits: DataSplits) -> None:
    result = fit(tiny_cfg, tiny_digits)
    assert isinstance(result, RunResult)
    assert result.status == "completed" and result.reason is None and result.diverged_epoch is None
    assert len(result.history) == tiny_cfg.train.epochs
    for i, h in enumerate(result.history):
        assert set(h) == HISTORY_KEYS
        assert h["epoch"] == i + 1
        assert all(math.isfinite(v) for v in h.values())
        assert 0 <= h["train_acc"] <= 1 and 0 <= h["val_acc"] <= 1 and 0 <= h["sparsity"] <= 1
        assert h["penalty"] == 0.0 and h["grad_norm"] > 0 and h["time"] >= 0
    assert set(result.final) >= FINAL_KEYS
    f = result.final
    assert f["gap"] == pytest.approx(f["train_acc"] - f["test_acc"])
    assert f["best_epoch"] == max(result.history, key=lambda h: h["val_acc"])["epoch"]
    info = result.info
    assert info["regularizers"] == []
    assert info["epochs_run"] == tiny_cfg.train.epochs
    assert info["data_sizes"] == {"train": 150, "val": len(tiny_digits.y_val), "test": len(tiny_digits.test)}
    n_params = sum(
        p.numel() for p in build_model(tiny_cfg.model, (1, 8, 8), 10, build_regularizers(tiny_cfg)).parameters()
    )
    assert info["n_params"] == n_params
    assert info["device"] == "cpu" and info["wall_time"] > 0
    assert result.model is None
    d = result.to_dict()
    assert d["final"] == f and d["history"] == result.history and d["status"] == "completed"


def test_final_metrics_agree_with_the_returned_model(tiny_cfg: RunConfig, tiny_digits: DataSplits) -> None:
    result = fit(tiny_cfg.override({"dropout": 0.3, "batch_norm": True}), tiny_digits, keep_model=True)
    model = result.model
    assert isinstance(model, nn.Module)
    x_te, y_te = tiny_digits.test.read()
    loss, acc, probs = evaluate(model, x_te, y_te, 64, probs=True)
    assert probs is not None
    assert not model.training
    assert loss == pytest.approx(result.final["test_loss"], rel=1e-5)
    assert acc == result.final["test_acc"]
    assert result.test_probs is not None
    assert torch.allclose(probs, torch.from_numpy(result.test_probs), atol=1e-6)
    assert float((probs.argmax(1) == y_te).float().mean()) == pytest.approx(result.final["test_acc"])
    # no end-of-training transform: the last epoch's weight statistics are the final ones
    for k in ("weight_l1", "weight_l2", "sparsity"):
        assert result.history[-1][k] == pytest.approx(result.final[k])
    # and the last epoch's validation metrics equal the final ones
    assert result.history[-1]["val_loss"] == pytest.approx(result.final["val_loss"], abs=1e-6)


def test_evaluate_and_weight_stats() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.5))
    x, y = torch.randn(37, 5), torch.randint(0, 3, (37,))
    loss, acc, probs = evaluate(model, x, y, batch_size=10, probs=True)
    assert probs is not None
    assert evaluate(model, x, y, batch_size=10)[2] is None  # probabilities only on request
    logits = model[0](x).detach()
    assert loss == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-5)
    assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert torch.allclose(probs, logits.softmax(1), atol=1e-6)
    assert not model.training
    w = [torch.tensor([[0.0, 3.0], [-4.0, 0.0005]])]
    stats = weight_stats(w)
    assert stats["weight_l1"] == pytest.approx(7.0005)
    assert stats["weight_l2"] == pytest.approx(5.0, rel=1e-6)
    assert stats["sparsity"] == 0.5


def test_fit_loads_the_configured_data_itself(tiny_cfg: RunConfig) -> None:
    result = fit(tiny_cfg.override({"epochs": 1}))
    assert result.status == "completed"
    assert result.info["data_sizes"]["train"] == 150


def test_the_test_split_is_read_once_after_training(tiny_cfg: RunConfig, tiny_digits: DataSplits) -> None:
    seen: list[int] = []
    fit(
        tiny_cfg.override({"early_stopping": {"patience": 1}}),
        tiny_digits,
        callbacks=[lambda h: seen.append(tiny_digits.test.reads)],
    )
    assert seen and set(seen) == {0}
    assert tiny_digits.test.reads == 1


def test_exploding_weights_end_as_diverged(tiny_cfg: RunConfig, tiny_digits: DataSplits) -> None:
    # a coupled L2 step multiplies the weights by (1 - 2 * lr * l2) = -1999: overflow in a few steps
    cfg = tiny_cfg.override({"lr": 100.0, "l2": 10.0, "epochs": 20})
    seen: list[int] = []
    result = fit(cfg, tiny_digits, callbacks=[lambda h: seen.append(int(h["epoch"]))])
    assert result.status == "diverged"
    assert result.diverged_epoch is not None and 1 <= result.diverged_epoch < 20
    assert result.diverged_epoch == len(result.history) + 1
    assert seen == [int(h["epoch"]) for h in result.history]
    assert result.reason and "non-finite" in result.reason and str(result.diverged_epoch) in result.reason
    assert result.final == {} and result.test_probs is None
    assert tiny_digits.test.reads == 0  # never evaluated on test
    assert result.info["epochs_run"] == len(result.history)
    assert result.to_dict()["status"] == "diverged"


def test_nan_inputs_diverge_in_the_first_epoch(tiny_cfg: RunConfig, tiny_digits: DataSplits) -> None:
    tiny_digits.x_train[3] = float("nan")
    result = fit(tiny_cfg, tiny_digits)
    assert result.status == "diverged"
    assert result.diverged_epoch == 1 and result.history == []
    assert result.reason is not None and "training loss" in result.reason


def test_callback_exceptions_propagate(tiny_cfg: RunConfig, tiny_digits: DataSplits) -> None:
    class Prune(Exception):
        pass

    def pruner(record: dict[str, float]) -> None:
        if record["epoch"] == 2:
            raise Prune

    with pytest.raises(Prune):
        fit(tiny_cfg, tiny_digits, callbacks=[pruner])


@pytest.mark.parametrize(
    "schedule",
    [
        {"schedule": "constant"},
        {"schedule": "step", "step_size": 2},
        {"schedule": "step", "step_size": 3, "decay": 0.5},
        {"schedule": "exponential"},
        {"schedule": "cosine"},
        {"schedule": "inverse-time", "decay": 0.5},
    ],
)
def test_recorded_lr_follows_the_schedule(tiny_cfg: RunConfig, tiny_digits: DataSplits, schedule: dict) -> None:
    cfg = tiny_cfg.override({"epochs": 6, "n_train": 150, "lr": 0.2, **schedule})
    result = fit(cfg, tiny_digits)
    lrs = [h["lr"] for h in result.history]
    tc = cfg.train
    lr_of = create_schedule(tc.schedule, lr=tc.lr, epochs=tc.epochs, step_size=tc.step_size, decay=tc.decay)
    assert lrs == [lr_of(e) for e in range(6)]
    assert lrs[0] == 0.2
    if schedule["schedule"] != "constant":
        assert lrs[-1] < lrs[0]


def test_optimizer_uses_the_scheduled_lr(tiny_cfg: RunConfig, load: Callable[..., DataSplits]) -> None:
    """A step decay of 1e-9 after the first epoch freezes the weights from then on."""
    cfg = tiny_cfg.override({"schedule": "step", "step_size": 1, "decay": 1e-9, "epochs": 3})
    frozen = [h["weight_l2"] for h in fit(cfg, load(n_train=150)).history]
    assert frozen[1] == pytest.approx(frozen[0], rel=1e-6)
    assert frozen[2] == pytest.approx(frozen[0], rel=1e-6)
    moving = [h["weight_l2"] for h in fit(tiny_cfg.override({"epochs": 3}), load(n_train=150)).history]
    assert moving[2] != pytest.approx(moving[0], rel=1e-3)


def test_gradient_clipping_bounds_every_update(tiny_cfg: RunConfig, load: Callable[..., DataSplits]) -> None:
    """With plain SGD each step moves the weights by lr * clipped gradient, so after k steps
    ||w - w0|| <= k * lr * clip. Without clipping the same run moves much further."""
    clip, lr, epochs = 1e-3, 0.5, 2
    cfg = tiny_cfg.override({"grad_clip": clip, "lr": lr, "epochs": epochs, "batch_size": 50})
    steps = epochs * 3  # 150 examples in batches of 50

    def moved(c: RunConfig) -> tuple[float, RunResult]:
        torch.manual_seed(c.train.seed)  # as fit does, before building the model
        init = build_model(c.model, (1, 8, 8), 10, build_regularizers(c))
        result = fit(c, load(n_train=150), keep_model=True)
        assert result.model is not None
        delta = torch.cat(
            [
                (a.detach() - b.detach()).flatten()
                for a, b in zip(result.model.parameters(), init.parameters(), strict=True)
            ]
        )
        return float(delta.norm()), result

    clipped, result = moved(cfg)
    free, _ = moved(cfg.override({"grad_clip": None}))
    assert 0 < clipped <= steps * lr * clip * (1 + 1e-4)
    assert free > 10 * steps * lr * clip
    # the recorded norm is the one before clipping: far above the clip threshold
    assert all(h["grad_norm"] > 10 * clip for h in result.history)


def test_recorded_grad_norm_is_the_mean_pre_clip_norm(tiny_cfg: RunConfig, load: Callable[..., DataSplits]) -> None:
    """One step per epoch: the first epoch's recorded norm is that of the same first gradient,
    clipped or not, and equals a direct computation."""
    cfg = tiny_cfg.override({"epochs": 1, "batch_size": 150})
    data = load(n_train=150)
    plain = fit(cfg, data).history[0]["grad_norm"]
    clipped = fit(cfg.override({"grad_clip": 1e-3}), load(n_train=150)).history[0]["grad_norm"]
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, (1, 8, 8), 10, build_regularizers(cfg))
    model.train()
    # one full batch: the mean loss does not depend on the batch order
    loss = nn.functional.cross_entropy(model(data.x_train), data.y_train)
    loss.backward()
    direct = float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())
    assert plain == pytest.approx(direct, rel=1e-5)
    assert clipped == pytest.approx(direct, rel=1e-5)


def test_penalty_is_recorded_per_step(tiny_cfg: RunConfig, tiny_digits: DataSplits) -> None:
    result = fit(tiny_cfg.override({"l1": 1e-3}), tiny_digits, keep_model=True)
    assert result.model is not None
    end = 1e-3 * sum(float(p.detach().abs().sum()) for p in penalized_parameters(result.model, False))
    assert result.history[-1]["penalty"] == pytest.approx(end, rel=0.1)
    assert result.history[-1]["penalty"] == pytest.approx(1e-3 * result.history[-1]["weight_l1"], rel=0.1)


def test_penalize_biases_includes_bias_parameters(tiny_cfg: RunConfig, tiny_digits: DataSplits, helpers: Any) -> None:
    a = fit(tiny_cfg.override({"l2": 1e-2}), tiny_digits)
    b = fit(tiny_cfg.override({"l2": 1e-2, "penalize_biases": True}), helpers.fresh_copy(tiny_digits))
    assert b.history[0]["penalty"] > a.history[0]["penalty"]


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit device is taken as given; ``auto`` prefers CUDA, then Apple's MPS, then the CPU
    (each availability faked, so every branch is checked on any machine)."""
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    for cuda, mps, expected in [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda mps=mps: mps)
        assert resolve_device("auto").type == expected, (cuda, mps)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"mixup": 0.2, "cutout": 3, "augment": {"shift": 0.1, "noise": 0.1}},
        {"swa": True},
        {"arch": "cnn", "batch_norm": True, "early_stopping": True},
    ],
)
def test_runs_on_cuda(tiny_cfg: RunConfig, tiny_digits: DataSplits, extra: dict) -> None:
    cfg = tiny_cfg.override({"device": "cuda", **extra})
    seen: list[int] = []
    a = fit(cfg, tiny_digits, callbacks=[lambda h: seen.append(tiny_digits.test.reads)])
    assert a.status == "completed" and a.info["device"].startswith("cuda")
    assert set(seen) == {0} and tiny_digits.test.reads == 1
    assert all(math.isfinite(v) for v in a.final.values())
    assert a.test_probs is not None and a.test_probs.shape[0] == len(tiny_digits.test)


def test_a_run_leaves_the_callers_global_rng_alone(tiny_cfg: RunConfig, tiny_digits: DataSplits, helpers: Any) -> None:
    """Initialization and dropout use torch's global RNG (they take no generator): fit seeds it for
    the run and restores the caller's state, so results do not depend on it and it is not disturbed."""
    cfg = tiny_cfg.override({"dropout": 0.3, "augment": {"shift": 0.1}, "mixup": 0.2})
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = fit(cfg, tiny_digits)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)  # another caller state: the same run
    b = fit(cfg, helpers.fresh_copy(tiny_digits))
    assert helpers.history_without_time(a.history) == helpers.history_without_time(b.history)
    assert a.final == b.final


def test_seeded_global_rng_equals_manual_seed_and_restores() -> None:
    from reglab.training.rng import seeded_global_rng

    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(77)
    outside = torch.get_rng_state()
    with seeded_global_rng(5):
        assert torch.equal(torch.rand(4), expected)
        nn.Dropout(0.5)(torch.ones(8))
    assert torch.equal(torch.get_rng_state(), outside)
    with pytest.raises(RuntimeError), seeded_global_rng(5):  # restored on errors too
        torch.rand(3)
        raise RuntimeError
    assert torch.equal(torch.get_rng_state(), outside)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run_is_reproducible_and_leaves_the_global_rngs_alone(
    tiny_cfg: RunConfig, tiny_digits: DataSplits, helpers: Any
) -> None:
    cfg = tiny_cfg.override({"device": "cuda", "dropout": 0.3})
    torch.manual_seed(1)
    cpu, gpu = torch.get_rng_state(), torch.cuda.get_rng_state()
    a = fit(cfg, tiny_digits)
    assert torch.equal(torch.get_rng_state(), cpu) and torch.equal(torch.cuda.get_rng_state(), gpu)
    b = fit(cfg, helpers.fresh_copy(tiny_digits))
    assert helpers.history_without_time(a.history) == helpers.history_without_time(b.history)
