"""The worker's side of a study of the user's own training function
(:mod:`reglab.study.definition.objective`): the task of one run (:func:`function_task`, built by
``make_task`` only), the settings check run in a worker (:func:`check_in_workers`), and the run
itself - the :class:`RunContext` the function gets (``seed``, ``phase``, ``may_use_test``,
``report``, ``data()``) and the :class:`~reglab.study.results.outcome.RunOutcome` its returned
metrics become (:func:`execute_function`, called by
:func:`reglab.study.execution.executors.execute_task`).
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from reglab.errors import ConfigError, ReglabError
from reglab.study.definition.objective import (
    CHECK_KEY,
    NO_REPORT_NOTE,
    FunctionCall,
    FunctionCheck,
    ObjectiveConfig,
    Phase,
    arm_problems,
    declaration,
    resolve_function,
    set_dotted,
)

if TYPE_CHECKING:
    import numpy as np

    from reglab.config import RunConfig
    from reglab.study.definition.spec import Arm, StudySpec
    from reglab.study.execution.task import Executor, Task
    from reglab.study.execution.worker import DataCache, Report
    from reglab.study.results.outcome import RunOutcome


class StopRun(BaseException):
    """Raised by ``ctx.report`` when the driver asked the run to stop (pruned, or the time budget is
    spent) or a reported metric is NaN/inf. A BaseException, so an ``except Exception`` in the
    training loop does not swallow it; let it propagate."""


class ContractError(ReglabError):
    """The function broke the contract (a test metric while tuning, no dict of metrics, ...): the
    study stops with this message, as for any input error."""


def run_settings(arm: Arm, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings one run of the arm receives: its settings with the tuned values set."""
    assert arm.function is not None
    settings = copy.deepcopy(arm.function.settings)
    for k, v in (params or {}).items():
        set_dotted(settings, k, v)
    return settings


def function_task(arm: Arm, seed: int, *, trial: int | None = None, params: dict[str, Any] | None = None) -> Task:
    """The task of one run of the user's function (built by ``protocol.make_task`` only): a tuning
    trial (``trial`` given) may not read nor report the test split."""
    from reglab.study.execution.task import Task

    assert arm.function is not None
    fa = arm.function
    call = FunctionCall(
        ref=fa.objective.function,
        init_args=dict(fa.objective.init_args),
        settings_ref=fa.objective.settings,
        settings=run_settings(arm, params),
        phase="confirm" if trial is None else "tune",
        select=fa.select,
        compare=fa.compare,
    )
    key = f"{arm.name}/seed{seed}" if trial is None else f"{arm.name}/trial{trial}"
    return Task(key, arm.run_config(seed), evaluate_test=trial is None, function=call)


def check_task(spec: StudySpec) -> Task:
    """The task that checks every arm's settings against the function's declaration in a worker."""
    from reglab.study.definition.spec import arm_settings
    from reglab.study.execution.task import Task

    assert spec.objective is not None
    arms = [spec.arm(a) for a in spec.arms]
    check = FunctionCheck(f"study {spec.name!r}", tuple(arm_settings(a) for a in arms))
    call = FunctionCall(
        ref=spec.objective.function,
        init_args=dict(spec.objective.init_args),
        settings_ref=spec.objective.settings,
        settings={},
        phase="tune",  # the test split stays locked
        select=spec.metric.select,
        compare=spec.metric.compare,
        check=check,
    )
    return Task(CHECK_KEY, arms[0].run_config(0), evaluate_test=False, function=call)


def check_in_workers(spec: StudySpec, ex: Executor) -> None:
    """:func:`~reglab.study.definition.spec.check_arm` for every arm, run where the runs will run
    (``reglab run``; also proves that the workers import the function): ConfigError with every
    problem, before anything is stored."""
    from reglab.study.execution.task import run_tasks
    from reglab.study.results.outcome import RunStatus

    assert spec.objective is not None
    for _, outcome in run_tasks(ex, [check_task(spec)]):
        if outcome.status is RunStatus.ERROR:
            raise ConfigError(outcome.reason or "objective: the settings check failed")
        if outcome.status is not RunStatus.COMPLETED:
            raise ConfigError(
                f"objective.function: {spec.objective.function}: importing it in a worker process failed "
                f"({outcome.reason})"
            )


