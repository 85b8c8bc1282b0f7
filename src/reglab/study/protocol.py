"""The whole flow: tune every arm with an equal budget (when the study has a ``search``) ->
confirm each arm's best configuration over the study's seeds -> statistics and diagnosis.
The test split is used only in confirmation runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reglab.study.runner import StudyResults, run_study

if TYPE_CHECKING:
    from reglab.study.spec import StudySpec


def run_protocol(
    spec: StudySpec,
    *,
    jobs: int | None = None,
    new: bool = False,
    progress: bool = True,
    storage: str | None = None,
    executor: Any = None,
) -> StudyResults:
    if spec.search is None:
        return run_study(spec, jobs=jobs, new=new, progress=progress, storage=storage, executor=executor)
    from reglab.tuning.tune import best_params, tune_study, tuned_summary

    tuning = tune_study(spec, jobs=jobs, new=new, progress=progress, storage=storage, executor=executor)
    confirm = spec.with_tuned(best_params(spec, tuning))
    return run_study(
        confirm,
        jobs=jobs,
        new=new,
        progress=progress,
        storage=storage or spec.storage_url(),
        executor=executor,
        extra={"tuning": tuned_summary(tuning)},
        tuned_from=spec,
    )
