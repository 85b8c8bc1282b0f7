"""What an arm's search found: trials, best values, budget spent, parameter importance
(fANOVA, Hutter et al. 2014; PED-ANOVA, Watanabe et al. 2023), the best-so-far curve and the
expected best validation value vs the number of trials (Dodge et al. 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from reglab.stats.summary import ArmTuning as TuningSummary
from reglab.tuning.studies import SECONDS_SPENT, counted

if TYPE_CHECKING:
    import optuna

MIN_TRIALS_FOR_IMPORTANCE = 10  # fANOVA and PED-ANOVA on fewer completed trials rank noise


class TrialRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    number: int
    state: str
    status: str | None = None
    value: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    epochs_spent: int = 0
    reason: str | None = None


class ArmTuning(TuningSummary):
    """One arm's search, as written to ``tuning.json``; ``summary()`` is the part in ``summary.json``."""

    arm: str
    n_interrupted_redone: int = 0
    best_trial: int | None = None
    trials: list[TrialRow] = Field(default_factory=list)
    best_so_far: list[float | None] = Field(default_factory=list)
    expected_best: list[dict[str, float]] = Field(default_factory=list)
    importance: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def summary(self) -> TuningSummary:
        return TuningSummary.model_validate(self.model_dump(include=set(TuningSummary.model_fields)))


def arm_insight(study: optuna.Study, arm: str, metric: str, stale: int = 0) -> ArmTuning:
    import optuna

    from reglab.stats.expected_max import best_so_far, expected_max

    S = optuna.trial.TrialState
    trials = [t for t in study.get_trials(deepcopy=False) if counted(t)]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in trials if t.state == S.COMPLETE]
    rows = [
        TrialRow(
            number=t.number,
            state=t.state.name,
            status=t.user_attrs.get("status"),
            value=t.value if t.state == S.COMPLETE else None,
            params=t.params,
            epochs_spent=int(t.user_attrs.get("epochs_spent") or 0),
            reason=t.user_attrs.get("reason"),
        )
        for t in trials
    ]
    best = max(complete, key=lambda t: float(t.value or 0.0) * (1 if maximize else -1)) if complete else None
    values = [r.value for r in rows]
    scores = [v for v in values if v is not None]
    return ArmTuning(
        arm=arm,
        metric=metric,
        n_trials=len(rows),
        n_complete=len(complete),
        n_pruned=sum(1 for t in trials if t.state == S.PRUNED),
        n_failed=sum(1 for t in trials if t.state == S.FAIL),
        n_interrupted_redone=stale,
        epochs_spent=sum(r.epochs_spent for r in rows),
        seconds_spent=float(study.user_attrs.get(SECONDS_SPENT, 0.0)),
        best_value=best.value if best else None,
        best_params=dict(best.params) if best else {},
        best_trial=best.number if best else None,
        trials=rows,
        best_so_far=best_so_far(values, maximize),
        expected_best=expected_max(scores if maximize else [-v for v in scores]) if scores else [],
        importance=_importance(study, complete),
    )


def _importance(study: optuna.Study, complete: list[optuna.trial.FrozenTrial]) -> dict[str, dict[str, Any]]:
    """Only with enough completed trials to mean anything."""
    import optuna

    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or not {k for t in complete for k in t.params}:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for label, evaluator in (
        ("fanova", optuna.importance.FanovaImportanceEvaluator(seed=0)),
        ("ped_anova", optuna.importance.PedAnovaImportanceEvaluator()),
    ):
        try:
            out[label] = {
                k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
            }
        except Exception as err:  # too few distinct values, single-valued params, ...
            out[label] = {"_error": str(err)[:200]}
    return out
