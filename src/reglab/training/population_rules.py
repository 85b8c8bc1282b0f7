"""Which runs can train together as one population (issue 14), decided without torch: the
study driver groups tasks with :func:`population_check` and must not import torch; the training
itself is :mod:`reglab.training.population`.

Nothing is listed here: a regularizer trains in a population when its registry entry says how
(``RegularizerSpec.members``, which also names the settings that may differ between members), an
optimizer when it declares a per-member step (``reglab.optim.optimizers.members``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reglab.config import RunConfig

# settings outside the regularization section that may differ between the members of one population
MEMBER_SETTINGS = {"data": ("split_seed",), "train": ("seed", "lr", "population", "population_size")}


def member_settings() -> dict[str, tuple[str, ...]]:
    """Every setting that may differ between members: :data:`MEMBER_SETTINGS` and what each
    population-capable regularizer declares."""
    from reglab.regularizers import REGULARIZERS

    own = tuple(f for _, spec in REGULARIZERS.items() if spec.members for f in spec.members.settings)
    return {**MEMBER_SETTINGS, "regularization": own}


def population_check(cfg: RunConfig, *, switch: bool = True) -> tuple[str | None, str | None]:
    """``(key, None)`` when ``cfg`` can train in a population, else ``(None, reason)``. Runs with
    equal keys share the architecture, data, batch size, epochs and everything else but the
    per-member settings (:func:`member_settings`). ``switch``: also require ``train.population: auto``."""
    from reglab.models import STACKED
    from reglab.optim.optimizers import OPTIMIZERS, member_step
    from reglab.regularizers import REGULARIZERS, build_regularizers

    tc, mc = cfg.train, cfg.model
    if switch and tc.population != "auto":
        return None, "train.population is off"
    if mc.class_path is None and mc.arch not in STACKED:
        return None, f"model.arch is {mc.arch}: populations train the built-in mlp and cnn"
    if member_step(tc.optimizer) is None:
        capable = ", ".join(n for n in OPTIMIZERS.names() if member_step(n) is not None)
        return None, f"train.optimizer {tc.optimizer}: not vectorized ({capable} are)"
    if tc.loss not in ("auto", "cross_entropy"):
        return None, f"train.loss {tc.loss}: populations train with cross-entropy"
    if cfg.data.task not in ("auto", "classification"):
        return None, f"data.task {cfg.data.task}: populations train classification"
    for r in build_regularizers(cfg):
        if REGULARIZERS.get(r.name).members is None:
            return None, f"regularization.{r.name}: not population-capable"
    dump = cfg.model_dump(mode="json")
    for section, names in member_settings().items():
        for name in names:
            dump[section].pop(name, None)
    return json.dumps(dump, sort_keys=True, default=str), None


def population_key(cfg: RunConfig) -> str | None:
    """What runs must share to train together (None: this run cannot; :func:`population_check`
    says why)."""
    return population_check(cfg)[0]
