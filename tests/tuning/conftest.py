"""Fixtures for the tuning tests: tiny study files and an in-process executor.

``LockstepExecutor`` is reglab's ``InProcessExecutor`` (recording what it did): each task runs in
a thread of this process, one epoch per ``poll``, so pruning decisions take effect at the very
next epoch - deterministically, unlike with worker processes - and monkeypatches (e.g. counting
``TestSplit.read``) see everything the runs do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from reglab.study.definition.spec import StudySpec, parse_study
from reglab.study.execution.executors import InProcessExecutor as LockstepExecutor

torch.set_num_threads(1)

# a tiny study: digits with 150 training examples, a 16-unit MLP, 3 epochs, CPU
BASE_DOC: dict[str, Any] = {
    "data": {"name": "digits", "n_train": 150},
    "model": {"hidden": [16]},
    "train": {"epochs": 3, "optimizer": "momentum", "lr": 0.05, "batch_size": 32, "device": "cpu"},
    "seeds": 2,
}


@pytest.fixture
def lockstep() -> Iterator[LockstepExecutor]:
    ex = LockstepExecutor(record=True)
    yield ex
    ex.close()


@pytest.fixture
def make_spec(tmp_path: Path) -> Any:
    """``make_spec(name, arms, search, **more)``: a validated tiny study writing under tmp_path."""

    def _make(name: str, arms: dict[str, Any], search: dict[str, Any] | None = None, **more: Any) -> StudySpec:
        doc: dict[str, Any] = {**BASE_DOC, "name": name, "arms": arms, "output": str(tmp_path / name), **more}
        if search is not None:
            doc["search"] = search
        return parse_study(doc, f"{name}.yaml")

    return _make
