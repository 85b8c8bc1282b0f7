"""The report's figure sections on the study's own results: learning curves (``runs.csv``), the
generalization gap, the per-seed distribution (``finals.csv``) and the final weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.report import figures as F
from reglab.report.data import num
from reglab.report.format import cell, fmt_ci, fmt_diff, fmt_value, is_fraction
from reglab.report.view import ReportView

if TYPE_CHECKING:
    import pandas as pd

CURVE_KEYS = ("train_acc", "val_acc", "train_loss", "val_loss")


def _configured_epochs(v: ReportView, arm: str, runs: pd.DataFrame) -> float:
    cfg = v.so.config or {}
    try:
        e = num(cfg["arms"][arm]["config"]["train"]["epochs"])
    except (KeyError, TypeError):
        e = None
    return e if e is not None else float(runs["epoch"].max())


def _best_epoch(v: ReportView, arm: str) -> float | None:
    """The mean best epoch from the summary, else from finals.csv."""
    import pandas as pd

    best = v.stats(arm, "best_epoch").mean
    if best is None and v.so.finals is not None and "best_epoch" in v.so.finals.columns:
        fin = v.completed(v.so.finals)
        if fin is not None:
            best = num(pd.to_numeric(fin[fin["arm"] == arm]["best_epoch"], errors="coerce").mean())
    return best


def curve_data(v: ReportView) -> list[F.ArmCurves]:
    """Per arm: mean and min-max band over seeds of each curve, and where runs stopped early."""
    import pandas as pd

    runs = v.completed(v.so.runs)
    if runs is None or "epoch" not in runs.columns:
        return []
    keys = [k for k in CURVE_KEYS if k in runs.columns]
    if not keys:
        return []
    runs = runs.copy()
    for k in [*keys, "epoch"]:
        runs[k] = pd.to_numeric(runs[k], errors="coerce").replace([np.inf, -np.inf], np.nan)
    runs = runs.dropna(subset=["epoch"])
    out = []
    for arm in v.order:
        df = runs[runs["arm"] == arm]
        if df.empty:
            continue
        g = df.groupby("epoch")
        curves = {}
        for k in keys:
            agg = g[k].agg(["mean", "min", "max"])
            if agg["mean"].notna().any():
                curves[k] = F.Curve(
                    agg.index.to_numpy(float),
                    agg["mean"].to_numpy(float),
                    agg["min"].to_numpy(float),
                    agg["max"].to_numpy(float),
                )
        if not curves:
            continue
        planned = _configured_epochs(v, arm, runs)
        stops = []
        for _, sd in df.groupby("seed"):
            last = sd.loc[sd["epoch"].idxmax()]
            if float(last["epoch"]) < planned:
                stops.append((float(last["epoch"]), num(last.get("val_acc")), num(last.get("val_loss"))))
        out.append(F.ArmCurves(arm, curves, int(df["seed"].nunique()), _best_epoch(v, arm), stops))
    return out


def curves_section(v: ReportView) -> dict[str, Any] | None:
    data = curve_data(v)
    if not data:
        return None
    tabs = []
    acc = [a for a in data if "val_acc" in a.curves or "train_acc" in a.curves]
    loss = [a for a in data if "val_loss" in a.curves or "train_loss" in a.curves]
    if acc:
        f = v.fig("curves_accuracy", lambda: F.curves_small_multiples(acc, v.colors, "acc"), "Accuracy per arm")
        if f:
            tabs.append({"id": "acc", "label": "Accuracy · per arm", "figure": f})
    if loss:
        f = v.fig("curves_loss", lambda: F.curves_small_multiples(loss, v.colors, "loss"), "Loss per arm")
        if f:
            tabs.append({"id": "loss", "label": "Loss · per arm", "figure": f})
    # one arm overlaid is its own panel again
    f = (
        v.fig("curves_overlaid", lambda: F.curves_overlaid(data, v.colors), "All arms overlaid")
        if len(data) > 1
        else None
    )
    if f:
        tabs.append({"id": "overlaid", "label": "All arms overlaid", "figure": f})
    if not tabs:
        return None
    excluded = len(v.summary.failed_runs)
    return {"tabs": tabs, "excluded": excluded, "early_stops": sum(len(a.stops) for a in data)}


def gap_section(v: ReportView) -> dict[str, Any] | None:
    rows = []
    for arm in v.order:
        tr, te = v.stats(arm, "train_acc").mean, v.stats(arm, "test_acc").mean
        if tr is not None and te is not None:
            rows.append(F.GapRow(arm, tr, te, v.stats(arm, "gap").mean))
    if not rows:
        return None
    f = v.fig("generalization_gap", lambda: F.gap_dumbbell(rows, v.colors), "Train vs test accuracy")
    if f is None:
        return None
    table = [
        {
            "arm": r.arm,
            "color": v.colors[r.arm],
            "train": cell(fmt_value("train_acc", r.train), r.train, "train_acc"),
            "test": cell(fmt_value("test_acc", r.test), r.test, "test_acc"),
            "gap": cell(fmt_diff("gap", r.gap), r.gap, "gap"),
        }
        for r in rows
    ]
    return {"figure": f, "table": table}


def strip_data(v: ReportView) -> list[F.StripArm]:
    """Per arm: the compare metric per seed (finals.csv, else the summary's values) with its mean and CI."""
    import pandas as pd

    m = v.metric
    fin = v.completed(v.so.finals)
    seeds = v.summary.seeds
    out = []
    for arm in v.order:
        st = v.stats(arm, m)
        values: dict[int, float] = {}
        if fin is not None and m in fin.columns:
            df = fin[fin["arm"] == arm]
            for seed, x in zip(df["seed"], pd.to_numeric(df[m], errors="coerce"), strict=True):
                if num(x) is not None:
                    values[int(seed)] = float(x)
        else:
            keys = seeds if len(st.values) == len(seeds) else [-1 - i for i in range(len(st.values))]
            values = {k: x for k, x in zip(keys, st.values, strict=True) if num(x) is not None}
        if values or st.mean is not None:
            out.append(F.StripArm(arm, values, st.mean, st.ci))
    return out


def distribution_section(v: ReportView) -> dict[str, Any] | None:
    data = strip_data(v)
    if not data or not any(len(a.values) > 1 for a in data):  # one seed: the verdict table has each value
        return None
    m = v.metric
    f = v.fig("per_seed", lambda: F.paired_strip(data, v.baseline, v.colors, m, is_fraction(m)), f"{m} per seed")
    limits = F.strip_limits(data, is_fraction(m))
    cut = limits is not None and any(a.ci and (a.ci[0] < limits[0] or a.ci[1] > limits[1]) for a in data)
    return {"figure": f, "metric": m, "cut": cut} if f else None


def histograms(v: ReportView) -> dict[str, list[F.ArmHistogram]]:
    """Each arm's summed final-weight histogram, normalized, in the log and linear views."""
    hists: dict[str, list[F.ArmHistogram]] = {"log": [], "linear": []}
    for arm, a in v.arms():
        h = a.weight_histogram
        if h is None:
            continue
        sparsity, norm = a.metric("sparsity").mean, a.metric("weight_l2").mean
        parts = []
        if sparsity is not None:
            parts.append(f"sparsity {sparsity * 100:.1f}%")
        if norm is not None:
            parts.append(f"L2 {norm:.3g}")
        for view, counts, (lo, hi, n) in (
            ("log", h.log10_abs, h.log10_abs_range),
            ("linear", h.linear, h.linear_range),
        ):
            c = np.array(counts, dtype=float)
            if c.sum() <= 0 or n != len(c):
                continue
            hists[view].append(F.ArmHistogram(arm, np.linspace(lo, hi, n + 1), c / c.sum(), " · ".join(parts)))
    return hists


def weights_section(v: ReportView) -> dict[str, Any] | None:
    hists = histograms(v)
    tabs = []
    for view, label in (("log", "log10 |w|"), ("linear", "w (linear)")):
        hs = hists[view]
        if not hs:
            continue
        base = next((h for h in hs if h.arm == v.baseline), None)

        def build(hs: list[F.ArmHistogram] = hs, base: F.ArmHistogram | None = base, view: str = view) -> Any:
            return F.weight_histograms(hs, base, v.colors, view)

        f = v.fig(f"weights_{view}", build, f"Final weights, {label}")
        if f:
            tabs.append({"id": view, "label": label, "figure": f})
    sp_rows, l2_rows, table = [], [], []
    for arm, a in v.arms():
        sp, l2, l1 = a.metric("sparsity"), a.metric("weight_l2"), a.metric("weight_l1")
        if sp.mean is None and l2.mean is None:
            continue
        sp_rows.append(F.BarRow(arm, sp.mean, sp.ci))
        l2_rows.append(F.BarRow(arm, l2.mean, l2.ci))
        table.append(
            {
                "arm": arm,
                "color": v.colors[arm],
                "sparsity": cell(fmt_value("sparsity", sp.mean), sp.mean, "sparsity"),
                "sparsity_ci": fmt_ci("sparsity", sp),
                "l2": cell(fmt_value("weight_l2", l2.mean), l2.mean, "weight_l2"),
                "l2_ci": fmt_ci("weight_l2", l2),
                "l1": cell(fmt_value("weight_l1", l1.mean), l1.mean, "weight_l1"),
            }
        )
    bars = None
    if sp_rows:
        bars = v.fig("weights_norms", lambda: F.weight_bars(sp_rows, l2_rows, v.colors), "Sparsity and L2 norm")
    if not tabs and bars is None and not table:
        return None
    return {"tabs": tabs, "bars": bars, "table": table}


P_KEY = "adaptive_augment_p"


def augment_p_data(v: ReportView) -> list[tuple[str, F.Curve]]:
    """Per arm with adaptive augmentation: p per epoch (runs.csv), mean and min-max over seeds."""
    import pandas as pd

    runs = v.completed(v.so.runs)
    if runs is None or P_KEY not in runs.columns or "epoch" not in runs.columns:
        return []
    out = []
    for arm in v.order:
        df = runs[runs["arm"] == arm]
        p = pd.to_numeric(df[P_KEY], errors="coerce")
        ep = pd.to_numeric(df["epoch"], errors="coerce")
        ok = p.notna() & ep.notna()
        if not ok.any():
            continue
        agg = p[ok].groupby(ep[ok]).agg(["mean", "min", "max"])
        out.append(
            (
                arm,
                F.Curve(
                    agg.index.to_numpy(float),
                    agg["mean"].to_numpy(float),
                    agg["min"].to_numpy(float),
                    agg["max"].to_numpy(float),
                ),
            )
        )
    return out


def sample_grid_data(v: ReportView) -> tuple[list[F.SampleGrid], list[dict[str, Any]]]:
    """Per arm with generative augmentation: its sample grid (image data) and the VAE's cost."""
    import base64

    grids, table = [], []
    for arm, a in v.arms():
        g = a.generated
        if g is None:
            continue
        caption = f"VAE: {g.vae_epochs:g} epochs, {g.vae_seconds:.2f} s (mean of {g.n_runs} run{'s' * (g.n_runs != 1)})"
        table.append({"arm": arm, "color": v.colors[arm], "caption": caption, "seed": g.seed})
        if g.b64 is not None and g.shape is not None and len(g.shape) == 5:
            images = np.frombuffer(base64.b64decode(g.b64), dtype=np.uint8).reshape(g.shape)
            grids.append(F.SampleGrid(arm, images, f"seed {g.seed} · {caption}"))
    return grids, table


def augmentation_section(v: ReportView) -> dict[str, Any] | None:
    p_data = augment_p_data(v)
    p_fig = None
    if p_data:
        p_fig = v.fig("augment_p", lambda: F.augment_p(p_data, v.colors), "Adaptive augmentation: p per epoch")
    grids, table = sample_grid_data(v)
    s_fig = None
    if grids:
        s_fig = v.fig("vae_samples", lambda: F.sample_grids(grids, v.colors), "Generated samples per class")
    if p_fig is None and s_fig is None and not table:
        return None
    return {"p_figure": p_fig, "samples_figure": s_fig, "vae": table}


def adaptive_section(v: ReportView, figure: bool = True) -> dict[str, Any] | None:
    """Adaptive seeds: the design in words, each arm's verdict with the seeds it was decided at,
    the runs saved against ``max``, and the repeated intervals over the seeds (one figure)."""
    ad = v.summary.adaptive
    if ad is None:
        return None
    m = v.metric
    rows, arms = [], []
    for arm in v.order:
        c = v.summary.arms[arm].comparison
        if c is None or c.sequential is None:
            continue
        q = c.sequential
        last = q.intervals[-1] if q.intervals else None
        rows.append(
            {
                "arm": arm,
                "color": v.colors[arm],
                "verdict": q.verdict,
                "decided_at": q.decided_at,
                "seeds_used": q.seeds_used,
                "interval": "–"
                if last is None or last.low is None or last.high is None
                else f"{fmt_diff(m, last.low)} to {fmt_diff(m, last.high)}",
            }
        )
        looks = [
            (lk.seeds, lk.mean, lk.low if lk.low is not None else -np.inf, lk.high if lk.high is not None else np.inf)
            for lk in q.intervals
            if lk.mean is not None
        ]
        arms.append(F.SequenceArm(arm, looks, q.decided_at))
    scale = 100.0 if is_fraction(m) else 1.0
    f = (
        v.fig(
            "adaptive_intervals",
            lambda: F.sequence_intervals(arms, v.colors, ad.equivalence, scale),
            "Repeated intervals of the difference over seeds",
        )
        if figure
        else None
    )
    return {
        "method": ad.method,
        "rows": rows,
        "figure": f,
        "runs_used": ad.runs_used,
        "runs_max": ad.runs_max,
        "runs_saved": ad.runs_saved,
        "max": ad.max,
    }
