"""The fair tuning protocol: tune each arm on validation data only, with the same budget, then
confirm each arm's best configuration over the study's seeds (``reglab.study.runner``).

The driver owns the Optuna study (ask/tell) and the storage; workers only train. Per-epoch
validation values come back through the executor, are reported to the pruner, and a pruned run
is asked to stop - so pruning works with any executor, local or cluster.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError, ReglabError
from reglab.jsonsafe import json_safe
from reglab.study.executors import Executor, LocalExecutor, Task
from reglab.study.storage import mask_url, open_storage
from reglab.tuning.optuna_adapters import make_pruner, make_sampler
from reglab.tuning.spaces import condition_values, grid_space, suggest

if TYPE_CHECKING:
    import optuna

    from reglab.study.spec import StudySpec

TUNE_INFIX = "/tune/"
SECONDS_SPENT = "seconds_spent"  # study attribute: tuning wall time so far (the time budget resumes)
DEADLINE_REASON = "stopped at the time budget (search.timeout)"


def _fingerprint(spec: StudySpec, arm: str) -> str:
    assert spec.search is not None
    space = spec.arm_space(arm)[1]
    payload = {
        "config": spec.arm_config(arm).model_dump(mode="json"),
        "space": {k: d.model_dump() for k, d in space.items()},
        "search": spec.search.model_dump(exclude={"trials", "timeout"}),
        "metric": spec.metric.select,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _open_arm_study(spec: StudySpec, arm: str, url: str, new: bool) -> optuna.Study:
    import optuna

    assert spec.search is not None
    s = spec.search
    storage = open_storage(url)
    name = spec.name + TUNE_INFIX + arm
    fp = _fingerprint(spec, arm)
    existing = {x.study_name: x for x in storage.get_all_studies()}
    if name in existing:
        old = existing[name].user_attrs.get("fingerprint")
        if old != fp and not new:
            raise ConfigError(
                f"tuning of arm {arm!r} in {mask_url(url)} was run with a different search or configuration; "
                "pass --new to discard it, or give the study a new name"
            )
        if new or old != fp:
            optuna.delete_study(study_name=name, storage=storage)
    _, space = spec.arm_space(arm)
    epochs = spec.arm_config(arm).train.epochs * (s.cv or 1)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(s.sampler, s.seed, grid_space(space) if s.sampler == "grid" else None),
        pruner=make_pruner(s.pruner, epochs, s.startup_trials),
        direction="minimize" if spec.metric.select.endswith("loss") else "maximize",
        load_if_exists=True,
    )
    study.set_user_attr("fingerprint", fp)
    study.set_user_attr("arm", arm)
    return study


def _recover(study: optuna.Study) -> int:
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.RUNNING:
            study._storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            n += 1
    return n


def _counted(t: optuna.trial.FrozenTrial) -> bool:
    """Trials that used budget: finished, pruned, or diverged/failed (not interrupted)."""
    import optuna

    S = optuna.trial.TrialState
    return t.state in (S.COMPLETE, S.PRUNED) or (t.state == S.FAIL and t.user_attrs.get("status") != "interrupted")


def tell_result(
    study: optuna.Study, trial: optuna.Trial, payload: dict[str, Any], select: str, deadline: bool = False
) -> None:
    """Record a finished tuning run: COMPLETE with the selection metric, PRUNED, or FAIL (diverged or
    failed), with its status, epochs spent and reason as user attributes. ``deadline``: the driver
    stopped this run at the time budget (not the pruner)."""
    import optuna

    status = payload["status"]
    trial.set_user_attr("status", status)
    trial.set_user_attr("epochs_spent", int(payload.get("epochs_spent") or 0))
    reason = DEADLINE_REASON if deadline and status == "pruned" else payload.get("reason")
    if reason:
        trial.set_user_attr("reason", str(reason)[:500])
    if status == "completed":
        final = payload["final"]
        for m in ("train_acc", "val_acc", "val_loss"):
            if m in final:
                trial.set_user_attr(m, final[m])
        study.tell(trial, float(final[select]))
    elif status == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def tune_arm(
    spec: StudySpec,
    arm: str,
    url: str,
    executor: Executor,
    new: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the arm's search until its trial budget (or time budget) is spent; resumable."""
    import optuna

    assert spec.search is not None
    s = spec.search
    _, space = spec.arm_space(arm)
    study = _open_arm_study(spec, arm, url, new)
    stale = _recover(study)
    fixed = condition_values(spec.arm_config(arm), space)
    budget = s.trials
    if s.sampler == "grid" and budget is None:
        budget = math.prod(len(v) for v in grid_space(space).values()) if space else 1
    if not space:
        budget = 0  # nothing to tune: the arm is confirmed as written
    done = sum(1 for t in study.get_trials(deepcopy=False) if _counted(t))
    select = spec.metric.select
    # the time budget survives a resume: seconds spent by earlier sessions count
    t0 = time.perf_counter() - float(study.user_attrs.get(SECONDS_SPENT, 0.0))
    running: dict[str, tuple[optuna.Trial, bool]] = {}  # key -> (trial, stop requested)
    at_deadline: set[str] = set()  # runs stopped by the time budget
    launched = done

    def out_of_time() -> bool:
        return s.timeout is not None and time.perf_counter() - t0 >= s.timeout

    def can_launch() -> bool:
        if budget is not None and launched >= budget:
            return False
        return not out_of_time()

    if progress is not None:
        progress.start_arm(arm, budget, done)
    while running or can_launch():
        while len(running) < executor.slots and can_launch():
            trial = study.ask()
            params = suggest(trial, space, fixed)
            try:
                cfg = spec.run_config(arm, s.tuning_seed, params)
            except ConfigError as err:  # e.g. a conditional value the model rejects
                trial.set_user_attr("status", "failed")
                trial.set_user_attr("reason", str(err))
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                launched += 1
                continue
            key = f"{arm}/trial{trial.number}"
            running[key] = (trial, False)
            executor.submit(Task(key, cfg.model_dump(mode="json"), folds=s.cv, evaluate_test=False))
            launched += 1
        events, finished = executor.poll(0.1)
        if out_of_time():  # a hard budget: runs still going stop at their next epoch end
            for key, (trial, stopping) in list(running.items()):
                if not stopping:
                    at_deadline.add(key)
                    executor.stop(key)
                    running[key] = (trial, True)
        for key, rec in events:
            if key not in running or running[key][1]:
                continue
            trial, _ = running[key]
            step = int(rec.get("step", rec["epoch"]))
            trial.report(float(rec[select]), step)
            if progress is not None:
                progress.epoch(arm, key, rec)
            if trial.should_prune():
                executor.stop(key)
                running[key] = (trial, True)
        for task, payload in finished:
            trial, _ = running.pop(task.key)
            status = payload["status"]
            if status == "error":
                raise ReglabError(f"{task.key}: {payload['reason']}")
            tell_result(study, trial, payload, select, deadline=task.key in at_deadline)
            study.set_user_attr(SECONDS_SPENT, time.perf_counter() - t0)
            if progress is not None:
                progress.trial_done(arm, task.key)
    study.set_user_attr(SECONDS_SPENT, time.perf_counter() - t0)
    return arm_insight(study, spec, arm, stale)


