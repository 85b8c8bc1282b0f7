"""The terminal summary of a study: the headline verdict first, then the ranked arms in a table that
fits 80 columns (arm, mean and interval, difference to the baseline in percentage points, Holm's p,
verdict), a second table with the details (interval of the difference, probability of
improvement, train - test gap, seed ensemble, diagnosis) and the diagnosis' recommendations.

Arm names and verdicts are never cut (no ellipsis); a name longer than the table leaves room for
wraps instead of being shortened."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reglab.stats.compare import interval_method
from reglab.stats.diagnosis import thresholds_text
from reglab.stats.summary import ArmTuning, StudySummary, no_comparison_verdict

Fmt = Callable[[float | None], str]


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.2%}" if signed else f"{x:.2%}"


def _num(x: float | None, signed: bool = False) -> str:
    """A metric that is not a fraction (AUC, RMSE, R², loss): four decimals."""
    if x is None:
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _pp(x: float | None) -> str:
    """A difference of two fractions (accuracies) in percentage points."""
    return "-" if x is None else f"{x * 100:+.2f} pp"


def _percent_number(x: float | None) -> str:
    """A fraction as a percentage without the sign (the column header says "%")."""
    return "-" if x is None else f"{x * 100:.2f}"


def _signed(x: float | None) -> str:
    return _num(x, True)


def _interval(lo: float | None, hi: float | None, one: Fmt) -> str:
    return "-" if lo is None or hi is None else f"{one(lo)}–{one(hi)}"


def _value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _table(title: str | None = None, caption: str | None = None) -> Any:
    """A compact table: a rule under the header, one space between columns (the box's blank
    column separator, no padding), nothing at the edges."""
    from rich import box
    from rich.table import Table

    return Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 0),
        title_justify="left",
        caption_justify="left",
    )


def print_tuning(tuning: Mapping[str, ArmTuning], console: Any) -> None:
    """Per arm: the tuned values and what finding them cost (trials, epochs, minutes). When the
    tuned values do not fit beside the costs (an 80-column terminal, several tuned settings), the
    table keeps one line per arm and the values follow it, one arm per line."""
    from rich.markup import escape

    values = {
        arm: ", ".join(f"{k}={_value(v)}" for k, v in r.best_params.items()) if r.n_trials else "nothing to tune"
        for arm, r in tuning.items()
    }
    table = _tuning_table(tuning, values)
    if console.measure(table, options=console.options.update(width=10_000)).maximum <= console.width:
        console.print(table)
        return
    console.print(_tuning_table(tuning, None))
    console.print("tuned values:")
    for arm, text in values.items():
        console.print(f"  {escape(arm)}: {escape(text)}")


def _tuning_table(tuning: Mapping[str, ArmTuning], values: Mapping[str, str] | None) -> Any:
    t = _table("tuning (validation only; the same budget per arm)")
    t.add_column("arm", no_wrap=True)
    for col in ("trials", "done/pruned/failed", "epochs", "min", "best val"):
        t.add_column(col, justify="right", no_wrap=True)
    if values is not None:
        t.add_column("tuned values", no_wrap=True)
    for arm, r in tuning.items():
        cost = (
            ["0", "-", "-", "-", "-"]
            if not r.n_trials
            else [
                str(r.n_trials),
                f"{r.n_complete}/{r.n_pruned}/{r.n_failed}",
                str(r.epochs_spent),
                f"{r.seconds_spent / 60:.1f}",
                "-" if r.best_value is None else f"{r.best_value:.4f}",
            ]
        )
        t.add_row(arm, *cost, *([] if values is None else [values[arm]]))
    return t


def _verdict_text(summary: StudySummary, arm: str) -> str:
    a = summary.arm(arm)
    c = a.comparison
    if c is None:
        return no_comparison_verdict(arm == summary.baseline, a.n_completed)
    style = {"better": "green", "worse": "red", "equivalent": "cyan"}.get(c.verdict)
    text: str = c.verdict
    if (q := c.sequential) is not None:  # adaptive seeds: when it was decided
        text += f" at {q.decided_at} seeds" if q.decided_at is not None else f" at {q.seeds_used} seeds"
    return f"[{style}]{text}[/]" if style else text


def print_summary(summary: StudySummary, console: Any = None) -> None:
    """The headline verdict, the ranked arms and their details, notes, failed runs and the
    diagnosis' recommendations (grouped by label and advice)."""
    from rich.console import Console
    from rich.markup import escape

    from reglab.tasks import metric_info

    console = console or Console()
    if summary.tuning:
        print_tuning(summary.tuning, console)
    m = summary.compare_metric
    info = metric_info(m)
    percent = info.percent if info is not None else m.endswith("acc")
    fmt: Fmt = _pct if percent else _num
    short: Fmt = _percent_number if percent else _num
    diff: Fmt = _pp if percent else _signed
    gap: Fmt = _pp if summary.gap_metric == "acc" else _signed
    base = summary.baseline
    method = interval_method(info.low, info.high, short=True) if info is not None else interval_method(short=True)

    console.print(f"[bold]verdict:[/] {escape(summary.headline())}")
    ad = summary.adaptive
    seeds = _seeds(len(summary.seeds)) if ad is None else f"adaptive seeds ({ad.min}..{ad.max}, step {ad.step})"
    tests = (
        "p Holm: paired t-test, Holm-adjusted across arms."
        if ad is None
        else "p seq: repeated p-value of the sequential design (valid at any stopping time, alpha split across "
        "arms); Δ 95% CI: its repeated interval at the decision."
    )
    t = _table(
        f"study {summary.study}: {m} over {seeds}, baseline {base}",
        f"95% CI: {method}. Δ: mean paired difference to {base} (same seeds); {tests}",
    )
    t.add_column("arm", no_wrap=True)
    t.add_column(m, justify="right", no_wrap=True)
    t.add_column("95% CI" + (" (%)" if percent else ""), justify="right", no_wrap=True)
    t.add_column(f"Δ vs {base}", justify="right", no_wrap=True)
    t.add_column("p Holm" if ad is None else "p seq", justify="right", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    d = _table("details", "P(better): share of seeds on which the arm beats the baseline (ties count 1/2).")
    d.add_column("arm", no_wrap=True)
    d.add_column("Δ 95% CI" if ad is None else "Δ interval", justify="right", no_wrap=True)
    d.add_column("P(better)", justify="right", no_wrap=True)
    d.add_column("gap", justify="right", no_wrap=True)
    d.add_column("ensemble", justify="right", no_wrap=True)
    d.add_column("diagnosis", no_wrap=True)
    d.add_column("runs", justify="right", no_wrap=True)
    for arm in summary.ranking:
        a = summary.arm(arm)
        s, c, dg = a.metric(m), a.comparison, a.diagnosis
        t.add_row(
            escape(arm),
            fmt(s.mean) if s.n else "no runs",
            _interval(s.ci_low, s.ci_high, short),
            "-" if c is None else diff(c.mean_diff),
            "-" if c is None or c.p_holm is None else _p(c.p_holm),
            _verdict_text(summary, arm),
        )
        d.add_row(
            escape(arm),
            "-" if c is None else _interval(c.ci_low, c.ci_high, diff).replace(" pp–", "–"),
            "-" if c is None or c.prob_improvement is None else f"{c.prob_improvement:.2f}",
            gap(a.metric("gap").mean),
            _pct(a.ensemble_test_acc),
            "-" if dg is None else dg.label,
            f"{a.n_completed}" + (f" ({a.n_failed} failed)" if a.n_failed else ""),
        )
    console.print(t)
    console.print(d)
    if note := summary.holm_note():
        console.print(f"[yellow]note:[/] {escape(note)}")
    if ad is not None:
        console.print(
            f"[bold]adaptive seeds:[/] {ad.runs_used} of {ad.runs_max} runs ({ad.runs_saved} saved against max "
            f"{ad.max}). {escape(ad.method)}."
        )
    if summary.underpowered_note:
        console.print(f"[yellow]note:[/] {escape(summary.underpowered_note)}")
    for line in summary.notes:
        console.print(f"[yellow]note:[/] {escape(line)}")
    for f in summary.failed_runs:
        where = "" if not f.epoch else f" in epoch {f.epoch}" if f.status == "diverged" else f" after {f.epoch} epochs"
        console.print(f"[red]{f.status}:[/] {escape(f'{f.arm} seed {f.seed}{where}: {f.reason}')}")
    for r in summary.retried_runs:
        console.print(
            f"[yellow]retried:[/] {escape(f'{r.arm} seed {r.seed}')}: its worker process died; started "
            f"{r.attempts} times ({r.status})"
        )
    _print_diagnoses(summary, console)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def _p(x: float) -> str:
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _print_diagnoses(summary: StudySummary, console: Any) -> None:
    """One line per (label, advice) with its arms, then the thresholds the labels were decided on."""
    from rich.markup import escape

    recs: dict[tuple[str, str], list[str]] = {}
    for arm in summary.ranking:
        dg = summary.arm(arm).diagnosis
        if dg and dg.label != "good fit":
            recs.setdefault((dg.label, dg.recommendation), []).append(arm)
    for (label, rec), arms in recs.items():
        console.print(f"[bold]{label}[/] ({escape(', '.join(arms))}): {escape(rec)}")
    if (th := summary.diagnosis_thresholds) and any(summary.arm(a).diagnosis for a in summary.ranking):
        text = thresholds_text(th, summary.gap_metric == "acc", summary.reference_error)
        console.print(f"[dim]diagnosis thresholds: {escape(text)}[/]")
