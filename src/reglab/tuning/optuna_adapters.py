"""Optuna samplers and pruners by name (reglab writes none of its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reglab.registry import Registry

if TYPE_CHECKING:
    import optuna

SAMPLERS: Registry[str] = Registry("sampler")
for _n in ("grid", "random", "tpe", "gp", "cmaes", "qmc"):
    SAMPLERS.add(_n, _n)
PRUNERS: Registry[str] = Registry("pruner")
for _n in ("none", "median", "successive-halving", "hyperband"):
    PRUNERS.add(_n, _n)


def make_sampler(name: str, seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    SAMPLERS.get(name)
    if name == "grid":
        return _grid_sampler(grid or {}, seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        import warnings

        with warnings.catch_warnings():  # multivariate/group are "experimental": noise on every run
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def _grid_sampler(grid: dict[str, list[Any]], seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler calls ``study.stop()`` once the grid is exhausted, which raises
        RuntimeError outside ``study.optimize``; reglab's ask/tell driver stops at its budget."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler(grid, seed=seed)


def make_pruner(name: str, max_steps: int, startup_trials: int = 5) -> optuna.pruners.BasePruner:
    """median: Optuna's MedianPruner after ``startup_trials`` trials and the first quarter of
    epochs; successive-halving: ASHA (Li et al. 2020); hyperband (Li et al. 2018)."""
    import optuna

    PRUNERS.get(name)
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=max(1, max_steps // 4))
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, max_steps // 9), reduction_factor=3)
    return optuna.pruners.HyperbandPruner(
        min_resource=max(1, max_steps // 9), max_resource=max_steps, reduction_factor=3
    )
