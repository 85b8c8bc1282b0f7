"""Shared fixtures: small in-memory datasets (loaded once per session, handed out as fresh copies
so every test sees an unread test split) and a tiny run configuration that trains in milliseconds."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from reglab.config import DataConfig, RunConfig
from reglab.data import load_data
from reglab.data.base import DataSplits, TestSplit

# The networks in these tests are tiny: a second OpenMP thread only adds synchronization, and on a
# busy 2-core machine its spin-waiting makes a 50 ms run take seconds. One thread is also what
# bitwise reproducibility on CPU is easiest to reason about with.
torch.set_num_threads(1)

TINY: dict[str, Any] = {
    "n_train": 150,
    "hidden": (32,),
    "channels": (4, 8),
    "fc": 16,
    "epochs": 3,
    "batch_size": 32,
    "device": "cpu",
}

_CACHE: dict[str, DataSplits] = {}


def fresh_copy(data: DataSplits) -> DataSplits:
    """A deep copy with its own, unread, test split (so ``test.reads`` starts at 0)."""
    x_te, y_te = data.test._x, data.test._y
    return DataSplits(
        data.name,
        data.x_train.clone(),
        data.y_train.clone(),
        data.x_val.clone(),
        data.y_val.clone(),
        TestSplit(x_te.clone(), y_te.clone()),
        data.n_classes,
        data.image,
        list(data.classes),
        data.source,
    )


@pytest.fixture(scope="session")
def load() -> Callable[..., DataSplits]:
    """``load(**data_overrides)``: the splits of ``DataConfig(**overrides)``, loaded once per
    session and returned as a fresh copy each call."""

    def _load(**overrides: Any) -> DataSplits:
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in _CACHE:
            _CACHE[key] = load_data(DataConfig.model_validate(overrides))
        return fresh_copy(_CACHE[key])

    return _load


@pytest.fixture
def digits(load: Callable[..., DataSplits]) -> DataSplits:
    """All of scikit-learn's digits (1,222 train / 216 val / 359 test), 8x8 images."""
    return load()


@pytest.fixture
def tiny_digits(load: Callable[..., DataSplits]) -> DataSplits:
    """150 training digits; validation and test splits as in ``digits``."""
    return load(n_train=TINY["n_train"])


@pytest.fixture
def tiny_synthetic(load: Callable[..., DataSplits]) -> DataSplits:
    """Tabular data: 300 samples, 12 features, 3 classes."""
    return load(name="synthetic", synthetic={"n_samples": 300, "n_features": 12, "n_classes": 3})


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """A run on ``tiny_digits`` with a 32-unit MLP for 3 epochs on the CPU."""
    return RunConfig().override(TINY)


def history_without_time(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


def all_finite(values: dict[str, Any]) -> bool:
    return all(math.isfinite(v) for v in values.values() if isinstance(v, int | float))


@pytest.fixture(scope="session")
def helpers() -> Any:
    """Small functions shared by test modules (a fixture, since test folders are not packages)."""

    class _H:
        history_without_time = staticmethod(history_without_time)
        all_finite = staticmethod(all_finite)
        fresh_copy = staticmethod(fresh_copy)

    return _H


@pytest.fixture
def test_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts reads of any test split in this process: ``total``, and ``tuning`` - those made while
    the protocol's tuning phase (``reglab.study.protocol.protocol.tune``) ran, which must stay 0."""
    import reglab.study.protocol.protocol as protocol
    from reglab.data.base import TestSplit

    reads = {"total": 0, "tuning": 0, "tuning_phases": 0}
    read, tune = TestSplit.read, protocol.tune

    def counting(self: TestSplit) -> Any:
        reads["total"] += 1
        return read(self)

    def watched(*args: Any, **kwargs: Any) -> Any:
        before = reads["total"]
        try:
            return tune(*args, **kwargs)
        finally:
            reads["tuning"] += reads["total"] - before
            reads["tuning_phases"] += 1

    monkeypatch.setattr(TestSplit, "read", counting)
    monkeypatch.setattr(protocol, "tune", watched)
    return reads
