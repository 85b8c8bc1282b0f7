"""Adaptive seeds in a study: the thin layer between the stored runs and the sequential design
(:mod:`reglab.stats.sequential`). Every decision is a pure function of the stored results, so a
resumed study, a worker joining it, and the summary all reach the same verdicts."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from reglab.stats.sequential import ArmSequence, Design
from reglab.study.results.outcome import RunStatus

if TYPE_CHECKING:
    from reglab.study.definition.spec import StudySpec
    from reglab.study.results.storage import RunRecord

ALPHA = 0.05


def design(spec: StudySpec) -> Design:
    """The study's sequential design: its looks, alpha split over the arms compared with the baseline."""
    a = spec.adaptive
    assert a is not None
    return Design(
        tuple(a.looks), ALPHA, arms=max(1, len(spec.arms) - 1), equivalence=a.equivalence, spending=a.spending
    )


def _value(spec: StudySpec, rec: RunRecord | None) -> float | None:
    """The compare metric of a completed run; NaN for a run that diverged; None: not stored."""
    if rec is None:
        return None
    if rec.outcome.status is not RunStatus.COMPLETED:
        return math.nan
    v = rec.outcome.final.get(spec.metric.compare)
    return math.nan if v is None else float(v)


def paired_diffs(
    spec: StudySpec, records: Mapping[tuple[str, int], RunRecord], tried: Collection[tuple[str, int]] = ()
) -> dict[str, dict[int, float]]:
    """Per arm, the paired difference (arm - baseline) of each seed whose two runs are settled:
    NaN where one diverged, or failed in this session (``tried`` but not stored)."""
    base = spec.baseline_arm
    out: dict[str, dict[int, float]] = {}
    for arm in spec.arms:
        if arm == base:
            continue
        diffs: dict[int, float] = {}
        for seed in spec.seed_list:
            a, b = _value(spec, records.get((arm, seed))), _value(spec, records.get((base, seed)))
            if a is None and (arm, seed) in tried:
                a = math.nan
            if b is None and (base, seed) in tried:
                b = math.nan
            if a is None or b is None:
                break  # the looks are walked in seed order: the first gap ends what is known
            diffs[seed] = a - b
        out[arm] = diffs
    return out


def outcomes(
    spec: StudySpec, records: Mapping[tuple[str, int], RunRecord], tried: Collection[tuple[str, int]] = ()
) -> dict[str, ArmSequence]:
    """Each compared arm's sequential outcome from the stored runs."""
    from reglab.stats.sequential import analyse
    from reglab.tasks import higher_is_better

    d = design(spec)
    better = higher_is_better(spec.metric.compare)
    by_arm = paired_diffs(spec, records, tried)
    return {arm: analyse(diffs, d, higher_is_better=better) for arm, diffs in by_arm.items()}


def needed(spec: StudySpec, seqs: Mapping[str, ArmSequence]) -> list[tuple[str, int]]:
    """The runs the next round needs, seed-major: seeds up to each open arm's next look, for the
    arm and for the baseline (which runs as long as any arm needs it)."""
    base = spec.baseline_arm
    upto = {arm: s.pending for arm, s in seqs.items() if s.pending is not None}
    if not seqs:  # a single arm: nothing to compare, it runs min seeds
        a = spec.adaptive
        assert a is not None
        upto = {base: a.min}
    if upto:
        upto[base] = max(upto.values())
    return [(arm, seed) for seed in spec.seed_list for arm in spec.arms if seed < upto.get(arm, 0)]


def seeds_used(spec: StudySpec, seqs: Mapping[str, ArmSequence]) -> dict[str, int]:
    """The seeds each arm's verdict rests on (the baseline: as many as the longest arm)."""
    used = {arm: s.seeds_used for arm, s in seqs.items()}
    a = spec.adaptive
    assert a is not None
    used[spec.baseline_arm] = max(used.values(), default=a.min)
    return used


def pilot_diffs(output_dir: str | Path) -> tuple[str, str, dict[str, list[float]]]:
    """(compare metric, baseline, per arm the paired differences to the baseline by seed) of a
    finished study's output folder (``summary.json`` and ``finals.csv``): the pilot of ``reglab plan``."""
    import pandas as pd

    from reglab.errors import ReglabError
    from reglab.stats.summary import StudySummary

    out = Path(output_dir)
    summary = StudySummary.of_output(out)
    m, base = summary.compare_metric, summary.baseline
    try:
        finals = pd.read_csv(out / "finals.csv")
    except (OSError, ValueError) as err:
        raise ReglabError(
            f"{out / 'finals.csv'}: cannot read the runs ({type(err).__name__}); rerun the study"
        ) from None
    if m not in finals.columns:
        raise ReglabError(f"{out / 'finals.csv'}: no {m} column; rerun the study")
    done = finals[finals["status"] == RunStatus.COMPLETED.value]
    values = {(str(a), int(s)): float(v) for a, s, v in zip(done["arm"], done["seed"], done[m], strict=True)}
    diffs: dict[str, list[float]] = {}
    for arm in summary.arms:
        if arm == base:
            continue
        seeds = sorted(s for a, s in values if a == arm and (base, s) in values)
        diffs[arm] = [values[(arm, s)] - values[(base, s)] for s in seeds]
    return m, base, diffs