def _check_outcome(check: FunctionCheck, objective: ObjectiveConfig) -> RunOutcome:
    """The worker's side of :func:`check_in_workers`."""
    from reglab.study.definition.spec import arm_errors
    from reglab.study.results.outcome import RunOutcome, RunStatus

    per_arm: dict[str, list[tuple[str, str]]] = {}
    try:
        decl = declaration(objective)
    except ConfigError as err:
        per_arm = {a.name: [(check.source, f"arms.{a.name}: {err}")] for a in check.arms}
    else:
        for a in check.arms if decl is not None else ():
            assert decl is not None
            if problems := arm_problems(decl, a):
                per_arm[a.name] = [(check.source, p) for p in problems]
    if per_arm:
        return RunOutcome(status=RunStatus.ERROR, reason="\n".join(arm_errors(per_arm, len(check.arms), check.source)))
    return RunOutcome(status=RunStatus.COMPLETED)


class FunctionData:
    """reglab's split of the study's ``data:`` as NumPy arrays (features normalized as reglab's
    engine sees them). The test split is behind a guard: reading ``x_test``/``y_test`` while tuning
    stops the study."""

    streamed = False

    def __init__(self, splits: Any, may_use_test: bool, on_violation: Callable[[str], None]) -> None:
        self.x_train: np.ndarray = splits.x_train.cpu().numpy()
        self.y_train: np.ndarray = splits.y_train.cpu().numpy()
        self.x_val: np.ndarray = splits.x_val.cpu().numpy()
        self.y_val: np.ndarray = splits.y_val.cpu().numpy()
        self.n_classes: int = int(splits.n_classes)
        self.task: str = str(splits.task)
        self.classes: list[str] = list(splits.classes)
        self._splits, self._may, self._violation = splits, may_use_test, on_violation
        self._test: tuple[np.ndarray, np.ndarray] | None = None

    def _read_test(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._may:
            why = (
                "the test split is locked while tuning (ctx.may_use_test is False): select on validation "
                "data only; read ctx.data().x_test / y_test only when ctx.may_use_test"
            )
            self._violation(why)
            raise ContractError(why)
        if self._test is None:
            x, y = self._splits.test.read()
            self._test = (x.cpu().numpy(), y.cpu().numpy())
        return self._test

    @property
    def x_test(self) -> np.ndarray:
        return self._read_test()[0]

    @property
    def y_test(self) -> np.ndarray:
        return self._read_test()[1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


class FunctionStream:
    """reglab's split of a streamed dataset (larger than ``data.memory_budget_mb``, read lazily):
    map-style torch Datasets over the index sets reglab's engine uses, items ``(normalized x,
    label)``; wrap them in your own ``DataLoader``. ``test`` is behind the same guard as arrays."""

    streamed = True

    def __init__(self, splits: Any, may_use_test: bool, on_violation: Callable[[str], None]) -> None:
        from torch.utils.data import Subset

        self.train = Subset(splits.dataset, splits.train_idx.tolist())
        self.val = Subset(splits.dataset, splits.val_idx.tolist())
        self.n_classes: int = int(splits.n_classes)
        self.classes: list[str] = list(splits.classes)
        self._splits, self._may, self._violation = splits, may_use_test, on_violation

    @property
    def test(self) -> Any:
        if not self._may:
            why = (
                "the test split is locked while tuning (ctx.may_use_test is False): select on validation "
                "data only; read ctx.data().test only when ctx.may_use_test"
            )
            self._violation(why)
            raise ContractError(why)
        from torch.utils.data import Subset

        return Subset(self._splits.dataset, self._splits.test_idx.tolist())

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self._splits.input_shape)


class RunContext:
    """What one run of the user's function gets besides its settings."""

    def __init__(
        self, seed: int, phase: Phase, may_use_test: bool, forward: Report | None, data: Callable[[], Any]
    ) -> None:
        self.seed = seed
        self.phase: Phase = phase
        self.may_use_test = may_use_test
        self.history: list[dict[str, int | float]] = []
        self.stop_requested = False
        self.diverged: str | None = None
        self.diverged_epoch: int | None = None
        self.violation: str | None = None
        self._forward = forward
        self._data = data
        self._loaded: FunctionData | FunctionStream | None = None

    def _violate(self, why: str) -> None:
        self.violation = self.violation or why

    def report(self, epoch: int, **metrics: float) -> None:
        """Record an epoch's metrics (``train_loss``, ``val_acc``, ...): they feed the pruner, the
        time budget and the stored curves. Raises :class:`StopRun` when the run should end now
        (let it propagate); a test metric while tuning stops the study."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
            raise TypeError(f"ctx.report: epoch must be an integer, got {epoch!r}")
        record: dict[str, int | float] = {"epoch": int(epoch)}
        for k, v in metrics.items():
            try:
                record[k] = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"ctx.report: {k} must be a number, got {v!r}") from None
        if not self.may_use_test and (test := [k for k in metrics if k.startswith("test_")]):
            why = (
                f"ctx.report({', '.join(test)}) while tuning: the test split stays untouched during tuning "
                "(ctx.may_use_test is False); report test metrics only when ctx.may_use_test"
            )
            self._violate(why)
            raise ContractError(why)
        bad = [k for k, v in record.items() if not math.isfinite(v)]
        if bad:
            self.diverged = f"{bad[0]} became {record[bad[0]]} at epoch {int(epoch)}"
            self.diverged_epoch = int(epoch)
            raise StopRun(self.diverged)
        self.history.append(record)
        if self._forward is not None and self._forward(dict(record)):
            self.stop_requested = True
            raise StopRun(f"stopped by reglab after epoch {int(epoch)}")

    def data(self) -> FunctionData | FunctionStream:
        """reglab's train/validation/test split of the study's ``data:`` (the same for every arm
        at a seed): arrays (:class:`FunctionData`), or torch Datasets when the data is streamed
        (:class:`FunctionStream`, ``.streamed`` is True); the test split only when ``may_use_test``."""
        if self._loaded is None:
            from reglab.data.base import DataSplits

            splits = self._data()
            kind = FunctionData if isinstance(splits, DataSplits) else FunctionStream
            self._loaded = kind(splits, self.may_use_test, self._violate)
        return self._loaded


def _load(cache: DataCache, cfg: RunConfig) -> Any:
    return cache.get(cfg.data)


def _invoke(fn: Callable[..., Any], call: FunctionCall, ctx: RunContext) -> Any:
    objective = ObjectiveConfig(function=call.ref, init_args=dict(call.init_args), settings=call.settings_ref)
    decl = declaration(objective, fn)
    settings: Any = copy.deepcopy(dict(call.settings))
    kwargs: dict[str, Any] = {}
    target: Callable[..., Any] = fn
    if inspect.isclass(fn):
        target = fn(**call.init_args)  # type: ignore[assignment]  # a callable class: its instance is called
    else:
        kwargs.update(call.init_args)
    if decl is not None:
        kwargs.update({k: settings[k] for k in decl.keywords if k in settings})
        if decl.instance and decl.model is not None:
            model = decl.model
            settings = model.model_validate(settings) if issubclass(model, BaseModel) else model(**settings)
    return target(settings, ctx, **kwargs)


def execute_function(task: Task, report: Report | None, cache: DataCache) -> RunOutcome:
    """Run the user's function once (seeded with :func:`reglab.seed_everything`, the caller's RNG
    state restored after it) and pack the result as a built-in run's: completed, pruned, diverged
    (a NaN/inf metric), failed (an exception: type and message) or error (the contract broken)."""
    from reglab.seeding import restored_global_rng, seed_everything
    from reglab.study.results.outcome import RunOutcome, RunStatus

    call = task.function
    assert call is not None
    if call.check is not None:
        return _check_outcome(
            call.check, ObjectiveConfig(function=call.ref, init_args=dict(call.init_args), settings=call.settings_ref)
        )
    ctx = RunContext(task.config.train.seed, call.phase, task.evaluate_test, report, lambda: _load(cache, task.config))
    t0 = time.perf_counter()
    returned: Any = None
    try:
        fn = resolve_function(call.ref)
        with restored_global_rng():
            seed_everything(ctx.seed)
            returned = _invoke(fn, call, ctx)
    except StopRun:
        pass
    except ReglabError as err:
        return RunOutcome(status=RunStatus.ERROR, reason=str(err), history=ctx.history, epochs_spent=len(ctx.history))
    except (Exception, SystemExit) as err:  # sys.exit() in a training script must not end the worker
        msg = str(err).strip()
        return RunOutcome.failed(
            f"{type(err).__name__}: {msg}"[:1000],
            traceback=traceback.format_exc(limit=4)[-2000:],
            history=ctx.history,
            epochs_spent=len(ctx.history),
        )
    info = {"wall_time": time.perf_counter() - t0, "epochs_run": len(ctx.history)}
    return outcome_of(returned, ctx, call, info)


def outcome_of(returned: Any, ctx: RunContext, call: FunctionCall, info: dict[str, Any]) -> RunOutcome:
    """The outcome of a finished call: the contract's checks on what the function returned."""
    from reglab.study.results.outcome import RunOutcome, RunStatus

    n = len(ctx.history)
    common: dict[str, Any] = {"history": ctx.history, "epochs_spent": n, "info": info}
    if ctx.violation is not None:  # the function caught the error and went on
        return RunOutcome(status=RunStatus.ERROR, reason=ctx.violation, **common)
    if ctx.diverged is not None:
        return RunOutcome(
            status=RunStatus.DIVERGED,
            reason=ctx.diverged,
            diverged_epoch=ctx.diverged_epoch,
            history=ctx.history,
            epochs_spent=max(n, ctx.diverged_epoch or 0),
            info=info,
        )
    if ctx.stop_requested:
        return RunOutcome(status=RunStatus.PRUNED, reason=f"pruned after epoch {n}", **common)
    where = f"{call.ref} returned"
    if not isinstance(returned, Mapping):
        return RunOutcome(
            status=RunStatus.ERROR,
            reason=f"{where} a {type(returned).__name__}, not a dict of final metrics such as "
            f"{{'{call.select}': ..., 'train_{call.select.partition('_')[2]}': ...}}",
            **common,
        )
    final: dict[str, float] = {}
    for k, v in returned.items():
        try:
            final[str(k)] = float(v)
        except (TypeError, ValueError):
            return RunOutcome(status=RunStatus.ERROR, reason=f"{where} {k}={v!r}, not a number", **common)
    if call.phase == "tune" and (test := [k for k in final if k.startswith("test_")]):
        reason = (
            f"{where} {', '.join(test)} from a tuning run: the test split stays untouched during tuning "
            "(ctx.may_use_test is False); return test metrics only when ctx.may_use_test"
        )
        return RunOutcome(status=RunStatus.ERROR, reason=reason, **common)
    needed = call.select if call.phase == "tune" else call.compare
    if needed not in final:
        what = (
            "metric.select: tuning selects on it"
            if call.phase == "tune"
            else "metric.compare: the arms are compared on it"
        )
        reason = f"{where} no {needed} ({what}); it returned {', '.join(final) or 'no metrics'}"
        return RunOutcome(status=RunStatus.ERROR, reason=reason, **common)
    bad = [k for k, v in final.items() if not math.isfinite(v)]
    if bad:
        return RunOutcome(status=RunStatus.DIVERGED, reason=f"{where} {bad[0]}={final[bad[0]]}", **common)
    if call.phase == "confirm":
        _add_gap(final, call.compare)
    if not n:
        info = {**info, "no_report": True}
        common["info"] = info
    return RunOutcome(status=RunStatus.COMPLETED, final=final, **common)


def _add_gap(final: dict[str, float], compare: str) -> None:
    """``gap`` (train minus test of the compared metric, in the better direction), as built-in
    runs record it, when the function returned both."""
    from reglab.tasks import gap

    m = compare.partition("_")[2]
    tr, te = final.get(f"train_{m}"), final.get(f"test_{m}")
    if "gap" not in final and tr is not None and te is not None and compare.startswith("test_"):
        final["gap"] = gap(compare, tr, te)


class NoReportNote:
    """Says once (per study phase) that the function never called ``ctx.report``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.done = say, False

    def __call__(self, outcome: RunOutcome) -> None:
        if not self.done and outcome.info.get("no_report"):
            self.done = True
            self.say(f"note: {NO_REPORT_NOTE}")
