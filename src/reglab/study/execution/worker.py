"""What an executor's worker does for one task: train, then pack the result as a
:class:`RunOutcome`. Each worker owns a :class:`DataCache`, so it loads MNIST once."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from reglab.errors import ReglabError, from_user_code
from reglab.study.results.outcome import PackedArray, RunOutcome, RunStatus

if TYPE_CHECKING:
    from reglab.config import DataConfig, RunConfig
    from reglab.data.base import DataSplits
    from reglab.data.streaming import StreamSplits
    from reglab.study.execution.task import Task
    from reglab.training.engine import RunResult


class Report(Protocol):
    """An epoch's record (and the key of the run it belongs to when it is not the task's own: a
    population's member) -> True when the driver wants that run stopped."""

    def __call__(self, record: dict[str, float], key: str | None = None, /) -> bool: ...


class DataCache:
    """Datasets loaded by one worker, keyed by their configuration (at most ``size`` of them; the
    least recently used one goes first)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: dict[str, DataSplits | StreamSplits] = {}  # least recently used first

    def get(self, cfg: DataConfig) -> DataSplits | StreamSplits:
        """In memory, or streamed when larger than the memory budget (``data.memory_budget_mb``)."""
        from reglab.data.streaming import open_data

        key = cfg.model_dump_json()
        data = self._items.pop(key, None)
        if data is None:
            while self._items and len(self._items) >= self.size:
                del self._items[next(iter(self._items))]
            data = open_data(cfg)
        self._items[key] = data
        data.test = data.test.fresh()  # each run's single test read is counted on its own
        return data

    def get_many(self, cfgs: list[DataConfig]) -> list[DataSplits | StreamSplits]:
        """The splits of each config (a population's members); each distinct config is loaded once
        and gets one test-split guard. The cache grows to hold them all at once, and two more: a
        worker gets either population of a round, and each split of a study (one per seed) costs
        a full split and normalization when it is loaded again."""
        distinct = {c.model_dump_json(): c for c in cfgs}
        self.size = max(self.size, len(distinct) + 2)
        got = {k: self.get(c) for k, c in distinct.items()}
        return [got[c.model_dump_json()] for c in cfgs]

    def peek(self, cfg: DataConfig) -> DataSplits | StreamSplits | None:
        """The cached splits of ``cfg`` (for tests that count test-split reads)."""
        return self._items.get(cfg.model_dump_json())


class _Stop(Exception):
    """Raised from the epoch callback when the driver asked this task to stop (pruned)."""


def execute_single(task: Task, report: Report, cache: DataCache) -> RunOutcome:
    """Run a task of reglab's engine (one run, or K cross-validation folds in sequence); any task
    goes through :func:`reglab.study.execution.executors.execute_task`. ``report`` gets each
    epoch's record and returns True when the driver wants the task stopped (pruning); with K folds
    the record's ``step`` counts epochs across folds and ``val_acc``/``val_loss`` are the running
    mean over folds so far (comparable between trials at equal steps)."""
    if not task.folds:
        return execute_run(
            task.config,
            report,
            evaluate_test=task.evaluate_test,
            cache=cache,
            save_to=task.save_to,
            reference=task.reference,
        )
    base = task.config
    epochs = base.train.epochs
    finals: list[dict[str, float]] = []
    spent = reads = 0
    first_history: list[dict[str, float]] = []
    for k in range(task.folds):
        cfg = base.override({"cv_folds": task.folds, "cv_fold": k})
        done = list(finals)

        def fold_report(rec: dict[str, float], k: int = k, done: list[dict[str, float]] = done) -> bool:
            r = dict(rec, fold=k, step=k * epochs + rec["epoch"])
            for key in rec:  # every validation metric (val_acc, val_loss, val_rmse, ...): mean over folds
                if key.startswith("val_") and all(key in f for f in done):
                    r[key] = (sum(f[key] for f in done) + rec[key]) / (len(done) + 1)
            return report(r)

        out = execute_run(cfg, fold_report, evaluate_test=task.evaluate_test, cache=cache)
        reads += out.test_reads or 0
        if out.status is not RunStatus.COMPLETED:
            return out.model_copy(
                update={
                    "reason": f"fold {k}: {out.reason}",
                    "epochs_spent": spent + out.epochs_spent,
                    "test_reads": reads,
                }
            )
        spent += out.epochs_spent
        finals.append(out.final)
        first_history = first_history or out.history
    mean = {m: float(np.mean([f[m] for f in finals])) for m in finals[0]}
    return RunOutcome(
        status=RunStatus.COMPLETED,
        final=mean,
        fold_finals=finals,
        history=first_history,
        info={"folds": task.folds, "epochs_run": spent},
        epochs_spent=spent,
        test_reads=reads,
    )


def execute_run(
    cfg: RunConfig,
    on_epoch: Callable[[dict[str, float]], bool | None] | None = None,
    evaluate_test: bool = True,
    cache: DataCache | None = None,
    save_to: str | None = None,
    reference: bool = False,
) -> RunOutcome:
    """Train one run; always returns an outcome (completed | diverged | pruned | failed | error).
    ``evaluate_test=False``: the test split is not read (no test metrics, no test_probs).
    ``save_to``: a completed run saves its evaluated model there (safetensors), before the outcome
    goes back to the driver - so a stored run of a study with saved models has its file.
    ``reference``: the outcome also carries the classical reference models' errors on this run's
    splits (:func:`reglab.study.results.reference.estimate`).
    Anything the user's code raises fails only this run, ``SystemExit`` included (a model calling
    ``sys.exit``); only a real interrupt (:func:`reglab.errors.from_user_code`) propagates."""
    from reglab.training.engine import fit

    seen: list[dict[str, float]] = []
    data: DataSplits | StreamSplits | None = None

    def callback(record: dict[str, float]) -> None:
        seen.append(record)
        if on_epoch is not None and on_epoch(record):
            raise _Stop

    def reads() -> int:
        return 0 if data is None else data.test.reads

    try:
        data = (cache or DataCache(size=1)).get(cfg.data)
        result = fit(cfg, data, callbacks=[callback], evaluate_test=evaluate_test, keep_model=save_to is not None)
        if save_to is not None and result.status is RunStatus.COMPLETED and result.model is not None:
            from reglab.study.results.saved_models import save_run_model

            save_run_model(result.model, save_to, cfg, data, result.final)
    except _Stop:
        return RunOutcome(
            status=RunStatus.PRUNED,
            reason=f"pruned after epoch {len(seen)}",
            history=seen,
            epochs_spent=len(seen),
            test_reads=reads(),
        )
    except ReglabError as err:  # the user's problem (e.g. missing data files): stop the study
        return RunOutcome(status=RunStatus.ERROR, reason=str(err), test_reads=reads())
    except BaseException as err:  # a bug, a resource problem, the model's sys.exit: this run failed, the study goes on
        if not from_user_code(err):
            raise
        return RunOutcome.failed(
            f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc(limit=3)[-2000:],
            history=seen,  # the epochs it trained before it failed
            epochs_spent=len(seen),
            test_reads=reads(),
        )
    return run_outcome(result, data, reference).model_copy(update={"test_reads": reads()})


def run_outcome(result: RunResult, data: DataSplits | StreamSplits, reference: bool = False) -> RunOutcome:
    """The outcome of a finished ``fit`` (completed, diverged, or a population member's pruned);
    ``reference``: with the classical reference models' errors on ``data`` in ``info["reference"]``."""
    if result.status is RunStatus.PRUNED:
        n = len(result.history)
        return RunOutcome(status=RunStatus.PRUNED, reason=result.reason, history=result.history, epochs_spent=n)
    probs = labels = None
    if result.test_probs is not None:
        probs = PackedArray.pack(result.test_probs, "float16")
        regression = getattr(data, "task", "classification") == "regression"  # predictions, not probabilities
        if regression:
            probs = PackedArray.pack(result.test_probs, "float32")
        labels = PackedArray.pack(data.test.labels.cpu().numpy(), "float32" if regression else "int32")
    return RunOutcome(
        status=result.status,
        reason=result.reason,
        history=result.history,
        final=result.final,
        info=_with_reference(result.info, data) if reference else result.info,
        diverged_epoch=result.diverged_epoch,
        # a diverged epoch has no history record but was trained
        epochs_spent=max(len(result.history), result.diverged_epoch or 0),
        test_probs=probs,
        test_labels=labels,
    )


def _with_reference(info: dict[str, Any], data: DataSplits | StreamSplits) -> dict[str, Any]:
    from reglab.study.results.reference import estimate

    found = estimate(data)
    return info if found is None else {**info, "reference": found}
