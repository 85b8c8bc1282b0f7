"""Small helpers shared by the benchmark scripts: thread pinning, timing, medians, tables."""

from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pin_threads(n: int) -> int:
    """Pin torch to ``n`` intra-op threads (and one inter-op thread) for stable numbers."""
    import torch

    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # already set, or work already started: harmless
        torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of ``fn`` (garbage collected before, not during)."""
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width text table (first column left-aligned, the rest right-aligned)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths, strict=True)):
            out.append(str(c).ljust(w) if i == 0 else str(c).rjust(w))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def env_line() -> str:
    import platform

    import torch

    return (
        f"python {sys.version.split()[0]}, torch {torch.__version__}, {platform.machine()}, "
        f"{platform.processor() or platform.system()}"
    )


def load_line() -> str:
    """The machine's load average: other processes competing for the CPUs make timings noisy."""
    import os

    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unavailable"
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def overloaded() -> bool:
    """Whether the 1-minute load average exceeds the number of CPUs."""
    import os

    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False
