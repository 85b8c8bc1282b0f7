"""From stored runs to tables and the study summary (the one computation path: the report and
the terminal read ``summary.json``, never recompute)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.jsonsafe import json_safe
from reglab.stats.compare import MIN_SEEDS, describe, holm, paired_compare
from reglab.stats.diagnosis import diagnose
from reglab.study.storage import RunRecord
from reglab.study.worker import unpack_array

if TYPE_CHECKING:
    import pandas as pd

    from reglab.study.spec import StudySpec

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


def epochs_frame(spec: StudySpec, records: dict[tuple[str, int], RunRecord]) -> pd.DataFrame:
    """One row per arm x seed x epoch (``runs.csv``)."""
    import pandas as pd

    rows = []
    order = {a: i for i, a in enumerate(spec.arms)}
    for (arm, seed), rec in sorted(records.items(), key=lambda kv: (order.get(kv[0][0], 999), kv[0][1])):
        for h in rec.payload.get("history", []):
            rows.append({"arm": arm, "seed": seed, "status": rec.status, **h})
        if rec.status != "completed" and not rec.payload.get("history"):
            rows.append({"arm": arm, "seed": seed, "status": rec.status, "epoch": rec.payload.get("diverged_epoch")})
    return pd.DataFrame(rows)


def finals_frame(spec: StudySpec, records: dict[tuple[str, int], RunRecord]) -> pd.DataFrame:
    """One row per arm x seed with the run's final metrics and status."""
    import pandas as pd

    rows = []
    for (arm, seed), rec in records.items():
        p = rec.payload
        rows.append(
            {
                "arm": arm,
                "seed": seed,
                "status": rec.status,
                "reason": p.get("reason"),
                "epochs_run": (p.get("info") or {}).get("epochs_run"),
                "wall_time": (p.get("info") or {}).get("wall_time"),
                **(p.get("final") or {}),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class _ArmRuns:
    by_seed: dict[int, dict[str, float]]
    probs: list[np.ndarray]
    labels: np.ndarray | None


def _sum_histograms(payloads: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Add the runs' final-weight histograms (fixed bins, see ``engine.HIST_*``)."""
    from reglab.training.engine import HIST_LINEAR, HIST_LOG

    hists = [(p.get("info") or {}).get("weight_histogram") for p in payloads]
    hists = [h for h in hists if h]
    if not hists:
        return None
    out: dict[str, Any] = {"linear_range": list(HIST_LINEAR), "log10_abs_range": list(HIST_LOG)}
    for k in ("linear", "log10_abs"):
        out[k] = np.sum([h[k] for h in hists if h is not None], axis=0).tolist()
    return out


def summarize(
    spec: StudySpec, records: dict[tuple[str, int], RunRecord], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Statistics per arm, paired comparisons against the baseline, diagnosis and ranking."""
    compare = spec.metric.compare
    higher_better = not compare.endswith("loss")
    baseline = spec.baseline_arm
    arms: dict[str, _ArmRuns] = {}
    failed = []
    for arm in spec.arms:
        by_seed: dict[int, dict[str, float]] = {}
        probs, labels = [], None
        for seed in spec.seed_list:
            rec = records.get((arm, seed))
            if rec is None:
                continue
            if rec.status != "completed":
                failed.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "status": rec.status,
                        "reason": rec.payload.get("reason"),
                        "epoch": rec.payload.get("diverged_epoch"),
                    }
                )
                continue
            by_seed[seed] = rec.payload["final"]
            if "test_probs" in rec.payload:
                probs.append(unpack_array(rec.payload["test_probs"]).astype(np.float32))
                labels = unpack_array(rec.payload["test_labels"])
        arms[arm] = _ArmRuns(by_seed, probs, labels)

    out_arms: dict[str, dict[str, Any]] = {}
    base_runs = arms[baseline].by_seed
    base_means = {m: describe([f[m] for f in base_runs.values()]).mean for m in ("train_acc", "val_acc")}
    for arm, runs in arms.items():
        finals = runs.by_seed
        metrics: dict[str, dict[str, Any]] = {}
        for m in SUMMARY_METRICS:
            vals = [f[m] for f in finals.values() if m in f]
            metrics[m] = {**describe(vals).to_dict(), "values": vals}
        ensemble = None
        if runs.probs and runs.labels is not None:
            avg = np.mean(runs.probs, axis=0)
            ensemble = float((avg.argmax(1) == runs.labels).mean())
        comparison: dict[str, Any] | None = None
        if arm != baseline:
            common = sorted(set(finals) & set(base_runs))
            if len(common) >= 1:
                pc = paired_compare([finals[s][compare] for s in common], [base_runs[s][compare] for s in common])
                comparison = {**pc.to_dict(), "seeds": common}
        hist = _sum_histograms([records[(arm, s)].payload for s in finals])
        is_base = arm == baseline
        diag = None
        if finals:
            diag = diagnose(
                float(metrics["train_acc"]["mean"]),
                float(metrics["val_acc"]["mean"]),
                spec.diagnosis,
                None if is_base else base_means["train_acc"],
                None if is_base else base_means["val_acc"],
            ).to_dict()
        out_arms[arm] = {
            "overrides": spec.arms[arm],
            "n_completed": len(finals),
            "n_failed": sum(1 for f in failed if f["arm"] == arm),
            "metrics": metrics,
            "ensemble_test_acc": ensemble,
            "comparison": comparison,
            "diagnosis": diag,
            "weight_histogram": hist,
        }

    # Holm across arms, on the paired t-test
    compared = [a for a, v in out_arms.items() if v["comparison"] is not None]
    adjusted = holm([out_arms[a]["comparison"]["t_pvalue"] for a in compared]) if compared else []
    for a, p in zip(compared, adjusted, strict=True):
        c = out_arms[a]["comparison"]
        c["p_holm"] = p
        c["significant"] = bool(p < ALPHA and not c["underpowered"])
        better = c["mean_diff"] > 0 if higher_better else c["mean_diff"] < 0
        c["verdict"] = (
            "underpowered"
            if c["underpowered"]
            else ("better" if better else "worse")
            if c["significant"]
            else "no significant difference"
        )

    def key(a: str) -> float:
        m = out_arms[a]["metrics"][compare]["mean"]
        if m is None or (isinstance(m, float) and math.isnan(m)):
            return math.inf
        return -m if higher_better else m

    ranking = sorted(out_arms, key=key)
    for i, a in enumerate(ranking, 1):
        out_arms[a]["rank"] = i
    n_seeds = len(spec.seed_list)
    summary = {
        "study": spec.name,
        "baseline": baseline,
        "compare_metric": compare,
        "select_metric": spec.metric.select,
        "seeds": spec.seed_list,
        "n_runs": len(records),
        "n_expected": n_seeds * len(spec.arms),
        "underpowered": n_seeds < MIN_SEEDS,
        "underpowered_note": (
            f"only {n_seeds} seed{'' if n_seeds == 1 else 's'}: comparisons are underpowered "
            f"(need >= {MIN_SEEDS}); no winner is declared"
            if n_seeds < MIN_SEEDS
            else None
        ),
        "failed_runs": failed,
        "ranking": ranking,
        "arms": out_arms,
        **(extra or {}),
    }
    return json_safe(summary)
