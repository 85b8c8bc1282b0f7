"""Runs that fail with an exception are first-class (issue 12, failure 4), an arm without a completed
run is never "baseline" and an arm without regularization is never told to lower it (failure 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from reglab.errors import ConfigError
from reglab.study import parse_study, run_protocol
from reglab.study.results.outcome import RunOutcome, RunStatus
from reglab.study.results.results import summarize
from reglab.study.results.storage import RunRecord

ROOT = Path(__file__).resolve().parents[2]
BN_FAILS = "Expected more than 1 value per channel"


def _bn_study(tiny_study: Callable[..., dict[str, Any]], out: Path) -> dict[str, Any]:
    """200 training examples in batches of 199: batch norm meets a last batch of one sample and raises."""
    return tiny_study(
        name="bn-fails",
        train={"epochs": 2, "batch_size": 199, "device": "cpu"},
        arms={"bn": {"batch_norm": True}, "none": {}},
        seeds=2,
        output=str(out),
    )


def test_failed_runs_are_reported_everywhere_and_exit_3(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], write_yaml: Callable[..., Path]
) -> None:
    out = tmp_path / "out"
    study = write_yaml(_bn_study(tiny_study, out))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    cmd = [sys.executable, "-c", "from reglab.cli import main; main()", "run", str(study), "--jobs", "1"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 3, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    for seed in (0, 1):
        assert f"failed: bn seed {seed}: ValueError: {BN_FAILS}" in p.stdout
    assert "2 runs failed" in p.stdout
    bn_row = next(line for line in p.stdout.splitlines() if line.startswith("bn "))  # the verdict table's row
    assert "no completed runs" in bn_row and "baseline" not in bn_row
    # every output is written, and each holds the failures
    summary = json.loads((out / "summary.json").read_text())
    failed = [(f["arm"], f["seed"], f["status"]) for f in summary["failed_runs"]]
    assert failed == [("bn", 0, "failed"), ("bn", 1, "failed")]
    assert all(f["reason"].startswith(f"ValueError: {BN_FAILS}") for f in summary["failed_runs"])
    assert summary["arms"]["bn"]["n_failed"] == 2 and summary["arms"]["bn"]["n_completed"] == 0
    assert summary["n_runs"] == 2  # the completed ones
    finals = pd.read_csv(out / "finals.csv")
    bn = finals[finals.arm == "bn"]
    assert list(bn.status) == ["failed", "failed"] and bn.reason.str.contains(BN_FAILS).all()
    assert "\nnone,0,completed,,2," in (out / "finals.csv").read_text()  # epochs_run stays a whole number
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs[runs.arm == "bn"].status) == ["failed", "failed"]
    report = (out / "report.html").read_text()
    assert BN_FAILS in report and "no completed runs" in report


def test_the_api_returns_the_failures(tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any) -> None:
    spec = parse_study(_bn_study(tiny_study, tmp_path / "out"))
    res = run_protocol(spec, executor=executor, progress=False)
    assert [(f.arm, f.seed) for f in res.failed] == [("bn", 0), ("bn", 1)]
    assert all(f.reason is not None and f.reason.startswith("ValueError") for f in res.failed)
    table = res.table()
    assert table.loc["bn", "verdict"] == "no completed runs"
    assert table.loc["bn", "n_failed"] == 2 and table.loc["bn", "n"] == 0
    assert table.loc["none", "n_failed"] == 0 and table.loc["none", "n"] == 2


@pytest.mark.parametrize("field", ["seeds", "train.seed", "data.split_seed", "search.seed"])
def test_seeds_are_bounded(tiny_study: Callable[..., dict[str, Any]], field: str) -> None:
    doc = tiny_study()
    if field == "seeds":
        doc["seeds"] = [2**64]
    else:
        section, key = field.split(".")
        doc.setdefault(section, {})[key] = 2**32
        if section == "search":
            doc["search"].update(trials=1, space={"lr": {"low": 0.01, "high": 0.1}})
    with pytest.raises(ConfigError, match="2147483647") as err:
        parse_study(doc)
    assert "\n" not in str(err.value)
    doc = tiny_study(seeds=[0, 2**31 - 1])
    assert parse_study(doc).seed_list == [0, 2**31 - 1]


def _record(arm: str, seed: int, status: RunStatus, **final: float) -> RunRecord:
    return RunRecord(arm, seed, RunOutcome(status=status, final=final, reason=None), 0)


def _finals(train: float, val: float) -> dict[str, float]:
    return {"train_acc": train, "val_acc": val, "test_acc": val, "gap": train - val, "test_loss": 1.0}


def test_an_all_diverged_baseline_is_not_labelled_baseline(tiny_study: Callable[..., dict[str, Any]]) -> None:
    spec = parse_study(tiny_study(seeds=2))
    records = {("none", s): _record("none", s, RunStatus.DIVERGED) for s in (0, 1)}
    records |= {("l2", s): _record("l2", s, RunStatus.COMPLETED, **_finals(0.9, 0.85)) for s in (0, 1)}
    table = summarize(spec, records).table()
    assert table.loc["none", "verdict"] == "no completed runs"
    assert table.loc["l2", "verdict"] != "no completed runs"  # it has runs; only the comparison is missing


def test_an_unregularized_arm_is_not_over_regularized(tiny_study: Callable[..., dict[str, Any]]) -> None:
    """A huge learning rate collapses training accuracy: high bias, and no advice to lower a
    regularization the arm does not have; a regularized arm with the same numbers is over-regularized."""
    spec = parse_study(tiny_study(seeds=2, arms={"none": {}, "hugelr": {"lr": 20.0}, "l2": {"l2": 1.0}}))
    records = {("none", s): _record("none", s, RunStatus.COMPLETED, **_finals(0.99, 0.95)) for s in (0, 1)}
    for arm in ("hugelr", "l2"):
        records |= {(arm, s): _record(arm, s, RunStatus.COMPLETED, **_finals(0.10, 0.10)) for s in (0, 1)}
    summary = summarize(spec, records)
    d = summary.arm("hugelr").diagnosis
    assert d is not None and d.label == "high bias"
    assert "reduce regularization" not in d.recommendation and "lower the regularization" not in d.recommendation
    assert "learning rate" in d.recommendation
    l2 = summary.arm("l2").diagnosis
    assert l2 is not None and l2.label == "over-regularized"


# A model that ends its run from the inside after two epochs of training (192 examples in batches of
# 32: 6 training batches an epoch); the pre-flight check runs it in eval mode and is not affected.
EXITING_NET = """
import os, sys
from torch import nn

