"""The practitioner's own model: ``model: {class_path: "my_pkg.nets:ResNetish", init_args: {...}}``.

Following PyTorch Lightning CLI, ``class_path`` names a class or a factory function that returns an
``nn.Module`` and ``init_args`` its keyword arguments. As in skorch, reglab routes hyperparameters to
the constructor by name:

- every ``init_args`` entry (each may differ per arm and be tuned: ``model.init_args.width``);
- the data's shape, only to parameters with these names: ``input_shape`` (e.g. ``(1, 28, 28)``),
  ``in_features`` (their product), ``in_channels`` (the first dimension), ``n_classes`` /
  ``num_classes`` / ``out_features`` (the number of outputs);
- structural regularizers' settings (``dropout``, ``input_dropout``, ``batch_norm``, ...): passed to a
  parameter of the same name whenever the constructor has one (off = 0 / False, so the baseline arm
  really has none); a run that switches one on for a constructor without it is refused.

reglab's own layer hooks (:mod:`reglab.models.hooks`) reach only the built-in models. The reference
travels as text ("module:qualname"), so worker processes and Ray import the model themselves; the
current directory is importable, as with ``python -m``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError
from reglab.imports import import_object, split_reference

if TYPE_CHECKING:
    from torch import Tensor, nn

ModelCallable = Callable[..., "nn.Module"]

# constructor parameter -> what reglab passes, from the data's input shape and number of outputs
SHAPE_ARGUMENTS: dict[str, Callable[[tuple[int, ...], int], Any]] = {
    "input_shape": lambda shape, n: tuple(shape),
    "in_features": lambda shape, n: math.prod(shape),
    "in_channels": lambda shape, n: shape[0],
    "n_classes": lambda shape, n: n,
    "num_classes": lambda shape, n: n,
    "out_features": lambda shape, n: n,
}


@dataclass(frozen=True)
class StructuralArgs:
    """The run's structural regularizer settings as a user model's constructor receives them:
    ``values`` every setting (passed where the constructor has a parameter of that name),
    ``required`` those switched on (the constructor must take them)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    required: frozenset[str] = frozenset()


def resolve(ref: str, where: str = "model.class_path") -> ModelCallable:
    """Import the class or function ``ref`` names (:func:`reglab.imports.import_object`)."""
    obj = import_object(ref, where, example="my_pkg.nets:Net")
    if not callable(obj):
        raise ConfigError(f"{where}: {ref} is a {type(obj).__name__}, not a class or a function returning an nn.Module")
    return obj


def reference(factory: Any, where: str = "model") -> str:
    """The importable reference ``"module:qualname"`` of ``factory`` (a class or a module-level
    function). Worker processes and Ray import it by this name, so a lambda, a nested function or
    one defined in the script being run (``__main__``) is refused with what to do instead."""
    if isinstance(factory, str):
        resolve(factory, where)
        return factory
    if not callable(factory):
        raise ConfigError(f"{where}: expected a class or a function returning an nn.Module, got {factory!r}")
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    short = getattr(factory, "__name__", "make_net")
    short = "make_net" if short == "<lambda>" else short

    def fix(what: str) -> ConfigError:
        return ConfigError(
            f"{where}: {what}; worker processes import the model by name, so define it at the top level of a "
            f"module next to your script (e.g. nets.py) and import it from there: from nets import {short}"
        )

    if not module or not qualname:
        raise fix(f"{factory!r} has no importable name")
    if "<lambda>" in qualname:
        raise fix("a lambda cannot be imported by name")
    if "<locals>" in qualname:
        raise fix(f"{short} is defined inside a function")
    if module == "__main__":
        raise fix(f"{qualname} is defined in the script being run (__main__)")
    ref = f"{module}:{qualname}"
    if resolve(ref, where) is not factory:
        raise fix(f"{ref} does not import back as {qualname}")
    return ref


def display_name(ref: str) -> str:
    """``pkg.nets:ResNetish`` -> ``ResNetish`` (for tables and titles)."""
    return split_reference(ref)[1].rsplit(".", 1)[-1]


