"""Studies: fair multi-seed comparisons of arms (Python API).

>>> from reglab.study import load_study, run_protocol
>>> results = run_protocol(load_study("examples/mnist_mlp_l2_dropout.yaml"), jobs=2)
>>> results.table()            # pandas DataFrame, one row per arm

The names load on first use, so a worker process importing :mod:`reglab.study.execution.worker` does not pay
for the driver's Optuna, SciPy and report modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reglab.study.definition.spec import StudySpec, load_study, parse_study
    from reglab.study.protocol.protocol import run_protocol
    from reglab.study.results.results import StudyResults

__all__ = ["StudyResults", "StudySpec", "load_study", "parse_study", "run_protocol"]

_WHERE = {
    "run_protocol": "reglab.study.protocol.protocol",
    "StudyResults": "reglab.study.results.results",
    "StudySpec": "reglab.study.definition.spec",
    "load_study": "reglab.study.definition.spec",
    "parse_study": "reglab.study.definition.spec",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'reglab.study' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
