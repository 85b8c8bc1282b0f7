"""The typed study summary: what ``summary.json`` holds, as pydantic models.

``reglab.study.results.results.summarize`` builds it, ``reglab.study.results.outputs`` writes it
(``to_json``), and the report, the terminal table and ``StudyResults`` read it
(``StudySummary.load``): one schema, so a renamed or missing key fails loudly in one place instead
of as a ``None`` deep inside a figure. Pure pydantic
(no torch, no scipy): the report loads it without the training stack.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from reglab.errors import ReglabError
from reglab.stats.diagnosis import AttainableError, Diagnosis

if TYPE_CHECKING:
    import pandas as pd

    from reglab.stats.compare import PairedComparison, Summary

Verdict = Literal["better", "worse", "no significant difference", "underpowered", "equivalent", "open"]

# The fixed bins of the runs' final-weight histograms (``reglab.training`` computes them; a
# histogram stored with its own ``*_range`` keys wins). Here so that summarizing never imports torch.
HIST_LINEAR: tuple[float, float, int] = (-0.3, 0.3, 60)  # signed weights
HIST_LOG: tuple[float, float, int] = (-7.0, 1.0, 48)  # log10 |w|: L1's exact-zero mass shows at the left edge


def finite(x: float | None) -> float | None:
    """``x`` as a float, or None for None, NaN and inf (strict JSON has no NaN)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricStats(_Frozen):
    """One metric of one arm over its completed seeds: mean, sample std, Student-t 95 % CI of the
    mean (None where undefined: no runs, or one run for std and CI) and the per-seed values."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    values: list[float]

    @classmethod
    def of(cls, s: Summary, values: list[float]) -> MetricStats:
        return cls(
            n=s.n, mean=finite(s.mean), std=finite(s.std), ci_low=finite(s.ci_low), ci_high=finite(s.ci_high),
            values=values,
        )  # fmt: skip

    @classmethod
    def empty(cls) -> MetricStats:
        return cls(n=0, mean=None, std=None, ci_low=None, ci_high=None, values=[])

    @property
    def ci(self) -> tuple[float, float] | None:
        return (self.ci_low, self.ci_high) if self.ci_low is not None and self.ci_high is not None else None


class SequentialLook(_Frozen):
    """One look of an adaptive study at an arm: ``seeds`` planned, ``n`` pairs, the mean paired
    difference and its repeated (anytime-valid) confidence interval."""

    seeds: int
    n: int
    mean: float | None
    low: float | None
    high: float | None


class SequentialOutcome(_Frozen):
    """An arm's adaptive-seeds outcome (:mod:`reglab.stats.sequential`): better, worse, equivalent
    or open, the seed count it was decided at (None: still open at its last look), the seeds its
    verdict rests on and the interval at every look."""

    verdict: Literal["better", "worse", "equivalent", "open"]
    decided_at: int | None
    seeds_used: int
    intervals: list[SequentialLook]


class AdaptiveSeeds(_Frozen):
    """How an adaptive study spent its seeds: its design (``method``: the report states it), and
    the runs it used against the ``max`` seeds of every arm."""

    min: int
    max: int
    step: int
    equivalence: float | None
    spending: str
    looks: list[int]
    method: str
    runs_used: int
    runs_max: int

    @property
    def runs_saved(self) -> int:
        return self.runs_max - self.runs_used


class Comparison(_Frozen):
    """An arm against the baseline on the compare metric, paired by seed (``stats.compare``):
    mean difference with its t-interval, paired t-test and Wilcoxon p-values, the Holm (1979)
    adjusted t-test p-value across arms, and the probability of improvement (Bouthillier et al.
    2021) with its bootstrap interval."""

    n: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    t_pvalue: float | None
    wilcoxon_pvalue: float | None
    prob_improvement: float | None
    prob_ci_low: float | None
    prob_ci_high: float | None
    underpowered: bool
    p_holm: float | None
    significant: bool
    seeds: list[int]
    verdict: Verdict
    sequential: SequentialOutcome | None = None  # adaptive seeds: the verdict and interval are the design's

    @model_serializer(mode="wrap")
    def _without_absent_sequential(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if self.sequential is None:
            out.pop("sequential", None)
        return out

    @classmethod
    def of(cls, pc: PairedComparison, seeds: list[int], p_holm: float, alpha: float, higher_better: bool) -> Comparison:
        """The stored comparison: significant when Holm's p < ``alpha`` and not underpowered; the
        verdict says which way (never a winner when underpowered)."""
        significant = bool(p_holm < alpha and not pc.underpowered)
        better = pc.mean_diff > 0 if higher_better else pc.mean_diff < 0
        verdict: Verdict = (
            "underpowered"
            if pc.underpowered
            else ("better" if better else "worse")
            if significant
            else "no significant difference"
        )
        return cls(
            n=pc.n,
            mean_diff=finite(pc.mean_diff),
            ci_low=finite(pc.ci_low),
            ci_high=finite(pc.ci_high),
            t_pvalue=finite(pc.t_pvalue),
            wilcoxon_pvalue=finite(pc.wilcoxon_pvalue),
            prob_improvement=finite(pc.prob_improvement),
            prob_ci_low=finite(pc.prob_ci_low),
            prob_ci_high=finite(pc.prob_ci_high),
            underpowered=pc.underpowered,
            p_holm=finite(p_holm),
            significant=significant,
            seeds=seeds,
            verdict=verdict,
        )


class WeightHistogram(_Frozen):
    """Final-weight counts summed over an arm's seeds on fixed bins: ``(low, high, n_bins)``."""

    linear_range: tuple[float, float, int]
    log10_abs_range: tuple[float, float, int]
    linear: list[float]
    log10_abs: list[float]


