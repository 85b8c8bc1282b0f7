"""A study whose runs are the user's own function, built in Python: :func:`function_study` (a study
file or document, and a function - e.g. one defined in a notebook) and :func:`with_objective`
(``run_protocol(spec, objective=run)``). The function is named by its import reference; one that
cannot be imported by name is remembered here and runs only in this process
(:func:`reglab.study.definition.objective.local_only`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError
from reglab.study.definition.objective import _LOCAL, function_reference

if TYPE_CHECKING:
    from reglab.study.definition.spec import StudySpec


def with_objective(spec: StudySpec, objective: Callable[..., Any] | str) -> tuple[StudySpec, str | None]:
    """``spec`` with its runs being ``objective`` (``run_protocol(spec, objective=run)``), and why
    the function cannot be imported by name (None when worker processes can import it)."""
    from reglab.study.definition.spec import parse_study

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

    from reglab.study.definition.spec import parse_study, relative_to_file

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
