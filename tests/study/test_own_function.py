"""Studies whose runs are the user's own training function (issue 22): ``objective.function`` in the
study file and ``run_protocol(spec, objective=run)``. The functions live in own_fns.py (plain
functions that train nothing, so these tests are fast); the example's real PyTorch loop on digits
runs end to end through the CLI with worker processes."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import reglab
from reglab.errors import ConfigError, ReglabError
from reglab.study import parse_study, run_protocol
from reglab.study.execution.executors import InProcessExecutor, execute_task
from reglab.study.execution.worker import DataCache
from reglab.study.protocol.protocol import make_task
from reglab.study.results.outcome import RunStatus

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent  # own_fns.py: importable here and in worker processes (PYTHONPATH)
EXAMPLE = ROOT / "examples" / "own_training"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)]), "COLUMNS": "200"}


def _reglab(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "reglab.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)


def _doc(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "fn",
        "data": {"name": "digits", "n_train": 200},
        "objective": {"function": "own_fns:scripted"},
        "settings": {"epochs": 4},
        "arms": {"low": {"x": 0.6}, "high": {"x": 0.9}},
        "seeds": 3,
        "output": str(tmp_path / "out"),
    }
    doc.update(changes)
    return doc


def _run(doc: dict[str, Any], **kw: Any) -> Any:
    return run_protocol(
        parse_study(doc), progress=False, executor=kw.pop("executor", None) or InProcessExecutor(), **kw
    )


# -- the example, end to end through the CLI -------------------------------------------------------


def test_the_example_runs_through_the_cli_with_processes_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", "study.yaml", "--output", str(out), "--jobs", "2", "--no-progress"]
    args += ["--set", "seeds=3", "--set", "search.trials=3", "--set", "epochs=6"]  # epochs: settings.epochs
    res = _reglab(args, cwd=EXAMPLE)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_runs"] == summary["n_expected"] == 12 and not summary["failed_runs"]
    assert set(summary["arms"]) == {"none", "weight_decay", "dropout", "both"}
    for arm in summary["arms"].values():  # the function returns train_acc next to val_acc: diagnosed
        assert arm["n_completed"] == 3 and arm["diagnosis"]["label"]
        assert 0.5 < arm["metrics"]["test_acc"]["mean"] <= 1.0
    assert "notes" not in summary
    tuning = summary["tuning"]
    assert tuning["weight_decay"]["n_trials"] == tuning["dropout"]["n_trials"] == 3  # the same budget
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    settings = {a: v["settings"] for a, v in resolved["arms"].items()}
    assert 1e-5 <= settings["weight_decay"]["weight_decay"] <= 1e-2 and 0.1 <= settings["dropout"]["dropout"] <= 0.6
    assert settings["both"] == {
        "lr": 0.05,
        "epochs": 6,
        "hidden": 128,
        "batch_size": 32,
        "weight_decay": 1e-3,
        "dropout": 0.3,
    }
    # stored runs: the reported epochs are the history (curves), the returned metrics the finals
    import pandas as pd

    epochs, finals = pd.read_csv(out / "runs.csv"), pd.read_csv(out / "finals.csv")
    assert len(finals) == 12 and set(finals["status"]) == {"completed"}
    assert {"train_acc", "val_acc", "test_acc", "gap"} <= set(finals.columns) and (finals["epochs_run"] == 6).all()
    assert len(epochs) == 12 * 6 and sorted(set(epochs["epoch"])) == list(range(1, 7))
    assert {"train_loss", "val_acc"} <= set(epochs.columns)
    html = (out / "report.html").read_text()
    assert "own-training-digits" in html and "weight_decay" in html
    # resumed: nothing is trained again
    again = _reglab(args, cwd=EXAMPLE)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resumed: 12 runs already stored" in again.stdout


def test_failures_exit_3_with_the_reason_diverged_and_the_no_report_note(tmp_path: Path) -> None:
    """One study: an arm whose function raises (exit 3, the reason stored), one that returns NaN
    (diverged), one that never reports (a note); the others complete and the study finishes."""
    doc = _doc(
        tmp_path,
        arms={
            "ok": {"x": 0.8},
            "raises": {"x": 0.8, "raise_in": "confirm"},
            "nan": {"x": 0.8, "nan": True},
            "quiet": {"x": 0.8, "quiet": True},
            "tuned": {"x": {"low": 0.0, "high": 1.0}},  # val_acc = x at every epoch: the median pruner stops some
        },
        search={"sampler": "random", "trials": 10, "pruner": "median", "startup_trials": 2, "seed": 1},
    )
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc))
    res = _reglab(["run", str(study), "--jobs", "2"], cwd=tmp_path)
    assert res.returncode == 3, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "failed: raises seed 0: ValueError: boom in confirm at seed 0" in res.stdout
    assert "never called ctx.report" in res.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    failed = {(f["arm"], f["seed"]): (f["status"], f["reason"]) for f in summary["failed_runs"]}
    assert failed[("raises", 1)] == ("failed", "ValueError: boom in confirm at seed 1")
    assert {s for (a, _), (s, _) in failed.items() if a == "nan"} == {"diverged"}
    assert summary["arms"]["ok"]["n_completed"] == summary["arms"]["quiet"]["n_completed"] == 3
    assert any("never called ctx.report" in n for n in summary["notes"])
    assert "never called ctx.report" in (tmp_path / "out" / "report.html").read_text()
    tuning = summary["tuning"]["tuned"]  # pruning through ctx.report, with worker processes
    assert tuning["n_trials"] == 10 and tuning["n_pruned"] >= 1 and tuning["n_complete"] >= 2, tuning
    assert summary["arms"]["tuned"]["n_completed"] == 3


def test_validate_checks_every_arm_against_the_declared_settings(tmp_path: Path) -> None:
    doc = _doc(
        tmp_path,
        objective={"function": "own_fns:declared", "settings": "own_fns:Settings"},
        settings={"lr": 0.1, "epocs": 3},
        arms={
            "none": {},
            "wd": {"weight_decy": 1e-3},
            "dropout": {"dropout": 1.5},
            "tuned": {"dropuot": {"low": 0.1, "high": 0.5}},
        },
        search={"sampler": "random", "trials": 2},
    )
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = _reglab(["validate", str(study)], cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    assert any("settings.epocs: not a setting of own_fns:Settings; did you mean epochs?" in ln for ln in lines), lines
    assert any("arms.wd: weight_decy: not a setting" in ln and "did you mean weight_decay?" in ln for ln in lines)
    assert any("arms.tuned: dropuot:" in ln and "did you mean dropout?" in ln for ln in lines)
    # the shared setting's problem is said once, not once per arm
    assert sum("epocs" in ln for ln in lines) == 1
    doc["settings"] = {"lr": 0.1}
    doc["arms"] = {"none": {}, "dropout": {"dropout": 1.5}}
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = _reglab(["validate", str(study)], cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "arms.dropout: dropout: Input should be less than 1" in res.stderr, res.stderr


def test_run_checks_the_declared_settings_in_a_worker_and_never_imports_the_function_itself(tmp_path: Path) -> None:
    """``reglab run`` leaves the declaration check to a worker process (which imports the function
    anyway): the driver never imports the user's module (and its torch), a bad setting still stops
    the study with "did you mean" and exit 2 before anything is written, a good one runs."""
    log = tmp_path / "imports.log"
    doc = _doc(
        tmp_path,
        objective={"function": "own_fns:declared", "settings": "own_fns:Settings"},
        settings={"lr": 0.1, "epochs": 2},
        arms={"none": {}, "wd": {"weight_decy": 1e-3}},
        seeds=2,
    )
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**_env(), "REGLAB_TEST_IMPORT_LOG": str(log)}
    cmd = [sys.executable, "-m", "reglab.cli", "run", str(study), "--jobs", "1", "--no-progress"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 2, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "arms.wd: weight_decy: not a setting of own_fns:Settings; did you mean weight_decay?" in res.stderr
    assert not (tmp_path / "out").exists()  # nothing written
    assert log.read_text().split() == ["worker"]  # checked in a worker process only
    doc["arms"] = {"none": {}, "wd": {"weight_decay": 1e-3}}
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    log.unlink()
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_runs"] == 4
    assert set(log.read_text().split()) == {"worker"}  # the check and the runs: never the driver


def test_keyword_and_annotation_declarations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:  # lr is a keyword-only parameter without a default
        parse_study(
            _doc(tmp_path, objective={"function": "own_fns:keywords"}, settings={}, arms={"a": {"mixup_alpah": 0.2}})
        )
    text = str(err.value)
    assert "mixup_alpah: not a setting of the keyword arguments of own_fns:keywords; did you mean mixup_alpha?" in text
    assert "lr: required by the keyword arguments of own_fns:keywords" in text
    doc = _doc(
        tmp_path,
        objective={"function": "own_fns:keywords"},
        settings={"lr": 0.5},
        arms={"a": {}, "m": {"mixup_alpha": 0.2}},
    )
    results = _run(doc)  # the keyword arguments are passed
    assert results.summary.metric("m", "val_acc").mean == pytest.approx(0.3)
    doc = _doc(tmp_path / "b", objective={"function": "own_fns:annotated"}, settings={}, arms={"a": {"width": 10}})
    assert _run(doc).summary.metric("a", "val_acc").mean == pytest.approx(0.1)  # an instance of the dataclass
    with pytest.raises(ConfigError, match="did you mean width"):
        parse_study(_doc(tmp_path, objective={"function": "own_fns:annotated"}, settings={}, arms={"a": {"widht": 3}}))
    doc = _doc(tmp_path / "c", objective={"function": "own_fns:Trainer", "init_args": {"scale": 0.5}}, settings={})
    assert _run(doc).summary.metric("high", "val_acc").mean == pytest.approx(0.45)  # a class, built with init_args


def test_undeclared_settings_pass_through_and_bad_references_are_one_line(tmp_path: Path) -> None:
    parse_study(_doc(tmp_path, arms={"a": {"anything": {"nested": [1, 2]}, "x": 0.3}}))  # nothing declared
    assert parse_study(_doc(tmp_path, objective="own_fns:scripted")).objective is not None  # the short form
    for objective, message in [
        ({"function": "own_fns:nope"}, "objective.function: module 'own_fns' has no 'nope'"),
        ({"function": "no_such_module_xyz:run"}, "cannot import 'no_such_module_xyz'"),
        ({"function": "own_fns:Settings"}, "must take (settings, ctx)"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_study(_doc(tmp_path, objective=objective))
        assert message in str(err.value) and len(str(err.value).splitlines()) == 1, str(err.value)
    with pytest.raises(ConfigError, match=r"search\.cv: not available with objective\.function"):
        parse_study(_doc(tmp_path, search={"sampler": "random", "trials": 2, "cv": 3}))
    with pytest.raises(ConfigError, match=r"settings: only for a study with objective\.function"):
        parse_study({k: v for k, v in _doc(tmp_path).items() if k != "objective"})


# -- the protocol's guarantees ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("return", "returned test_acc from a tuning run"),
        ("report", "ctx.report(test_acc) while tuning"),
        ("read", "the test split is locked while tuning"),
    ],
)
def test_a_tuning_run_that_touches_the_test_split_stops_the_study(tmp_path: Path, mode: str, said: str) -> None:
    doc = _doc(
        tmp_path,
        arms={"a": {"x": {"low": 0.1, "high": 0.9}, "test_in_tuning": mode}},
        search={"sampler": "random", "trials": 2},
    )
    with pytest.raises(ReglabError) as err:
        _run(doc)
    assert said in str(err.value), str(err.value)
    assert "select on validation" in str(err.value) or "stays untouched during tuning" in str(err.value)


def test_confirmation_must_return_the_compare_metric(tmp_path: Path) -> None:
    doc = _doc(tmp_path, objective={"function": "own_fns:scripted"}, metric={"select": "val_acc", "compare": "test_f1"})
    with pytest.raises(ReglabError, match=r"returned no test_f1 \(metric\.compare"):
        _run(doc)


def test_report_drives_pruning(tmp_path: Path) -> None:
    """val_acc = x every epoch: the median pruner stops trials below the median after the startup
    trials, at the next epoch (the in-process executor waits for the driver at every report)."""
    doc = _doc(
        tmp_path,
        settings={"epochs": 10},
        arms={"a": {"x": {"low": 0.0, "high": 1.0}}},
        search={"sampler": "random", "trials": 10, "pruner": "median", "startup_trials": 2, "seed": 1},
        seeds=1,
    )
    results = _run(doc)
    tuning = results.summary.tuning["a"]
    assert tuning.n_pruned >= 1 and tuning.n_complete >= 2, tuning
    import optuna

    trials = optuna.load_study(
        study_name="fn/tune/a", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    ).get_trials()
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.user_attrs["epochs_spent"] < 10 for t in pruned)
    assert all(len(t.intermediate_values) == 10 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_no_diagnosis_without_a_train_metric_and_the_report_says_why(tmp_path: Path) -> None:
    doc = _doc(tmp_path, arms={"low": {"x": 0.6, "no_train": True}, "high": {"x": 0.9, "no_train": True}})
    results = _run(doc)
    assert all(a.diagnosis is None for a in results.summary.arms.values())
    assert any("no bias/variance diagnosis" in n and "train_acc" in n for n in results.summary.notes)
    from reglab.report import build_report

    assert "no bias/variance diagnosis" in Path(build_report(tmp_path / "out")).read_text()


def test_ctx_data_is_reglabs_split_and_the_same_seed_gives_the_same_result(tmp_path: Path) -> None:
    spec = parse_study(_doc(tmp_path, objective={"function": "own_fns:uses_data"}, arms={"a": {}}))
    cache = DataCache()

    def once(seed: int) -> dict[str, float]:
        out = execute_task(make_task(spec.arm("a"), seed), lambda rec, key=None: False, cache)
        assert out.status is RunStatus.COMPLETED, out.reason
        return out.final

    assert once(0) == once(0) and once(0) != once(1)
    assert cache.peek(spec.arm("a").run_config(0).data).test.reads == 1  # the confirmation's one read


def test_ctx_data_hands_streamed_data_as_datasets_with_the_same_split(tmp_path: Path) -> None:
    """A folder larger than data.memory_budget_mb reaches the function as torch Datasets over the
    same split as in memory (same result), the test one behind the guard while tuning."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(45):
        (tmp_path / "imgs" / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        px = np.clip(rng.normal(60 + 70 * (i % 3), 20, (6, 6)), 0, 255).astype(np.uint8)
        Image.fromarray(px, "L").save(tmp_path / "imgs" / f"c{i % 3}" / f"{i:03d}.png")
    data = {"path": str(tmp_path / "imgs"), "split_seed": 2, "loader_workers": 0}
    finals = []
    for budget in (None, 0.001):
        doc = _doc(tmp_path, objective={"function": "own_fns:uses_data"}, arms={"a": {}})
        doc["data"] = {**data, **({"memory_budget_mb": budget} if budget else {})}
        spec = parse_study(doc)
        out = execute_task(make_task(spec.arm("a"), 0), lambda rec, key=None: False, DataCache())
        assert out.status is RunStatus.COMPLETED, out.reason
        finals.append(out.final)
        tuning = execute_task(
            make_task(spec.arm("a"), 0, trial=0, params={}), lambda rec, key=None: False, DataCache()
        )
        assert tuning.status is RunStatus.COMPLETED and "test_acc" not in tuning.final
    assert finals[0] == pytest.approx(finals[1], abs=1e-6) and 0.5 < finals[0]["test_acc"] <= 1.0
    peek = make_task(spec.arm("a"), 0, trial=1, params={})
    peek = dataclasses.replace(peek, function=dataclasses.replace(peek.function, settings={"peek_test": True}))
    locked = execute_task(peek, lambda rec, key=None: False, DataCache())
    assert locked.status is RunStatus.ERROR and "the test split is locked while tuning" in (locked.reason or "")


def test_the_example_function_is_deterministic_per_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    doc = yaml.safe_load((EXAMPLE / "study.yaml").read_text())
    doc["settings"]["epochs"] = 3
    spec = parse_study(doc)
    from reglab.study.protocol.protocol import run_once

    runs = [run_once(spec, "both", s) for s in (0, 0, 1)]
    assert all(r.status is RunStatus.COMPLETED for r in runs), [r.reason for r in runs]
    assert runs[0].final == runs[1].final and runs[0].history == runs[1].history
    assert runs[0].final != runs[2].final


def test_a_function_defined_here_runs_in_this_process_only(tmp_path: Path) -> None:
    def local(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
        return {"train_acc": 0.9, "val_acc": settings["x"], "test_acc": settings["x"]}

    doc = yaml.safe_load(yaml.safe_dump(_doc(tmp_path)))
    spec = parse_study(doc)
    results = run_protocol(spec, objective=local, progress=False, jobs=1)  # in this process
    assert results.summary.metric("high", "test_acc").mean == pytest.approx(0.9)
    with pytest.raises(ConfigError, match=r"defined inside a function.*define it at the top level of a module"):
        run_protocol(spec, objective=local, progress=False, jobs=2)


def test_worker_processes_and_a_crashed_process_is_retried(tmp_path: Path, executor: Any) -> None:
    """The session's two worker processes (LocalExecutor) import the function by name; a run whose
    process dies is started again."""
    marker = tmp_path / "crashed"
    doc = _doc(tmp_path, arms={"a": {"x": 0.7}, "b": {"x": 0.8, "crash_marker": str(marker)}}, seeds=2)
    from reglab.study.execution.executors import LocalExecutor

    ex = LocalExecutor(2)
    try:
        results = run_protocol(parse_study(doc), progress=False, executor=ex)
    finally:
        ex.close()
    assert marker.exists() and not results.failed
    assert results.summary.arm("b").n_completed == 2
    assert [r.attempts for r in results.summary.retried_runs] == [2]


def test_shared_storage_worker_runs_a_function_study(tmp_path: Path) -> None:
    from reglab.study.protocol.protocol import work

    doc = _doc(tmp_path, search={"sampler": "random", "trials": 2}, arms={"a": {"x": {"low": 0.5, "high": 0.9}}})
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    results = work(parse_study(doc), url, jobs=1, executor=InProcessExecutor(), say=lambda _: None)
    assert results.summary.arm("a").n_completed == 3


def test_seed_everything_seeds_python_numpy_and_torch() -> None:
    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    reglab.seed_everything(7)
    a = draw()
    reglab.seed_everything(7)
    assert draw() == a
    reglab.seed_everything(8)
    assert draw() != a


def test_a_study_without_objective_keeps_its_fingerprint(tmp_path: Path) -> None:
    """The fingerprint's payload as it was before function studies: stored studies resume."""
    import hashlib

    spec = parse_study(
        {
            "name": "s",
            "arms": {"none": {}, "l2": {"l2": 1e-3}},
            "seeds": 2,
            "search": {"sampler": "random", "trials": 2},
        }
    )
    s = spec.search
    assert s is not None
    payload = {
        "arms": {a.name: a.config.model_dump(mode="json") for a in spec.arm_list},
        "seeds": spec.seed_list,
        "spaces": {a.name: a.space_dump() for a in spec.arm_list},
        "search": s.model_dump(exclude=None),
    }
    assert spec.fingerprint() == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    assert "objective" not in spec.resolved()


def test_the_time_budget_stops_a_running_function_at_its_next_report(tmp_path: Path) -> None:
    import optuna

    from reglab.study.protocol.protocol import DEADLINE_REASON, tune_study

    doc = _doc(
        tmp_path,
        settings={"epochs": 10**7},  # far longer than the budget: only the stop ends it
        arms={"a": {"x": {"low": 0.1, "high": 0.9}}},
        search={"sampler": "random", "timeout": 1.0},
    )
    tune_study(parse_study(doc), executor=InProcessExecutor())
    trials = optuna.load_study(
        study_name="fn/tune/a", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    ).get_trials()
    assert len(trials) == 1 and trials[0].state == optuna.trial.TrialState.PRUNED
    assert trials[0].user_attrs["reason"] == DEADLINE_REASON and 1 <= trials[0].user_attrs["epochs_spent"] < 10**7


def test_mlflow_logs_the_settings_each_run_received(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow keeps a SQLite store's artifacts in ./mlruns
    import mlflow

    from reglab.study.results.tracking import log_study

    _run(_doc(tmp_path, seeds=2))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = log_study(tmp_path / "out", uri)
    assert done.logged == 4
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["fn"], filter_string="params.`settings.x` = '0.9'")
    assert len(runs) == 2 and set(runs["params.settings.epochs"]) == {"4"}


def test_sys_exit_in_the_function_fails_the_run_not_the_worker(tmp_path: Path) -> None:
    spec = parse_study(_doc(tmp_path, objective={"function": "own_fns:exits"}, arms={"a": {}}))
    from reglab.study.protocol.protocol import run_once

    out = run_once(spec, "a", 0)
    assert out.status is RunStatus.FAILED and out.reason == "SystemExit: 3"


def test_a_regularization_path_sweeps_one_of_the_functions_settings(tmp_path: Path) -> None:
    from reglab.study.protocol.path import run_path

    spec = parse_study(_doc(tmp_path, arms={"base": {"x": 0.5}}))
    results, rows = run_path(spec, "x", [0.2, 0.6], seeds=2, jobs=1, progress=False)
    assert [(r["value"], r["seed"], r["status"]) for r in rows] == [
        (0.2, 0, "completed"),
        (0.2, 1, "completed"),
        (0.6, 0, "completed"),
        (0.6, 1, "completed"),
    ]
    assert results.summary.metric("x=0.6", "val_acc").mean == pytest.approx(0.6, abs=0.05)
    with pytest.raises(ConfigError, match="did you mean"):
        run_path(
            parse_study(
                _doc(
                    tmp_path,
                    objective={"function": "own_fns:declared", "settings": "own_fns:Settings"},
                    settings={},
                    arms={"a": {}},
                )
            ),
            "dropuot",
            [0.1, 0.2],
        )


def test_function_study_reads_a_study_file_for_a_function_defined_here(tmp_path: Path) -> None:
    from reglab.study.definition.function_study import function_study

    def notebook_run(settings: dict[str, Any], ctx: Any) -> dict[str, float]:
        out = {"train_acc": 1.0, "val_acc": settings["strength"]}
        return {**out, "test_acc": settings["strength"]} if ctx.may_use_test else out

    doc = _doc(tmp_path, arms={"weak": {"strength": 0.3}, "strong": {"strength": 0.7}})
    del doc["objective"]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    spec = function_study(tmp_path / "study.yaml", notebook_run)
    results = run_protocol(spec, progress=False)  # in this process: workers could not import it
    assert results.summary.metric("strong", "test_acc").mean == pytest.approx(0.7)


def test_a_regression_function_is_diagnosed_from_r2_or_told_to_return_it(tmp_path: Path) -> None:
    metric = {"select": "val_rmse", "compare": "test_rmse"}
    doc = _doc(tmp_path, objective={"function": "own_fns:regression"}, metric=metric, data={"name": "diabetes"})
    doc["arms"] = {"plain": {"r2": False}, "more": {"r2": False, "shift": 0.1}}
    results = _run(doc)
    assert any("return train_r2" in n for n in results.summary.notes)
    doc = _doc(tmp_path / "b", objective={"function": "own_fns:regression"}, metric=metric, data={"name": "diabetes"})
    doc["arms"] = {"plain": {"r2": True}, "more": {"r2": True, "shift": 0.1}}
    results = _run(doc)
    assert all(a.diagnosis is not None for a in results.summary.arms.values())
    assert not any("diagnosis" in n for n in results.summary.notes)