def arm_insight(study: optuna.Study, spec: StudySpec, arm: str, stale: int = 0) -> dict[str, Any]:
    """Trials, best values, epochs spent, parameter importance, best-so-far and expected best."""
    import optuna

    from reglab.stats.expected_max import best_so_far, expected_max

    S = optuna.trial.TrialState
    trials = [t for t in study.get_trials(deepcopy=False) if _counted(t)]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in trials if t.state == S.COMPLETE]
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "status": t.user_attrs.get("status"),
            "value": t.value if t.state == S.COMPLETE else None,
            "params": t.params,
            "epochs_spent": t.user_attrs.get("epochs_spent", 0),
            "reason": t.user_attrs.get("reason"),
        }
        for t in trials
    ]
    best = None
    if complete:
        best = max(complete, key=lambda t: float(t.value or 0.0) * (1 if maximize else -1))
    importance: dict[str, dict[str, float]] = {}
    if len(complete) >= 4 and len({k for t in complete for k in t.params}) >= 1:
        for label, evaluator in (
            ("fanova", optuna.importance.FanovaImportanceEvaluator(seed=0)),
            ("ped_anova", optuna.importance.PedAnovaImportanceEvaluator()),
        ):
            try:
                importance[label] = {
                    k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
                }
            except Exception as err:  # too few distinct values, single-valued params, ...
                importance[label] = {"_error": str(err)[:200]}  # type: ignore[dict-item]
    values = [r["value"] for r in rows]
    scores = [v for v in values if v is not None]
    return {
        "arm": arm,
        "n_trials": len(rows),
        "n_complete": len(complete),
        "n_pruned": sum(1 for t in trials if t.state == S.PRUNED),
        "n_failed": sum(1 for t in trials if t.state == S.FAIL),
        "n_interrupted_redone": stale,
        "epochs_spent": int(sum(r["epochs_spent"] or 0 for r in rows)),
        "seconds_spent": float(study.user_attrs.get(SECONDS_SPENT, 0.0)),
        "best_value": best.value if best else None,
        "best_params": dict(best.params) if best else {},
        "best_trial": best.number if best else None,
        "trials": rows,
        "best_so_far": best_so_far(values, maximize),
        "expected_best": expected_max(scores if maximize else [-v for v in scores]) if scores else [],
        "importance": importance,
        "metric": spec.metric.select,
    }


