"""Summary numbers as report text (formatting only: no statistics are computed here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reglab.report.data import num
from reglab.stats.summary import MetricStats


def is_fraction(metric: str) -> bool:
    """Shown as a percentage: accuracy-like metrics of the registry (``test_bacc``, ``val_f1``),
    the accuracy gap and sparsity; RMSE, AUC, R², losses and norms are shown as numbers."""
    from reglab.tasks import metric_info

    info = metric_info(metric)
    if info is not None:
        return info.percent
    return metric.endswith("_acc") or metric in ("accuracy", "gap", "sparsity")


def fmt_value(metric: str, x: Any) -> str:
    v = num(x)
    if v is None:
        return "–"
    return f"{v * 100:.2f}%" if is_fraction(metric) else f"{v:.4g}"


def fmt_diff(metric: str, x: Any) -> str:
    v = num(x)
    if v is None:
        return "–"
    return f"{v * 100:+.2f} pp" if is_fraction(metric) else f"{v:+.4g}"


def fmt_interval(lo: Any, hi: Any, one: Callable[[Any], str]) -> str:
    if num(lo) is None or num(hi) is None:
        return "–"
    return f"[{one(lo)}, {one(hi)}]"


def fmt_ci(metric: str, st: MetricStats) -> str:
    """The 95 % CI of a metric's mean, ``[low, high]`` in the metric's units."""
    return fmt_interval(st.ci_low, st.ci_high, lambda x: fmt_value(metric, x))


def fmt_p(x: Any) -> str:
    v = num(x)
    if v is None:
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def fmt_prob(x: Any) -> str:
    v = num(x)
    return "–" if v is None else f"{v:.2f}"


def fmt_seconds(x: Any) -> str:
    v = num(x)
    if v is None:
        return "–"
    if v < 60:
        return f"{v:.1f} s"
    m, s = divmod(round(v), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fmt_param(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def raw(x: Any) -> str:
    """The exact number for ``data-value`` attributes (tests and scripts compare it to summary.json)."""
    v = num(x)
    return "" if v is None else repr(v)


def cell(text: str, value: Any = None, key: str = "") -> dict[str, str]:
    """A table cell: its text, the exact number behind it and what it is (``data-key``)."""
    return {"text": text, "value": raw(value), "key": key}
