"""From stored runs to tables and the study summary (the one computation path: the report and
the terminal read ``summary.json``, never recompute)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.stats.compare import MIN_SEEDS, PairedComparison, describe, describe_in_range, holm, paired_compare
from reglab.stats.diagnosis import AttainableError, diagnose
from reglab.stats.summary import (
    HIST_LINEAR,
    HIST_LOG,
    AdaptiveSeeds,
    ArmSummary,
    Comparison,
    FailedRun,
    GeneratedSamples,
    MetricStats,
    RetriedRun,
    SequentialLook,
    SequentialOutcome,
    StudySummary,
    WeightHistogram,
    finite,
)
from reglab.study.results.outcome import RunOutcome, RunStatus
from reglab.study.results.storage import RunRecord

if TYPE_CHECKING:
    import pandas as pd

    from reglab.stats.sequential import ArmSequence
    from reglab.study.definition.spec import StudySpec
    from reglab.study.results.saved_models import FinishedModels

SUMMARY_METRICS = (
    "test_acc",
    "test_loss",
    "val_acc",
    "val_loss",
    "train_acc",
    "gap",
    "best_epoch",
    "sparsity",
    "weight_l2",
    "weight_l1",
)
ALPHA = 0.05

Records = Mapping[tuple[str, int], RunRecord]


@dataclass
class ProtocolStats:
    """What this session did with the study's confirmation runs."""

    new: int = 0  # trained and stored now
    skipped: int = 0  # already stored (resumed)
    stale: int = 0  # left running by a killed session: redone
    replaced: int = 0  # outdated confirmation runs of other tuned values: discarded
    lost: int = 0  # trained here but taken over by another worker meanwhile
    models: FinishedModels | None = None  # saved models at the end (save_models: best | all)


@dataclass
class StudyResults:
    """What a study produced: the summary (as in ``summary.json``) and pandas tables."""

    spec: StudySpec
    summary: StudySummary
    epochs: pd.DataFrame
    finals: pd.DataFrame
    output_dir: Path
    stats: ProtocolStats = field(default_factory=lambda: _stats())

    def table(self) -> pd.DataFrame:
        """One row per arm: rank, compare metric mean and CI, difference to baseline, diagnosis,
        and how many runs completed (``n``) and failed or diverged (``n_failed``)."""
        return self.summary.table()

    @property
    def failed(self) -> list[FailedRun]:
        """The runs that failed with an exception (arm, seed, reason ``ExceptionType: message``);
        they are in no statistic. Empty when every run completed or diverged."""
        return [f for f in self.summary.failed_runs if f.status == RunStatus.FAILED.value]


def _stats() -> ProtocolStats:
    return ProtocolStats()


def _in_study_order(spec: StudySpec, records: Records) -> list[tuple[tuple[str, int], RunRecord]]:
    """Arms in the study's order, then seeds (not the order parallel workers finished in)."""
    order = {a: i for i, a in enumerate(spec.arms)}
    return sorted(records.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1]))


def epochs_frame(spec: StudySpec, records: Records) -> pd.DataFrame:
    """One row per arm x seed x epoch (``runs.csv``)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for (arm, seed), rec in _in_study_order(spec, records):
        o = rec.outcome
        for h in o.history:
            rows.append({"arm": arm, "seed": seed, "status": o.status.value, **h})
        if o.status is not RunStatus.COMPLETED and not o.history:
            rows.append({"arm": arm, "seed": seed, "status": o.status.value, "epoch": _ended_at(o)})
    return _whole_numbers(pd.DataFrame(rows), ("epoch", "step"))


def _ended_at(o: RunOutcome) -> int:
    """The epoch a run that did not complete ended at: the one it diverged in, else the epochs it
    trained (0: it failed before its first epoch ended)."""
    return o.diverged_epoch if o.diverged_epoch is not None else o.epochs_spent


def finals_frame(spec: StudySpec, records: Records) -> pd.DataFrame:
    """One row per arm x seed with the run's final metrics and status (``finals.csv``)."""
    import pandas as pd

    rows = []
    for (arm, seed), rec in _in_study_order(spec, records):
        o = rec.outcome
        rows.append(
            {
                "arm": arm,
                "seed": seed,
                "status": o.status.value,
                "reason": o.reason,
                "epochs_run": o.info.get("epochs_run"),
                "wall_time": o.info.get("wall_time"),
                **o.final,
            }
        )
    return _whole_numbers(pd.DataFrame(rows), ("epochs_run",))


