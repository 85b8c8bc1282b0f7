"""The study report: one self-contained HTML file (inline CSS and SVG figures, no network) or a
Markdown summary, built from a study's output directory.

Printed statistics come from ``summary.json`` only (formatted, never recomputed); learning curves
come from ``runs.csv`` and per-seed points from ``finals.csv``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.errors import ReglabError
from reglab.report import figures as F
from reglab.report.data import PathSweep, StudyOutput, load_output, num
from reglab.study.storage import mask_url

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("html", "md")
SECTION_TITLES = {
    "verdict": "Verdict",
    "curves": "Learning curves",
    "gap": "Generalization gap",
    "distribution": "Per-seed results",
    "weights": "Weights",
    "path": "Regularization path",
    "tuning": "Tuning",
    "failed": "Failed runs",
    "reproducibility": "Reproducibility",
}
VERDICT_CLASS = {
    "better": "good",
    "worse": "bad",
    "no significant difference": "neutral",
    "underpowered": "warn",
    "baseline": "base",
}
DIAGNOSIS_CLASS = {"good fit": "good", "high variance": "warn", "high bias": "bad", "over-regularized": "bad"}


def build_report(output_dir: str | Path, fmt: str = "html", png_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``report.md`` for ``fmt="md"``) into ``output_dir`` and return its
    path; with ``png_dir`` every figure is also saved there as PNG."""
    if fmt not in FORMATS:
        raise ReglabError(f"unknown report format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    so = load_output(output_dir)
    pngs: Path | None = None
    if png_dir is not None:
        pngs = Path(png_dir)
        try:
            pngs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ReglabError(f"--png {pngs}: cannot create the folder ({err.strerror or err})") from None
    report = Report(so, pngs)
    need_figures = fmt == "html" or pngs is not None
    ctx = report.context(figures=need_figures)
    if fmt == "md":
        text = render_markdown(ctx, so.directory)
        target = so.directory / "report.md"
    else:
        text = render_html(ctx)
        target = so.directory / "report.html"
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ReglabError(f"{target}: cannot write the report ({err.strerror or err})") from None
    return target


# -- formatting (summary numbers -> text; no statistics here) ------------------------------------


def is_fraction(metric: str) -> bool:
    return metric.endswith("_acc") or metric in ("acc", "accuracy", "gap", "sparsity")


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


def raw(x: Any) -> str:
    """The exact number for ``data-value`` attributes (tests and scripts compare it to summary.json)."""
    v = num(x)
    return "" if v is None else repr(v)


def cell(text: str, value: Any = None, key: str = "") -> dict[str, str]:
    return {"text": text, "value": raw(value), "key": key}


# -- the report model --------------------------------------------------------------------------


class Report:
    def __init__(self, so: StudyOutput, png_dir: Path | None = None) -> None:
        self.so = so
        self.s = so.summary
        self.png_dir = png_dir
        self.arms: dict[str, Any] = self.s["arms"]
        self.baseline: str | None = self.s.get("baseline") if self.s.get("baseline") in self.arms else None
        self.metric: str = str(self.s.get("compare_metric") or "test_acc")
        ranking = [a for a in self.s.get("ranking") or [] if a in self.arms]
        self.order = ranking + [a for a in self.arms if a not in ranking]
        extra = list(so.tuning or {})
        self.colors = F.arm_colors([*self.arms, *extra], self.baseline)
        self.figures: list[F.Rendered] = []

    # helpers
    def metric_of(self, arm: str, m: str) -> dict[str, Any]:
        return (self.arms[arm].get("metrics") or {}).get(m) or {}

    def fig(self, name: str, build: Callable[[], Any], title: str, caption: str = "") -> F.Rendered | None:
        """Build and render one figure; a plotting failure drops the figure (with a note), not the report."""
        try:
            with F.style(name):
                fig = build()
            r = F.render(fig, name, self.png_dir, title)
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError) as err:
            self.so.notes.append(f"figure {name!r} left out ({type(err).__name__}: {str(err)[:200]})")
            return None
        r.caption = caption
        self.figures.append(r)
        return r

    # context
    def context(self, figures: bool = True) -> dict[str, Any]:
        s = self.s
        ctx: dict[str, Any] = {
            "study": str(s.get("study") or self.so.directory.name),
            "baseline": self.baseline,
            "metric": self.metric,
            "metric_is_fraction": is_fraction(self.metric),
            "select_metric": s.get("select_metric"),
            "seeds": s.get("seeds") or [],
            "n_seeds": len(s.get("seeds") or []),
            "n_runs": s.get("n_runs"),
            "n_expected": s.get("n_expected"),
            "n_arms": len(self.arms),
            "colors": self.colors,
            "version": ((s.get("environment") or {}).get("versions") or {}).get("reglab"),
        }
        ctx["verdict"] = self.verdict()
        ctx["failed"] = self.failed()
        ctx["repro"] = self.reproducibility()
        ctx["sections"] = {}
        if figures:
            ctx["sections"] = {
                "curves": self.curves_section(),
                "gap": self.gap_section(),
                "distribution": self.distribution_section(),
                "weights": self.weights_section(),
                "path": self.path_section(),
                "tuning": self.tuning_section(),
            }
        ctx["notes"] = list(self.so.notes)
        ctx["figures"] = self.figures
        present = ["verdict"]
        present += [k for k, v in ctx["sections"].items() if v]
        if ctx["failed"]:
            present.append("failed")
        present.append("reproducibility")
        ctx["nav"] = [(k, SECTION_TITLES[k]) for k in present]
        return ctx

    # 1. verdict
    def verdict(self) -> dict[str, Any]:
        m = self.metric
        rows = []
        for arm in self.order:
            a = self.arms[arm]
            st = self.metric_of(arm, m)
            c = a.get("comparison") or {}
            d = a.get("diagnosis") or {}
            is_base = arm == self.baseline
            verdict = (
                "baseline"
                if is_base
                else (c.get("verdict") or ("no completed runs" if not a.get("n_completed") else "–"))
            )
            rows.append(
                {
                    "arm": arm,
                    "color": self.colors[arm],
                    "rank": a.get("rank"),
                    "is_baseline": is_base,
                    "n_completed": a.get("n_completed"),
                    "n_failed": a.get("n_failed") or 0,
                    "mean": cell(fmt_value(m, st.get("mean")), st.get("mean"), "mean"),
                    "ci": _fmt_ci(m, st),
                    "ci_low": raw(st.get("ci_low")),
                    "ci_high": raw(st.get("ci_high")),
                    "diff": cell(fmt_diff(m, c.get("mean_diff")), c.get("mean_diff"), "mean_diff"),
                    "diff_ci": fmt_interval(c.get("ci_low"), c.get("ci_high"), lambda x: fmt_diff(m, x)),
                    "prob": cell(fmt_prob(c.get("prob_improvement")), c.get("prob_improvement"), "prob_improvement"),
                    "prob_ci": fmt_interval(c.get("prob_ci_low"), c.get("prob_ci_high"), fmt_prob),
                    "p_holm": cell(fmt_p(c.get("p_holm")), c.get("p_holm"), "p_holm"),
                    "significant": bool(c.get("significant")),
                    "verdict": verdict,
                    "verdict_class": VERDICT_CLASS.get(verdict, "neutral"),
                    "diagnosis": d.get("label"),
                    "diagnosis_class": DIAGNOSIS_CLASS.get(str(d.get("label")), "neutral"),
                    "reason": d.get("reason"),
                    "recommendation": d.get("recommendation"),
                    "ensemble": cell(
                        fmt_value("acc", a.get("ensemble_test_acc")), a.get("ensemble_test_acc"), "ensemble_test_acc"
                    ),
                    "gap": cell(
                        fmt_diff("gap", self.metric_of(arm, "gap").get("mean")),
                        self.metric_of(arm, "gap").get("mean"),
                        "gap",
                    ),
                }
            )
        top = next((r for r in rows if r["mean"]["value"]), None)
        better = [r["arm"] for r in rows if r["verdict"] == "better"]
        worse = [r["arm"] for r in rows if r["verdict"] == "worse"]
        note = self.s.get("underpowered_note")
        if note:
            headline, tone = "No winner is declared: too few seeds for a reliable comparison.", "warn"
        elif better:
            headline, tone = f"Better than the baseline after Holm correction: {', '.join(better)}.", "good"
        elif self.baseline is None or len(self.arms) == 1:
            headline, tone = "A single arm: nothing to compare against.", "neutral"
        else:
            headline, tone = (
                f"No arm is significantly better than the baseline ({self.baseline}) after Holm correction.",
                "neutral",
            )
        groups: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["diagnosis"]:
                g = groups.setdefault(
                    r["diagnosis"],
                    {
                        "label": r["diagnosis"],
                        "class": r["diagnosis_class"],
                        "arms": [],
                        "recommendation": r["recommendation"],
                    },
                )
                g["arms"].append(r["arm"])
        return {
            "rows": rows,
            "top": top,
            "better": better,
            "worse": worse,
            "headline": headline,
            "tone": tone,
            "note": note,
            "diagnoses": list(groups.values()),
            "has_comparison": any(not r["is_baseline"] for r in rows) and self.baseline is not None,
        }

    def failed(self) -> list[dict[str, Any]]:
        out = []
        for f in self.s.get("failed_runs") or []:
            if isinstance(f, dict):
                out.append({k: f.get(k) for k in ("arm", "seed", "status", "epoch", "reason")})
        return out

    # 2. learning curves
    def _completed(self, df: pd.DataFrame | None) -> pd.DataFrame | None:
        if df is None or df.empty:
            return None
        if "status" in df.columns:
            df = df[df["status"].astype(str) == "completed"]
        return df if not df.empty else None

    def _configured_epochs(self, arm: str, runs: pd.DataFrame) -> float:
        cfg = self.so.config or {}
        try:
            e = num(cfg["arms"][arm]["config"]["train"]["epochs"])
        except (KeyError, TypeError):
            e = None
        return e if e is not None else float(runs["epoch"].max())

    def curve_data(self) -> list[F.ArmCurves]:
        import pandas as pd

        runs = self._completed(self.so.runs)
        if runs is None or "epoch" not in runs.columns:
            return []
        keys = [k for k in ("train_acc", "val_acc", "train_loss", "val_loss") if k in runs.columns]
        if not keys:
            return []
        runs = runs.copy()
        for k in [*keys, "epoch"]:
            runs[k] = pd.to_numeric(runs[k], errors="coerce").replace([np.inf, -np.inf], np.nan)
        runs = runs.dropna(subset=["epoch"])
        out = []
        for arm in self.order:
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
            planned = self._configured_epochs(arm, runs)
            stops = []
            for _, sd in df.groupby("seed"):
                last = sd.loc[sd["epoch"].idxmax()]
                if float(last["epoch"]) < planned:
                    stops.append((float(last["epoch"]), num(last.get("val_acc")), num(last.get("val_loss"))))
            best = num(self.metric_of(arm, "best_epoch").get("mean"))
            if best is None and self.so.finals is not None and "best_epoch" in self.so.finals.columns:
                fin = self._completed(self.so.finals)
                if fin is not None:
                    best = num(pd.to_numeric(fin[fin["arm"] == arm]["best_epoch"], errors="coerce").mean())
            out.append(F.ArmCurves(arm, curves, int(df["seed"].nunique()), best, stops))
        return out

    def curves_section(self) -> dict[str, Any] | None:
        data = self.curve_data()
        if not data:
            return None
        tabs = []
        has_acc = any("val_acc" in a.curves or "train_acc" in a.curves for a in data)
        has_loss = any("val_loss" in a.curves or "train_loss" in a.curves for a in data)
        if has_acc:
            acc = [a for a in data if "val_acc" in a.curves or "train_acc" in a.curves]
            f = self.fig(
                "curves_accuracy", lambda: F.curves_small_multiples(acc, self.colors, "acc"), "Accuracy per arm"
            )
            if f:
                tabs.append({"id": "acc", "label": "Accuracy · per arm", "figure": f})
        if has_loss:
            loss = [a for a in data if "val_loss" in a.curves or "train_loss" in a.curves]
            f = self.fig("curves_loss", lambda: F.curves_small_multiples(loss, self.colors, "loss"), "Loss per arm")
            if f:
                tabs.append({"id": "loss", "label": "Loss · per arm", "figure": f})
        f = self.fig("curves_overlaid", lambda: F.curves_overlaid(data, self.colors), "All arms overlaid")
        if f:
            tabs.append({"id": "overlaid", "label": "All arms overlaid", "figure": f})
        if not tabs:
            return None
        excluded = len(self.failed())
        return {"tabs": tabs, "excluded": excluded, "early_stops": sum(len(a.stops) for a in data)}

    # 3. generalization gap
    def gap_section(self) -> dict[str, Any] | None:
        rows = []
        for arm in self.order:
            tr = num(self.metric_of(arm, "train_acc").get("mean"))
            te = num(self.metric_of(arm, "test_acc").get("mean"))
            if tr is None or te is None:
                continue
            rows.append(F.GapRow(arm, tr, te, num(self.metric_of(arm, "gap").get("mean"))))
        if not rows:
            return None
        f = self.fig("generalization_gap", lambda: F.gap_dumbbell(rows, self.colors), "Train vs test accuracy")
        if f is None:
            return None
        table = [
            {
                "arm": r.arm,
                "color": self.colors[r.arm],
                "train": cell(fmt_value("train_acc", r.train), r.train, "train_acc"),
                "test": cell(fmt_value("test_acc", r.test), r.test, "test_acc"),
                "gap": cell(fmt_diff("gap", r.gap), r.gap, "gap"),
            }
            for r in rows
        ]
        return {"figure": f, "table": table}

    # 4. per-seed distribution
    def strip_data(self) -> list[F.StripArm]:
        import pandas as pd

        m = self.metric
        fin = self._completed(self.so.finals)
        seeds = [int(x) for x in self.s.get("seeds") or []]
        out = []
        for arm in self.order:
            st = self.metric_of(arm, m)
            values: dict[int, float] = {}
            if fin is not None and m in fin.columns:
                df = fin[fin["arm"] == arm]
                for seed, v in zip(df["seed"], pd.to_numeric(df[m], errors="coerce"), strict=True):
                    if num(v) is not None:
                        values[int(seed)] = float(v)
            else:
                vals = [num(v) for v in st.get("values") or []]
                keys = seeds if len(vals) == len(seeds) else [-1 - i for i in range(len(vals))]
                values = {k: v for k, v in zip(keys, vals, strict=True) if v is not None}
            if values or num(st.get("mean")) is not None:
                out.append(F.StripArm(arm, values, num(st.get("mean")), _ci(st)))
        return out

    def distribution_section(self) -> dict[str, Any] | None:
        data = self.strip_data()
        if not data or not any(a.values for a in data):
            return None
        m = self.metric
        f = self.fig(
            "per_seed",
            lambda: F.paired_strip(data, self.baseline, self.colors, m, is_fraction(m)),
            f"{m} per seed",
        )
        limits = F.strip_limits(data, is_fraction(m))
        cut = limits is not None and any(a.ci and (a.ci[0] < limits[0] or a.ci[1] > limits[1]) for a in data)
        return {"figure": f, "metric": m, "cut": cut} if f else None

    # 5. weights
    def _histograms(self) -> dict[str, list[F.ArmHistogram]]:
        hists: dict[str, list[F.ArmHistogram]] = {"log": [], "linear": []}
        for arm in self.order:
            h = self.arms[arm].get("weight_histogram")
            if not isinstance(h, dict):
                continue
            sparsity = num(self.metric_of(arm, "sparsity").get("mean"))
            norm = num(self.metric_of(arm, "weight_l2").get("mean"))
            parts = []
            if sparsity is not None:
                parts.append(f"sparsity {sparsity * 100:.1f}%")
            if norm is not None:
                parts.append(f"L2 {norm:.3g}")
            for view, key, rng in (("log", "log10_abs", "log10_abs_range"), ("linear", "linear", "linear_range")):
                counts, r = h.get(key), h.get(rng)
                if not isinstance(counts, list) or not isinstance(r, list) or len(r) != 3:
                    continue
                c = np.array([num(v) or 0.0 for v in counts], dtype=float)
                if c.sum() <= 0 or int(r[2]) != len(c):
                    continue
                edges = np.linspace(float(r[0]), float(r[1]), int(r[2]) + 1)
                hists[view].append(F.ArmHistogram(arm, edges, c / c.sum(), " · ".join(parts)))
        return hists

    def weights_section(self) -> dict[str, Any] | None:
        hists = self._histograms()
        tabs = []
        for view, label in (("log", "log10 |w|"), ("linear", "w (linear)")):
            hs = hists[view]
            if not hs:
                continue
            base = next((h for h in hs if h.arm == self.baseline), None)

            def build(hs: list[F.ArmHistogram] = hs, base: F.ArmHistogram | None = base, view: str = view) -> Any:
                return F.weight_histograms(hs, base, self.colors, view)

            f = self.fig(f"weights_{view}", build, f"Final weights, {label}")
            if f:
                tabs.append({"id": view, "label": label, "figure": f})
        sp_rows, l2_rows, table = [], [], []
        for arm in self.order:
            sp = self.metric_of(arm, "sparsity")
            l2 = self.metric_of(arm, "weight_l2")
            l1 = self.metric_of(arm, "weight_l1")
            if num(sp.get("mean")) is None and num(l2.get("mean")) is None:
                continue
            sp_rows.append(F.BarRow(arm, num(sp.get("mean")), _ci(sp)))
            l2_rows.append(F.BarRow(arm, num(l2.get("mean")), _ci(l2)))
            table.append(
                {
                    "arm": arm,
                    "color": self.colors[arm],
                    "sparsity": cell(fmt_value("sparsity", sp.get("mean")), sp.get("mean"), "sparsity"),
                    "sparsity_ci": _fmt_ci("sparsity", sp),
                    "l2": cell(fmt_value("weight_l2", l2.get("mean")), l2.get("mean"), "weight_l2"),
                    "l2_ci": _fmt_ci("weight_l2", l2),
                    "l1": cell(fmt_value("weight_l1", l1.get("mean")), l1.get("mean"), "weight_l1"),
                }
            )
        bars = None
        if sp_rows:
            bars = self.fig(
                "weights_norms", lambda: F.weight_bars(sp_rows, l2_rows, self.colors), "Sparsity and L2 norm"
            )
        if not tabs and bars is None and not table:
            return None
        return {"tabs": tabs, "bars": bars, "table": table}

    # 6. regularization path
    def path_section(self) -> list[dict[str, Any]] | None:
        out = []
        for i, sweep in enumerate(self.so.paths):
            res = self._path(sweep, i)
            if res:
                out.append(res)
        return out or None

    def _path(self, sweep: PathSweep, i: int) -> dict[str, Any] | None:
        keys = ("train_acc", "val_acc", "sparsity", "weight_l2")
        by_value: dict[float, list[dict[str, Any]]] = {}
        for r in sweep.rows:
            if str(r.get("status") or "completed") != "completed":
                continue
            v = num(r.get("value"))
            if v is not None:
                by_value.setdefault(v, []).append(r)
        if not by_value:
            return None
        points = []
        for v in sorted(by_value):
            rs = by_value[v]
            stats: dict[str, tuple[float, float, float] | None] = {}
            pts: dict[str, list[float]] = {}
            for k in keys:
                vals = [x for x in (num(r.get(k)) for r in rs) if x is not None]
                pts[k] = vals
                stats[k] = (float(np.mean(vals)), min(vals), max(vals)) if vals else None
            points.append(F.PathPoint(v, stats, pts))
        scored = [p for p in points if p.stats.get("val_acc")]
        best = max(scored, key=lambda p: p.stats["val_acc"][0]).value if scored else None  # type: ignore[index]
        best_val = next((p.stats["val_acc"][0] for p in scored if p.value == best), None)  # type: ignore[index]
        vals = [p.value for p in points]
        log_x = min(vals) > 0 and max(vals) / min(vals) >= 20
        name = "path" if i == 0 else f"path_{i + 1}"
        f = self.fig(
            name, lambda: F.path_figure(points, sweep.param, best, log_x), f"Regularization path: {sweep.param}"
        )
        if f is None:
            return None
        n_failed = sum(1 for r in sweep.rows if str(r.get("status") or "completed") != "completed")
        return {
            "param": sweep.param,
            "source": sweep.source,
            "figure": f,
            "best": None if best is None else f"{best:.3g}",
            "best_val": fmt_value("val_acc", best_val),
            "n_values": len(points),
            "n_seeds": len({r.get("seed") for r in sweep.rows}),
            "n_failed": n_failed,
            "log_x": log_x,
        }

    # 7. tuning
    def tuning_section(self) -> dict[str, Any] | None:
        tuning = self.so.tuning
        if not tuning:
            return None
        curves, importance, table = [], {}, []
        metric = str(self.s.get("select_metric") or "val_acc")
        for arm, t in tuning.items():
            metric = str(t.get("metric") or metric)
            trials = [x for x in t.get("trials") or [] if isinstance(x, dict)]
            trials.sort(key=lambda x: num(x.get("number")) or 0)
            bsf = t.get("best_so_far")
            if not isinstance(bsf, list):
                maximize = not metric.endswith("loss")
                bsf, best = [], None
                for x in trials:
                    v = num(x.get("value")) if str(x.get("state") or "COMPLETE").upper() == "COMPLETE" else None
                    if v is not None and (best is None or (v > best if maximize else v < best)):
                        best = v
                    bsf.append(best)
            expected = []
            for e in t.get("expected_best") or []:
                if isinstance(e, dict):
                    k, m, sd = num(e.get("k", e.get("n"))), num(e.get("mean")), num(e.get("std"))
                    if k is not None and m is not None:
                        expected.append((int(k), m, sd or 0.0))
            curves.append(F.TuningCurves(arm, [num(v) for v in bsf], expected))
            imp = _importance(t.get("importance"))
            if imp:
                importance[arm] = imp
            states = [str(x.get("state") or "").upper() for x in trials]
            params = t.get("best_params") or {}
            table.append(
                {
                    "arm": arm,
                    "color": self.colors.get(arm, F.PALETTE[0]),
                    "n_trials": t.get("n_trials", len(trials)),
                    "n_complete": t.get("n_complete", states.count("COMPLETE")),
                    "n_pruned": t.get("n_pruned", states.count("PRUNED")),
                    "n_failed": t.get("n_failed", states.count("FAIL")),
                    "epochs_spent": t.get("epochs_spent", "–"),
                    "minutes": f"{secs / 60:.1f}" if (secs := num(t.get("seconds_spent"))) is not None else "–",
                    "best_value": cell(fmt_value(metric, t.get("best_value")), t.get("best_value"), "best_value"),
                    "best_params": [(str(k), _fmt_param(v)) for k, v in params.items()]
                    if isinstance(params, dict)
                    else [],
                }
            )
        figs = []
        if any(c.best_so_far or c.expected for c in curves):
            f = self.fig(
                "tuning_progress",
                lambda: F.tuning_progress(curves, self.colors, metric),
                "Best so far and expected best",
            )
            if f:
                figs.append(f)
        if importance:
            f = self.fig(
                "tuning_importance", lambda: F.importance_bars(importance, self.colors), "Parameter importance"
            )
            if f:
                figs.append(f)
        return {"figures": figs, "table": table, "metric": metric}

    # 8. reproducibility
    def reproducibility(self) -> dict[str, Any]:
        s = self.s
        env = s.get("environment") or {}
        versions = env.get("versions") or {}
        storage = s.get("storage")
        return {
            "fingerprint": s.get("fingerprint"),
            "seeds": ", ".join(str(x) for x in s.get("seeds") or []) or "–",
            "python": env.get("python"),
            "platform": env.get("platform"),
            "device": env.get("device"),
            "versions": [(str(k), str(v) if v is not None else "not installed") for k, v in versions.items()],
            "wall_time": fmt_seconds(s.get("wall_time")),
            "run_time": fmt_seconds(s.get("total_run_time")),
            "storage": mask_url(str(storage)) if storage else None,
            "config": self.so.config_text,
            "config_name": s.get("resolved_config") or "config.resolved.yaml",
            "directory": str(self.so.directory),
        }


