"""Studies: fair multi-seed comparisons of arms (Python API).

>>> from reglab.study import load_study, run_protocol
>>> results = run_protocol(load_study("examples/mnist_mlp_l2_dropout.yaml"), jobs=2)
>>> results.table()            # pandas DataFrame, one row per arm
"""

from __future__ import annotations

from reglab.study.protocol import run_protocol
from reglab.study.results import StudyResults
from reglab.study.spec import StudySpec, load_study, parse_study

__all__ = ["StudyResults", "StudySpec", "load_study", "parse_study", "run_protocol"]
