"""Optuna samplers and pruners by name (reglab writes none of its own).

Both registries map a name to a factory: ``create_sampler(name, seed=..., grid=...)`` and
``create_pruner(name, max_steps=..., startup_trials=...)``; unknown names list the valid ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reglab.registry import Registry

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

    SamplerFactory = Callable[..., optuna.samplers.BaseSampler]
    PrunerFactory = Callable[..., optuna.pruners.BasePruner]

SAMPLERS: Registry[SamplerFactory] = Registry("sampler")
PRUNERS: Registry[PrunerFactory] = Registry("pruner")


@SAMPLERS.register("grid")
def _grid(seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler calls ``study.stop()`` once the grid is exhausted, which raises
        RuntimeError outside ``study.optimize``; reglab's ask/tell driver stops at its budget."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler(grid or {}, seed=seed)


@SAMPLERS.register("random")
def _random(seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("tpe")
def _tpe(seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    """Multivariate TPE (Bergstra et al. 2011; Falkner et al. 2018) with conditional groups."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # multivariate/group are "experimental": noise on every run
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


@SAMPLERS.register("gp")
def _gp(seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


@SAMPLERS.register("cmaes")
def _cmaes(seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


@SAMPLERS.register("qmc")
def _qmc(seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


@PRUNERS.register("none")
def _nop(max_steps: int, startup_trials: int = 5) -> optuna.pruners.BasePruner:
    import optuna

    return optuna.pruners.NopPruner()


@PRUNERS.register("median")
def _median(max_steps: int, startup_trials: int = 5) -> optuna.pruners.BasePruner:
    """Optuna's MedianPruner after ``startup_trials`` trials and the first quarter of epochs."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=max(1, max_steps // 4))


@PRUNERS.register("successive-halving")
def _asha(max_steps: int, startup_trials: int = 5) -> optuna.pruners.BasePruner:
    """Asynchronous successive halving (Li et al. 2020)."""
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, max_steps // 9), reduction_factor=3)


@PRUNERS.register("hyperband")
def _hyperband(max_steps: int, startup_trials: int = 5) -> optuna.pruners.BasePruner:
    """Hyperband (Li et al. 2018)."""
    import optuna

    return optuna.pruners.HyperbandPruner(
        min_resource=max(1, max_steps // 9), max_resource=max_steps, reduction_factor=3
    )


def create_sampler(name: str, seed: int, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    return SAMPLERS.get(name)(seed, grid)


def create_pruner(name: str, max_steps: int, startup_trials: int = 5) -> optuna.pruners.BasePruner:
    return PRUNERS.get(name)(max_steps, startup_trials)
