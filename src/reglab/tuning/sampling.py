"""Sampling a configuration from an arm's search space with an Optuna trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from reglab.space import Dim


def suggest(trial: optuna.Trial, space: dict[str, Dim], fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample a configuration; conditional dimensions only when their condition holds. A condition
    on a setting that is not tuned is judged by its value in ``fixed`` (``condition_values``)."""
    known = fixed or {}
    params: dict[str, Any] = {}
    pending = dict(space)
    for _ in range(len(space) + 1):  # conditions may refer to other dimensions
        progressed = False
        for name, d in list(pending.items()):
            if d.when and any(k in pending for k in d.when):
                continue
            pending.pop(name)
            progressed = True
            if d.when and not all(
                (params.get(k) if k in space else known[k]) in vals
                for k, vals in d.when.items()
                if k in space or k in known
            ):
                continue
            if d.choices is not None:
                params[name] = trial.suggest_categorical(name, d.choices)
            elif d.integer:
                params[name] = trial.suggest_int(
                    name,
                    int(d.low),  # type: ignore[arg-type]
                    int(d.high),  # type: ignore[arg-type]
                    log=d.log,
                    step=int(d.step or 1),
                )
            else:
                params[name] = trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)  # type: ignore[arg-type]
        if not pending or not progressed:
            break
    return params
