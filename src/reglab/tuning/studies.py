"""Each arm's search is an ordinary Optuna study ``<study>/tune/<arm>`` in the study's storage:
opened here (refusing a changed search unless ``new``), and its trials counted against the budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError
from reglab.tuning.optuna_adapters import create_pruner, create_sampler
from reglab.urls import mask_url

if TYPE_CHECKING:
    import optuna

TUNE_INFIX = "/tune/"
SECONDS_SPENT = "seconds_spent"  # study attribute: tuning wall time so far (the time budget resumes)
ASKED_AT = "asked_at"  # trial attribute: wall-clock seconds when it was asked (the shared time budget's origin)


def open_arm_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    fingerprint: str,
    *,
    legacy: str | None = None,
    sampler: str,
    seed: int,
    grid: dict[str, list[Any]] | None,
    pruner: str,
    max_steps: int,
    startup_trials: int,
    maximize: bool,
    new: bool,
    url: str,
) -> optuna.Study:
    """Open (or create) the tuning study ``name``. A stored study of another ``fingerprint``
    (other search or configuration) is refused unless ``new``, which discards it; ``legacy``: the
    fingerprint the same search had before fingerprints ignored the working directory (kept)."""
    import optuna

    existing = {x.study_name: x for x in storage.get_all_studies()}
    if name in existing:
        old = existing[name].user_attrs.get("fingerprint")
        if old is not None and old == legacy:
            old = fingerprint  # the same search, stored by an older reglab: its trials are kept
        if old != fingerprint and not new:
            arm = existing[name].user_attrs.get("arm") or name.rsplit("/", 1)[-1]
            raise ConfigError(
                f"tuning of arm {arm!r} in {mask_url(url)} was run with a different search or configuration; "
                "pass --new to discard it, or give the study a new name"
            )
        if new or old != fingerprint:
            optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=create_sampler(sampler, seed, grid),
        pruner=create_pruner(pruner, max_steps, startup_trials),
        direction="maximize" if maximize else "minimize",
        load_if_exists=True,
    )
    study.set_user_attr("fingerprint", fingerprint)
    study.set_user_attr("arm", name.rsplit(TUNE_INFIX, 1)[-1])
    return study


def counted(t: optuna.trial.FrozenTrial) -> bool:
    """Trials that used budget: finished, pruned, or diverged/failed (not interrupted)."""
    import optuna

    S = optuna.trial.TrialState
    return t.state in (S.COMPLETE, S.PRUNED) or (t.state == S.FAIL and t.user_attrs.get("status") != "interrupted")
