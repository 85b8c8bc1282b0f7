"""Adaptive seeds end to end on a tiny digits study: an obviously worse arm stops at ``min``, an
open one runs on to ``max``, the runs are the fixed study's runs (seed i is the same run), a fixed
study's stored runs are continued, and a resumed adaptive study re-runs nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reglab.study import parse_study, run_protocol

ARMS = {"none": {}, "crippled": {"lr": 1.0e-6}, "dropout": {"dropout": 0.1}}
ADAPTIVE = {"min": 5, "max": 10, "step": 5}


def _values(out: Path, name: str) -> dict[tuple[str, int], float]:
    import optuna

    study = optuna.load_study(study_name=f"{name}/runs", storage=f"sqlite:///{out / 'study.db'}")
    return {
        (t.user_attrs["arm"], int(t.user_attrs["seed"])): float(t.user_attrs["final"]["test_acc"])
        for t in study.get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.COMPLETE
    }


def test_adaptive_study_stops_decided_arms_and_shares_the_fixed_runs(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tiny_study(name="adaptive", arms=ARMS, seeds=ADAPTIVE, output=str(tmp_path / "a"))
    res = run_protocol(parse_study(doc), progress=False, executor=executor)
    s = res.summary
    crippled, dropout = s.arm("crippled").comparison, s.arm("dropout").comparison
    assert crippled is not None and dropout is not None
    assert crippled.sequential is not None and dropout.sequential is not None
    assert (crippled.verdict, crippled.sequential.decided_at, crippled.sequential.seeds_used) == ("worse", 5, 5)
    assert dropout.sequential.seeds_used == 10 and len(dropout.sequential.intervals) == 2
    assert s.arm("crippled").n_completed == 5 and s.arm("none").n_completed == 10
    assert s.adaptive is not None and s.adaptive.runs_used == 25 and s.adaptive.runs_saved == 5
    adaptive_runs = _values(tmp_path / "a", "adaptive")
    assert sorted(k for k in adaptive_runs if k[0] == "crippled") == [("crippled", i) for i in range(5)]
    assert res.stats.new == 25

    # the report: the design, each arm's verdict with the seeds it was decided at, the runs saved
    from reglab.report import build_report

    html = build_report(tmp_path / "a").read_text(encoding="utf-8")
    assert 'data-section="adaptive"' in html and "25 of 30 runs, 5 saved" in html
    assert "Lan-DeMets" in html and "<td>5</td>" in html
    assert "repeated confidence interval from the sequential design" in html  # not the naive t-test's
    md = build_report(tmp_path / "a", fmt="md").read_text(encoding="utf-8")
    assert "## Adaptive seeds" in md and "| crippled | worse | 5 | 5 |" in md and "p (sequential)" in md

    # the same study with fixed seeds: seed i is the same run
    fixed = run_protocol(
        parse_study(tiny_study(name="adaptive", arms=ARMS, seeds=5, output=str(tmp_path / "f"))),
        progress=False,
        executor=executor,
    )
    assert fixed.stats.new == 15
    fixed_runs = _values(tmp_path / "f", "adaptive")
    assert fixed_runs == {k: v for k, v in adaptive_runs.items() if k[1] < 5}

    # the fixed study extended to adaptive seeds (what an adaptive study interrupted after its
    # first round has stored): only the open arm and the baseline train seeds 5..9
    more = run_protocol(parse_study(doc | {"output": str(tmp_path / "f")}), progress=False, executor=executor)
    assert (more.stats.new, more.stats.skipped) == (10, 10)  # the open arm's and the baseline's first 5
    assert _values(tmp_path / "f", "adaptive") == adaptive_runs
    assert more.summary.arm("crippled").comparison == crippled

    # resumed once more: everything is stored, nothing is trained
    again = run_protocol(parse_study(doc | {"output": str(tmp_path / "f")}), progress=False, executor=executor)
    assert again.stats.new == 0
    assert again.summary.arm("dropout").comparison == dropout

    # reglab plan: seeds per arm for power 0.8, from this study as a pilot
    from studylib import cli

    capsys.readouterr()
    assert cli(["plan", str(tmp_path / "f"), "--delta", "0.02"]) == 0
    text = capsys.readouterr().out
    assert "seeds to detect 0.02 of test_acc against none with power 0.8" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith(("crippled", "dropout"))}
    assert rows["dropout"][1] == "10" and rows["crippled"][1] == "5" and rows["dropout"][-1].isdigit()
    assert cli(["plan", str(tmp_path / "f"), "--delta", "0"]) == 2


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ({"min": 1}, "seeds: min must be an integer in 3..10000 (got 1)"),
        ({"min": 20, "max": 10}, "seeds: min (20) must be <= max (10)"),
        ({"min": 5, "max": 40, "step": 0}, "seeds: step must be an integer in 1..10000 (got 0)"),
        ({"min": 5, "maxi": 40}, "seeds: maxi: unknown key; use min, max, step, equivalence, spending"),
        ({"equivalence": -0.1}, "seeds: equivalence must be a number > 0"),
        ({"spending": "linear"}, "seeds: spending must be pocock or obrien-fleming (got 'linear')"),
    ],
)
def test_bad_adaptive_seeds_are_one_line(
    seeds: dict[str, Any], message: str, tiny_study: Callable[..., dict[str, Any]]
) -> None:
    from reglab.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_study(tiny_study(seeds=seeds))
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and message in lines[0], str(err.value)


def adaptive_summary() -> Any:
    """Synthetic stored runs of an adaptive study: ``big`` is 5 pp better (decided at 5 seeds),
    ``same`` equals the baseline up to noise (open: runs to ``max``); 10 seeds stored for each."""
    import numpy as np

    from reglab.study.results.outcome import RunOutcome, RunStatus
    from reglab.study.results.results import summarize
    from reglab.study.results.storage import RunRecord

    rng = np.random.default_rng(0)
    effects = {"none": 0.0, "big": 0.05, "same": 0.0}
    spec = parse_study(
        {"name": "ad", "arms": {a: ({} if a == "none" else {"l2": 1e-4}) for a in effects}, "seeds": ADAPTIVE}
    )
    records = {}
    for a, e in effects.items():
        for s in range(10):
            test = 0.9 + e + 0.004 * s + float(rng.normal(0, 0.004))
            final = {"train_acc": 1.0, "val_acc": test, "test_acc": test, "test_loss": 0.3, "gap": 1.0 - test}
            records[(a, s)] = RunRecord(a, s, RunOutcome(status=RunStatus.COMPLETED, final=final), 0)
    return summarize(spec, records)


def test_the_terminal_shows_each_verdict_with_its_seed_count() -> None:
    from rich.console import Console

    from reglab.study.results.console import print_summary

    summary = adaptive_summary()
    console = Console(record=True, width=100, force_terminal=False)
    print_summary(summary, console)
    text = " ".join(console.export_text().split())
    assert "better at 5 seeds" in text and "open at 10 seeds" in text
    assert "adaptive seeds: 25 of 30 runs (5 saved against max 10)" in text
    assert "Lan-DeMets" in text and "p seq" in text
    assert summary.arm("big").n_completed == 5  # its statistics rest on the seeds it was decided at


def test_validate_refuses_bad_adaptive_seeds_in_one_line(
    tmp_path: Path,
    tiny_study: Callable[..., dict[str, Any]],
    write_yaml: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from studylib import cli

    path = write_yaml(tiny_study(seeds={"min": 1, "max": 20}))
    assert cli(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seeds must be" not in err[0] and "seeds: min must be an integer in 3..10000" in err[0]
    assert cli(["validate", str(write_yaml(tiny_study())), "--set", "seeds={min: 10, max: 5}"]) == 2
    assert "seeds: min (10) must be <= max (5)" in capsys.readouterr().err
    assert cli(["validate", str(write_yaml(tiny_study())), "--set", "seeds={min: 5, max: 20}"]) == 0
    assert "20 seeds at most" in capsys.readouterr().out


def test_plan_seeds_per_arm() -> None:
    from reglab.stats.sequential import plan_seeds

    rows = plan_seeds({"a": [0.01, 0.03, 0.02, 0.00, 0.04], "b": [0.0]}, delta=0.01)
    assert rows[0].n_pilot == 5 and rows[0].seeds is not None and rows[0].seeds > 10
    assert rows[1].seeds is None  # one pair: no standard deviation


def test_a_shared_storage_worker_runs_the_rounds(tmp_path: Path) -> None:
    """``reglab worker`` (``work``): the same rounds from the shared storage. ``own_fns.scripted``
    returns x + a seed's noise, so ``high`` is better than ``low`` by exactly 0.3 on every seed
    (decided at ``min``) and ``same`` equals it on every seed (open without a margin: runs to ``max``)."""
    from reglab.study.execution.executors import InProcessExecutor
    from reglab.study.protocol.protocol import work

    doc = {
        "name": "fn",
        "data": {"name": "digits", "n_train": 200},
        "objective": {"function": "own_fns:scripted"},
        "settings": {"epochs": 2},
        "arms": {"low": {"x": 0.6}, "high": {"x": 0.9}, "same": {"x": 0.6}},
        "seeds": {"min": 3, "max": 6, "step": 3},
        "output": str(tmp_path / "out"),
    }
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    said: list[str] = []
    res = work(parse_study(doc), url, jobs=1, executor=InProcessExecutor(), say=said.append)
    s = res.summary
    high, same = s.arm("high").comparison, s.arm("same").comparison
    assert high is not None and high.sequential is not None and same is not None and same.sequential is not None
    assert (high.verdict, high.sequential.decided_at) == ("better", 3)
    assert (same.verdict, same.sequential.seeds_used) == ("open", 6)
    assert (s.arm("high").n_completed, s.arm("low").n_completed, s.arm("same").n_completed) == (3, 6, 6)
    assert res.stats.new == 15
    again = work(parse_study(doc), url, jobs=1, executor=InProcessExecutor(), say=said.append)
    assert again.stats.new == 0


def test_populations_train_the_rounds(tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any) -> None:
    """With ``train.population: auto`` the runs of each round are trained as populations."""
    doc = tiny_study(name="pop", arms=ARMS, seeds={"min": 3, "max": 6, "step": 3}, output=str(tmp_path / "p"))
    doc["train"]["population"] = "auto"
    res = run_protocol(parse_study(doc), progress=False, executor=executor)
    c = res.summary.arm("crippled").comparison
    assert c is not None and c.sequential is not None and c.sequential.decided_at == 3
    assert res.summary.arm("none").n_completed == 6 and res.stats.new == 15
