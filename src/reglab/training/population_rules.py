"""Which runs can train together as one population (issue 14), decided without torch: the
study driver groups tasks with :func:`population_check` and must not import torch; the training
itself is :mod:`reglab.training.population`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reglab.config import RunConfig

# regularizers a population trains (their scalars may differ per member); any other active one refuses
REGULARIZERS = (
    "l1",
    "l2",
    "elastic_net",
    "weight_decay",
    "dropout",
    "label_smoothing",
    "input_noise",
    "max_norm",
    "early_stopping",
    "batch_norm",
    "augment",
    "cutout",
)
ARCHS = ("mlp", "cnn")  # plain or residual (model.residual)
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
# settings that may differ between the members of one population (everything else must be equal)
MEMBER_SETTINGS = {
    "data": ("split_seed",),
    "train": ("seed", "lr", "population", "population_size"),
    "regularization": (
        "l1",
        "l2",
        "elastic_net",
        "l1_ratio",
        "weight_decay",
        "dropout",
        "input_dropout",
        "label_smoothing",
        "input_noise",
        "max_norm",
        "augment",
        "cutout",
    ),
}


def population_check(cfg: RunConfig, *, switch: bool = True) -> tuple[str | None, str | None]:
    """``(key, None)`` when ``cfg`` can train in a population, else ``(None, reason)``. Runs with
    equal keys share the architecture, data, batch size, epochs and everything else but the
    per-member settings (:data:`MEMBER_SETTINGS`). ``switch``: also require ``train.population: auto``."""
    tc, mc = cfg.train, cfg.model
    if switch and tc.population != "auto":
        return None, "train.population is off"
    if mc.class_path is None and mc.arch not in ARCHS:
        return None, f"model.arch is {mc.arch}: populations train the built-in mlp and cnn"
    if tc.optimizer not in OPTIMIZERS:
        return None, f"train.optimizer {tc.optimizer}: not vectorized ({', '.join(OPTIMIZERS)} are)"
    if tc.loss not in ("auto", "cross_entropy"):
        return None, f"train.loss {tc.loss}: populations train with cross-entropy"
    if cfg.data.task not in ("auto", "classification"):
        return None, f"data.task {cfg.data.task}: populations train classification"
    from reglab.regularizers import build_regularizers

    for r in build_regularizers(cfg):
        if r.name not in REGULARIZERS:
            return None, f"regularization.{r.name}: not population-capable"
    dump = cfg.model_dump(mode="json")
    for section, names in MEMBER_SETTINGS.items():
        for name in names:
            dump[section].pop(name, None)
    return json.dumps(dump, sort_keys=True, default=str), None


def population_key(cfg: RunConfig) -> str | None:
    """What runs must share to train together (None: this run cannot; :func:`population_check`
    says why)."""
    return population_check(cfg)[0]
