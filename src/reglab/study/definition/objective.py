"""A study whose runs are the user's own training function: ``objective: {function: "pkg.train:run"}``
in the study file, or ``run_protocol(spec, objective=run)``.

The protocol stays reglab's (equal tuning budget on validation data, confirmation over seeds, paired
statistics, diagnosis, report); only the run is the user's. The contract::

    def run(settings: dict, ctx) -> dict[str, float]

- ``settings``: the study's ``settings:`` mapping, the arm's overrides and the tuned values (plain values);
- ``ctx`` (:class:`~reglab.study.execution.function_runs.RunContext`): ``seed``, ``phase``
  ("tune" | "confirm"), ``may_use_test``, ``report(epoch, **metrics)`` (pruning, the time budget's
  stop, the stored curves) and ``data()`` (reglab's split of the study's ``data:``, the test split
  readable only when ``may_use_test``);
- the return value: final metrics (``val_acc``, ``test_acc``, ``train_acc``, ...), selected and
  compared through the study's ``metric: {select, compare}``.

A run is one more kind of :class:`~reglab.study.execution.task.Task` (its ``function`` field), so
every executor, resume, retry and lease treats it as a built-in run. The function travels by its
import reference; a function that cannot be imported by name (defined in ``__main__``, a lambda)
runs only in this process.

This module is the declaration side (the ``objective`` section, the function's declared settings
and the checks of an arm against them); a worker runs the function in
:mod:`reglab.study.execution.function_runs`.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reglab.errors import ConfigError, ReglabError, suggest

if TYPE_CHECKING:
    from reglab.space import Dim

Phase = Literal["tune", "confirm"]
CHECK_KEY = "\x00check"  # the key of that task: never a run's
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
    """What an arm of a function study adds to :class:`~reglab.study.definition.spec.Arm`: the function, the
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
    check: FunctionCheck | None = None  # not a run: the arms to check against the declaration (check_in_workers)


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


# -- checks (``reglab validate`` and every ``run``) ---------------------------------------------------


@dataclass(frozen=True)
class ArmSettings:
    """What the settings check needs of one arm (picklable: the check runs in a worker process)."""

    name: str
    settings: Mapping[str, Any]  # the shared settings merged under the arm's fixed ones
    space: Mapping[str, Dim]  # the tuned settings
    own: frozenset[str]  # the names the arm itself gives (for "arms.<arm>.<name>" vs "settings.<name>")


@dataclass(frozen=True)
class FunctionCheck:
    """The settings check of a whole study, sent to a worker process as one task (``FunctionCall.check``):
    the worker imports the function anyway, so ``reglab run`` never imports the user's module (and
    torch) in the driver just to read its declaration."""

    source: str  # names the study in the messages
    arms: tuple[ArmSettings, ...]


def arm_problems(decl: Declaration, arm: ArmSettings) -> list[str]:
    """One line per way the arm's settings break the function's declaration."""
    problems: list[str] = []
    given = set(arm.settings) | {k.split(".")[0] for k in arm.space}
    for key in [*arm.settings, *(k for k in arm.space if k.split(".")[0] not in arm.settings)]:
        head = key.split(".")[0]
        if head in decl.names:
            continue
        own = key in arm.own or head in arm.own
        label = key if own else f"search.space.{key}" if key in arm.space else f"settings.{key}"
        hint = suggest(head, list(decl.names), f"{decl.source} declares {len(decl.names)}")
        problems.append(f"arms.{arm.name}: {label}: not a setting of {decl.source}; {hint}")
    for req in sorted(decl.required - given):
        problems.append(
            f"arms.{arm.name}: {req}: required by {decl.source} (no default); give it in settings: (every arm) "
            "or in the arm"
        )
    if not problems and decl.model is not None and issubclass(decl.model, BaseModel):
        problems += _value_problems(arm, decl.model, decl.source)
    return list(dict.fromkeys(problems))


def _value_problems(arm: ArmSettings, model: type[BaseModel], source: str) -> list[str]:
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
        settings = copy.deepcopy(dict(arm.settings))
        for k, v in {**base, **values}.items():
            set_dotted(settings, k, v)
        try:
            model.model_validate(settings)
        except ValidationError as err:
            out += [f"arms.{arm.name}{label}: {m} ({source})" for m in validation_messages(err)]
    return out
