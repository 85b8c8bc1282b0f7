"""The report's sections from files other commands write next to a study: a regularization path
(``reglab path``: ``path.json``) and the hyperparameter search (``reglab tune``: ``tuning.json``).
Both files are read tolerantly: a malformed entry is skipped, never an error."""

from __future__ import annotations

from typing import Any

import numpy as np

from reglab.report import figures as F
from reglab.report.data import PathSweep, num
from reglab.report.format import cell, fmt_param, fmt_value
from reglab.report.view import ReportView

PATH_KEYS = ("train_acc", "val_acc", "sparsity", "weight_l2")


def path_section(v: ReportView) -> list[dict[str, Any]] | None:
    out = [res for i, sweep in enumerate(v.so.paths) if (res := _path(v, sweep, i))]
    return out or None


def _completed(row: dict[str, Any]) -> bool:
    return str(row.get("status") or "completed") == "completed"


def _path(v: ReportView, sweep: PathSweep, i: int) -> dict[str, Any] | None:
    """One sweep: mean and range over seeds per value, and the value with the best validation accuracy."""
    by_value: dict[float, list[dict[str, Any]]] = {}
    for r in sweep.rows:
        x = num(r.get("value"))
        if _completed(r) and x is not None:
            by_value.setdefault(x, []).append(r)
    if not by_value:
        return None
    points = []
    for x in sorted(by_value):
        stats: dict[str, tuple[float, float, float] | None] = {}
        pts: dict[str, list[float]] = {}
        for k in PATH_KEYS:
            vals = [y for y in (num(r.get(k)) for r in by_value[x]) if y is not None]
            pts[k] = vals
            stats[k] = (float(np.mean(vals)), min(vals), max(vals)) if vals else None
        points.append(F.PathPoint(x, stats, pts))
    scored = [(p.value, s[0]) for p in points if (s := p.stats.get("val_acc"))]
    best, best_val = max(scored, key=lambda t: t[1]) if scored else (None, None)
    xs = [p.value for p in points]
    log_x = min(xs) > 0 and max(xs) / min(xs) >= 20
    name = "path" if i == 0 else f"path_{i + 1}"
    f = v.fig(name, lambda: F.path_figure(points, sweep.param, best, log_x), f"Regularization path: {sweep.param}")
    if f is None:
        return None
    return {
        "param": sweep.param,
        "source": sweep.source,
        "figure": f,
        "best": None if best is None else f"{best:.3g}",
        "best_val": fmt_value("val_acc", best_val),
        "n_values": len(points),
        "n_seeds": len({r.get("seed") for r in sweep.rows}),
        "n_failed": sum(1 for r in sweep.rows if not _completed(r)),
        "log_x": log_x,
    }


def _best_so_far(t: dict[str, Any], trials: list[dict[str, Any]], metric: str) -> list[Any]:
    bsf = t.get("best_so_far")
    if isinstance(bsf, list):
        return bsf
    from reglab.tasks import higher_is_better

    maximize = higher_is_better(metric)
    out, best = [], None
    for x in trials:
        y = num(x.get("value")) if str(x.get("state") or "COMPLETE").upper() == "COMPLETE" else None
        if y is not None and (best is None or (y > best if maximize else y < best)):
            best = y
        out.append(best)
    return out


def _expected(t: dict[str, Any]) -> list[tuple[int, float, float]]:
    out = []
    for e in t.get("expected_best") or []:
        if isinstance(e, dict):
            k, m, sd = num(e.get("k", e.get("n"))), num(e.get("mean")), num(e.get("std"))
            if k is not None and m is not None:
                out.append((int(k), m, sd or 0.0))
    return out


def _importance(imp: Any) -> dict[str, float] | None:
    """``{param: score}``, or Optuna's per-evaluator ``{evaluator: {param: score}}`` (fANOVA first)."""
    if not isinstance(imp, dict) or not imp:
        return None
    if all(num(x) is not None for x in imp.values()):
        return {str(k): float(x) for k, x in imp.items()}
    for key in ("fanova", *imp):
        d = imp.get(key)
        if isinstance(d, dict) and d and "_error" not in d and all(num(x) is not None for x in d.values()):
            return {str(k): float(x) for k, x in d.items()}
    return None


def _tuning_row(
    v: ReportView, arm: str, t: dict[str, Any], trials: list[dict[str, Any]], metric: str
) -> dict[str, Any]:
    states = [str(x.get("state") or "").upper() for x in trials]
    params = t.get("best_params") or {}
    secs = num(t.get("seconds_spent"))
    return {
        "arm": arm,
        "color": v.colors.get(arm, F.PALETTE[0]),
        "n_trials": t.get("n_trials", len(trials)),
        "n_complete": t.get("n_complete", states.count("COMPLETE")),
        "n_pruned": t.get("n_pruned", states.count("PRUNED")),
        "n_failed": t.get("n_failed", states.count("FAIL")),
        "epochs_spent": t.get("epochs_spent", "–"),
        "minutes": "–" if secs is None else f"{secs / 60:.1f}",
        "best_value": cell(fmt_value(metric, t.get("best_value")), t.get("best_value"), "best_value"),
        "best_params": [(str(k), fmt_param(x)) for k, x in params.items()] if isinstance(params, dict) else [],
    }


def tuning_section(v: ReportView) -> dict[str, Any] | None:
    """Per arm: best so far and expected best (Dodge et al. 2019) over trials, parameter
    importance, and what the search cost."""
    tuning = v.so.tuning
    if not tuning:
        return None
    curves, importance, table = [], {}, []
    metric = v.summary.select_metric
    for arm, t in tuning.items():
        metric = str(t.get("metric") or metric)
        trials = sorted(
            (x for x in t.get("trials") or [] if isinstance(x, dict)), key=lambda x: num(x.get("number")) or 0
        )
        curves.append(F.TuningCurves(arm, [num(x) for x in _best_so_far(t, trials, metric)], _expected(t)))
        if imp := _importance(t.get("importance")):
            importance[arm] = imp
        table.append(_tuning_row(v, arm, t, trials, metric))
    figs = []
    if any(c.best_so_far or c.expected for c in curves):
        f = v.fig(
            "tuning_progress", lambda: F.tuning_progress(curves, v.colors, metric), "Best so far and expected best"
        )
        if f:
            figs.append(f)
    if importance:
        f = v.fig("tuning_importance", lambda: F.importance_bars(importance, v.colors), "Parameter importance")
        if f:
            figs.append(f)
    return {"figures": figs, "table": table, "metric": metric}
