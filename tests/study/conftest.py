"""Shared pieces of the study tests: a tiny study document, YAML writing, and one pool of worker
processes for the whole session (spawning workers and importing torch in them costs seconds)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# digits, 200 training examples, a 32-unit MLP, 2 epochs: a run takes a few tens of milliseconds
TINY_STUDY: dict[str, Any] = {
    "name": "tiny",
    "data": {"name": "digits", "n_train": 200},
    "model": {"hidden": [32]},
    "train": {"epochs": 2, "batch_size": 32, "device": "cpu"},
    "arms": {"none": {}, "l2": {"l2": 1.0e-3}},
    "seeds": 3,
}


def study_doc(**changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`TINY_STUDY` with top-level keys replaced."""
    doc = copy.deepcopy(TINY_STUDY)
    doc.update(copy.deepcopy(changes))
    return doc


@pytest.fixture(scope="session")
def tiny_study() -> Callable[..., dict[str, Any]]:
    """``tiny_study(**top_level_changes)``: a fresh study document."""
    return study_doc


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[..., Path]:
    """``write_yaml(doc_or_text, name="study.yaml")``: write a study file into tmp_path."""

    def _write(content: dict[str, Any] | str, name: str = "study.yaml") -> Path:
        p = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        p.write_text(text, encoding="utf-8")
        return p

    return _write


@pytest.fixture(scope="session")
def executor() -> Iterator[Any]:
    """Two worker processes (one torch thread each) shared by every study run in the session."""
    from reglab.study.execution.executors import LocalExecutor

    ex = LocalExecutor(2)
    yield ex
    ex.close()
