"""The progress bars end finished (issue 15): a tuning bar shows N/N when its arm is tuned, even when
trials failed before they started or the budget ended early."""

from __future__ import annotations

from rich.console import Console

from reglab.stats.summary import ArmTuning
from reglab.study.progress import Bars


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
    assert tasks == {"tuning none": (3, 3), "tuning l2": (2, 2)}
    final = console.export_text()
    assert "3/3" in final and "2/2" in final and "2/3" not in final
