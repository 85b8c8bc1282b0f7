"""Every registered regularizer, tested the same way (a newly registered one is picked up here).

With its registry ``example`` on tiny data each regularizer must be active, finish with finite
metrics, reproduce its history and final metrics exactly for the same seed, read the test split
exactly once and only after training, predict deterministically in eval mode, and be inactive in
the default configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from reglab.config import RunConfig
from reglab.data.base import DataSplits
from reglab.regularizers import REGULARIZERS, Regularizer, build_regularizers
from reglab.regularizers.base import RegularizerSpec
from reglab.training.engine import fit

NAMES = REGULARIZERS.names()
# enough epochs for snapshot/SWA to see more than one cycle/epoch
EPOCHS = 4


def _spec(name: str) -> RegularizerSpec:
    return REGULARIZERS.get(name)


def _cfg(tiny_cfg: RunConfig, name: str, extra: dict[str, Any] | None = None) -> RunConfig:
    return tiny_cfg.override({"epochs": EPOCHS, **(extra or {})}).override(_spec(name).example)


def test_registry_is_not_empty_and_names_match() -> None:
    assert len(NAMES) >= 15
    for name, spec in REGULARIZERS.items():
        assert spec.name == name
        assert spec.doc.strip(), f"{name} has no documentation"


@pytest.mark.parametrize("name", NAMES)
def test_inactive_by_default(name: str) -> None:
    spec = _spec(name)
    assert spec.build(RunConfig()) is None
    assert not spec.active(RunConfig())
    assert name not in [r.name for r in build_regularizers(RunConfig())]


@pytest.mark.parametrize("name", NAMES)
def test_example_activates_the_regularizer(name: str) -> None:
    spec = _spec(name)
    cfg = RunConfig().override(spec.example)
    reg = spec.build(cfg)
    assert isinstance(reg, Regularizer)
    assert reg.name == name
    assert spec.active(cfg)
    assert name in [r.name for r in build_regularizers(cfg)]


@pytest.mark.parametrize("name", NAMES)
def test_tune_ranges_are_valid_settings(name: str) -> None:
    spec = _spec(name)
    for key, rng in spec.tune.items():
        assert rng.low < rng.high, key
        for value in (rng.low, rng.high):
            v = int(value) if rng.kind == "int" else value
            # inside the config's domain (the example supplies sections such as early_stopping)
            RunConfig().override(spec.example).override({key: v})


def _run(cfg: RunConfig, data: DataSplits, **kw: Any) -> tuple[Any, list[int]]:
    reads_during_training: list[int] = []

    def watch(record: dict[str, float]) -> None:
        reads_during_training.append(data.test.reads)

    return fit(cfg, data, callbacks=[watch], **kw), reads_during_training


@pytest.mark.parametrize("name", NAMES)
def test_run_is_active_finite_reproducible_and_reads_test_once(
    name: str, tiny_cfg: RunConfig, load: Callable[..., DataSplits], helpers: Any
) -> None:
    spec = _spec(name)
    cfg = _cfg(tiny_cfg, name)
    assert spec.build(cfg) is not None

    data_a = load(n_train=cfg.data.n_train)
    a, reads_a = _run(cfg, data_a, keep_model=True)
    assert a.status == "completed", a.reason
    assert name in a.info["regularizers"]
    assert len(a.history) >= 1
    assert all(r == 0 for r in reads_a) and len(reads_a) == len(a.history)
    assert data_a.test.reads == 1
    for h in a.history:
        assert helpers.all_finite(h), h
    assert helpers.all_finite(a.final), a.final
    for key in ("train_acc", "val_acc", "test_acc"):
        assert 0.0 <= a.final[key] <= 1.0
    assert a.test_probs is not None and a.test_probs.shape == (len(data_a.test), data_a.n_classes)
    assert abs(a.test_probs.sum(1) - 1).max() < 1e-4

    # same seed, fresh copy of the data: identical history and final metrics
    data_b = load(n_train=cfg.data.n_train)
    b, reads_b = _run(cfg, data_b)
    assert helpers.history_without_time(b.history) == helpers.history_without_time(a.history)
    assert b.final == a.final
    assert (b.test_probs == a.test_probs).all()
    assert data_b.test.reads == 1 and all(r == 0 for r in reads_b)

    # the returned model predicts deterministically in eval mode and is the one that was evaluated
    model = a.model
    assert isinstance(model, torch.nn.Module)
    model.eval()
    with torch.no_grad():
        p1 = model(data_a.x_val)
        p2 = model(data_a.x_val)
    assert torch.equal(p1, p2)
    val_acc = int((p1.argmax(1) == data_a.y_val).sum()) / len(data_a.y_val)
    assert val_acc == pytest.approx(a.final["val_acc"], abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("setting", ["cnn", "tabular"])
def test_runs_with_cnn_and_on_tabular_data(
    name: str, setting: str, tiny_cfg: RunConfig, load: Callable[..., DataSplits], helpers: Any
) -> None:
    if setting == "cnn":
        cfg = _cfg(tiny_cfg, name, {"arch": "cnn"})
        data = load(n_train=cfg.data.n_train)
    else:
        syn = {"n_samples": 300, "n_features": 12, "n_classes": 3}
        cfg = _cfg(tiny_cfg, name, {"name": "synthetic", "synthetic": syn, "n_train": None})
        data = load(name="synthetic", synthetic=syn)
    result = fit(cfg, data)
    assert result.status == "completed", result.reason
    assert name in result.info["regularizers"]
    assert helpers.all_finite(result.final)
    assert data.test.reads == 1
