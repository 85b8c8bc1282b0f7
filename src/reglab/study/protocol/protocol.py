"""The fair protocol, one implementation for every way of running it:

tune every arm on validation data only, with an equal budget (when the study has a ``search``)
-> confirm each arm's best configuration over the study's seeds -> statistics, diagnosis, outputs.
The test split is read only by confirmation runs (``make_task`` is the one place a task is built).

``run_protocol`` (``reglab run``, any executor) and ``work`` (``reglab worker``: any number of
processes sharing a study through its storage) run the same two loops below; they differ only in
their budget and ledger (:mod:`reglab.study.protocol.coordination`). The driver owns the Optuna studies
(ask/tell) and the storage; executors only train. Per-epoch values come back through the
executor, are reported to the pruner, and a pruned run is asked to stop - so pruning works with
any executor, local or cluster.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError, Interrupted, ReglabError
from reglab.files import unusable_folder
from reglab.study.definition.objective import local_only
from reglab.study.execution.executors import InProcessExecutor, LocalExecutor, default_jobs, execute_task
from reglab.study.execution.function_runs import NoReportNote
from reglab.study.execution.own_model import check_outputs, with_model
from reglab.study.execution.task import Executor, Task
from reglab.study.protocol.coordination import (
    ArmSearch,
    LocalBudget,
    LocalLedger,
    RunKey,
    SharedBudget,
    SharedLedger,
)
from reglab.study.protocol.lease import study_lease
from reglab.study.results.outcome import RunOutcome, RunStatus
from reglab.study.results.progress import Bars, Lines, Observer, Say
from reglab.study.results.results import ProtocolStats
from reglab.study.results.saved_models import model_path, models_dir
from reglab.study.results.storage import (
    STALE_AFTER,
    RunStore,
    check_sqlite_file,
    lock_supported,
    open_storage,
    storage_error,
    storage_lock,
)
from reglab.tuning.insight import ArmTuning, arm_insight
from reglab.tuning.sampling import suggest
from reglab.tuning.studies import TUNE_INFIX, counted, open_arm_study
from reglab.urls import mask_url

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    import optuna

    from reglab.models import ModelCallable
    from reglab.study.definition.spec import Arm, StudySpec
    from reglab.study.results.results import StudyResults

DEADLINE_REASON = "stopped at the time budget (search.timeout)"
Budget = LocalBudget | SharedBudget
Ledger = LocalLedger | SharedLedger


def make_task(
    arm: Arm,
    seed: int,
    *,
    trial: int | None = None,
    params: dict[str, Any] | None = None,
    folds: int | None = None,
    models: Path | None = None,
    reference: bool = False,
) -> Task:
    """The one place a task is built. A tuning trial (``trial`` given) never reads the test split.
    ``models``: the study's saved-models folder; a confirmation run then saves its model there.
    ``reference``: a confirmation run that also fits the classical reference models on its splits."""
    if arm.function is not None:  # a run of the user's function (objective.function)
        from reglab.study.execution.function_runs import function_task

        return function_task(arm, seed, trial=trial, params=params)
    if trial is None:
        save_to = None if models is None else str(model_path(models, arm.name, seed))
        return Task(f"{arm.name}/seed{seed}", arm.run_config(seed), save_to=save_to, reference=reference)
    return Task(f"{arm.name}/trial{trial}", arm.run_config(seed, params), folds=folds, evaluate_test=False)


def in_process_only(executor: Executor | None, jobs: int | None, ref: str, why: str) -> Executor:
    """The executor for a function only this process can call: in-process, or a clear refusal."""
    if isinstance(executor, InProcessExecutor):
        return executor
    if executor is None and (jobs or 1) == 1:
        return InProcessExecutor()
    raise ConfigError(
        f"objective: {why}, so it can run only in this process (jobs=1); worker processes, Ray and `reglab worker` "
        f"import the function by name: define it at the top level of a module (e.g. train.py) and import it from there"
    )


def run_once(spec: StudySpec, arm: str, seed: int, params: Mapping[str, Any] | None = None) -> RunOutcome:
    """One run of the study's function in this process, exactly as a worker runs it (a confirmation
    run; with ``params``: a tuning trial with those tuned values). Two calls with the same seed
    give the same outcome when the function is deterministic: the check docs/own-training.md
    suggests before a long study."""
    from reglab.study.execution.worker import DataCache

    if spec.objective is None:
        raise ConfigError(f"study {spec.name!r} has no objective.function")
    task = make_task(spec.arm(arm), seed, trial=None if params is None else 0, params=dict(params or {}))
    return execute_task(task, lambda record, key=None: False, DataCache(size=1))


# -- public entry points ---------------------------------------------------------------------------


def run_protocol(
    spec: StudySpec,
    *,
    jobs: int | None = None,
    new: bool = False,
    progress: bool = True,
    storage: str | None = None,
    executor: Executor | None = None,
    model: ModelCallable | str | None = None,
    data: Any = None,
    objective: Callable[..., Any] | str | None = None,
) -> StudyResults:
    """Run (or resume) the study in this process: tune (if it has a search), confirm, summarize.
    Returns the results; the outputs are written to ``spec.output_dir()``.

    ``model``: your own network, ``model(**hyperparameters) -> nn.Module``, a class or a function
    importable by name (worker processes import it; see :mod:`reglab.models.user`). ``data``: your
    own data (``(X, y)``, a dict of splits or a torch ``Dataset``) instead of ``spec.data``'s
    dataset; written once to ``<output>/data/<hash>.npz``, which the workers (processes or Ray
    nodes sharing the file system) read by its absolute path. Both are checked (the model once on
    one batch) before anything is stored. ``objective``: your own training function
    ``run(settings, ctx) -> metrics`` instead of reglab's engine (:mod:`reglab.study.definition.objective`);
    one defined in ``__main__`` or a notebook runs in this process only (``jobs=1``)."""
    from reglab.study.results.outputs import publish, write_resolved

    t0 = time.perf_counter()
    out = spec.output_dir()
    check_folder(out)
    url = storage or spec.storage_url()
    check_sqlite_file(url)  # before the output folder is made: a refused storage leaves nothing behind
    if model is not None:
        spec = with_model(spec, model)
    own = executor is None
    if objective is not None:
        from reglab.study.definition.function_study import with_objective

        spec, _ = with_objective(spec, objective)
    # worker processes cannot import a function defined in __main__ or a notebook
    if spec.objective is not None and (why := local_only(spec.objective.function)) is not None:
        executor = in_process_only(executor, jobs, spec.objective.function, why)
    created = _make_folder(out)  # what to remove if the input turns out bad
    with study_lease(url, spec.name):  # another driver or workers on it: refused before anything is written
        try:
            if data is not None:  # checked before anything is written; the fingerprint follows the content
                from reglab.data.arrays import materialize

                spec = spec.model_copy(update={"data": materialize(data, spec.data, (out / "data").resolve())})
            else:
                from reglab.data import check_source

                check_source(spec.data)
            check_outputs(spec)  # the user's model, once on one batch
            ex = executor or LocalExecutor(min(jobs or spec.jobs or default_jobs(), _most_parallel(spec)))
            if spec.objective is not None:  # the user's function: its settings, checked where it runs
                from reglab.study.execution.function_runs import check_in_workers

                try:
                    check_in_workers(spec, ex)
                except ReglabError:
                    if own:
                        ex.close()
                    raise
        except ReglabError:
            _unmake_folder(created)  # nothing is left behind
            raise
        observer: Observer = Bars() if progress else Observer()
        tune_ex, confirm_ex = _populations(spec, ex, observer.note)
        confirm, store = spec, None
        try:
            with observer:
                tuning = None
                try:  # a bad storage URL or a changed study leaves nothing behind
                    db = open_storage(url)
                    if spec.search is not None:
                        tuning = tune(spec, url, tune_ex, LocalBudget(), observer, new=new, storage=db)
                        confirm = spec.with_tuned(best_params(spec, tuning))
                    store = _open_store(spec, confirm, url, new, db)
                except ConfigError:
                    if tuning is None:
                        _unmake_folder(created)
                    raise
                write_resolved(confirm, url)
                stats = confirm_runs(confirm, store, confirm_ex, LocalLedger(), observer)
        except Interrupted as err:
            err.stored = _stored(confirm, store, out)
            raise
        finally:
            if own:
                ex.close()
        return publish(confirm, store, url, wall_time=time.perf_counter() - t0, stats=stats, tuning=tuning, search=spec)


def _populations(spec: StudySpec, ex: Executor, say: Say) -> tuple[Executor, Executor]:
    """(for tuning, for confirmation): runs trained as populations where arms ask for them
    (``train.population: auto``). Tuning only with a sampler that does not learn from earlier
    trials (random, grid, qmc): a model-based one would propose a whole population's trials
    before seeing any result."""
    from reglab.study.execution.population_executor import with_populations

    pex = with_populations(ex, [a.config for a in spec.arm_list], say=say)
    independent = spec.search is not None and spec.search.sampler in ("random", "grid", "qmc")
    return (pex if independent else ex), pex


def _make_folder(out: Path) -> list[Path]:
    """Create the output folder and its missing parents one level at a time; return the folders
    this process created, deepest first (of processes started at once, only the one that made a
    folder may remove it: see :func:`_unmake_folder`)."""
    mine = []
    for p in reversed([p for p in (out, *out.parents) if not p.exists()]):
        with contextlib.suppress(FileExistsError):
            p.mkdir()
            mine.append(p)
    return mine[::-1]


def _unmake_folder(created: list[Path]) -> None:
    """Remove what bad input left in the folders this process created: the output folder with its
    contents, its parents only while empty (another study may have started in one meanwhile)."""
    import shutil

    for i, p in enumerate(created):
        if i == 0:
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.rmdir()


def work(
    spec: StudySpec,
    url: str,
    *,
    jobs: int | None = None,
    stale_after: float = STALE_AFTER,
    heartbeat: float | None = None,
    executor: Executor | None = None,
    say: Say = print,
) -> StudyResults:
    """Join the study in the shared storage ``url`` (``reglab worker``): tune (if it has a search)
    and train confirmation runs until none is left, then write the outputs."""

    if stale_after <= 0:
        raise ConfigError("--stale-after: must be > 0 seconds")
    check_outputs(spec)
    check_folder(spec.output_dir())
    t0 = time.perf_counter()
    with study_lease(url, spec.name, shared=True):  # refused while a `reglab run` drives the study
        return _work(
            spec, url, jobs=jobs, stale_after=stale_after, heartbeat=heartbeat, executor=executor, say=say, t0=t0
        )


def _work(
    spec: StudySpec,
    url: str,
    *,
    jobs: int | None,
    stale_after: float,
    heartbeat: float | None,
    executor: Executor | None,
    say: Say,
    t0: float,
) -> StudyResults:
    from reglab.study.results.outputs import publish, write_resolved

    db = open_storage(url)
    if not lock_supported(db):
        raise ConfigError(f"workers need a PostgreSQL, MySQL or SQLite storage to share a study, not {mask_url(url)}")
    wid = f"{socket.gethostname()}-{os.getpid()}"
    beat = heartbeat or min(10.0, stale_after / 4)
    own = executor is None
    ex = executor or LocalExecutor(jobs or spec.jobs or default_jobs())
    tune_ex, confirm_ex = _populations(spec, ex, say)
    observer = Lines(say)
    say(f"worker {wid}: study {spec.name!r} in {mask_url(url)}, {ex.slots} parallel runs")
    confirm, store = spec, None
    try:
        tuning = None
        if spec.search is not None:
            budget = SharedBudget(db, spec.name + TUNE_INFIX, wid, stale_after, beat)
            tuning = tune(spec, url, tune_ex, budget, observer, new=False, storage=db)
            confirm = spec.with_tuned(best_params(spec, tuning))
        store = _open_store(spec, confirm, url, False, db)
        confirm.output_dir().mkdir(parents=True, exist_ok=True)
        write_resolved(confirm, url)
        ledger = SharedLedger(wid, stale_after, beat)
        stats = confirm_runs(confirm, store, confirm_ex, ledger, observer)
        end = store.claim_state(ledger.keys, stale_after, ledger.since)
        say(
            f"worker {wid}: {stats.new} runs stored by this worker; {end.done} of {len(ledger.keys)} runs done"
            + (f", {end.failed} failed" if end.failed else "")
        )
        return publish(confirm, store, url, wall_time=time.perf_counter() - t0, stats=stats, tuning=tuning, search=spec)
    except ReglabError:
        raise
    except Interrupted as err:
        err.stored = _stored(confirm, store, confirm.output_dir())
        raise
    except Exception as err:
        if not _is_storage_error(err):
            raise
        raise ReglabError(storage_error(url, err, doing="storage")) from None
    finally:
        if own:
            ex.close()


def _stored(spec: StudySpec, store: RunStore | None, out: Path) -> str:
    """What an interrupted study keeps: "N of M runs stored in OUT" (finished tuning trials too)."""
    total = len(spec.arms) * len(spec.seed_list)
    n = 0
    if store is not None:
        with contextlib.suppress(Exception):
            n = len(store.done())
    note = "" if store is not None or spec.search is None else " (finished tuning trials are kept)"
    return f"{n} of {total} runs stored in {out}{note}"


def check_folder(out: Path) -> None:
    """Refuse an output folder that cannot be created or written, before anything is stored."""
    reason = unusable_folder(out)
    if reason is not None:
        raise ConfigError(f"output folder {out}: {reason}; choose another with --output (or output: in the study file)")


def _open_store(spec: StudySpec, confirm: StudySpec, url: str, new: bool, storage: Any) -> RunStore:
    tuned = spec.search is not None
    fingerprint, derived = confirm.store_keys(spec if tuned else None)
    # the keys a study stored before fingerprints ignored the working directory (same directory only)
    legacy = confirm.located(None).store_keys(spec.located(None) if tuned else None)
    compatible = confirm.fewer_seeds_keys(spec if tuned else None)  # adaptive: a fixed study's runs are its own
    return RunStore(
        url, confirm.name, fingerprint, new=new, derived=derived, storage=storage, legacy=legacy, compatible=compatible
    )


def _most_parallel(spec: StudySpec) -> int:
    """No more worker processes than runs that can go at once (each costs a process start and a
    torch import): the confirmation runs, or the tuning trials when there are more of them."""
    runs = len(spec.arms) * len(spec.seed_list)
    s = spec.search
    if s is None:
        return max(1, runs)
    if s.trials is None and s.sampler != "grid":  # only a time budget: as many as the machine allows
        return 1_000_000
    trials = s.trials if s.trials is not None else 1_000_000
    return max(1, runs, sum(trials for a in spec.arm_list if a.space))


def _is_storage_error(err: BaseException) -> bool:
    import optuna

    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - optuna depends on SQLAlchemy
        return isinstance(err, optuna.exceptions.StorageInternalError)
    return isinstance(err, SQLAlchemyError | optuna.exceptions.StorageInternalError)


# -- tuning ----------------------------------------------------------------------------------------


def arm_fingerprint(spec: StudySpec, arm: Arm) -> str:
    """What an arm's tuning trials depend on: its configuration, space, search (budget excluded)
    and the selection metric. A change is refused unless ``--new``."""
    import hashlib
    import json

    assert spec.search is not None
    payload = {
        "config": spec.portable(arm.config),
        "space": arm.space_dump(),
        "search": spec.search.model_dump(exclude={"trials", "timeout"}),
        "metric": spec.metric.select,
    }
    if arm.function is not None:  # only then: existing searches keep their fingerprints
        payload["function"] = arm.function.model_dump(mode="json", exclude={"compare"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _open_search(spec: StudySpec, arm: Arm, storage: Any, url: str, new: bool) -> ArmSearch:
    from reglab.space import grid_space

    s = spec.search
    assert s is not None
    grid = grid_space(arm.space) if s.sampler == "grid" else None
    name = spec.name + TUNE_INFIX + arm.name
    # workers opening one new study at once: one creates it and stores its fingerprint, the others
    # wait and find it (without the lock one could see it between the two and take it for another search)
    lock = storage_lock(storage, name) if lock_supported(storage) else contextlib.nullcontext()
    with lock:
        study = open_arm_study(
            storage,
            name,
            arm_fingerprint(spec, arm),
            legacy=arm_fingerprint(spec.located(None), arm),
            sampler=s.sampler,
            seed=s.seed,
            grid=grid,
            pruner=s.pruner,
            max_steps=arm.config.train.epochs * (s.cv or 1),
            startup_trials=s.startup_trials,
            maximize=spec.metric.maximize,
            new=new,
            url=url,
        )
    budget = s.trials
    if grid is not None and budget is None:
        budget = math.prod(len(v) for v in grid.values()) if arm.space else 1
    if not arm.space:
        budget = 0  # nothing to tune: the arm is confirmed as written
    return ArmSearch(arm.name, study, budget, s.timeout)


@dataclass
class _Trial:
    arm: str
    trial: optuna.Trial
    stopping: bool = False  # stop requested (pruned, or at the time budget)
    pruned: bool = False  # the pruner said stop: recorded as pruned even if the run ended first
    at_deadline: bool = False
    beat_at: float = field(default_factory=time.monotonic)


def tune(
    spec: StudySpec,
    url: str,
    ex: Executor,
    budget: Budget,
    observer: Observer,
    *,
    new: bool = False,
    storage: Any = None,
) -> dict[str, ArmTuning]:
    """Ask/tell every arm's search until its trial budget (or time budget) is spent; resumable.
    Arms are filled in order, so with one slot they are tuned one after the other."""
    import optuna

    s = spec.search
    assert s is not None
    storage = storage if storage is not None else open_storage(url)
    searches = {a.name: _open_search(spec, a, storage, url, new) for a in spec.arm_list}
    budget.start(searches)
    select = spec.metric.select
    observer.tuning_started(
        {a: (x.budget, sum(1 for t in x.study.get_trials(deepcopy=False) if counted(t))) for a, x in searches.items()}
    )
    running: dict[str, _Trial] = {}
    no_report = NoReportNote(observer.note)
    ended: set[str] = set()  # arms whose time budget is spent with none of their trials running

    def ask(arm: Arm) -> bool | None:
        """Start one trial: True when submitted, False when its configuration failed at once
        (counted), None when the arm's budget is taken."""
        trial = budget.ask(arm.name)
        if trial is None:
            return None
        params = suggest(trial, arm.space, arm.condition_values())
        try:
            task = make_task(arm, s.tuning_seed, trial=trial.number, params=params, folds=s.cv)
        except ConfigError as err:  # e.g. a conditional value the model rejects
            outcome = RunOutcome.failed(str(err))
            with budget.telling(arm.name, trial) as alive:
                if alive:
                    tell(searches[arm.name].study, trial, outcome, select)
            observer.trial_done(arm.name, f"{arm.name}/trial{trial.number}", outcome if alive else None)
            return False
        running[task.key] = _Trial(arm.name, trial)
        ex.submit(task)
        return True

    def fill() -> bool:
        """Submit trials while slots are free; False when no arm has budget left for this driver."""
        for arm in spec.arm_list:
            while len(running) < ex.slots:
                if ask(arm) is None:
                    break
            if len(running) >= ex.slots:
                return True
        return False

    pruning = {a: not isinstance(x.study.pruner, optuna.pruners.NopPruner) for a, x in searches.items()}
    next_ask = 0.0
    try:
        while True:
            if len(running) < ex.slots and time.monotonic() >= next_ask and not fill():
                next_ask = time.monotonic() + budget.idle_wait
            for arm in [a for a in searches if a not in ended and budget.time_over(a)]:
                if all(r.arm != arm for r in running.values()):  # its bar ends now, not with the last arm's
                    ended.add(arm)
                    observer.tuning_ended(arm)
            if not running:
                if budget.over():
                    break
                time.sleep(budget.idle_wait)  # other workers hold the rest of the budget
                next_ask = 0.0
                continue
            events, finished = ex.poll(0.1)
            for key, r in running.items():  # a hard budget: runs still going stop at their next epoch end
                if not r.stopping and budget.time_over(r.arm):
                    r.stopping = r.at_deadline = True
                    ex.stop(key)
            for key, rec in events:
                t = running.get(key)
                if t is None or t.stopping:
                    continue
                if not pruning[t.arm] or select not in rec:  # nothing to prune on: no storage write per epoch
                    observer.trial_epoch(t.arm, key, rec, select)
                    continue
                try:
                    t.trial.report(float(rec[select]), int(rec.get("step", rec["epoch"])))
                    prune = t.trial.should_prune()
                except optuna.exceptions.UpdateFinishedTrialError:  # taken over by another worker
                    prune = True
                observer.trial_epoch(t.arm, key, rec, select)
                if prune:
                    t.stopping = t.pruned = True
                    ex.stop(key)
            for task, outcome in finished:
                r = running.pop(task.key)
                if r.pruned and outcome.status is RunStatus.COMPLETED:
                    # the stop arrived after its last epoch: how busy the machine was must not decide
                    # whether a trial the pruner stopped counts as complete
                    outcome = outcome.model_copy(update={"status": RunStatus.PRUNED})
                with budget.telling(r.arm, r.trial) as alive:
                    if alive:
                        tell(searches[r.arm].study, r.trial, outcome, select, deadline=r.at_deadline)
                if outcome.status is RunStatus.ERROR:
                    raise ReglabError(f"{task.key}: {outcome.reason}")
                no_report(outcome)
                observer.trial_done(r.arm, task.key, outcome if alive else None)
                next_ask = 0.0
            if budget.beat is not None:
                for key, r in running.items():
                    if time.monotonic() - r.beat_at >= budget.beat:
                        r.beat_at = time.monotonic()
                        if not budget.keep_alive(r.trial) and not r.stopping:
                            observer.note(
                                f"  {key}: trial taken over by another worker (this one looked dead); stopping it"
                            )
                            r.stopping = True
                            ex.stop(key)
    except BaseException:
        for r in running.values():  # give the budget back at once
            with contextlib.suppress(Exception):
                r.trial.set_user_attr("status", "interrupted")
                storage.set_trial_state_values(r.trial._trial_id, optuna.trial.TrialState.FAIL)
        raise
    finally:
        for arm in searches:
            with contextlib.suppress(Exception):
                budget.save_time(arm)
    results = {a: arm_insight(x.study, a, select, x.stale) for a, x in searches.items()}
    for arm, result in results.items():
        observer.tuned(arm, result)
    return results


