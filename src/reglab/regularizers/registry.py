"""The regularizer registry and its public calls: ``register``, ``unregister``, ``build_regularizers``,
``structural_args`` (what a user's model constructor receives).

Registration order is the order in which batch transforms run (augment before mixup, etc.).
Registering (or unregistering) starts a new *generation* of the registry; the config builds its
``regularization`` section for a generation when it is first used (``reglab.config.
regularization_section``), so the new settings are valid in every config validated from then on
(run configs, study files, ``reglab train --set``) and nothing loaded before is rewritten.
"""

from __future__ import annotations

import sys
import typing
from typing import TYPE_CHECKING, Any

from reglab.registry import Registry
from reglab.regularizers.base import HasRegularization, Regularizer, RegularizerSpec, Settings, StackedHooks

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

    from reglab.models.user import StructuralArgs

REGULARIZERS: Registry[RegularizerSpec[Any]] = Registry("regularizer")
_GENERATION = [0]  # registrations and removals so far


def generation() -> int:
    """How many times the registry has changed: the config's section is built once per generation."""
    return _GENERATION[0]


def register(spec: RegularizerSpec[Any]) -> RegularizerSpec[Any]:
    """Add ``spec`` to the registry (after the ones registered before it) and return it."""
    taken = {f: name for name, s in REGULARIZERS.items() for f in s.settings.model_fields}
    clash = [f for f in spec.fields if f in taken]
    if clash:
        raise ValueError(f"regularizer {spec.name!r}: setting {clash[0]!r} is already defined by {taken[clash[0]]!r}")
    elsewhere = [(f, sec) for f in spec.fields for sec, model in _fixed_sections().items() if f in model.model_fields]
    if elsewhere:
        raise ValueError(
            f"regularizer {spec.name!r}: setting {elsewhere[0][0]!r} is already a {elsewhere[0][1]} setting"
        )
    validators = {v: name for name, s in REGULARIZERS.items() for v in _validator_names(s.settings)}
    for v in _validator_names(spec.settings):
        if validators.get(v, spec.name) != spec.name:
            # the section inherits every settings class: one validator name would hide the other
            raise ValueError(f"regularizer {spec.name!r}: validator {v!r} is already defined by {validators[v]!r}")
    REGULARIZERS.add(spec.name, spec)
    _GENERATION[0] += 1
    return spec


def _fixed_sections() -> dict[str, Any]:
    """The config's other sections (data, model, train) once ``reglab.config`` is loaded - read,
    never changed; it imports this module, so it is not imported from here."""
    return dict(getattr(sys.modules.get("reglab.config"), "FIXED_SECTIONS", {}))


def _validator_names(settings: type[Settings]) -> set[str]:
    decorators = settings.__pydantic_decorators__
    return {*decorators.field_validators, *decorators.model_validators}


def unregister(name: str) -> None:
    """Remove the regularizer ``name`` (tests that register temporary ones clean up with this)."""
    REGULARIZERS.remove(name)
    _GENERATION[0] += 1


def build_regularizers(cfg: HasRegularization) -> list[Regularizer]:
    """The active regularizers of a run, in registry order."""
    out = []
    for _, spec in REGULARIZERS.items():
        r = spec.build(cfg)
        if r is not None:
            out.append(r)
    return out


def stacked_hooks(sections: Sequence[Any], device: torch.device) -> StackedHooks:
    """The stacked hooks of a population whose members' ``regularization`` sections are
    ``sections`` (each regularizer's ``members.stacked``, for those some member uses)."""
    units = [s.members.stacked(sections, device) for _, s in REGULARIZERS.items() if s.members and s.members.stacked]
    return StackedHooks([u for u in units if u is not None])


def stacked_unused(section: Any) -> tuple[bool, ...]:
    """Which regularizers with stacked hooks a member does not use: a population orders its
    members by it, so that the members using one sit in few contiguous rows (each stacked hook
    touches its span of rows only)."""
    return tuple(s.from_section(section) is None for _, s in REGULARIZERS.items() if s.members and s.members.stacked)


def structural_args(cfg: HasRegularization) -> StructuralArgs:
    """The structural regularizers' settings as the user's own model receives them through its
    constructor (their layer hooks reach only the built-in models): every setting's value, and the
    settings of the regularizers this run switches on that differ from their defaults."""
    from reglab.models.user import StructuralArgs

    section = cfg.regularization
    values: dict[str, Any] = {}
    required: set[str] = set()
    for _, spec in REGULARIZERS.items():
        if not spec.structural:
            continue
        on = spec.from_section(section) is not None
        for f in spec.fields:
            values[f] = getattr(section, f)
            if on and values[f] != spec.settings.model_fields[f].default:
                required.add(f)
    return StructuralArgs(values, frozenset(required))


def exclusion_errors(section: Any) -> list[str]:
    """Regularizers switched on together that cannot be combined (``RegularizerSpec.excludes``)."""
    errors = []
    for name, spec in REGULARIZERS.items():
        if spec.excludes and spec.from_section(section) is not None:
            for other in spec.excludes:
                if other in REGULARIZERS and REGULARIZERS.get(other).from_section(section) is not None:
                    errors.append(f"{other} and {name} cannot be combined")
    return errors


def setting_names(spec: RegularizerSpec[Any]) -> list[str]:
    """The settings of ``spec`` as written in a study file: ``l2``, ``swa: {start, lr}``."""
    out = []
    for f in spec.fields:
        tp = spec.settings.model_fields[f].annotation
        sub = [a for a in (tp, *typing.get_args(tp)) if isinstance(a, type) and issubclass(a, Settings)]
        out.append(f"{f}: {{{', '.join(sub[0].model_fields)}}}" if sub else f)
    return out


def describe() -> list[dict[str, str]]:
    """One row per registered regularizer: name, settings, what it does, source, default ranges."""
    rows = []
    for name, spec in REGULARIZERS.items():
        ranges = [
            f"{k} {r.low:g}…{r.high:g}{' (log)' if r.log else ''}"
            if len(spec.tune) > 1
            else f"{r.low:g}…{r.high:g}{' (log)' if r.log else ''}"
            for k, r in spec.tune.items()
        ]
        rows.append(
            {
                "name": name,
                "settings": ", ".join(setting_names(spec)),
                "what": spec.doc + (" (structural)" if spec.structural else ""),
                "source": spec.citation,
                "tune": "; ".join(ranges),
            }
        )
    return rows


def markdown_table() -> str:
    """The README's regularizer table, generated from the registry (``reglab regularizers --markdown``)."""
    lines = ["| regularizer | settings | what it does | source | default `tune` range |", "|---|---|---|---|---|"]
    for r, (_, spec) in zip(describe(), REGULARIZERS.items(), strict=True):
        settings = ", ".join(f"`{s}`" for s in setting_names(spec))
        cells = [r["name"], settings, r["what"].replace("|", "\\|"), r["source"], r["tune"] or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
