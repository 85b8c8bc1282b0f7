"""The model-agnostic regularizers on the user's own network (the example's residual CNN,
``examples/own_model/mynets``, and a Conv1d model): measured effects, not plumbing."""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from reglab.config import RunConfig
from reglab.data.base import DataSplits
from reglab.regularizers.max_norm import MaxNorm
from reglab.training import fit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_model"
# the residual CNN on 300 digits (8x8): one block, 8 channels, plain SGD; ~0.5 s per run
OWN: dict[str, Any] = {
    "model": {"class_path": "mynets:ResNetish", "init_args": {"width": 8, "blocks": 1}},
    "n_train": 300,
    "epochs": 6,
    "batch_size": 32,
    "lr": 0.1,
    "device": "cpu",
}


@pytest.fixture
def own(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(sys, "path", [str(EXAMPLE), *sys.path])
    import mynets

    yield mynets


@pytest.fixture
def run(own: Any, load: Callable[..., DataSplits]) -> Callable[..., Any]:
    def _run(overrides: dict[str, Any], data: DataSplits | None = None, **kw: Any) -> Any:
        cfg = RunConfig().override(OWN).override(overrides)
        result = fit(cfg, data or load(n_train=cfg.data.n_train), keep_model=True, **kw)
        assert result.status == "completed", result.reason
        return result

    return _run


def test_l1_makes_the_user_cnn_sparse(run: Callable[..., Any]) -> None:
    none, l1 = run({}), run({"l1": 3e-3})
    assert l1.final["sparsity"] > max(5 * none.final["sparsity"], none.final["sparsity"] + 0.05)
    assert l1.final["weight_l1"] < 0.9 * none.final["weight_l1"]


def test_l2_and_weight_decay_shrink_only_weights(run: Callable[..., Any]) -> None:
    none, l2, wd = run({}), run({"l2": 1e-2}), run({"weight_decay": 0.5})
    for r in (l2, wd):
        assert r.final["weight_l2"] < 0.9 * none.final["weight_l2"]
    # the BN-free net's biases are not penalized: the penalty counts only >= 2-d parameters
    w = [p for p in l2.model.parameters() if p.ndim >= 2]
    assert l2.history[0]["penalty"] > 0 and len(w) == 4  # stem, the block's two convs, classifier: no bias
    assert sum(p.numel() for p in w) == 8 * 1 * 9 + 2 * 8 * 8 * 9 + 10 * 8


def test_max_norm_holds_after_every_step_on_conv_and_linear_weights(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[int] = []
    project = MaxNorm.after_step

    def after_step(self: MaxNorm, model: nn.Module, ctx: Any) -> None:
        project(self, model, ctx)
        layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        norms = [float(m.weight.detach().flatten(1).norm(dim=1).max()) for m in layers]
        assert max(norms) <= 0.5 + 1e-5
        checked.append(len(layers))

    monkeypatch.setattr(MaxNorm, "after_step", after_step)
    r = run({"max_norm": 0.5, "lr": 0.5, "epochs": 2})
    assert len(checked) == 1 + 2 * 10 and set(checked) == {4}  # at setup, then 10 steps (300 / 32) per epoch
    unconstrained = run({"lr": 0.5, "epochs": 2}).model
    assert (
        max(
            float(m.weight.detach().flatten(1).norm(dim=1).max())
            for m in unconstrained.modules()
            if isinstance(m, nn.Conv2d)
        )
        > 0.5
    )
    assert r.final["weight_l2"] > 0


def test_dropout_through_the_constructor_is_active_in_training_only(run: Callable[..., Any]) -> None:
    model = run({"dropout": 0.5, "epochs": 1}).model
    assert model.dropout.p == 0.5
    x = torch.randn(16, 1, 8, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    assert run({"epochs": 1}).model.dropout.p == 0.0  # the baseline has none, whatever the default


def test_swa_recomputes_the_user_models_batch_norm_statistics(run: Callable[..., Any], tiny_digits: DataSplits) -> None:
    from torch.optim.swa_utils import update_bn

    data = tiny_digits
    r = run({"batch_norm": True, "swa": {"start": 0.5}}, data=data)
    assert r.info["swa_epochs_averaged"] == 4  # epochs 3..6
    averaged = r.model
    bns = [m for m in averaged.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 3 and all(not m.training for m in bns)
    # torch's own recomputation over the same training inputs, in the same batches
    reference = copy.deepcopy(averaged)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.x_train), batch_size=256)
    update_bn(loader, reference)
    for mine, ref in zip(bns, [m for m in reference.modules() if isinstance(m, nn.BatchNorm2d)], strict=True):
        torch.testing.assert_close(mine.running_mean, ref.running_mean)
        torch.testing.assert_close(mine.running_var, ref.running_var)
    # ... and not the last trained model's statistics
    plain = run({"batch_norm": True}, data=data).model
    last_bn = next(m for m in plain.modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.allclose(last_bn.running_mean, bns[0].running_mean)


@pytest.fixture
def seen(own: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[torch.Tensor]]:
    """What the user's network and its loss saw in training: ``inputs`` (each training batch given
    to ``ResNetish.forward``) and ``targets`` (each target given to the cross-entropy)."""
    got: dict[str, list[torch.Tensor]] = {"inputs": [], "targets": []}
    forward, cross_entropy = own.ResNetish.forward, torch.nn.functional.cross_entropy

    def recording_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            got["inputs"].append(x.detach().clone())
        return forward(self, x)

    def recording_loss(logits: torch.Tensor, target: torch.Tensor, *a: Any, **kw: Any) -> torch.Tensor:
        if torch.is_grad_enabled():
            got["targets"].append(target.detach().clone())
        return cross_entropy(logits, target, *a, **kw)

    monkeypatch.setattr(own.ResNetish, "forward", recording_forward)
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", recording_loss)
    return got


def share_of_training_rows(inputs: list[torch.Tensor], data: DataSplits) -> float:
    """The share of the examples the network trained on that are, bit for bit, training examples."""
    rows = {r.numpy().tobytes() for r in data.x_train.reshape(len(data.x_train), -1).float()}
    seen = torch.cat(inputs).reshape(-1, data.x_train[0].numel()).float()
    return sum(r.numpy().tobytes() in rows for r in seen) / len(seen)


def test_without_regularizers_the_user_cnn_trains_on_the_training_examples_themselves(
    run: Callable[..., Any], seen: dict[str, list[torch.Tensor]], load: Callable[..., DataSplits]
) -> None:
    """The premise of the checks below: with nothing on, every training input is a training
    example and every target a class index."""
    run({"epochs": 2})
    assert share_of_training_rows(seen["inputs"], load(n_train=300)) == 1.0
    assert all(t.dtype == torch.long and t.ndim == 1 for t in seen["targets"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"augment": {"shift": 0.1, "rotation": 10}},
        {"cutout": 3},
        {"mixup": 0.2},
        {"input_noise": 0.1},
    ],
    ids=lambda o: next(iter(o)),
)
def test_input_regularizers_change_what_the_user_cnn_trains_on(
    run: Callable[..., Any],
    seen: dict[str, list[torch.Tensor]],
    load: Callable[..., DataSplits],
    overrides: dict[str, Any],
) -> None:
    r = run({**overrides, "epochs": 2})
    assert all(math.isfinite(h["train_loss"]) for h in r.history)
    share = share_of_training_rows(seen["inputs"], load(n_train=300))
    assert share < 0.5, f"{share:.0%} of the inputs were unaltered training examples"


def test_label_smoothing_gives_the_user_cnn_soft_targets(
    run: Callable[..., Any], seen: dict[str, list[torch.Tensor]]
) -> None:
    run({"label_smoothing": 0.1, "epochs": 2})
    targets = torch.cat(seen["targets"])
    assert targets.shape[1] == 10 and torch.allclose(targets.sum(1), torch.ones(len(targets)))
    assert targets.unique().tolist() == pytest.approx([0.01, 0.91])  # (1 - 0.1) onehot + 0.1 / 10


def test_early_stopping_stops_the_user_cnn_and_restores_its_best_epoch(run: Callable[..., Any]) -> None:
    """No later epoch can improve by 10 (``min_delta``): training stops after ``patience`` = 1 more
    epoch, and the final model is epoch 1's - its validation accuracy is epoch 1's."""
    r = run({"early_stopping": {"patience": 1, "min_delta": 10.0}, "epochs": 6})
    assert r.info["early_stopping_best_epoch"] == 1 and r.info["early_stopping_stopped_epoch"] == 2
    assert len(r.history) == 2
    assert r.final["val_loss"] == pytest.approx(r.history[0]["val_loss"], rel=1e-5)
    assert r.final["val_loss"] != pytest.approx(r.history[1]["val_loss"], rel=1e-5)  # not the last epoch's


def test_snapshot_ensembles_and_elastic_net_act_on_the_user_cnn(run: Callable[..., Any]) -> None:
    snap = run({"snapshot": {"cycles": 2}, "epochs": 4})
    assert snap.info["snapshots"] == 2
    none, enet = run({"epochs": 4}), run({"elastic_net": 1e-3, "epochs": 4})
    assert all(h["penalty"] > 0 for h in enet.history) and all(h["penalty"] == 0 for h in none.history)
    assert enet.final["weight_l1"] < none.final["weight_l1"]


def conv1d_net(in_features: int, n_classes: int, width: int = 4) -> nn.Module:
    """A 1-d convolution over the features of tabular data."""
    return nn.Sequential(
        nn.Unflatten(1, (1, in_features)),
        nn.Conv1d(1, width, 3, padding=1),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(width * in_features, n_classes),
    )


def test_max_norm_and_swa_on_a_conv1d_model(tiny_synthetic: DataSplits) -> None:
    cfg = RunConfig().override({"epochs": 4, "lr": 0.5, "max_norm": 0.3, "swa": True, "device": "cpu"})
    r = fit(cfg, tiny_synthetic, keep_model=True, model=conv1d_net)
    conv = next(m for m in r.model.modules() if isinstance(m, nn.Conv1d))
    assert float(conv.weight.detach().flatten(1).norm(dim=1).max()) <= 0.3 + 1e-5
    bn = next(m for m in r.model.modules() if isinstance(m, nn.BatchNorm1d))
    assert int(bn.num_batches_tracked) == 1 and float(bn.running_var.sum()) > 0  # recomputed in one pass