def tell(study: optuna.Study, trial: optuna.Trial, outcome: RunOutcome, select: str, deadline: bool = False) -> None:
    """Record a finished trial: COMPLETE with the selection metric, PRUNED, or FAIL (diverged or
    failed), with its status, epochs spent, test-split reads and reason as user attributes.
    ``deadline``: the driver stopped it at the time budget (not the pruner)."""
    import optuna

    status = outcome.status
    trial.set_user_attr("status", status.value)
    trial.set_user_attr("epochs_spent", outcome.epochs_spent)
    if outcome.test_reads is not None:  # counted where it trained: the record that tuning never read the test split
        trial.set_user_attr("test_reads", outcome.test_reads)
    reason = DEADLINE_REASON if deadline and status is RunStatus.PRUNED else outcome.reason
    if reason:
        trial.set_user_attr("reason", str(reason)[:500])
    value = outcome.value(select)
    if value is not None:
        for m in ("train_acc", "val_acc", "val_loss"):
            if m in outcome.final:
                trial.set_user_attr(m, outcome.final[m])
        study.tell(trial, value)
    elif status is RunStatus.PRUNED:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def best_params(spec: StudySpec, results: dict[str, ArmTuning]) -> dict[str, dict[str, Any]]:
    """Each arm's tuned values for the confirmation; an arm whose search completed no trial stops
    the study (confirming its untuned defaults would compare something nobody chose)."""
    for arm, r in results.items():
        if spec.arm(arm).space and r.n_complete == 0:
            raise ReglabError(
                f"arm {arm!r}: none of its {r.n_trials} tuning trials completed ({r.n_pruned} pruned or stopped "
                f"at the time budget, {r.n_failed} failed or diverged), so there is nothing to confirm; raise "
                "search.timeout or search.trials, or narrow the space, and run again (finished trials are kept)"
            )
    return {arm: r.best_params for arm, r in results.items()}


