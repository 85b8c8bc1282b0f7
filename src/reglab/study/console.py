"""The terminal summary of a study: ranked arms, paired comparisons and the diagnosis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reglab.stats.summary import ArmTuning, StudySummary, no_comparison_verdict


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.2%}" if signed else f"{x:.2%}"


def _num(x: float | None, signed: bool = False) -> str:
    """A metric that is not a fraction (AUC, RMSE, R², loss): four decimals."""
    if x is None:
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _pm(fmt: Any, mean: float | None, lo: float | None, hi: float | None, signed: bool = False) -> str:
    """``mean ± half-width`` of a symmetric t-interval (shorter than [lo, hi] in a terminal)."""
    if mean is None:
        return "-"
    if lo is None or hi is None:
        return fmt(mean, signed)
    return f"{fmt(mean, signed)} ± {fmt((hi - lo) / 2)}"


def _value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def print_tuning(tuning: Mapping[str, ArmTuning], console: Any) -> None:
    """Per arm: the tuned values and what finding them cost (trials, epochs, minutes)."""
    from rich.table import Table

    t = Table(title="tuning (validation only; the same budget per arm)", show_edge=False)
    for col in ("arm", "trials", "done/pruned/failed", "epochs", "min", "best val", "tuned values"):
        t.add_column(col, justify="left" if col in ("arm", "tuned values") else "right")
    for arm, r in tuning.items():
        if not r.n_trials:
            t.add_row(arm, "0", "-", "-", "-", "-", "nothing to tune")
            continue
        t.add_row(
            arm,
            str(r.n_trials),
            f"{r.n_complete}/{r.n_pruned}/{r.n_failed}",
            str(r.epochs_spent),
            f"{r.seconds_spent / 60:.1f}",
            "-" if r.best_value is None else f"{r.best_value:.4f}",
            ", ".join(f"{k}={_value(v)}" for k, v in r.best_params.items()),
        )
    console.print(t)


def print_summary(summary: StudySummary, console: Any = None) -> None:
    """The ranked arms with their comparison to the baseline, then notes, failed runs and the
    diagnosis' recommendations (grouped by label)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    if summary.tuning:
        print_tuning(summary.tuning, console)
    from reglab.tasks import metric_info

    m = summary.compare_metric
    info = metric_info(m)
    fmt = _pct if (info.percent if info is not None else m.endswith("acc")) else _num
    gap_fmt = _pct if summary.gap_metric == "acc" else _num
    t = Table(
        title=f"study {summary.study}: {m}, {len(summary.seeds)} seeds, baseline {summary.baseline}",
        show_edge=False,
    )
    for col in (
        "#",
        "arm",
        f"{m} ±95% CI",
        "Δ vs base ±CI",
        "P(better)",
        "p Holm",
        "verdict",
        "gap",
        "ens.",
        "diagnosis",
    ):
        t.add_column(col, justify="right" if col not in ("arm", "verdict", "diagnosis") else "left")
    for arm in summary.ranking:
        a = summary.arm(arm)
        s, c, d = a.metric(m), a.comparison, a.diagnosis
        ci = _pm(fmt, s.mean, s.ci_low, s.ci_high) if s.n else "no runs"
        if c is None:
            diff = p_imp = p_holm = "-"
            verdict = no_comparison_verdict(arm == summary.baseline, a.n_completed)
        else:
            diff = _pm(fmt, c.mean_diff, c.ci_low, c.ci_high, signed=True)
            p_imp = "-" if c.prob_improvement is None else f"{c.prob_improvement:.2f}"
            p_holm = "-" if c.p_holm is None else f"{c.p_holm:.3g}"
            style = {"better": "green", "worse": "red"}.get(c.verdict)
            verdict = f"[{style}]{c.verdict}[/]" if style else c.verdict
        failed = f" ({a.n_failed} failed)" if a.n_failed else ""
        t.add_row(
            str(a.rank),
            arm + failed,
            ci,
            diff,
            p_imp,
            p_holm,
            verdict,
            gap_fmt(a.metric("gap").mean, True),
            _pct(a.ensemble_test_acc),
            "-" if d is None else d.label,
        )
    console.print(t)
    if summary.underpowered_note:
        console.print(f"[yellow]note:[/] {summary.underpowered_note}")
    for f in summary.failed_runs:
        where = f" in epoch {f.epoch}" if f.epoch else ""
        console.print(f"[red]{f.status}:[/] {escape(f'{f.arm} seed {f.seed}{where}: {f.reason}')}")
    for r in summary.retried_runs:
        console.print(
            f"[yellow]retried:[/] {escape(f'{r.arm} seed {r.seed}')}: its worker process died; started "
            f"{r.attempts} times ({r.status})"
        )
    recs: dict[tuple[str, str], list[str]] = {}
    for arm in summary.ranking:
        d = summary.arm(arm).diagnosis
        if d and d.label != "good fit":
            recs.setdefault((d.label, d.recommendation), []).append(arm)
    for (label, rec), arms in recs.items():
        console.print(f"[bold]{label}[/] ({', '.join(arms)}): {rec}")
