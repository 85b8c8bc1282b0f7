"""Every registered regularizer, tested the same way (a newly registered one is picked up here).

With its registry ``example`` on tiny data each regularizer must be active, finish with finite
metrics, reproduce its history and final metrics exactly for the same seed, read the test split
exactly once and only after training, predict deterministically in eval mode, and be inactive in
the default configuration. A structural regularizer must change the network it is built into and
any other must leave it alone. The checks are functions of one spec (``check_*``) so a test can run
them on a regularizer registered at run time (``test_registration.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from reglab.config import RunConfig
from reglab.data.base import DataSplits
from reglab.models import build_model
from reglab.regularizers import REGULARIZERS, Regularizer, RegularizerSpec, build_regularizers
from reglab.training.engine import fit

NAMES = REGULARIZERS.names()
# enough epochs for snapshot/SWA to see more than one cycle/epoch
EPOCHS = 4


def _spec(name: str) -> RegularizerSpec[Any]:
    return REGULARIZERS.get(name)


def _cfg(tiny_cfg: RunConfig, spec: RegularizerSpec[Any], extra: dict[str, Any] | None = None) -> RunConfig:
    return tiny_cfg.override({"epochs": EPOCHS, **(extra or {})}).override(spec.example)


def test_registry_is_not_empty_and_names_match() -> None:
    assert len(NAMES) >= 15
    for name, spec in REGULARIZERS.items():
        assert spec.name == name
        check_documented(spec)


def check_documented(spec: RegularizerSpec[Any]) -> None:
    assert spec.doc.strip(), f"{spec.name} has no description"
    assert spec.citation.strip(), f"{spec.name} cites no source"
    assert spec.fields, f"{spec.name} declares no settings"
    for f in spec.fields:  # every setting of a regularizer is a field of the config
        assert f in type(RunConfig().regularization).model_fields, f


def check_inactive_by_default(spec: RegularizerSpec[Any]) -> None:
    assert spec.build(RunConfig()) is None
    assert not spec.active(RunConfig())
    assert spec.name not in [r.name for r in build_regularizers(RunConfig())]


def check_example_activates(spec: RegularizerSpec[Any]) -> None:
    cfg = RunConfig().override(spec.example)
    reg = spec.build(cfg)
    assert isinstance(reg, Regularizer)
    assert reg.name == spec.name
    assert spec.active(cfg)
    assert spec.name in [r.name for r in build_regularizers(cfg)]


def check_tune_ranges(spec: RegularizerSpec[Any]) -> None:
    for key, rng in spec.tune.items():
        assert rng.low < rng.high, key
        for value in (rng.low, rng.high):
            v = int(value) if rng.kind == "int" else value
            # inside the config's domain (the example supplies sections such as early_stopping)
            RunConfig().override(spec.example).override({key: v})


def _tree(model: torch.nn.Module) -> list[tuple[str, str, tuple[tuple[int, ...], ...]]]:
    """The module tree: names, types and parameter shapes."""
    return [
        (name, type(m).__name__, tuple(tuple(p.shape) for p in m.parameters(recurse=False)))
        for name, m in model.named_modules()
    ]


def check_structure(spec: RegularizerSpec[Any]) -> None:
    """A structural regularizer changes the network (in the MLP or the CNN, with the model settings
    of its example on top: ``residual: true``, ``arch: lstm``); any other does not."""
    reg = spec.build(RunConfig().override(spec.example))
    assert reg is not None
    changed = []
    shape = (1, 8, 8)
    for base in ({"arch": "mlp", "hidden": (16, 8)}, {"arch": "cnn"}):
        model = RunConfig().override(base).override(spec.example).model
        torch.manual_seed(0)
        plain = _tree(build_model(model, shape, 10))
        torch.manual_seed(0)
        changed.append(_tree(build_model(model, shape, 10, [reg])) != plain)
    if spec.structural:
        assert any(changed), f"{spec.name} is structural but adds nothing to the MLP or the CNN"
    else:
        assert not any(changed), f"{spec.name} is not structural but changes the network"


def _run(cfg: RunConfig, data: DataSplits, **kw: Any) -> tuple[Any, list[int]]:
    reads_during_training: list[int] = []

    def watch(record: dict[str, float]) -> None:
        reads_during_training.append(data.test.reads)

    return fit(cfg, data, callbacks=[watch], **kw), reads_during_training


def check_run(spec: RegularizerSpec[Any], tiny_cfg: RunConfig, load: Callable[..., DataSplits], helpers: Any) -> None:
    """Active, finite, reproducible for a seed, the test split read once after training, and the
    returned model deterministic in eval mode."""
    name = spec.name
    cfg = _cfg(tiny_cfg, spec)
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


def check_cnn_and_tabular(
    spec: RegularizerSpec[Any], setting: str, tiny_cfg: RunConfig, load: Callable[..., DataSplits], helpers: Any
) -> None:
    if setting == "cnn":
        cfg = _cfg(tiny_cfg, spec, {"arch": "cnn"})
        data = load(n_train=cfg.data.n_train)
    else:
        syn = {"n_samples": 300, "n_features": 12, "n_classes": 3}
        cfg = _cfg(tiny_cfg, spec, {"name": "synthetic", "synthetic": syn, "n_train": None})
        data = load(name="synthetic", synthetic=syn)
    result = fit(cfg, data)
    assert result.status == "completed", result.reason
    assert spec.name in result.info["regularizers"]
    assert helpers.all_finite(result.final)
    assert data.test.reads == 1


@pytest.mark.parametrize("name", NAMES)
def test_inactive_by_default(name: str) -> None:
    check_inactive_by_default(_spec(name))


@pytest.mark.parametrize("name", NAMES)
def test_example_activates_the_regularizer(name: str) -> None:
    check_example_activates(_spec(name))


@pytest.mark.parametrize("name", NAMES)
def test_tune_ranges_are_valid_settings(name: str) -> None:
    check_tune_ranges(_spec(name))


@pytest.mark.parametrize("name", NAMES)
def test_structural_ones_and_only_they_change_the_network(name: str) -> None:
    check_structure(_spec(name))


@pytest.mark.parametrize("name", NAMES)
def test_run_is_active_finite_reproducible_and_reads_test_once(
    name: str, tiny_cfg: RunConfig, load: Callable[..., DataSplits], helpers: Any
) -> None:
    check_run(_spec(name), tiny_cfg, load, helpers)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("setting", ["cnn", "tabular"])
def test_runs_with_cnn_and_on_tabular_data(
    name: str, setting: str, tiny_cfg: RunConfig, load: Callable[..., DataSplits], helpers: Any
) -> None:
    check_cnn_and_tabular(_spec(name), setting, tiny_cfg, load, helpers)


def test_a_structural_check_that_can_fail() -> None:
    """A regularizer that claims to be structural but adds nothing is caught."""
    fake = RegularizerSpec(
        name="dropout",
        settings=_spec("dropout").settings,
        make=lambda s: Regularizer(),
        doc="x",
        citation="x",
        example={"dropout": 0.3},
        structural=True,
    )
    with pytest.raises(AssertionError, match="adds nothing"):
        check_structure(fake)
