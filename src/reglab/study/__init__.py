"""Studies: fair multi-seed comparisons of arms (Python API).

>>> from reglab.study import load_study, run_study
>>> results = run_study(load_study("examples/mnist_mlp.yaml"), jobs=2)
>>> results.table()            # pandas DataFrame, one row per arm
"""

from __future__ import annotations

from reglab.study.runner import StudyResults, run_study
from reglab.study.spec import StudySpec, load_study, parse_study

__all__ = ["StudyResults", "StudySpec", "load_study", "parse_study", "run_study"]
