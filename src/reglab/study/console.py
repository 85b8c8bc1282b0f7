"""The terminal summary of a study: ranked arms, paired comparisons and the diagnosis."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.2%}" if signed else f"{x:.2%}"


def _pm(fmt: Any, mean: float | None, lo: float | None, hi: float | None, signed: bool = False) -> str:
    """``mean ± half-width`` of a symmetric t-interval (shorter than [lo, hi] in a terminal)."""
    if mean is None:
        return "-"
    if lo is None or hi is None:
        return fmt(mean, signed)
    return f"{fmt(mean, signed)} ± {fmt((hi - lo) / 2)}"


def _value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def print_tuning(tuning: dict[str, Any], console: Any) -> None:
    """Per arm: the tuned values and what finding them cost (trials, epochs, minutes)."""
    from rich.table import Table

    t = Table(title="tuning (validation only; the same budget per arm)", show_edge=False)
    for col in ("arm", "trials", "done/pruned/failed", "epochs", "min", "best val", "tuned values"):
        t.add_column(col, justify="left" if col in ("arm", "tuned values") else "right")
    for arm, r in tuning.items():
        if not r.get("n_trials"):
            t.add_row(arm, "0", "-", "-", "-", "-", "nothing to tune")
            continue
        best = r.get("best_value")
        t.add_row(
            arm,
            str(r["n_trials"]),
            f"{r['n_complete']}/{r['n_pruned']}/{r['n_failed']}",
            str(r["epochs_spent"]),
            f"{r.get('seconds_spent', 0.0) / 60:.1f}",
            "-" if best is None else f"{best:.4f}",
            ", ".join(f"{k}={_value(v)}" for k, v in (r.get("best_params") or {}).items()),
        )
    console.print(t)


def print_summary(summary: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if summary.get("tuning"):
        print_tuning(summary["tuning"], console)
    m = summary["compare_metric"]
    is_acc = m.endswith("acc")
    fmt = _pct if is_acc else (lambda x, signed=False: "-" if x is None else (f"{x:+.4f}" if signed else f"{x:.4f}"))
    t = Table(
        title=f"study {summary['study']}: {m}, {len(summary['seeds'])} seeds, baseline {summary['baseline']}",
        show_edge=False,
    )
    for col in (
        "#",
        "arm",
        f"{m} ±95% CI",
        "Δ vs base ±CI",
        "P(>)",
        "p Holm",
        "verdict",
        "gap",
        "ens.",
        "diagnosis",
    ):
        t.add_column(col, justify="right" if col not in ("arm", "verdict", "diagnosis") else "left")
    for arm in summary["ranking"]:
        a = summary["arms"][arm]
        s, c, d = a["metrics"][m], a["comparison"], a["diagnosis"] or {}
        ci = _pm(fmt, s["mean"], s["ci_low"], s["ci_high"]) if s["n"] else "no runs"
        if c is None:
            diff = p_imp = p_holm = "-"
            verdict = "baseline"
        else:
            diff = _pm(fmt, c["mean_diff"], c["ci_low"], c["ci_high"], signed=True)
            p_imp = "-" if c["prob_improvement"] is None else f"{c['prob_improvement']:.2f}"
            p_holm = "-" if c.get("p_holm") is None else f"{c['p_holm']:.3g}"
            verdict = c.get("verdict", "")
            style = {"better": "green", "worse": "red"}.get(verdict)
            verdict = f"[{style}]{verdict}[/]" if style else verdict
        failed = f" ({a['n_failed']} failed)" if a["n_failed"] else ""
        t.add_row(
            str(a["rank"]),
            arm + failed,
            ci,
            diff,
            p_imp,
            p_holm,
            verdict,
            _pct(a["metrics"]["gap"]["mean"], True),
            _pct(a["ensemble_test_acc"]),
            d.get("label", "-"),
        )
    console.print(t)
    if summary.get("underpowered_note"):
        console.print(f"[yellow]note:[/] {summary['underpowered_note']}")
    for f in summary.get("failed_runs", []):
        where = f" in epoch {f['epoch']}" if f.get("epoch") else ""
        console.print(f"[red]{f['status']}:[/] {f['arm']} seed {f['seed']}{where}: {f['reason']}")
    recs: dict[tuple[str, str], list[str]] = {}
    for arm in summary["ranking"]:
        d = summary["arms"][arm]["diagnosis"]
        if d and d["label"] != "good fit":
            recs.setdefault((d["label"], d["recommendation"]), []).append(arm)
    for (label, rec), arms in recs.items():
        console.print(f"[bold]{label}[/] ({', '.join(arms)}): {rec}")