def _whole_numbers(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Count columns with a gap (a run that failed before its first epoch) stay integers in the
    CSV files (pandas' nullable ``Int64``) rather than turning into ``2.0``."""
    for c in columns:
        if c in df and df[c].isna().any():
            values = df[c].dropna()
            if len(values) and (values == values.round()).all():
                df[c] = df[c].astype("Int64")
    return df


@dataclass
class _ArmRuns:
    """An arm's completed runs by seed, and the test-set probabilities for its seed ensemble."""

    outcomes: dict[int, RunOutcome]
    probs: list[np.ndarray]
    labels: np.ndarray | None

    @property
    def finals(self) -> dict[int, dict[str, float]]:
        return {s: o.final for s, o in self.outcomes.items()}

    def ensemble_acc(self) -> float | None:
        """Accuracy of the seeds' averaged test probabilities (binary: P(class 1) >= 0.5); None
        for regression (the seeds' predictions are stored, not probabilities)."""
        if not self.probs or self.labels is None or self.labels.dtype.kind == "f":
            return None
        avg = np.mean(self.probs, axis=0)
        pred = (avg >= 0.5).astype(np.int64) if avg.ndim == 1 else avg.argmax(1)
        return float((pred == self.labels).mean())


def _sum_histograms(outcomes: list[RunOutcome]) -> WeightHistogram | None:
    """Add the runs' final-weight histograms (fixed bins: the stored ``*_range``, else
    ``HIST_LINEAR``/``HIST_LOG``; torch is never imported here)."""
    hists = [h for h in (o.info.get("weight_histogram") for o in outcomes) if h]
    if not hists:
        return None
    first = hists[0]
    return WeightHistogram(
        linear_range=tuple(first.get("linear_range") or HIST_LINEAR),
        log10_abs_range=tuple(first.get("log10_abs_range") or HIST_LOG),
        linear=np.sum([h["linear"] for h in hists], axis=0).tolist(),
        log10_abs=np.sum([h["log10_abs"] for h in hists], axis=0).tolist(),
    )


def _generated(outcomes: Mapping[int, RunOutcome]) -> GeneratedSamples | None:
    """The arm's VAE cost (mean over seeds) and the first seed's sample grid, when its runs
    trained one (``generative_augment``'s run facts)."""
    runs = {s: o.info for s, o in sorted(outcomes.items()) if "generative_vae_seconds" in o.info}
    if not runs:
        return None
    grid = next(((s, i["generative_samples"]) for s, i in runs.items() if "generative_samples" in i), None)
    return GeneratedSamples(
        n_runs=len(runs),
        vae_epochs=float(np.mean([i["generative_vae_epochs"] for i in runs.values()])),
        vae_seconds=float(np.mean([i["generative_vae_seconds"] for i in runs.values()])),
        seed=None if grid is None else grid[0],
        shape=None if grid is None else list(grid[1]["shape"]),
        b64=None if grid is None else grid[1]["b64"],
    )


def _collect_runs(spec: StudySpec, records: Records) -> tuple[dict[str, _ArmRuns], list[FailedRun]]:
    arms: dict[str, _ArmRuns] = {}
    failed: list[FailedRun] = []
    for arm in spec.arms:
        runs = _ArmRuns({}, [], None)
        for seed in spec.seed_list:
            rec = records.get((arm, seed))
            if rec is None:
                continue
            o = rec.outcome
            if o.status is not RunStatus.COMPLETED:
                failed.append(FailedRun(arm=arm, seed=seed, status=o.status.value, reason=o.reason, epoch=_ended_at(o)))
                continue
            runs.outcomes[seed] = o
            if o.test_probs is not None and o.test_labels is not None:
                runs.probs.append(o.test_probs.unpack().astype(np.float32))
                runs.labels = o.test_labels.unpack()
        arms[arm] = runs
    return arms, failed


def _regularized(spec: StudySpec, arm: str) -> bool:
    """Whether an arm uses a regularizer: one is on in its configuration or tuned in its space."""
    from reglab.regularizers.registry import REGULARIZERS, build_regularizers

    a = spec.arm(arm)
    if a.function is not None:  # the user's function: an arm regularizes when it changes any setting
        return bool(spec.arms[arm])
    if build_regularizers(a.config):
        return True
    fields = {f for _, r in REGULARIZERS.items() for f in r.fields}
    return any(k.rsplit(".", 1)[-1] in fields for k in a.space)


def _mean(m: MetricStats) -> float:
    return math.nan if m.mean is None else m.mean


def summary_keys(finals: Mapping[Any, Mapping[str, float]]) -> list[str]:
    """The metrics summarized per arm: ``SUMMARY_METRICS`` (for a task without accuracy, those
    its runs have), then every other ``<split>_<metric>`` the runs measured (registry order)."""
    from reglab.tasks import METRICS

    present = {k for f in finals.values() for k in f}
    keys = [m for m in SUMMARY_METRICS if "train_acc" in present or not present or m in present]
    extra = [f"{s}_{n}" for s in ("test", "val", "train") for n in METRICS.names() if n != "loss"]
    return keys + [k for k in extra if k in present and k not in keys]


def _metrics(finals: dict[int, dict[str, float]], keys: list[str]) -> dict[str, MetricStats]:
    """Per metric: mean, std and the 95 % interval of the mean; a metric with a range (accuracy,
    RMSE, sparsity, norms) gets :func:`~reglab.stats.compare.describe_in_range`'s transformed
    t-interval, which never leaves it (an accuracy's never passes 100 %, an RMSE's never 0)."""
    out = {}
    for m in keys:
        vals = [f[m] for f in finals.values() if m in f]
        low, high = _metric_range(m)
        out[m] = MetricStats.of(describe_in_range(vals, low, high), vals)
    return out


def _metric_range(metric: str) -> tuple[float, float]:
    """The values a summarized metric can take: the registry's range, [0, 1] for sparsity, [0, inf)
    for weight norms, unbounded otherwise (the gap, losses of unknown kind)."""
    from reglab.tasks import metric_info

    info = metric_info(metric)
    if info is not None:
        return info.low, info.high
    if metric == "sparsity":
        return 0.0, 1.0
    if metric.startswith("weight_"):
        return 0.0, math.inf
    return -math.inf, math.inf


def _reference(
    spec: StudySpec, records: Records, metrics: Mapping[str, Mapping[str, MetricStats]], dm: str
) -> AttainableError | None:
    """The error the diagnosis measures bias against (:mod:`reglab.study.results.reference`): the study's
    own, else the classical models' stored with the baseline's runs, else the lowest seed-averaged
    training error of any arm."""
    from reglab.study.results.reference import attainable_error

    baseline = [r.outcome for (arm, _), r in sorted(records.items()) if arm == spec.baseline_arm]
    train = {a: 1 - _mean(m[f"train_{dm}"]) for a, m in metrics.items() if f"train_{dm}" in m}
    return attainable_error(spec.diagnosis.reference_error, baseline, train, accuracy=dm == "acc")


def _n_params(outcomes: Iterable[RunOutcome]) -> int | None:
    """The trainable parameters of an arm's network, as its runs counted them (the engine's
    ``info["n_params"]``; the largest, should seeds differ); None when no run reported it."""
    counts = [int(n) for o in outcomes if isinstance(n := o.info.get("n_params"), int | float)]
    return max(counts) if counts else None


def _notes(arms: Mapping[str, _ArmRuns], dm: str, diagnosed: bool) -> list[str]:
    """Why a study has no diagnosis (its runs measure no training metric: the user's function
    returned none), and that a function never reported an epoch."""
    from reglab.study.definition.objective import NO_REPORT_NOTE

    outcomes = [o for r in arms.values() for o in r.outcomes.values()]
    out = []
    if outcomes and not diagnosed:
        out.append(
            f"no bias/variance diagnosis: the runs returned no train_{dm} next to val_{dm} "
            f"(return train_{dm} from your function to get one)"
        )
    if any(o.info.get("no_report") for o in outcomes):
        out.append(NO_REPORT_NOTE)
    return out


def diagnosis_metric(keys: list[str]) -> str:
    """Accuracy when the runs have it; for regression R² (1 - R² is the relative squared error)."""
    return "acc" if "train_acc" in keys or "train_r2" not in keys else "r2"


def summarize(spec: StudySpec, records: Records, extra: Mapping[str, Any] | None = None) -> StudySummary:
    """Statistics per arm, paired comparisons against the baseline (Holm-adjusted across arms),
    diagnosis and ranking. ``extra``: the keys ``collect`` adds (environment, storage, ...)."""
    from reglab.tasks import higher_is_better

    compare = spec.metric.compare
    higher_better = higher_is_better(compare)
    baseline = spec.baseline_arm
    seqs, adaptive, seed_list = None, None, spec.seed_list
    if spec.adaptive is not None:  # each arm's statistics rest on the seeds its verdict was decided at
        seqs, adaptive, records = _adaptive(spec, records)
        seed_list = sorted({seed for _, seed in records}) or list(range(spec.adaptive.min))
    arms, failed = _collect_runs(spec, records)
    base_runs = arms[baseline].finals
    keys = summary_keys({(a, s): f for a, r in arms.items() for s, f in r.finals.items()})
    dm = diagnosis_metric(keys)
    base_means = {m: describe([f[m] for f in base_runs.values() if m in f]).mean for m in (f"train_{dm}", f"val_{dm}")}

    metrics: dict[str, dict[str, MetricStats]] = {}
    paired: dict[str, tuple[PairedComparison, list[int]]] = {}
    for arm, runs in arms.items():
        finals = runs.finals
        metrics[arm] = _metrics(finals, keys)
        common = sorted(set(finals) & set(base_runs))
        if arm != baseline and common:
            pc = paired_compare(
                [finals[s][compare] for s in common],
                [base_runs[s][compare] for s in common],
                higher_is_better=higher_better,
            )
            paired[arm] = (pc, common)
    # Holm (1979) across arms, on the paired t-test
    adjusted = holm([pc.t_pvalue for pc, _ in paired.values()]) if paired else []
    comparisons = {
        arm: Comparison.of(pc, common, p, ALPHA, higher_better)
        for (arm, (pc, common)), p in zip(paired.items(), adjusted, strict=True)
    }
    if seqs is not None:
        comparisons = {arm: _sequential(c, seqs[arm]) for arm, c in comparisons.items() if arm in seqs}

    def key(a: str) -> float:
        m = metrics[a][compare].mean
        return math.inf if m is None else (-m if higher_better else m)

    ranking = sorted(arms, key=key)
    reference = _reference(spec, records, metrics, dm)
    out_arms = {}
    for arm, runs in arms.items():
        mets, is_base = metrics[arm], arm == baseline
        diag = None
        if (
            runs.outcomes
            and mets.get(f"train_{dm}", MetricStats.empty()).n
            and mets.get(f"val_{dm}", MetricStats.empty()).n
        ):
            diag = diagnose(
                _mean(mets[f"train_{dm}"]),
                _mean(mets[f"val_{dm}"]),
                spec.diagnosis,
                None if is_base else base_means[f"train_{dm}"],
                None if is_base else base_means[f"val_{dm}"],
                metric=dm,
                regularized=_regularized(spec, arm),
                reference=None if reference is None else reference.value,
            )
        out_arms[arm] = ArmSummary(
            overrides=spec.arms[arm],
            n_completed=len(runs.outcomes),
            n_failed=sum(1 for f in failed if f.arm == arm),
            metrics=mets,
            ensemble_test_acc=finite(runs.ensemble_acc()),
            comparison=comparisons.get(arm),
            diagnosis=diag,
            weight_histogram=_sum_histograms(list(runs.outcomes.values())),
            rank=ranking.index(arm) + 1,
            generated=_generated(runs.outcomes),
            n_params=_n_params(runs.outcomes.values()),
        )
    n_seeds = len(spec.seed_list) if spec.adaptive is None else spec.adaptive.min
    regression = compare.partition("_")[2] in ("rmse", "mae", "r2")  # a function's runs may have no r2 yet
    notes = _notes(arms, "r2" if regression else dm, any(a.diagnosis for a in out_arms.values()))
    note = None
    if n_seeds < MIN_SEEDS and adaptive is None:  # adaptive seeds: the sequential design decides
        note = (
            f"only {n_seeds} seed{'' if n_seeds == 1 else 's'}: comparisons are underpowered "
            f"(need >= {MIN_SEEDS}); no winner is declared"
        )
    return StudySummary.model_validate(
        {
            "study": spec.name,
            "baseline": baseline,
            "compare_metric": compare,
            "select_metric": spec.metric.select,
            "seeds": seed_list,
            "n_runs": sum(1 for r in records.values() if r.status.done),
            "n_expected": n_seeds * len(spec.arms) if adaptive is None else adaptive.runs_used,
            "underpowered": n_seeds < MIN_SEEDS and adaptive is None,
            "underpowered_note": note,
            "failed_runs": failed,
            "retried_runs": [
                RetriedRun(arm=a, seed=sd, attempts=r.outcome.attempts, status=r.outcome.status.value)
                for (a, sd), r in sorted(records.items())
                if r.outcome.attempts is not None and r.outcome.attempts > 1
            ],
            "ranking": ranking,
            "arms": out_arms,
            "diagnosis_thresholds": spec.diagnosis.model_dump(exclude={"reference_error"}),
            "reference_error": reference,
            "notes": notes,
            "adaptive": adaptive,
            **(extra or {}),
        }
    )


def _adaptive(spec: StudySpec, records: Records) -> tuple[dict[str, ArmSequence], AdaptiveSeeds, Records]:
    """Adaptive seeds: each arm's sequential outcome, the design and runs used, and the records
    its statistics rest on (seeds below each arm's decision; the baseline's up to the longest)."""
    from reglab.study.results import adaptive

    seqs = adaptive.outcomes(spec, records)
    used = adaptive.seeds_used(spec, seqs)
    a = spec.adaptive
    assert a is not None
    design = adaptive.design(spec)
    summary = AdaptiveSeeds(
        min=a.min,
        max=a.max,
        step=a.step,
        equivalence=a.equivalence,
        spending=a.spending,
        looks=a.looks,
        method=design.method,
        runs_used=sum(used.values()),
        runs_max=a.max * len(spec.arms),
    )
    kept = {k: r for k, r in records.items() if k[1] < used.get(k[0], 0)}
    return seqs, summary, kept


def _sequential(c: Comparison, seq: ArmSequence) -> Comparison:
    """The comparison of an adaptive study: the verdict, interval and p-value are the sequential
    design's (anytime-valid, adjusted for the arms by the alpha split), not the t-test's, which
    the peeking after every round would invalidate."""
    last = seq.intervals[-1] if seq.intervals else None
    outcome = SequentialOutcome(
        verdict=seq.verdict,
        decided_at=seq.decided_at,
        seeds_used=seq.seeds_used,
        intervals=[
            SequentialLook(seeds=lk.seeds, n=lk.n, mean=finite(lk.mean), low=finite(lk.low), high=finite(lk.high))
            for lk in seq.intervals
        ],
    )
    return c.model_copy(
        update={
            "ci_low": None if last is None else finite(last.low),
            "ci_high": None if last is None else finite(last.high),
            "p_holm": finite(seq.p_value),
            "significant": seq.verdict in ("better", "worse"),
            "underpowered": False,
            "verdict": seq.verdict,
            "sequential": outcome,
        }
    )