def tune_study(
    spec: StudySpec,
    *,
    jobs: int | None = None,
    new: bool = False,
    progress: bool = False,
    storage: str | None = None,
    executor: Executor | None = None,
) -> dict[str, ArmTuning]:
    """Only the tuning phase, in this process (benchmarks and tests of the search itself)."""
    from reglab.study.results.outputs import write_tuning

    url = storage or spec.storage_url()
    check_folder(spec.output_dir())
    spec.output_dir().mkdir(parents=True, exist_ok=True)
    own = executor is None
    ex = executor or LocalExecutor(jobs or spec.jobs or default_jobs())
    observer: Observer = Bars() if progress else Observer()
    with study_lease(url, spec.name):
        try:
            with observer:
                results = tune(spec, url, ex, LocalBudget(), observer, new=new)
        finally:
            if own:
                ex.close()
        write_tuning(spec, url, results, spec.output_dir())
    return results


# -- confirmation ----------------------------------------------------------------------------------


@dataclass
class _Run:
    key: RunKey
    beat_at: float = field(default_factory=time.monotonic)


def _estimates(spec: StudySpec, arm: str) -> bool:
    """Whether ``arm``'s confirmation runs estimate the reference error on their splits (the
    baseline's, unless the study sets ``diagnosis.reference_error``): see :mod:`reglab.study.results.reference`."""
    return arm == spec.baseline_arm and spec.diagnosis.reference_error is None


