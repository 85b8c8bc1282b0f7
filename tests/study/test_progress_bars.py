"""The progress bars end finished (issue 15): an arm's tuning bar shows N/N ("tuned ARM") as soon as
that arm has its N trials or its time budget is spent - not only when every arm is tuned - and also
when trials failed before they started or the budget ended early."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from reglab.stats.summary import ArmTuning
from reglab.study import parse_study
from reglab.study.protocol.coordination import LocalBudget
from reglab.study.protocol.protocol import tune
from reglab.study.results.progress import Bars


def _bars(bars: Bars) -> dict[str, tuple[float, float | None, bool]]:
    """Each tuning bar: (completed, total, finished), by arm."""
    return {t.description.split()[-1]: (t.completed, t.total, t.finished) for t in bars.p.tasks}


def test_tuning_bars_end_at_n_of_n() -> None:
    console = Console(record=True, width=100, force_terminal=True)
    with Bars(console) as bars:
        bars.tuning_started({"none": (3, 0), "l2": (4, 1)})
        bars.trial_done("none", "none/t0", None)
        bars.trial_done("none", "none/t1", None)  # the third failed at once: no trial_done for it
        bars.trial_done("l2", "l2/t1", None)  # the time budget ended after 2 of 4 trials
        bars.tuned("none", ArmTuning(n_trials=3, n_complete=2, n_failed=1))
        bars.tuned("l2", ArmTuning(n_trials=2, n_complete=2))
        tasks = {t.description: (t.completed, t.total) for t in bars.p.tasks}
    assert tasks == {"tuned none": (3, 3), "tuned l2": (2, 2)}
    final = console.export_text()
    assert "3/3" in final and "2/2" in final and "2/3" not in final


def test_an_arms_bar_is_done_with_its_last_trial_while_others_tune() -> None:
    with Bars(Console(file=io.StringIO(), width=100)) as bars:
        bars.tuning_started({"a": (2, 0), "b": (2, 0), "c": (None, 0)})
        bars.trial_done("a", "a/trial0", None)
        assert _bars(bars)["a"] == (1, 2, False)
        bars.trial_done("a", "a/trial1", None)
        bars.trial_done("b", "b/trial0", None)
        bars.trial_done("c", "c/trial0", None)
        assert _bars(bars) == {"a": (2, 2, True), "b": (1, 2, False), "c": (1, None, False)}
        assert [t.description for t in bars.p.tasks] == ["tuned a", "tuning b", "tuning c"]
        bars.tuning_ended("c")  # a time budget only: done at its count
        assert _bars(bars)["c"] == (1, 1, True)
        bars.tuning_started({"d": (3, 3), "e": (3, 1)})  # resumed: d's search was done before
        assert [t.description for t in bars.p.tasks][-2:] == ["tuned d", "tuning e"]


class _Watched(Bars):
    """Bars that note every arm's bar whenever an arm's time budget ends."""

    def __init__(self) -> None:
        super().__init__(Console(file=io.StringIO(), width=100))
        self.at_end: dict[str, dict[str, tuple[float, float | None, bool]]] = {}

    def tuning_ended(self, arm: str) -> None:
        super().tuning_ended(arm)
        self.at_end[arm] = _bars(self)


def test_a_time_budget_ends_its_arms_bar_before_the_next_arm_is_tuned(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> None:
    # arms are tuned in order: b asks its first trial once a's time is spent, then has 1 s of its own
    doc = tiny_study(
        arms={"a": {"l2": "tune"}, "b": {"l2": "tune"}},
        search={"trials": 1000, "timeout": 1.0, "sampler": "random"},
        output=str(tmp_path / "out"),
    )
    spec = parse_study(doc)
    spec.output_dir().mkdir()
    watched = _Watched()
    with watched:
        tune(spec, spec.storage_url(), executor, LocalBudget(), watched)
    a_done, b_then = watched.at_end["a"]["a"], watched.at_end["a"]["b"]
    assert a_done[0] >= 1 and a_done[0] == a_done[1] and a_done[2]  # N/N and finished
    assert not b_then[2]  # while b was still tuning
    assert [t.description for t in watched.p.tasks] == ["tuned a", "tuned b"]
