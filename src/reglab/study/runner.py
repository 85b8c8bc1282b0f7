"""Running a study: every arm x seed, in parallel, resumable, stored as each run finishes.

Order is seed-major (all arms of seed 0, then seed 1, ...), so a partial study is balanced.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reglab.errors import ReglabError
from reglab.study.executors import Executor, LocalExecutor, Task, run_tasks
from reglab.study.results import epochs_frame, finals_frame, summarize
from reglab.study.storage import RunStore, mask_url

if TYPE_CHECKING:
    import pandas as pd

    from reglab.study.spec import StudySpec


@dataclass
class StudyResults:
    """What a study produced: the summary (as in ``summary.json``) and pandas tables."""

    spec: StudySpec
    summary: dict[str, Any]
    epochs: pd.DataFrame
    finals: pd.DataFrame
    output_dir: Path
    stats: dict[str, int] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per arm: rank, compare metric mean and CI, difference to baseline, diagnosis."""
        import pandas as pd

        rows = []
        m = self.summary["compare_metric"]
        for arm in self.summary["ranking"]:
            a = self.summary["arms"][arm]
            s, c, d = a["metrics"][m], a["comparison"] or {}, a["diagnosis"] or {}
            rows.append(
                {
                    "rank": a["rank"],
                    "arm": arm,
                    f"{m}_mean": s["mean"],
                    f"{m}_ci_low": s["ci_low"],
                    f"{m}_ci_high": s["ci_high"],
                    "diff": c.get("mean_diff"),
                    "diff_ci_low": c.get("ci_low"),
                    "diff_ci_high": c.get("ci_high"),
                    "p_improve": c.get("prob_improvement"),
                    "p_holm": c.get("p_holm"),
                    "verdict": c.get("verdict", "baseline"),
                    "gap": a["metrics"]["gap"]["mean"],
                    "ensemble_acc": a["ensemble_test_acc"],
                    "diagnosis": d.get("label"),
                    "n": a["n_completed"],
                }
            )
        return pd.DataFrame(rows).set_index("arm")


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def environment(device: str | None = None) -> dict[str, Any]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for pkg in ("reglab", "torch", "optuna", "numpy", "scipy", "pydantic"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "device": device,
    }


class _Progress:
    """Rich progress: runs done/left with ETA, and each active run's current epoch."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.overall = self.progress.add_task("runs", total=total, completed=done)
        self.active: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.__exit__(None, None, None)

    def epoch(self, key: str, record: dict[str, float], epochs: int) -> None:
        if not self.enabled or (key not in self.active and len(self.active) > 32):
            return
        if key not in self.active:
            self.active[key] = self.progress.add_task(f"  {key}", total=epochs)
        self.progress.update(
            self.active[key],
            completed=int(record["epoch"]),
            description=f"  {key} val_acc {record['val_acc']:.3f}",
        )

    def finished(self, key: str) -> None:
        if not self.enabled:
            return
        if key in self.active:
            self.progress.remove_task(self.active.pop(key))
        self.progress.advance(self.overall)


def run_study(
    spec: StudySpec,
    *,
    jobs: int | None = None,
    new: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
    storage: str | None = None,
    on_result: Callable[[str, int, dict[str, Any]], None] | None = None,
    extra: dict[str, Any] | None = None,
    tuned_from: StudySpec | None = None,
) -> StudyResults:
    """Train every arm x seed not yet stored, then write the study outputs and return results.
    ``tuned_from``: the tuned study this one confirms (``StudySpec.store_keys``)."""
    t0 = time.perf_counter()
    out = spec.output_dir()
    url = storage or spec.storage_url()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        fingerprint, derived = spec.store_keys(tuned_from)
        store = RunStore(url, spec.name, fingerprint, new=new, derived=derived)
    except ReglabError:
        if created:  # a bad storage URL or a changed study leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    stale = store.recover_stale()
    done = store.done()
    (out / "config.resolved.yaml").write_text(
        yaml.safe_dump({**spec.resolved(), "storage": mask_url(url)}, sort_keys=False), encoding="utf-8"
    )
    todo = [(arm, seed) for seed in spec.seed_list for arm in spec.arms if (arm, seed) not in done]
    tasks = [Task(f"{arm}/seed{seed}", spec.run_config(arm, seed).model_dump(mode="json")) for arm, seed in todo]
    keys = {t.key: kv for t, kv in zip(tasks, todo, strict=True)}
    epochs = {t.key: int(t.config["train"]["epochs"]) for t in tasks}
    total = len(spec.seed_list) * len(spec.arms)
    own_executor = executor is None
    ex: Executor = executor or LocalExecutor(min(jobs or spec.jobs or default_jobs(), max(1, len(tasks))))
    n_new = 0
    try:
        with _Progress(total, total - len(tasks), progress and bool(tasks)) as bar:
            for task, payload in run_tasks(ex, tasks, lambda k, r: bar.epoch(k, r, epochs[k])):
                arm, seed = keys[task.key]
                if payload["status"] == "error":
                    raise ReglabError(f"{task.key}: {payload['reason']}")
                value = (payload.get("final") or {}).get(spec.metric.select)
                store.record(arm, seed, payload, value)
                n_new += 1
                bar.finished(task.key)
                if on_result is not None:
                    on_result(arm, seed, payload)
    finally:
        if own_executor:
            ex.close()
    stats = {"new": n_new, "stale": stale, "skipped": len(done), "replaced": store.replaced}
    return collect(spec, store, url, wall_time=time.perf_counter() - t0, stats=stats, extra=extra)


def collect(
    spec: StudySpec,
    store: RunStore,
    url: str,
    wall_time: float = 0.0,
    stats: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> StudyResults:
    """Build the tables and summary from the store and write runs.csv, finals.csv, summary.json."""
    out = spec.output_dir()
    records = store.done()
    devices = sorted({str((r.payload.get("info") or {}).get("device")) for r in records.values()})
    run_time = sum(float((r.payload.get("info") or {}).get("wall_time") or 0) for r in records.values())
    extra = {
        "environment": environment(", ".join(devices) or None),
        "storage": mask_url(url),
        "fingerprint": spec.fingerprint(),
        "wall_time": wall_time,
        "total_run_time": run_time,
        "resolved_config": "config.resolved.yaml",
        **(extra or {}),
    }
    summary = summarize(spec, records, extra)
    ep, fin = epochs_frame(spec, records), finals_frame(spec, records)
    ep.to_csv(out / "runs.csv", index=False)
    fin.to_csv(out / "finals.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return StudyResults(spec, summary, ep, fin, out, stats or {})
