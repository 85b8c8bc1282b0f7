"""The report's tables from ``summary.json`` alone: the verdict (headline, ranked arms with their
comparison to the baseline, diagnoses), the failed runs and the reproducibility facts."""

from __future__ import annotations

from typing import Any

from reglab.report.format import (
    cell,
    column_places,
    fmt_ci,
    fmt_diff,
    fmt_interval,
    fmt_p,
    fmt_prob,
    fmt_seconds,
    fmt_value,
    raw,
    regime,
    settings,
)
from reglab.report.view import ReportView
from reglab.stats.compare import interval_method
from reglab.stats.diagnosis import thresholds_text
from reglab.stats.summary import ArmSummary, no_comparison_verdict
from reglab.urls import mask_url

VERDICT_CLASS = {
    "better": "good",
    "worse": "bad",
    "no significant difference": "neutral",
    "underpowered": "warn",
    "equivalent": "neutral",
    "open": "warn",
    "baseline": "base",
    "no completed runs": "bad",
}
DIAGNOSIS_CLASS = {"good fit": "good", "high variance": "warn", "high bias": "bad", "over-regularized": "bad"}


def verdict_row(v: ReportView, arm: str, a: ArmSummary, places: dict[str, int] | None = None) -> dict[str, Any]:
    """One arm's row: the compare metric, its comparison to the baseline and its diagnosis.
    ``places``: decimals of the ``mean`` and ``diff`` columns (the same in every row)."""
    m = v.metric
    mean_places, diff_places = (places or {}).get("mean"), (places or {}).get("diff")
    st, c, d = a.metric(m), a.comparison, a.diagnosis
    is_base = arm == v.baseline
    verdict = c.verdict if c is not None else no_comparison_verdict(is_base, a.n_completed).replace("-", "–")
    diff = None if c is None else c.mean_diff
    prob = None if c is None else c.prob_improvement
    p_holm = None if c is None else c.p_holm
    gap = a.metric("gap").mean
    tuned = v.summary.tuning.get(arm) if v.summary.tuning else None
    return {
        "arm": arm,
        "settings": settings(a.overrides, tuned.best_params if tuned else None),
        "color": v.colors[arm],
        "rank": a.rank,
        "is_baseline": is_base,
        "n_completed": a.n_completed,
        "n_failed": a.n_failed,
        "mean": cell(fmt_value(m, st.mean, mean_places), st.mean, "mean"),
        "ci": fmt_ci(m, st, mean_places),
        "ci_low": raw(st.ci_low),
        "ci_high": raw(st.ci_high),
        "diff": cell(fmt_diff(m, diff, diff_places), diff, "mean_diff"),
        "diff_ci": "–" if c is None else fmt_interval(c.ci_low, c.ci_high, lambda x: fmt_diff(m, x, diff_places)),
        "prob": cell(fmt_prob(prob), prob, "prob_improvement"),
        "prob_ci": "–" if c is None else fmt_interval(c.prob_ci_low, c.prob_ci_high, fmt_prob),
        "p_holm": cell(fmt_p(p_holm), p_holm, "p_holm"),
        "significant": c is not None and c.significant,
        "verdict": verdict,
        "verdict_class": VERDICT_CLASS.get(verdict, "neutral"),
        "diagnosis": None if d is None else d.label,
        "diagnosis_class": DIAGNOSIS_CLASS.get(str(None if d is None else d.label), "neutral"),
        "reason": None if d is None else d.reason,
        "reason_short": None if d is None else d.short,
        "recommendation": None if d is None else d.recommendation,
        "ensemble": cell(fmt_value("acc", a.ensemble_test_acc), a.ensemble_test_acc, "ensemble_test_acc"),
        "gap": cell(fmt_diff("gap" if v.summary.gap_metric == "acc" else "rmse", gap), gap, "gap"),
    }


def headline(v: ReportView) -> tuple[str, str]:
    """The one-sentence answer (``StudySummary.headline``, as the terminal prints it) and its tone (a CSS class)."""
    s = v.summary
    text = s.headline()
    if not any(a.n_completed for a in s.arms.values()) or s.underpowered_note:
        return text, "warn"
    return text, "good" if s.verdicts().get("better") else "neutral"


def _config(v: ReportView, arm: str | None) -> dict[str, Any] | None:
    """An arm's run configuration from ``config.resolved.yaml`` (None when absent)."""
    arms = (v.so.config or {}).get("arms")
    entry = arms.get(arm) if isinstance(arms, dict) and arm is not None else None
    cfg = entry.get("config") if isinstance(entry, dict) else None
    return cfg if isinstance(cfg, dict) else None


def _regime(v: ReportView) -> str | None:
    """The regime line of the baseline (else the first arm), with its network's trainable parameters."""
    s = v.summary
    arm = v.baseline if _config(v, v.baseline) else next(iter(s.arms), None)
    n_params = s.arms[arm].n_params if arm in s.arms else None
    return regime(_config(v, arm), n_params)


