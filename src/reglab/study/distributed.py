"""Workers that share one study through an Optuna storage (``reglab worker``): any number of
them, on any machines, with no driver - the storage (PostgreSQL) is the only meeting point.

- **tuning** (when the study has a ``search``): every worker asks and tells on the arms' shared
  Optuna studies; the sampler and pruner see every worker's trials. The budget is exact: under the
  storage lock a worker asks only while counted trials + running trials < ``search.trials``.
  Trials of a dead worker (heartbeat older than ``stale_after``) are marked FAIL ("interrupted"),
  which gives their budget back. Confirmation starts when every arm's tuning is over.
- **confirmation runs**: workers claim runs (:meth:`RunStore.claim`), train them, keep the claim's
  heartbeat fresh and store the result in the claimed trial (:meth:`RunStore.finish`); see
  :mod:`reglab.study.storage` for why every run is stored exactly once.
- when nothing is left to claim and nobody else is running, each worker writes the study outputs
  (summary, tables, report) into its output directory, each file replaced atomically.

Distributed tuning is not bit-reproducible (which worker asks next depends on timing, and each
worker's sampler has its own random state); the confirmation runs are, seed by seed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reglab.errors import ConfigError, ReglabError
from reglab.study.executors import Executor, LocalExecutor, Task
from reglab.study.storage import (
    HEARTBEAT,
    STALE_AFTER,
    WORKER,
    Claim,
    RunStore,
    fail_stale,
    lock_supported,
    mask_url,
    open_storage,
    scrub,
    storage_lock,
)
from reglab.tuning.tune import SECONDS_SPENT, tell_result

if TYPE_CHECKING:
    import optuna

    from reglab.study.runner import StudyResults
    from reglab.study.spec import StudySpec

Say = Callable[[str], None]
OUTPUT_FILES = ("config.resolved.yaml", "tuning.json", "runs.csv", "finals.csv", "summary.json", "report.html")


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _print(line: str) -> None:
    print(line, flush=True)


def work(
    spec: StudySpec,
    url: str,
    *,
    jobs: int | None = None,
    stale_after: float = STALE_AFTER,
    heartbeat: float | None = None,
    executor: Executor | None = None,
    say: Say = _print,
    report: bool = True,
) -> StudyResults:
    """Join the study in the shared storage ``url``: tune (if it has a search) and train confirmation
    runs until none is left, then write the outputs. Returns the study results."""
    from reglab.study.runner import default_jobs

    if stale_after <= 0:
        raise ConfigError("--stale-after: must be > 0 seconds")
    t0 = time.perf_counter()
    if not lock_supported(open_storage(url)):
        raise ConfigError(f"workers need a PostgreSQL, MySQL or SQLite storage to share a study, not {mask_url(url)}")
    wid = worker_name()
    beat = heartbeat or min(10.0, stale_after / 4)
    own = executor is None
    ex = executor or LocalExecutor(jobs or spec.jobs or default_jobs())
    say(f"worker {wid}: study {spec.name!r} in {mask_url(url)}, {ex.slots} parallel runs")
    try:
        extra: dict[str, Any] | None = None
        tuning_doc: dict[str, Any] | None = None
        confirm = spec
        if spec.search is not None:
            from reglab.tuning.tune import best_params, tuned_summary

            results = _Tuner(spec, url, ex, wid, stale_after, beat, say).run()
            tuning_doc = {
                "study": spec.name,
                "search": spec.search.model_dump(),
                "storage": mask_url(url),
                "arms": results,
            }
            confirm = spec.with_tuned(best_params(spec, results))
            extra = {"tuning": tuned_summary(results)}
        fingerprint, derived = confirm.store_keys(spec if spec.search is not None else None)
        store = RunStore(url, confirm.name, fingerprint, derived=derived)
        stats = _confirm(confirm, store, ex, wid, stale_after, beat, say)
        return _publish(confirm, store, url, time.perf_counter() - t0, stats, extra, tuning_doc, report)
    except ReglabError:
        raise
    except Exception as err:
        if not _is_storage_error(err):
            raise
        raise ReglabError(f"storage {mask_url(url)}: {type(err).__name__}: {scrub(str(err), url)[:400]}") from None
    finally:
        if own:
            ex.close()


def _is_storage_error(err: BaseException) -> bool:
    import optuna

    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - optuna depends on SQLAlchemy
        return isinstance(err, optuna.exceptions.StorageInternalError)
    return isinstance(err, SQLAlchemyError | optuna.exceptions.StorageInternalError)


# -- confirmation runs ---------------------------------------------------------------------------


def _confirm(
    spec: StudySpec, store: RunStore, ex: Executor, wid: str, stale_after: float, beat: float, say: Say
) -> dict[str, int]:
    """Claim, train and store runs until every run is done, failed in this session, or running
    elsewhere has finished."""
    keys = [(arm, seed) for seed in spec.seed_list for arm in spec.arms]
    since = time.time()
    mine: dict[str, Claim] = {}
    last_beat: dict[str, float] = {}
    next_claim = 0.0
    stats = {"new": 0, "skipped": 0, "lost": 0}
    start = store.claim_state(keys, stale_after, since)
    stats["skipped"] = start.done

    def refresh(key: str) -> None:
        last_beat[key] = time.monotonic()
        if not store.heartbeat(mine[key]):
            say(f"  {key}: claim taken over by another worker (this one looked dead); stopping it")
            ex.stop(key)

    try:
        while True:
            if len(mine) < ex.slots and time.monotonic() >= next_claim:
                while len(mine) < ex.slots:
                    claim = store.claim(keys, wid, stale_after, since)
                    if claim is None:
                        next_claim = time.monotonic() + min(beat, 2.0)
                        break
                    mine[claim.key] = claim
                    last_beat[claim.key] = time.monotonic()
                    ex.submit(Task(claim.key, spec.run_config(claim.arm, claim.seed).model_dump(mode="json")))
            if not mine:
                if store.claim_state(keys, stale_after, since).settled:
                    break
                time.sleep(min(beat, 2.0))  # others are running the rest: wait (and take over the dead)
                next_claim = 0.0
                continue
            events, finished = ex.poll(0.2)
            for key, _record in events:
                if key in mine and time.monotonic() - last_beat[key] >= min(1.0, beat):
                    refresh(key)
            for task, payload in finished:
                claim = mine.pop(task.key)
                last_beat.pop(task.key, None)
                next_claim = 0.0
                if payload["status"] == "error":
                    store.finish(claim, payload, None)
                    raise ReglabError(f"{task.key}: {payload['reason']}")
                value = (payload.get("final") or {}).get(spec.metric.select)
                if store.finish(claim, payload, value):
                    stats["new"] += 1
                    m = spec.metric.select
                    final = payload.get("final") or {}
                    shown = f"  {m} {final[m]:.4f}" if m in final else ""
                    say(f"  {task.key}: {payload['status']}{shown}")
                else:
                    stats["lost"] += 1
                    say(f"  {task.key}: result dropped (the run was taken over by another worker)")
            for key in list(mine):
                if time.monotonic() - last_beat[key] >= beat:
                    refresh(key)
    except BaseException:
        for claim in mine.values():  # give the runs back at once instead of after stale_after
            with contextlib.suppress(Exception):
                store.release(claim)
        raise
    end = store.claim_state(keys, stale_after, since)
    say(
        f"worker {wid}: {stats['new']} runs stored by this worker; {end.done} of {len(keys)} runs done"
        + (f", {end.failed} failed" if end.failed else "")
    )
    return stats


# -- tuning ------------------------------------------------------------------------------------


class _Tuner:
    """Shared ask/tell over every arm's tuning study, with an exact trial budget per arm."""

    def __init__(
        self, spec: StudySpec, url: str, ex: Executor, wid: str, stale_after: float, beat: float, say: Say
    ) -> None:
        from reglab.tuning.spaces import grid_space
        from reglab.tuning.tune import TUNE_INFIX, _open_arm_study

        assert spec.search is not None
        self.spec, self.search, self.ex, self.wid = spec, spec.search, ex, wid
        self.stale_after, self.beat, self.say = stale_after, beat, say
        self.storage = open_storage(url)
        self.lock_name = spec.name + TUNE_INFIX
        self.studies: dict[str, optuna.Study] = {}
        self.spaces: dict[str, dict[str, Any]] = {}
        self.budgets: dict[str, int | None] = {}
        self.stale: dict[str, int] = {}
        for arm in spec.arms:
            study = _open_arm_study(spec, arm, url, new=False)
            study.sampler.reseed_rng()  # workers must not propose the same random points
            _, space = spec.arm_space(arm)
            budget = self.search.trials
            if self.search.sampler == "grid" and budget is None:
                budget = math.prod(len(v) for v in grid_space(space).values()) if space else 1
            if not space:
                budget = 0  # nothing to tune: the arm is confirmed as written
            self.studies[arm], self.spaces[arm], self.budgets[arm], self.stale[arm] = study, space, budget, 0
        # key -> [arm, trial, stop requested, last heartbeat]
        self.running: dict[str, list[Any]] = {}
        self.arm_start: dict[str, float] = {}  # first trial's start per arm (the time budget's origin)
        self.at_deadline: set[str] = set()  # runs stopped by the time budget

    def _state(self, arm: str) -> tuple[int, int, bool]:
        """(counted trials, running trials, time budget over) of an arm; marks stale trials first.
        Call under the lock."""
        import optuna

        from reglab.tuning.tune import _counted

        study = self.studies[arm]
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        n = fail_stale(self.storage, running, self.stale_after)
        if n:
            self.stale[arm] += n
            trials = study.get_trials(deepcopy=False)
        counted = sum(1 for t in trials if _counted(t))
        n_running = sum(1 for t in trials if t.state == optuna.trial.TrialState.RUNNING)
        over = False
        starts = [
            float(t.user_attrs.get("asked_at") or t.datetime_start.timestamp())
            for t in trials
            if t.datetime_start is not None
        ]
        if starts:
            self.arm_start[arm] = min(starts)
        if self.search.timeout is not None and starts:
            over = time.time() - min(starts) >= self.search.timeout
        return counted, n_running, over

    def _can_ask(self, arm: str, counted: int, running: int, over: bool) -> bool:
        budget = self.budgets[arm]
        return not over and (budget is None or counted + running < budget)

    def _ask(self, arm: str) -> bool | None:
        """Start one trial of ``arm``: True when submitted, False when it failed at once (bad
        configuration; counted), None when the arm's budget is taken."""
        import optuna

        from reglab.tuning.spaces import suggest

        study = self.studies[arm]
        with storage_lock(self.storage, self.lock_name):
            if not self._can_ask(arm, *self._state(arm)):
                return None
            trial = study.ask()
            trial.set_user_attr(HEARTBEAT, time.time())
            trial.set_user_attr("asked_at", time.time())
            trial.set_user_attr(WORKER, self.wid)
            params = suggest(trial, self.spaces[arm])
            try:
                cfg = self.spec.run_config(arm, self.search.tuning_seed, params)
            except ConfigError as err:  # e.g. a conditional value the model rejects
                trial.set_user_attr("status", "failed")
                trial.set_user_attr("reason", str(err))
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                return False
        key = f"{arm}/trial{trial.number}"
        self.running[key] = [arm, trial, False, time.monotonic()]
        self.ex.submit(Task(key, cfg.model_dump(mode="json"), folds=self.search.cv))
        return True

    def _fill(self) -> bool:
        """Submit trials while slots are free; False when no arm has budget left for this worker."""
        for arm in self.spec.arms:
            while len(self.running) < self.ex.slots:
                got = self._ask(arm)
                if got is None:
                    break
            if len(self.running) >= self.ex.slots:
                return True
        return False

    def _over(self) -> bool:
        """Every arm's tuning is over: nothing running anywhere and no budget left."""
        with storage_lock(self.storage, self.lock_name):
            for arm in self.spec.arms:
                counted, running, over = self._state(arm)
                if running or self._can_ask(arm, counted, running, over):
                    return False
        return True

    def _beat(self, key: str) -> None:
        import optuna

        entry = self.running[key]
        entry[3] = time.monotonic()
        try:
            entry[1].set_user_attr(HEARTBEAT, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            self.say(f"  {key}: trial taken over by another worker (this one looked dead); stopping it")
            entry[2] = True
            self.ex.stop(key)

    def _event(self, key: str, rec: dict[str, float]) -> None:
        import optuna

        entry = self.running.get(key)
        if entry is None or entry[2]:
            return
        trial = entry[1]
        start = self.arm_start.get(entry[0])
        try:
            if self.search.timeout is not None and start is not None and time.time() - start >= self.search.timeout:
                self.at_deadline.add(key)  # a hard budget, as in the local driver
                self.ex.stop(key)
                entry[2] = True
                return
            trial.report(float(rec[self.spec.metric.select]), int(rec.get("step", rec["epoch"])))
            if trial.should_prune():
                self.ex.stop(key)
                entry[2] = True
                return
        except optuna.exceptions.UpdateFinishedTrialError:
            entry[2] = True
            self.ex.stop(key)
            return
        if time.monotonic() - entry[3] >= min(1.0, self.beat):
            self._beat(key)

    def _finish(self, task: Task, payload: dict[str, Any]) -> None:
        import optuna

        arm, trial, _, _ = self.running.pop(task.key)
        study = self.studies[arm]
        status = payload["status"]
        with storage_lock(self.storage, self.lock_name):
            if self.storage.get_trial(trial._trial_id).state != optuna.trial.TrialState.RUNNING:
                self.say(f"  {task.key}: result dropped (the trial was taken over by another worker)")
                return
            tell_result(study, trial, payload, self.spec.metric.select, deadline=task.key in self.at_deadline)
            if arm in self.arm_start:  # wall time since the arm's first trial, over all workers
                study.set_user_attr(SECONDS_SPENT, time.time() - self.arm_start[arm])
        if status == "error":
            raise ReglabError(f"{task.key}: {payload['reason']}")
        self.say(f"  {task.key}: {status}")

    def run(self) -> dict[str, dict[str, Any]]:
        from reglab.tuning.tune import arm_insight

        next_ask = 0.0
        try:
            while True:
                if len(self.running) < self.ex.slots and time.monotonic() >= next_ask and not self._fill():
                    next_ask = time.monotonic() + min(self.beat, 2.0)
                if not self.running:
                    if self._over():
                        break
                    time.sleep(min(self.beat, 2.0))  # other workers hold the rest of the budget
                    next_ask = 0.0
                    continue
                events, finished = self.ex.poll(0.2)
                for key, rec in events:
                    self._event(key, rec)
                for task, payload in finished:
                    self._finish(task, payload)
                    next_ask = 0.0
                for key in list(self.running):
                    if time.monotonic() - self.running[key][3] >= self.beat:
                        self._beat(key)
        except BaseException:
            import optuna

            for _arm, trial, _, _ in self.running.values():  # give the budget back at once
                with contextlib.suppress(Exception):
                    trial.set_user_attr("status", "interrupted")
                    self.storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            raise
        results = {arm: arm_insight(self.studies[arm], self.spec, arm, self.stale[arm]) for arm in self.spec.arms}
        for arm, r in results.items():
            self.say(f"  tuned {arm}: {r['n_trials']} trials ({r['n_pruned']} pruned), best {r['best_params']}")
        return results


# -- outputs ---------------------------------------------------------------------------------


def _publish(
    spec: StudySpec,
    store: RunStore,
    url: str,
    wall_time: float,
    stats: dict[str, int],
    extra: dict[str, Any] | None,
    tuning_doc: dict[str, Any] | None,
    report: bool,
) -> StudyResults:
    """Write the outputs into a private folder, then move each file into the output directory
    (``os.replace``: atomic), so workers sharing a folder never leave a half-written file."""
    from reglab.jsonsafe import json_safe
    from reglab.study.runner import StudyResults, collect

    out = spec.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".reglab-worker-", dir=out))
    try:
        staged = spec.model_copy(update={"output": str(stage)})
        (stage / "config.resolved.yaml").write_text(
            yaml.safe_dump({**spec.resolved(), "storage": mask_url(url)}, sort_keys=False), encoding="utf-8"
        )
        if tuning_doc is not None:
            (stage / "tuning.json").write_text(json.dumps(json_safe(tuning_doc), indent=2), encoding="utf-8")
        elif (out / "tuning.json").is_file():
            shutil.copy2(out / "tuning.json", stage / "tuning.json")
        res = collect(staged, store, url, wall_time=wall_time, stats=stats, extra=extra)
        if report:
            for name in ("path.json", "path.csv"):  # sweeps the report shows, written by `reglab path`
                if (out / name).is_file():
                    shutil.copy2(out / name, stage / name)
            from reglab.report import build_report

            with contextlib.suppress(ReglabError):  # the outputs are written; the report is a bonus
                build_report(stage)
        for name in OUTPUT_FILES:
            if (stage / name).is_file():
                os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return StudyResults(spec, res.summary, res.epochs, res.finals, out, stats)
