"""The report's tables from ``summary.json`` alone: the verdict (headline, ranked arms with their
comparison to the baseline, diagnoses), the failed runs and the reproducibility facts."""

from __future__ import annotations

from typing import Any

from reglab.report.format import cell, fmt_ci, fmt_diff, fmt_interval, fmt_p, fmt_prob, fmt_seconds, fmt_value, raw
from reglab.report.view import ReportView
from reglab.stats.summary import ArmSummary, no_comparison_verdict
from reglab.urls import mask_url

VERDICT_CLASS = {
    "better": "good",
    "worse": "bad",
    "no significant difference": "neutral",
    "underpowered": "warn",
    "baseline": "base",
    "no completed runs": "bad",
}
DIAGNOSIS_CLASS = {"good fit": "good", "high variance": "warn", "high bias": "bad", "over-regularized": "bad"}


def verdict_row(v: ReportView, arm: str, a: ArmSummary) -> dict[str, Any]:
    """One arm's row: the compare metric, its comparison to the baseline and its diagnosis."""
    m = v.metric
    st, c, d = a.metric(m), a.comparison, a.diagnosis
    is_base = arm == v.baseline
    verdict = c.verdict if c is not None else no_comparison_verdict(is_base, a.n_completed).replace("-", "–")
    diff = None if c is None else c.mean_diff
    prob = None if c is None else c.prob_improvement
    p_holm = None if c is None else c.p_holm
    gap = a.metric("gap").mean
    return {
        "arm": arm,
        "color": v.colors[arm],
        "rank": a.rank,
        "is_baseline": is_base,
        "n_completed": a.n_completed,
        "n_failed": a.n_failed,
        "mean": cell(fmt_value(m, st.mean), st.mean, "mean"),
        "ci": fmt_ci(m, st),
        "ci_low": raw(st.ci_low),
        "ci_high": raw(st.ci_high),
        "diff": cell(fmt_diff(m, diff), diff, "mean_diff"),
        "diff_ci": "–" if c is None else fmt_interval(c.ci_low, c.ci_high, lambda x: fmt_diff(m, x)),
        "prob": cell(fmt_prob(prob), prob, "prob_improvement"),
        "prob_ci": "–" if c is None else fmt_interval(c.prob_ci_low, c.prob_ci_high, fmt_prob),
        "p_holm": cell(fmt_p(p_holm), p_holm, "p_holm"),
        "significant": c is not None and c.significant,
        "verdict": verdict,
        "verdict_class": VERDICT_CLASS.get(verdict, "neutral"),
        "diagnosis": None if d is None else d.label,
        "diagnosis_class": DIAGNOSIS_CLASS.get(str(None if d is None else d.label), "neutral"),
        "reason": None if d is None else d.reason,
        "recommendation": None if d is None else d.recommendation,
        "ensemble": cell(fmt_value("acc", a.ensemble_test_acc), a.ensemble_test_acc, "ensemble_test_acc"),
        "gap": cell(fmt_diff("gap" if v.summary.gap_metric == "acc" else "rmse", gap), gap, "gap"),
    }


def headline(v: ReportView, better: list[str]) -> tuple[str, str]:
    """The one-sentence answer and its tone (a CSS class)."""
    s = v.summary
    if not any(a.n_completed for a in s.arms.values()):
        n = len(s.failed_runs)
        return (
            f"No run completed: all {n} run{'s' * (n != 1)} failed or diverged, so there is nothing to compare "
            "(see Failed runs for the reasons).",
            "warn",
        )
    if s.underpowered_note:
        return "No winner is declared: too few seeds for a reliable comparison.", "warn"
    if better:
        return f"Better than the baseline after Holm correction: {', '.join(better)}.", "good"
    if v.baseline is None or len(s.arms) == 1:
        return "A single arm: nothing to compare against.", "neutral"
    return f"No arm is significantly better than the baseline ({v.baseline}) after Holm correction.", "neutral"


def verdict_section(v: ReportView) -> dict[str, Any]:
    rows = [verdict_row(v, arm, a) for arm, a in v.arms()]
    better = [r["arm"] for r in rows if r["verdict"] == "better"]
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
    text, tone = headline(v, better)
    return {
        "rows": rows,
        "top": next((r for r in rows if r["mean"]["value"]), None),
        "better": better,
        "worse": [r["arm"] for r in rows if r["verdict"] == "worse"],
        "headline": text,
        "tone": tone,
        "note": v.summary.underpowered_note,
        "diagnoses": list(groups.values()),
        "has_comparison": any(not r["is_baseline"] for r in rows) and v.baseline is not None,
    }


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