def confirm_runs(spec: StudySpec, store: RunStore, ex: Executor, ledger: Ledger, observer: Observer) -> ProtocolStats:
    """Train every arm x seed the ledger hands out, seed-major (all arms of seed 0 first, so a
    partial study is balanced), storing each result as it arrives. Adaptive seeds: in rounds,
    each round deciding from the stored runs which arms are still open (:func:`confirm_adaptive`)."""
    if spec.adaptive is not None:
        return confirm_adaptive(spec, store, ex, ledger, observer)
    keys = [(arm, seed) for seed in spec.seed_list for arm in spec.arms]
    return _confirm(spec, store, ex, ledger, observer, keys, ProtocolStats(replaced=store.replaced))


def confirm_adaptive(
    spec: StudySpec, store: RunStore, ex: Executor, ledger: Ledger, observer: Observer
) -> ProtocolStats:
    """Adaptive seeds: decide every arm from the stored runs (:mod:`reglab.study.results.adaptive`), train
    the next round's seeds for the open arms and the baseline, and again until no arm is open or
    every open arm has ``max`` seeds. The decisions are recomputed from the storage each round, so
    a resumed study (or a worker that joins) reaches the same ones without redoing stored runs."""
    from reglab.study.results import adaptive

    stats = ProtocolStats(replaced=store.replaced)
    seen: set[RunKey] = set()  # every key handed to a round (a failed run is not retried this session)
    while True:
        seqs = adaptive.outcomes(spec, store.done(), seen)
        keys = [k for k in adaptive.needed(spec, seqs) if k not in seen]
        if not keys:
            break
        decided = {a: s for a, s in seqs.items() if s.decided_at is not None}
        if seqs and any(s.intervals for s in seqs.values()):
            observer.note(
                "adaptive seeds: "
                + ", ".join(f"{a} {s.verdict} at {s.decided_at}" for a, s in decided.items())
                + ("; " if decided else "")
                + f"{len(seqs) - len(decided)} open: next round to {max(k[1] for k in keys) + 1} seeds"
            )
        seen.update(keys)
        _confirm(spec, store, ex, ledger, observer, keys, stats)
    return stats


