"""Shared by the tuning benchmarks: an in-process executor and a helper that runs one arm's search
through reglab's own driver (``reglab.study.protocol.protocol.tune_study``: spaces, samplers, pruners, storage).

``InProcessExecutor`` (reglab's) trains in a thread of this process, one task at a time,
advancing one epoch per ``poll``: a pruning decision takes effect at the very next
epoch, and results do not depend on how busy the machine is (the benchmarks are deterministic for
a given seed). Runs use one torch thread.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from reglab.study.definition.spec import StudySpec, parse_study
from reglab.study.execution.executors import InProcessExecutor


def make_spec(
    name: str,
    *,
    data: dict[str, Any],
    model: dict[str, Any],
    train: dict[str, Any],
    search: dict[str, Any],
    output: Path,
) -> StudySpec:
    """A one-arm study whose whole search space is ``search['space']``."""
    doc = {
        "name": name,
        "data": data,
        "model": model,
        "train": {**train, "device": "cpu"},
        "arms": {"arm": {}},
        "search": search,
        "seeds": 1,
        "output": str(output),
    }
    return parse_study(doc, f"{name}.yaml")


def run_search(spec: StudySpec) -> tuple[dict[str, Any], float]:
    """Tune the spec's single arm from scratch in this process; (insight, wall seconds)."""
    from reglab.study.protocol.protocol import tune_study

    ex = InProcessExecutor()
    t0 = time.perf_counter()
    try:
        result = tune_study(spec, executor=ex, progress=False, new=True)["arm"].model_dump()
    finally:
        ex.close()
    return result, time.perf_counter() - t0


def workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for the SQLite storage, in memory (/dev/shm) where there is one: the
    driver writes every reported epoch, and a disk's fsync would dominate these tiny runs."""
    shm = Path("/dev/shm")
    return tempfile.TemporaryDirectory(prefix=prefix, dir=shm if shm.is_dir() else None)


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (reglab.stats.compare.describe)."""
    from reglab.stats.compare import describe

    s = describe(values, confidence)
    half = (s.ci_high - s.ci_low) / 2 if s.ci_high is not None and math.isfinite(s.ci_high) else float("nan")
    return s.mean, half
