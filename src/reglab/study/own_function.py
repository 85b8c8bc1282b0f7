"""A study whose runs are the user's own training function: ``objective: {function: "pkg.train:run"}``
in the study file, or ``run_protocol(spec, objective=run)``.

The protocol stays reglab's (equal tuning budget on validation data, confirmation over seeds, paired
statistics, diagnosis, report); only the run is the user's. The contract::

    def run(settings: dict, ctx) -> dict[str, float]

- ``settings``: the study's ``settings:`` mapping, the arm's overrides and the tuned values (plain values);
- ``ctx`` (:class:`RunContext`): ``seed``, ``phase`` ("tune" | "confirm"), ``may_use_test``,
  ``report(epoch, **metrics)`` (pruning, the time budget's stop, the stored curves) and ``data()``
  (reglab's split of the study's ``data:``, the test split readable only when ``may_use_test``);
- the return value: final metrics (``val_acc``, ``test_acc``, ``train_acc``, ...), selected and
  compared through the study's ``metric: {select, compare}``.

A run is one more kind of :class:`~reglab.study.executors.Task` (its ``function`` field), so every
executor, resume, retry and lease treats it as a built-in run. The function travels by its import
reference; a function that cannot be imported by name (defined in ``__main__``, a lambda) runs only
in this process.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
import numbers
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reglab.errors import ConfigError, ReglabError, suggest

if TYPE_CHECKING:
    import numpy as np

    from reglab.config import RunConfig
    from reglab.space import Dim
    from reglab.study.executors import Executor, Task
    from reglab.study.outcome import RunOutcome
    from reglab.study.spec import Arm, StudySpec
    from reglab.study.worker import DataCache, Report

Phase = Literal["tune", "confirm"]
EXAMPLE = "my_pkg.train:run"
NO_REPORT_NOTE = (
    "objective.function never called ctx.report: no pruning, no stop at the time budget before a run "
    "ends, and no learning curves (call ctx.report(epoch, **metrics) once per epoch to get them)"
)


class ObjectiveConfig(BaseModel):
    """The study file's ``objective`` section: the user's training function replaces reglab's engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    function: str = Field(
        description="'package.module:run' with run(settings: dict, ctx) -> dict[str, float]; a class is "
        "built with init_args once per run and then called like the function"
    )
    init_args: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the function (of a class: its constructor), the same in every run",
    )
    settings: str | None = Field(
        None,
        description="'package.module:Settings': a pydantic model or dataclass that declares the settings the "
        "function reads; every arm and search dimension is checked against it",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``objective: my_pkg.train:run`` is ``objective: {function: my_pkg.train:run}``."""
        return {"function": v} if isinstance(v, str) else v

    @field_validator("function", "settings")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or any(c.isspace() for c in v)):
            raise ValueError(f"expected 'package.module:Name' (e.g. {EXAMPLE}), got {v!r}")
        return v


class FunctionArm(BaseModel):
    """What an arm of a function study adds to :class:`~reglab.study.spec.Arm`: the function, the
    arm's settings (shared ``settings:`` merged under its fixed overrides) and the study's metrics."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    objective: ObjectiveConfig
    settings: dict[str, Any]
    select: str
    compare: str


@dataclass(frozen=True)
class FunctionCall:
    """One run of the user's function, as a task carries it to a worker (picklable)."""

    ref: str
    init_args: Mapping[str, Any]
    settings_ref: str | None
    settings: Mapping[str, Any]
    phase: Phase
    select: str
    compare: str


class StopRun(BaseException):
    """Raised by ``ctx.report`` when the driver asked the run to stop (pruned, or the time budget is
    spent) or a reported metric is NaN/inf. A BaseException, so an ``except Exception`` in the
    training loop does not swallow it; let it propagate."""


class ContractError(ReglabError):
    """The function broke the contract (a test metric while tuning, no dict of metrics, ...): the
    study stops with this message, as for any input error."""


# -- the function and its declared settings --------------------------------------------------------

# functions passed in this process that cannot be imported by name: reference -> (function, why)
_LOCAL: dict[str, tuple[Callable[..., Any], str]] = {}


def local_only(ref: str) -> str | None:
    """Why the function ``ref`` can run only in this process (None: worker processes import it)."""
    got = _LOCAL.get(ref)
    return None if got is None else got[1]


def resolve_function(ref: str, where: str = "objective.function") -> Callable[..., Any]:
    """The function (or class) ``ref`` names: one passed in this process, else imported."""
    from reglab.imports import import_object

    fn = _LOCAL[ref][0] if ref in _LOCAL else import_object(ref, where, example=EXAMPLE)
    if not callable(fn):
        raise ConfigError(f"{where}: {ref} is a {type(fn).__name__}, not a function run(settings, ctx)")
    return fn


def function_reference(fn: Any) -> tuple[str, str | None]:
    """(``module:qualname``, why it cannot be imported by name or None)."""
    from reglab.imports import import_object

    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname:
        return f"{type(fn).__module__}:{type(fn).__qualname__}#{id(fn):x}", f"{fn!r} has no importable name"
    ref = f"{module}:{qualname}"
    if "<lambda>" in qualname:
        return ref, "a lambda cannot be imported by name"
    if "<locals>" in qualname:
        return ref, f"{qualname.split('.')[-1]} is defined inside a function"
    if module == "__main__":
        return ref, f"{qualname} is defined in the script or notebook being run (__main__)"
    try:
        same = import_object(ref, "objective") is fn
    except ReglabError:
        same = False
    return ref, None if same else f"{ref} does not import back as {qualname}"


@dataclass(frozen=True)
class Declaration:
    """The settings a function declares: a pydantic model or dataclass (``objective.settings``, or
    the annotation of its ``settings`` parameter) and/or its keyword-only parameters."""

    source: str  # for messages: "pkg.train:Settings", "the keyword arguments of pkg.train:run"
    names: tuple[str, ...]
    required: frozenset[str]
    model: type | None = None  # the pydantic model or dataclass
    instance: bool = False  # the function's settings parameter is annotated with it: pass an instance
    keywords: tuple[str, ...] = ()  # keyword-only parameters, filled from the settings of the same name


def _settings_class(cls: Any, ref: str, where: str) -> tuple[tuple[str, ...], frozenset[str]]:
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        fields = cls.model_fields
        return tuple(fields), frozenset(n for n, f in fields.items() if f.is_required())
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        fs = [f for f in dataclasses.fields(cls) if f.init]
        missing = dataclasses.MISSING
        return tuple(f.name for f in fs), frozenset(
            f.name for f in fs if f.default is missing and f.default_factory is missing
        )
    raise ConfigError(f"{where}: {ref} is a {type(cls).__name__}, not a pydantic model or a dataclass")


def _signature(target: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return None


def declaration(objective: ObjectiveConfig, fn: Callable[..., Any] | None = None) -> Declaration | None:
    """The function's settings declaration (None: undeclared, every setting passes through);
    ConfigError when the function cannot take ``(settings, ctx)`` or the ``init_args``."""
    fn = fn if fn is not None else resolve_function(objective.function)
    ref = objective.function
    is_class = inspect.isclass(fn)
    call: Any = fn
    if is_class:  # its instances are called: the class's own __call__ (not the metaclass's)
        mro: tuple[type, ...] = fn.__mro__  # type: ignore[attr-defined]
        call = next((vars(k)["__call__"] for k in mro[:-1] if "__call__" in vars(k)), None)
        if call is None:
            raise ConfigError(
                f"objective.function: {ref} is a class without __call__: it must take (settings, ctx); give a "
                "function run(settings, ctx), or a class whose instances are called so"
            )
    sig = _signature(call)
    if is_class:
        ctor = _signature(fn)
        if ctor is not None:
            try:
                ctor.bind_partial(**objective.init_args)
            except TypeError as err:
                raise ConfigError(f"objective.init_args: {ref}(...) does not take them ({err})") from None
    keywords: list[str] = []
    annotated: Any = None
    if sig is not None:
        params = list(sig.parameters.values())
        if is_class and params and params[0].name == "self":
            params = params[1:]
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < 2 and not any(p.kind is p.VAR_POSITIONAL for p in params):
            raise ConfigError(
                f"objective.function: {ref} must take (settings, ctx); its parameters: "
                f"{', '.join(p.name for p in params) or 'none'}"
            )
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not is_class:
            for key in objective.init_args:
                if key not in named and not var_kw:
                    raise ConfigError(
                        f"objective.init_args.{key}: {ref} has no parameter {key!r} (its parameters: "
                        f"{', '.join(p.name for p in params)})"
                    )
        keywords = [
            p.name for p in params if p.kind is p.KEYWORD_ONLY and (is_class or p.name not in objective.init_args)
        ]
        annotated = _annotation(call, positional[0].name) if positional else None
    names: list[str] = []
    required: set[str] = set()
    model: type | None = None
    source = ""
    if objective.settings is not None:
        from reglab.imports import import_object

        model = import_object(objective.settings, "objective.settings", example="my_pkg.train:Settings")
        got, req = _settings_class(model, objective.settings, "objective.settings")
        annotated = annotated if annotated is model else None  # an instance only of the declared class
        names, required, source = list(got), set(req), objective.settings
    elif annotated is not None:
        model = annotated
        got, req = _settings_class(model, f"{ref}'s settings annotation", "objective.function")
        names, required, source = list(got), set(req), f"{model.__module__}:{model.__qualname__}"
    if keywords:
        kw_params = {p: sig.parameters[p] for p in keywords} if sig is not None else {}
        names += [k for k in keywords if k not in names]
        required |= {k for k, p in kw_params.items() if p.default is inspect.Parameter.empty}
        source = f"{source} and " if source else ""
        source += f"the keyword arguments of {ref}"
    if not names:
        return None
    return Declaration(
        source=source,
        names=tuple(names),
        required=frozenset(required),
        model=model,
        instance=annotated is not None and model is annotated,
        keywords=tuple(keywords),
    )


def _annotation(fn: Any, param: str) -> type | None:
    """The class the function's ``settings`` parameter is annotated with, when a pydantic model or
    a dataclass (then the function receives an instance of it)."""
    import typing

    try:
        hint = typing.get_type_hints(fn).get(param)
    except Exception:  # unresolvable forward references: no declaration from the annotation
        return None
    if isinstance(hint, type) and (issubclass(hint, BaseModel) or dataclasses.is_dataclass(hint)):
        return hint
    return None


# -- arms ------------------------------------------------------------------------------------------


def set_dotted(settings: dict[str, Any], name: str, value: Any) -> None:
    """``settings["a"]["b"] = value`` for ``name="a.b"`` (nested mappings created as needed)."""
    *parents, last = name.split(".")
    node = settings
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[last] = value


def get_dotted(settings: Mapping[str, Any], name: str) -> Any:
    node: Any = settings
    for p in name.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(p)
    return node


def nest_dotted(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        set_dotted(out, k, v)
    return out


def function_arm(spec: StudySpec, name: str, fixed: dict[str, Any], space: dict[str, Dim]) -> Arm:
    """An arm of a function study: its settings are the study's ``settings:`` with the arm's fixed
    overrides merged in; its run configuration is the shared one (data split and seeds), with
    ``train.epochs`` taken from an integer ``epochs`` setting (progress bars and pruners' horizon)."""
    from reglab.config import deep_merge
    from reglab.study.spec import Arm

    assert spec.objective is not None
    settings = deep_merge(copy.deepcopy(dict(spec.settings)), fixed)
    config = spec.shared_config()
    epochs = settings.get("epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        with contextlib.suppress(ConfigError):  # outside train.epochs' range: the shared value stays
            config = config.override({"epochs": epochs}, where=f"arms.{name}.")
    return Arm(
        name=name,
        overrides=spec.arms[name],
        fixed=fixed,
        config=config,
        space=space,
        function=FunctionArm(
            objective=spec.objective, settings=settings, select=spec.metric.select, compare=spec.metric.compare
        ),
    )


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
    from reglab.study.executors import Task

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


# -- checks (``reglab validate`` and every ``run``) ---------------------------------------------------


def study_problems(spec: StudySpec) -> list[str]:
    """What a function study cannot have (the function owns the model and the training loop)."""
    from reglab.config import ModelConfig, regularization_section

    if spec.objective is None:
        return ["settings: only for a study with objective.function (the settings your function reads)"] * bool(
            spec.settings
        )
    out = []
    if spec.model != ModelConfig():
        out.append("model: your function builds its own model; remove the model section (or objective)")
    if spec.regularization.model_dump() != regularization_section()().model_dump():
        out.append(
            "regularization: reglab's regularizers do not reach your function; name the settings your function "
            "reads in settings: and the arms instead"
        )
    if spec.search is not None and spec.search.cv is not None:
        out.append("search.cv: not available with objective.function (the function owns its training loop)")
    if spec.train.population != "off":
        out.append("train.population: not available with objective.function (runs are the function's)")
    if spec.save_models != "none":
        out.append("save_models: not available with objective.function (save your model from your function)")
    return out


def check_arm(spec: StudySpec, arm: Arm) -> None:
    """The function imports and takes ``(settings, ctx)``; when it declares its settings, every
    setting of the arm and every tuned name is declared (with "did you mean"), every required one
    is given, and a pydantic declaration accepts the values (at both ends of each range). One
    ConfigError, one line per problem."""
    assert arm.function is not None
    fa = arm.function
    try:
        decl = declaration(fa.objective)
    except ConfigError as err:
        raise ConfigError(f"arms.{arm.name}: {err}") from None
    if decl is None:
        return
    from reglab.space import split_overrides

    own = set(arm.fixed) | set(split_overrides(arm.overrides, f"arms.{arm.name}.")[1])
    problems: list[str] = []
    given = set(fa.settings) | {k.split(".")[0] for k in arm.space}
    for key in [*fa.settings, *(k for k in arm.space if k.split(".")[0] not in fa.settings)]:
        head = key.split(".")[0]
        if head in decl.names:
            continue
        label = key if key in own or head in own else f"search.space.{key}" if key in arm.space else f"settings.{key}"
        hint = suggest(head, list(decl.names), f"{decl.source} declares {len(decl.names)}")
        problems.append(f"arms.{arm.name}: {label}: not a setting of {decl.source}; {hint}")
    for req in sorted(decl.required - given):
        problems.append(
            f"arms.{arm.name}: {req}: required by {decl.source} (no default); give it in settings: (every arm) "
            "or in the arm"
        )
    if not problems and decl.model is not None and issubclass(decl.model, BaseModel):
        problems += _value_problems(arm, decl.model, decl.source)
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))


def _value_problems(arm: Arm, model: type[BaseModel], source: str) -> list[str]:
    """The pydantic declaration validates the arm's settings, with each tuned value at both ends."""
    from reglab.config import validation_messages

    candidates: list[tuple[dict[str, Any], str]] = [({}, "")]
    base: dict[str, Any] = {}
    for name, d in arm.space.items():
        ends: list[Any] = list(d.choices) if d.choices is not None else [d.low, d.high]
        if d.integer and d.choices is None:
            ends = [int(v) for v in ends if v is not None]
        base[name] = ends[0]
        candidates += [({name: v}, f" ({name}={v!r})") for v in (ends[0], ends[-1])]
    out = []
    for values, label in candidates:
        try:
            model.model_validate(run_settings(arm, {**base, **values}))
        except ValidationError as err:
            out += [f"arms.{arm.name}{label}: {m} ({source})" for m in validation_messages(err)]
    return out


def with_objective(spec: StudySpec, objective: Callable[..., Any] | str) -> tuple[StudySpec, str | None]:
    """``spec`` with its runs being ``objective`` (``run_protocol(spec, objective=run)``), and why
    the function cannot be imported by name (None when worker processes can import it)."""
    from reglab.study.spec import parse_study

    if isinstance(objective, str):
        ref, local = objective, None
    else:
        if not callable(objective):
            raise ConfigError(f"objective: expected a function run(settings, ctx), got {objective!r}")
        ref, local = function_reference(objective)
        if local is not None:
            _LOCAL[ref] = (objective, local)
    doc = spec.model_dump(exclude={"objective"})
    old = spec.objective
    doc["objective"] = {
        "function": ref,
        "init_args": dict(old.init_args) if old else {},
        "settings": old.settings if old else None,
    }
    return parse_study(doc, f"study {spec.name!r} with objective={ref}"), local


def function_study(doc: Mapping[str, Any] | str | os.PathLike[str], objective: Callable[..., Any] | str) -> StudySpec:
    """The study ``doc`` (a study file's path, or its parsed document; without ``objective`` or with
    another one) whose runs are ``objective``: for a function defined in a notebook or script, in a
    study whose arms name the function's settings (``load_study`` would refuse them as unknown)."""
    from pathlib import Path

    import yaml

    from reglab.study.spec import parse_study, relative_to_file

    source, text = "<study>", None
    if isinstance(doc, str | os.PathLike):
        path = Path(doc)
        try:
            text = path.read_text(encoding="utf-8")
            loaded = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read study file {path}: {str(err).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a study file must be a mapping with name, arms, ...")
        doc, source = relative_to_file(loaded, path.parent), str(path)
    ref, local = (objective, None) if isinstance(objective, str) else function_reference(objective)
    if local is not None:
        _LOCAL[ref] = (objective, local)  # type: ignore[assignment]
    old = doc.get("objective")
    full = {**doc, "objective": {**(old if isinstance(old, Mapping) else {}), "function": ref}}
    return parse_study(full, source if text is not None else f"study {doc.get('name')!r} with objective={ref}", text)


def in_process_only(executor: Executor | None, jobs: int | None, ref: str, why: str) -> Executor:
    """The executor for a function only this process can call: in-process, or a clear refusal."""
    from reglab.study.executors import InProcessExecutor

    if isinstance(executor, InProcessExecutor):
        return executor
    if executor is None and (jobs or 1) == 1:
        return InProcessExecutor()
    raise ConfigError(
        f"objective: {why}, so it can run only in this process (jobs=1); worker processes, Ray and `reglab worker` "
        f"import the function by name: define it at the top level of a module (e.g. train.py) and import it from there"
    )


# -- running -----------------------------------------------------------------------------------------


class FunctionData:
    """reglab's split of the study's ``data:`` as NumPy arrays (features normalized as reglab's
    engine sees them). The test split is behind a guard: reading ``x_test``/``y_test`` while tuning
    stops the study."""

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
        self._loaded: FunctionData | None = None

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

    def data(self) -> FunctionData:
        """reglab's train/validation/test split of the study's ``data:`` (the same for every arm
        at a seed), as arrays; the test split only when ``may_use_test``."""
        if self._loaded is None:
            self._loaded = FunctionData(self._data(), self.may_use_test, self._violate)
        return self._loaded


def _load(cache: DataCache, cfg: RunConfig) -> Any:
    from reglab.data.base import DataSplits

    data = cache.get(cfg.data)
    if not isinstance(data, DataSplits):
        raise ContractError("ctx.data(): this dataset is streamed (larger than data.memory_budget_mb), not arrays")
    return data


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
    from reglab.study.outcome import RunOutcome, RunStatus

    call = task.function
    assert call is not None
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
    from reglab.study.outcome import RunOutcome, RunStatus

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
    from reglab.tasks import higher_is_better

    m = compare.partition("_")[2]
    tr, te = final.get(f"train_{m}"), final.get(f"test_{m}")
    if "gap" not in final and tr is not None and te is not None and compare.startswith("test_"):
        final["gap"] = tr - te if higher_is_better(compare) else te - tr


class NoReportNote:
    """Says once (per study phase) that the function never called ``ctx.report``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.done = say, False

    def __call__(self, outcome: RunOutcome) -> None:
        if not self.done and outcome.info.get("no_report"):
            self.done = True
            self.say(f"note: {NO_REPORT_NOTE}")


def run_once(spec: StudySpec, arm: str, seed: int, params: Mapping[str, Any] | None = None) -> RunOutcome:
    """One run of the study's function in this process, exactly as a worker runs it (a confirmation
    run; with ``params``: a tuning trial with those tuned values). Two calls with the same seed
    give the same outcome when the function is deterministic: the check docs/own-training.md
    suggests before a long study."""
    from reglab.study.protocol import make_task
    from reglab.study.worker import DataCache, execute_task

    if spec.objective is None:
        raise ConfigError(f"study {spec.name!r} has no objective.function")
    task = make_task(spec.arm(arm), seed, trial=None if params is None else 0, params=dict(params or {}))
    return execute_task(task, lambda record, key=None: False, DataCache(size=1))