class GeneratedSamples(_Frozen):
    """An arm's generative augmentation (``generative_augment``): the VAE's training cost averaged
    over the arm's completed seeds, and the sample grid of its first seed with one (image data):
    uint8 images ``(classes, per class, C, H, W)`` as base64 bytes."""

    n_runs: int
    vae_epochs: float
    vae_seconds: float
    seed: int | None = None
    shape: list[int] | None = None
    b64: str | None = None


class ArmSummary(_Frozen):
    """One arm: its overrides, run counts, statistics per metric, seed-ensemble accuracy (the
    averaged test probabilities of its seeds), comparison, diagnosis, weights and rank (1 = best);
    ``generated`` only for an arm with generative augmentation; ``n_params``: the trainable
    parameters of its network (as its runs counted them; absent in summaries written before)."""

    overrides: dict[str, Any]
    n_completed: int
    n_failed: int
    metrics: dict[str, MetricStats]
    ensemble_test_acc: float | None
    comparison: Comparison | None
    diagnosis: Diagnosis | None
    weight_histogram: WeightHistogram | None
    rank: int
    generated: GeneratedSamples | None = None
    n_params: int | None = None

    @model_serializer(mode="wrap")
    def _without_absent_generated(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Arms without generative augmentation have no ``generated`` key (as before it existed),
        nor arms without a completed run an ``n_params``."""
        out: dict[str, Any] = handler(self)
        for key in ("generated", "n_params"):
            if getattr(self, key) is None:
                out.pop(key, None)
        return out

    def metric(self, name: str) -> MetricStats:
        """The statistics of ``name`` (empty ones for a metric the runs did not report)."""
        return self.metrics.get(name) or MetricStats.empty()


def no_comparison_verdict(is_baseline: bool, n_completed: int) -> str:
    """The verdict of an arm without a comparison to the baseline: "no completed runs" when none
    of its runs completed (even the baseline's), "baseline", or "-" (the baseline has no runs)."""
    if not n_completed:
        return "no completed runs"
    return "baseline" if is_baseline else "-"


class RetriedRun(_Frozen):
    """A run whose worker process died (killed, e.g. out of memory) and that was started again."""

    arm: str
    seed: int
    attempts: int
    status: str


class FailedRun(_Frozen):
    """A run that did not complete (diverged or failed): it is reported, not averaged."""

    arm: str
    seed: int
    status: str
    reason: str | None
    epoch: int | None


class Environment(_Frozen):
    python: str
    platform: str
    versions: dict[str, str | None]
    device: str | None


class ArmTuning(_Frozen):
    """What tuning found for one arm (validation only) and what finding it cost."""

    best_params: dict[str, Any] = Field(default_factory=dict)
    best_value: float | None = None
    n_trials: int = 0
    n_complete: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    epochs_spent: int = 0
    seconds_spent: float = 0.0
    metric: str | None = None


class StudySummary(_Frozen):
    """Everything ``summary.json`` holds. The keys after ``arms`` describe where and how the study
    ran (the outputs writer adds them); ``tuning`` is present only for a tuned study."""

    study: str
    baseline: str
    compare_metric: str
    select_metric: str
    seeds: list[int]
    n_runs: int
    n_expected: int
    underpowered: bool
    underpowered_note: str | None
    failed_runs: list[FailedRun]
    retried_runs: list[RetriedRun] = Field(default_factory=list)
    ranking: list[str]
    arms: dict[str, ArmSummary]
    environment: Environment | None = None
    storage: str | None = None
    fingerprint: str | None = None
    wall_time: float | None = None
    total_run_time: float | None = None
    resolved_config: str | None = None
    tuning: dict[str, ArmTuning] | None = None
    diagnosis_thresholds: dict[str, float] | None = None
    reference_error: AttainableError | None = None
    notes: list[str] = Field(default_factory=list)  # e.g. why there is no diagnosis (a function study)
    adaptive: AdaptiveSeeds | None = None  # adaptive seeds: the design and the runs saved

    @model_serializer(mode="wrap")
    def _without_absent_tuning(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An untuned study's file has no ``tuning`` key (as before the typed summary), and one
        summarized before the thresholds (or the reference error) were stored has no
        ``diagnosis_thresholds`` (``reference_error``); ``retried_runs`` only when a run was retried."""
        out: dict[str, Any] = handler(self)
        for key in ("tuning", "diagnosis_thresholds", "reference_error", "adaptive"):
            if getattr(self, key) is None:
                out.pop(key, None)
        if not self.retried_runs:
            out.pop("retried_runs", None)
        if not self.notes:
            out.pop("notes", None)
        return out

    # -- reading --------------------------------------------------------------------------------

    @property
    def higher_is_better(self) -> bool:
        from reglab.tasks import higher_is_better

        return higher_is_better(self.compare_metric)

    @property
    def gap_metric(self) -> str:
        """The metric whose units the ``gap`` (train minus test, in the better direction) is in:
        accuracy, or RMSE for regression studies (their runs have no accuracy)."""
        has = {k for a in self.arms.values() for k, m in a.metrics.items() if m.n}
        return "rmse" if "train_acc" not in has and "train_rmse" in has else "acc"

    def arm(self, name: str) -> ArmSummary:
        try:
            return self.arms[name]
        except KeyError:
            raise KeyError(f"no arm {name!r} in study {self.study!r} (arms: {', '.join(self.arms)})") from None

    def metric(self, arm: str, name: str) -> MetricStats:
        """``arm``'s statistics of metric ``name``."""
        return self.arm(arm).metric(name)

    def verdicts(self) -> dict[str, list[str]]:
        """Arm names by verdict (``better``, ``worse``, ``no significant difference``,
        ``underpowered``), in rank order; arms without a comparison are left out."""
        out: dict[str, list[str]] = {}
        for name, a in self.ranked():
            if a.comparison is not None:
                out.setdefault(a.comparison.verdict, []).append(name)
        return out

    def headline(self) -> str:
        """The study's answer in one sentence (the report's first line, the terminal's first line)."""
        if not any(a.n_completed for a in self.arms.values()):
            n = len(self.failed_runs)
            return (
                f"No run completed: all {n} run{'s' * (n != 1)} failed or diverged, so there is nothing to compare "
                "(see the failed runs for the reasons)."
            )
        if self.underpowered_note:
            return "No winner is declared: too few seeds for a reliable comparison."
        if self.baseline not in self.arms or len(self.arms) == 1:
            return "A single arm: nothing to compare against."
        v = self.verdicts()
        worse = f" Significantly worse: {', '.join(v['worse'])}." if v.get("worse") else ""
        if self.adaptive is not None:
            eq = f" Equivalent: {', '.join(v['equivalent'])}." if v.get("equivalent") else ""
            still = f" Still open at {self.adaptive.max} seeds: {', '.join(v['open'])}." if v.get("open") else ""
            rest = worse + eq + still
            if v.get("better"):
                return f"Better than the baseline ({self.baseline}), sequentially: {', '.join(v['better'])}.{rest}"
            return f"No arm is better than the baseline ({self.baseline}).{rest}"
        if v.get("better"):
            return f"Better than the baseline ({self.baseline}) after Holm correction: {', '.join(v['better'])}.{worse}"
        return f"No arm is significantly better than the baseline ({self.baseline}) after Holm correction.{worse}"

    def holm_note(self) -> str | None:
        """One sentence for the arms whose unadjusted 95 % interval of the difference excludes 0
        while the verdict is "no significant difference": the verdict is Holm's, and why (not for
        adaptive seeds: their intervals are the sequential design's, already adjusted)."""
        if self.adaptive is not None:
            return None
        arms = [
            (name, c)
            for name, a in self.ranked()
            if (c := a.comparison) is not None
            and not c.significant
            and not c.underpowered
            and c.ci_low is not None
            and c.ci_high is not None
            and (c.ci_low > 0 or c.ci_high < 0)
        ]
        if not arms:
            return None
        k = sum(1 for a in self.arms.values() if a.comparison is not None)
        ps = ", ".join(f"{name} {_p(c.t_pvalue)} → {_p(c.p_holm)}" for name, c in arms)
        names = ", ".join(name for name, _ in arms)
        one = len(arms) == 1
        return (
            f"For {names} the unadjusted 95 % interval of the difference excludes 0, yet the verdict is "
            f"“no significant difference”: the verdict uses the paired t-test after Holm's correction for the "
            f"{k} comparisons with the baseline, which raises {'its p-value' if one else 'their p-values'} ({ps}) "
            "to the 0.05 level or above; one interval alone does not account for the other comparisons."
        )

    def ranked(self) -> list[tuple[str, ArmSummary]]:
        """Arms best first (the ranking), then any arm the ranking does not name."""
        names = [a for a in self.ranking if a in self.arms]
        names += [a for a in self.arms if a not in names]
        return [(a, self.arms[a]) for a in names]

    def table(self) -> pd.DataFrame:
        """One row per arm in rank order: compare metric mean and CI, difference to the baseline
        with its CI, probability of improvement, Holm p-value, verdict, gap, ensemble, diagnosis."""
        import pandas as pd

        m = self.compare_metric
        rows = []
        for arm in self.ranking:
            a = self.arms[arm]
            s, c, d = a.metric(m), a.comparison, a.diagnosis
            rows.append(
                {
                    "rank": a.rank,
                    "arm": arm,
                    f"{m}_mean": s.mean,
                    f"{m}_ci_low": s.ci_low,
                    f"{m}_ci_high": s.ci_high,
                    "diff": None if c is None else c.mean_diff,
                    "diff_ci_low": None if c is None else c.ci_low,
                    "diff_ci_high": None if c is None else c.ci_high,
                    "p_improve": None if c is None else c.prob_improvement,
                    "p_holm": None if c is None else c.p_holm,
                    "verdict": c.verdict if c else no_comparison_verdict(arm == self.baseline, a.n_completed),
                    "gap": a.metric("gap").mean,
                    "ensemble_acc": a.ensemble_test_acc,
                    "diagnosis": None if d is None else d.label,
                    "n": a.n_completed,
                    "n_failed": a.n_failed,
                }
            )
        return pd.DataFrame(rows).set_index("arm")

    # -- files ----------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The text of ``summary.json`` (strict JSON: no NaN)."""
        return json.dumps(self.model_dump(mode="json"), indent=2)

    @classmethod
    def of_output(cls, output_dir: str | Path) -> StudySummary:
        """The summary of a study's output folder (report, export, tracking): a folder that is
        missing or holds no ``summary.json`` is a one-line :class:`ReglabError` saying what to pass."""
        out = Path(output_dir)
        if not out.is_dir():
            raise ReglabError(
                f"{out}: no such directory; give a study's output directory (run `reglab run STUDY.yaml` or "
                "`reglab demo`)"
            )
        if not (out / "summary.json").is_file():
            raise ReglabError(
                f"{out}: no study results here (no summary.json); run the study first (`reglab run STUDY.yaml` "
                "or `reglab demo`) and give its output folder (default reglab-runs/<study name>)"
            )
        return cls.load(out / "summary.json")

    @classmethod
    def load(cls, path: str | Path) -> StudySummary:
        """Read and validate a ``summary.json``; anything unreadable or not matching this schema is
        a one-line :class:`ReglabError` that names the file (and the first offending keys)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ReglabError(
                f"{path}: cannot read it ({type(err).__name__}: {_one_line(str(err))}); rerun the study to rewrite it"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("arms"), dict) or not doc["arms"]:
            raise ReglabError(f"{path}: not a reglab study summary (no arms); rerun the study to rewrite it")
        try:
            return cls.model_validate(doc)
        except ValidationError as err:
            raise ReglabError(
                f"{path}: not a valid reglab study summary ({describe_errors(err)}); it was written by another "
                "reglab version or edited: rerun the study to rewrite it"
            ) from None


def _p(x: float | None) -> str:
    if x is None:
        return "–"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def describe_errors(err: ValidationError, limit: int = 3) -> str:
    """``arms.l2.n_completed: missing; ...``: the first ``limit`` problems, each with its key path."""
    parts = []
    for e in err.errors()[:limit]:
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        what = {"missing": "missing", "extra_forbidden": "unexpected key"}.get(e["type"], _one_line(e["msg"]))
        parts.append(f"{where}: {what}")
    more = err.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _one_line(text: str) -> str:
    return " ".join(text.split())