def _signature(factory: ModelCallable, ref: str) -> tuple[dict[str, inspect.Parameter], bool]:
    """The named keyword parameters of ``factory`` (a class: its ``__init__``) and whether it takes
    ``**kwargs``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C extension without a signature: accept anything
        return {}, True
    named = {
        n: p
        for n, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return named, var_kw


def arguments(
    factory: ModelCallable,
    ref: str,
    init_args: Mapping[str, Any],
    structural: StructuralArgs,
    input_shape: tuple[int, ...] | None = None,
    n_outputs: int | None = None,
    extra_names: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The keyword arguments reglab passes to ``factory``, or a ConfigError naming the model and the
    parameter it lacks. Without ``input_shape`` (a check before the data is read) the shape
    arguments are left out. ``extra_names``: tuned ``init_args`` names, checked but not passed."""
    named, var_kw = _signature(factory, ref)
    params = ", ".join(named) or "none"
    for key in (*init_args, *extra_names):
        if key not in named and not var_kw:
            raise ConfigError(
                f"model.init_args.{key}: {ref} has no parameter {key!r} (its parameters: {params}); "
                "remove it or add it to the constructor"
            )
    kwargs = dict(init_args)
    for key, value in structural.values.items():
        if key in init_args:
            if key in structural.required:
                raise ConfigError(
                    f"model.init_args.{key}: also set as the regularization setting {key!r}; set it in one place "
                    "(the regularization setting is passed to the constructor)"
                )
            continue
        if key in named or (key in structural.required and var_kw):
            kwargs[key] = value
        elif key in structural.required:
            raise ConfigError(
                f"{key}: the model {ref} has no {key!r} parameter, so reglab cannot apply {key} to it; add a "
                f"{key} argument to its constructor (reglab passes the arm's {key} there) or drop {key} from this arm"
            )
    if input_shape is not None and n_outputs is not None:
        for key, make in SHAPE_ARGUMENTS.items():
            if key in named and key not in kwargs:
                kwargs[key] = make(input_shape, n_outputs)
    filled = set(kwargs) | set(extra_names) | (set() if input_shape is not None else set(SHAPE_ARGUMENTS))
    missing = [n for n, p in named.items() if p.default is inspect.Parameter.empty and n not in filled]
    if missing:
        raise ConfigError(
            f"model.init_args: {ref} needs {', '.join(missing)}; give {'it' if len(missing) == 1 else 'them'} "
            f"in model.init_args (reglab fills only {', '.join(SHAPE_ARGUMENTS)})"
        )
    return kwargs


def build_user_model(
    factory: ModelCallable,
    ref: str,
    init_args: Mapping[str, Any],
    input_shape: tuple[int, ...],
    n_outputs: int,
    structural: StructuralArgs,
) -> nn.Module:
    """Call ``factory`` with the routed arguments; it must return an ``nn.Module``."""
    from torch import nn

    kwargs = arguments(factory, ref, init_args, structural, input_shape, n_outputs)
    net = factory(**kwargs)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model: {ref}(...) returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def check_output(net: nn.Module, x: Tensor, n_outputs: int, ref: str) -> None:
    """Run ``net`` once on the batch ``x`` (eval mode, no gradients) and check its output is
    ``(batch, n_outputs)``; a failure is one ConfigError with the input shape and the model's error.
    The module's train/eval mode is restored."""
    import torch

    shape = tuple(x.shape)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(x)
    except Exception as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(
            f"model: {ref} fails on a batch of input shape {shape}: {type(err).__name__}: {msg}"[:600]
        ) from None
    finally:
        net.train(was_training)
    problem = wrong_output(out, shape, n_outputs, ref)
    if problem is not None:
        raise problem


def wrong_output(out: Any, shape: tuple[int, ...], n_outputs: int, ref: str, mode: str = "") -> ConfigError | None:
    """The error for a model output ``out`` that is not ``(batch, n_outputs)`` for a batch of
    input ``shape`` (None when it is): the check before a study, and on the first training batch
    (``mode``: " in training mode"), where a model may behave otherwise than in eval mode."""
    import torch

    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got == (shape[0], n_outputs):
        return None
    return ConfigError(
        f"model: {ref} returns {got} for a batch of input shape {shape}{mode}; expected ({shape[0]}, {n_outputs}): "
        f"one output per class (take n_classes/num_classes in the constructor to get the number)"
    )