def _confirm(
    spec: StudySpec,
    store: RunStore,
    ex: Executor,
    ledger: Ledger,
    observer: Observer,
    keys: list[RunKey],
    stats: ProtocolStats,
) -> ProtocolStats:
    skipped, stale = ledger.start(store, keys)
    stats.skipped += skipped
    stats.stale += stale
    observer.runs_started(len(keys), skipped)
    select = spec.metric.select
    running: dict[str, _Run] = {}
    no_report = NoReportNote(observer.note)
    epochs: dict[str, int] = {}
    next_claim = 0.0
    try:
        while True:
            while len(running) < ex.slots and time.monotonic() >= next_claim:
                key = ledger.claim()
                if key is None:
                    next_claim = time.monotonic() + ledger.idle_wait
                    break
                task = make_task(spec.arm(key[0]), key[1], models=models_dir(spec), reference=_estimates(spec, key[0]))
                running[task.key] = _Run(key)
                epochs[task.key] = task.config.train.epochs
                ex.submit(task)
            if not running:
                if ledger.settled():
                    break
                time.sleep(ledger.idle_wait)  # others are running the rest: wait (and take over the dead)
                next_claim = 0.0
                continue
            events, finished = ex.poll(0.1)
            for k, rec in events:
                if k in running:
                    observer.run_epoch(k, rec, epochs[k], select)
            for task, outcome in finished:
                run = running.pop(task.key)
                next_claim = 0.0
                stored = ledger.finish(run.key, outcome, outcome.value(select))
                if outcome.status is RunStatus.ERROR:
                    raise ReglabError(f"{task.key}: {outcome.reason}")
                no_report(outcome)
                if not stored:
                    stats.lost += 1
                elif outcome.status.done:
                    stats.new += 1
                observer.run_done(task.key, outcome, stored, select)
            if ledger.beat is not None:
                for k, run in running.items():
                    if time.monotonic() - run.beat_at >= ledger.beat:
                        run.beat_at = time.monotonic()
                        if not ledger.keep_alive(run.key):
                            observer.note(
                                f"  {k}: claim taken over by another worker (this one looked dead); stopping it"
                            )
                            ex.stop(k)
    except BaseException:
        ledger.release_all()
        raise
    return stats