class Net(nn.Module):
    def __init__(self, in_features, n_classes, how="none"):
        super().__init__()
        if how == "sys.exit(3)":
            sys.exit(3)  # in the pre-flight check
        self.how, self.calls = how, 0
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, n_classes))

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 2 * 6 + 1:
                if self.how == "sys.exit":
                    sys.exit(0)
                if self.how == "keyboard":
                    raise KeyboardInterrupt("raised by the model")
        if self.how == "os._exit" and not self.training:
            os._exit(1)  # in the pre-flight check
        return self.body(x)
"""


def _exiting_study(tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], arms: dict[str, Any]) -> Path:
    (tmp_path / "exiting.py").write_text(EXITING_NET, encoding="utf-8")
    doc = tiny_study(
        name="exits",
        data={"name": "digits", "n_train": 192},
        model={"class_path": "exiting:Net"},
        train={"epochs": 3, "batch_size": 32, "device": "cpu"},
        arms={"ok": {}, **{a: {"init_args": {"how": how}} for a, how in arms.items()}},
        seeds=2,
        output=str(tmp_path / "out"),
    )
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return study


def _reglab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "reglab.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


@pytest.mark.slow
def test_a_model_that_exits_or_interrupts_fails_only_its_runs(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]]
) -> None:
    """Issue 21, failure 1: ``sys.exit(0)`` in a model's forward ended the whole study with exit code
    0, printing and storing nothing. Now each BaseException the user's code raises fails its run (in
    the worker processes, with the epochs it trained), and the study finishes with exit code 3."""
    study = _exiting_study(tmp_path, tiny_study, {"exits": "sys.exit", "interrupts": "keyboard"})
    p = _reglab(tmp_path, "run", str(study), "--jobs", "2", "--no-progress")
    text = p.stdout[-3000:] + p.stderr[-3000:]
    assert p.returncode == 3, text
    assert "Traceback" not in p.stderr, text
    for seed in (0, 1):
        assert f"failed: exits seed {seed} after 2 epochs: SystemExit: 0" in p.stdout, text
        assert f"failed: interrupts seed {seed} after 2 epochs: KeyboardInterrupt: raised by the model" in p.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    failed = {(f["arm"], f["seed"]): (f["status"], f["epoch"]) for f in summary["failed_runs"]}
    assert failed == {(a, s): ("failed", 2) for a in ("exits", "interrupts") for s in (0, 1)}  # epoch: not null
    assert summary["arms"]["ok"]["n_completed"] == 2
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(runs[runs.arm == "exits"].epoch) == [1, 1, 2, 2]  # the epochs they trained


def test_a_run_that_fails_before_its_first_epoch_ends_at_epoch_0(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> None:
    """Issue 21: failed runs stored ``epoch: null``; one that trained no epoch stores 0."""
    res = run_protocol(parse_study(_bn_study(tiny_study, tmp_path / "out")), executor=executor, progress=False)
    assert [(f.arm, f.epoch) for f in res.failed] == [("bn", 0), ("bn", 0)]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [f["epoch"] for f in summary["failed_runs"]] == [0, 0]


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("os._exit", "crashed its process (exit code 1) while it was built and run on one batch"),
        ("sys.exit(3)", "failed: SystemExit: 3"),
    ],
)
def test_validate_names_the_model_that_ends_its_process(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], how: str, says: str
) -> None:
    """Issue 21, failure 1: a model that crashed its process in the pre-flight check made
    ``reglab validate`` (and ``run``) exit 1 silently; now they name the arm and model, exit 2 and
    leave nothing behind."""
    study = _exiting_study(tmp_path, tiny_study, {"crashes": how})
    for command in ("validate", "run"):
        p = _reglab(tmp_path, command, str(study), *(["--no-progress"] if command == "run" else []))
        assert p.returncode == 2, p.stdout[-3000:] + p.stderr[-3000:]
        assert p.stderr.startswith(f"error: arms.crashes: model exiting:Net(how={how!r}) {says}"), p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "out").exists()


def test_a_model_module_that_exits_while_imported_is_one_error(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``sys.exit`` at the top of the model's module ended ``validate`` and ``run`` with its
    code, silently; now it is the study's one-line error (exit 2)."""
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(5)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"importing 'exits_on_import' failed: SystemExit: 5$"):
        parse_study(tiny_study(model={"class_path": "exits_on_import:Net"}))