class _TuneProgress:
    def __init__(self, enabled: bool, n_arms: int) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.arms = self.p.add_task("tuning arms", total=n_arms)
        self.arm_task: Any = None
        self.active: dict[str, Any] = {}

    def __enter__(self) -> _TuneProgress:
        if self.enabled:
            self.p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.p.__exit__(None, None, None)

    def start_arm(self, arm: str, budget: int | None, done: int) -> None:
        if not self.enabled:
            return
        if self.arm_task is not None:
            self.p.remove_task(self.arm_task)
            self.p.advance(self.arms)
        self.arm_task = self.p.add_task(f"  {arm}: trials", total=budget, completed=done)

    def epoch(self, arm: str, key: str, rec: dict[str, float]) -> None:
        if not self.enabled:
            return
        if key not in self.active:
            self.active[key] = self.p.add_task(f"    {key}", total=None)
        self.p.update(
            self.active[key],
            description=f"    {key} epoch {int(rec.get('step', rec['epoch']))} val_acc {rec['val_acc']:.3f}",
        )

    def trial_done(self, arm: str, key: str) -> None:
        if not self.enabled:
            return
        if key in self.active:
            self.p.remove_task(self.active.pop(key))
        self.p.advance(self.arm_task)


def tune_study(
    spec: StudySpec,
    *,
    jobs: int | None = None,
    new: bool = False,
    progress: bool = True,
    storage: str | None = None,
    executor: Executor | None = None,
) -> dict[str, dict[str, Any]]:
    """Tune every arm with the same budget; write ``tuning.json``; return insight per arm."""
    from reglab.study.runner import default_jobs

    assert spec.search is not None
    url = storage or spec.storage_url()
    out = spec.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    own = executor is None
    ex = executor or LocalExecutor(jobs or spec.jobs or default_jobs())
    results: dict[str, dict[str, Any]] = {}
    try:
        with _TuneProgress(progress, len(spec.arms)) as bar:
            for arm in spec.arms:
                results[arm] = tune_arm(spec, arm, url, ex, new=new, progress=bar)
    finally:
        if own:
            ex.close()
    doc = {"study": spec.name, "search": spec.search.model_dump(), "storage": mask_url(url), "arms": results}
    (out / "tuning.json").write_text(json.dumps(json_safe(doc), indent=2), encoding="utf-8")
    return results


def best_params(spec: StudySpec, results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each arm's tuned values for the confirmation; an arm whose search completed no trial stops
    the study (confirming its untuned defaults would compare something nobody chose)."""
    for arm, r in results.items():
        if spec.arm_space(arm)[1] and r["n_complete"] == 0:
            raise ReglabError(
                f"arm {arm!r}: none of its {r['n_trials']} tuning trials completed ({r['n_pruned']} pruned or stopped "
                f"at the time budget, {r['n_failed']} failed or diverged), so there is nothing to confirm; raise "
                "search.timeout or search.trials, or narrow the space, and run again (finished trials are kept)"
            )
    return {arm: r["best_params"] for arm, r in results.items()}


def tuned_summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The part of ``summary.json`` about tuning: per arm tuned values, trials and epochs spent."""
    return {
        arm: {
            k: r[k]
            for k in (
                "best_params",
                "best_value",
                "n_trials",
                "n_complete",
                "n_pruned",
                "n_failed",
                "epochs_spent",
                "seconds_spent",
                "metric",
            )
            if k in r
        }
        for arm, r in results.items()
    }