def _ci(st: dict[str, Any]) -> tuple[float, float] | None:
    lo, hi = num(st.get("ci_low")), num(st.get("ci_high"))
    return (lo, hi) if lo is not None and hi is not None else None


def _fmt_ci(metric: str, st: dict[str, Any]) -> str:
    return fmt_interval(st.get("ci_low"), st.get("ci_high"), lambda x: fmt_value(metric, x))


def _importance(imp: Any) -> dict[str, float] | None:
    """``{param: score}``, or Optuna's per-evaluator ``{evaluator: {param: score}}`` (fANOVA first)."""
    if not isinstance(imp, dict) or not imp:
        return None
    if all(num(v) is not None for v in imp.values()):
        return {str(k): float(v) for k, v in imp.items()}
    for key in ("fanova", *imp):
        d = imp.get(key)
        if isinstance(d, dict) and d and "_error" not in d and all(num(v) is not None for v in d.values()):
            return {str(k): float(v) for k, v in d.items()}
    return None


def _fmt_param(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# -- rendering ----------------------------------------------------------------------------------


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("reglab.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(ctx: dict[str, Any]) -> str:
    from markupsafe import Markup

    env = _environment()
    env.filters["svg"] = lambda r: Markup(r.svg)  # matplotlib output: text inside is XML-escaped
    return str(env.get_template("report.html.j2").render(**ctx))


def _md(text: Any) -> str:
    """A table-safe Markdown cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |"]
    lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|")
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return lines


def render_markdown(ctx: dict[str, Any], directory: Path) -> str:
    v = ctx["verdict"]
    m = ctx["metric"]
    lines = [f"# reglab report: {_md(ctx['study'])}", ""]
    meta = [f"compare metric `{m}`"]
    if ctx["baseline"]:
        meta.append(f"baseline `{ctx['baseline']}`")
    meta.append(f"{ctx['n_seeds']} seed{'s' * (ctx['n_seeds'] != 1)}")
    if ctx["n_runs"] is not None:
        meta.append(f"{ctx['n_runs']}/{ctx['n_expected']} runs")
    lines += [" · ".join(meta), "", f"**{_md(v['headline'])}**", ""]
    if v["note"]:
        lines += [f"> **Note:** {_md(v['note'])}", ""]
    header = ["#", "arm", f"{m} mean", "95% CI"]
    if v["has_comparison"]:
        header += [f"Δ vs {ctx['baseline']}", "Δ 95% CI", "P(better)", "P 95% CI", "p (Holm)", "verdict"]
    header += ["diagnosis"]
    rows = []
    for r in v["rows"]:
        row = [
            r["rank"] if r["rank"] is not None else "–",
            r["arm"] + (" (baseline)" if r["is_baseline"] else ""),
            r["mean"]["text"],
            r["ci"],
        ]
        if v["has_comparison"]:
            if r["is_baseline"]:
                row += ["–", "–", "–", "–", "–", "baseline"]
            else:
                row += [
                    r["diff"]["text"],
                    r["diff_ci"],
                    r["prob"]["text"],
                    r["prob_ci"],
                    r["p_holm"]["text"],
                    r["verdict"],
                ]
        row.append(r["diagnosis"] or "–")
        rows.append(row)
    align = "rl" + "r" * (len(header) - 3) + "l"
    lines += [*_md_table(header, rows, align), ""]
    if v["diagnoses"]:
        lines += ["## Diagnosis and recommendations", ""]
        for g in v["diagnoses"]:
            lines.append(f"- **{_md(g['label'])}** ({_md(', '.join(g['arms']))}): {_md(g['recommendation'] or '')}")
        lines.append("")
    if ctx["failed"]:
        lines += ["## Failed runs", ""]
        lines += _md_table(
            ["arm", "seed", "status", "epoch", "reason"],
            [
                [f["arm"], f["seed"], f["status"], "–" if f["epoch"] is None else f["epoch"], f["reason"] or "–"]
                for f in ctx["failed"]
            ],
            "lrlrl",
        )
        lines.append("")
    pngs = [f for f in ctx["figures"] if f.png is not None]
    if pngs:
        lines += ["## Figures", ""]
        for f in pngs:
            try:
                rel = Path(f.png).resolve().relative_to(directory.resolve()).as_posix()
            except ValueError:
                rel = Path(f.png).resolve().as_posix()
            lines += [f"![{_md(f.title or f.name)}]({rel})", ""]
    r = ctx["repro"]
    env = [f"python {r['python']}"] if r["python"] else []
    env += [f"{k} {val}" for k, val in r["versions"]]
    if r["device"]:
        env.append(f"device {r['device']}")
    lines += ["## Reproducibility", "", f"- seeds: {r['seeds']}", f"- wall time: {r['wall_time']}"]
    if env:
        lines.append(f"- environment: {_md(', '.join(env))}")
    if r["storage"]:
        lines.append(f"- storage: `{_md(r['storage'])}`")
    if r["fingerprint"]:
        lines.append(f"- fingerprint: `{_md(r['fingerprint'])}`")
    lines.append("")
    return "\n".join(lines)