def fit_note(v: ReportView) -> str | None:
    """What the baseline's numbers say about the regime: over-fitting (regularization should pay),
    a good fit (little to gain) or under-fitting."""
    s = v.summary
    base = s.arms.get(v.baseline or "")
    if base is None or base.diagnosis is None or s.gap_metric != "acc":
        return None
    train, test, gap = base.metric("train_acc").mean, base.metric("test_acc").mean, base.metric("gap").mean
    if train is None or test is None or gap is None:
        return None
    numbers = (
        f"The baseline ({v.baseline}) reaches {fmt_value('acc', train)} training and {fmt_value('acc', test)} "
        f"test accuracy, a train − test gap of {fmt_diff('gap', gap)}"
    )
    what = {
        "high variance": "it over-fits, so regularization should pay",
        "good fit": "it fits without much over-fitting, so regularization has little to gain",
        "high bias": "it under-fits, so regularization is unlikely to help",
        "over-regularized": "it is regularized more than it needs",
    }[base.diagnosis.label]
    return f"{numbers}: {what}."


def verdict_section(v: ReportView) -> dict[str, Any]:
    arms = v.arms()
    comparisons = [a.comparison for _, a in arms if a.comparison is not None]
    places = {
        "mean": column_places(a.metric(v.metric).mean for _, a in arms),
        "diff": column_places(c.mean_diff for c in comparisons),
    }
    rows = [verdict_row(v, arm, a, places) for arm, a in arms]
    better = [r["arm"] for r in rows if r["verdict"] == "better"]
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r["diagnosis"]:  # grouped by label and advice: an arm without regularization has its own
            g = groups.setdefault(
                (r["diagnosis"], r["recommendation"]),
                {
                    "label": r["diagnosis"],
                    "class": r["diagnosis_class"],
                    "arms": [],
                    "recommendation": r["recommendation"],
                },
            )
            g["arms"].append(r["arm"])
    text, tone = headline(v)
    s = v.summary
    th = s.diagnosis_thresholds or (v.so.config or {}).get("diagnosis")
    return {
        "rows": rows,
        "top": next((r for r in rows if r["mean"]["value"]), None),
        "top_split": split_label(v.metric),
        "better": better,
        "worse": [r["arm"] for r in rows if r["verdict"] == "worse"],
        "headline": text,
        "tone": tone,
        "note": s.underpowered_note,
        "notes": s.notes,
        "regime": _regime(v),
        "fit_note": fit_note(v),
        "holm_note": s.holm_note(),
        "adaptive": s.adaptive is not None,  # the comparison's interval and p are the sequential design's
        "interval_method": _interval_method(v.metric),
        "thresholds": (
            thresholds_text(th, s.gap_metric == "acc", s.reference_error)
            if isinstance(th, dict) and _has_keys(th)
            else None
        ),
        "diagnosis_metric": "accuracy" if s.gap_metric == "acc" else "R²",
        "diagnoses": list(groups.values()),
        "has_comparison": any(not r["is_baseline"] for r in rows) and v.baseline is not None,
    }


def _interval_method(metric: str) -> str:
    """What the intervals of ``metric``'s means are (the scale depends on its range: logit for an
    accuracy, log for an RMSE, none for an unbounded one)."""
    from reglab.tasks import metric_info

    info = metric_info(metric)
    return interval_method(info.low, info.high) if info is not None else interval_method()


def split_label(metric: str) -> str:
    """Which split a "best" is on, in words (the verdict's best is on the compare metric's split)."""
    if metric.startswith("test_"):
        return "the test split, used for this final comparison only; tuning and epochs were chosen on validation"
    if metric.startswith("val_"):
        return "the validation split"
    return "the training split" if metric.startswith("train_") else metric


def _has_keys(th: dict[str, Any]) -> bool:
    keys = ("high_bias_train_error", "high_variance_gap", "over_reg_train_drop", "over_reg_val_gain")
    return all(isinstance(th.get(k), int | float) for k in keys)


def failed_runs(v: ReportView) -> list[dict[str, Any]]:
    return [f.model_dump() for f in v.summary.failed_runs]


def reproducibility(v: ReportView) -> dict[str, Any]:
    """Where and how the study ran: seeds, fingerprint, environment, times, storage, configuration."""
    s = v.summary
    env = s.environment
    versions = env.versions if env else {}
    return {
        "fingerprint": s.fingerprint,
        "seeds": ", ".join(str(x) for x in s.seeds) or "–",
        "python": env and env.python,
        "platform": env and env.platform,
        "device": env and env.device,
        "versions": [(str(k), str(x) if x is not None else "not installed") for k, x in versions.items()],
        "wall_time": fmt_seconds(s.wall_time),
        "run_time": fmt_seconds(s.total_run_time),
        "storage": mask_url(s.storage) if s.storage else None,
        "config": v.so.config_text,
        "config_name": s.resolved_config or "config.resolved.yaml",
        "directory": str(v.so.directory),
    }
