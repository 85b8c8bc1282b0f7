"""Kill a real ``reglab run --jobs 2`` with SIGKILL mid-study, resume it, and get exactly the results
of an uninterrupted run: every arm x seed stored once, the same per-seed numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from studylib import complete_runs

from reglab.study import load_study, parse_study, run_protocol

REGLAB = str(Path(sys.executable).with_name("reglab"))
ARMS = {"none": {}, "dropout": {"dropout": 0.2}}
SEEDS = 6


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> None:
    out = tmp_path / "killed"
    # runs of about a second: all of digits, a 128-128 MLP, 4 epochs of batches of 16
    doc = tiny_study(name="resume", arms=ARMS, seeds=SEEDS, output=str(out))
    doc["data"] = {"name": "digits"}
    doc["model"] = {"hidden": [128, 128]}
    doc["train"] = {"epochs": 4, "batch_size": 16, "device": "cpu"}
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    db = out / "study.db"

    log = tmp_path / "reglab-run.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [REGLAB, "run", str(study_file), "--jobs", "2", "--no-progress"],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the driver and its workers, nothing else
        )
        try:
            deadline = time.monotonic() + 180
            while complete_runs(db) < 3:
                if proc.poll() is not None:
                    pytest.fail(f"reglab run ended before it was killed:\n{log.read_text()}")
                assert time.monotonic() < deadline, "no runs stored in time"
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # resume: only the missing runs are trained (a run being recorded at the kill is redone)
    spec = load_study(study_file)
    resumed = run_protocol(spec, progress=False, executor=executor)
    stored_at_kill = resumed.stats.skipped
    assert 3 <= stored_at_kill < 2 * SEEDS, "the kill came too late to interrupt anything"
    assert resumed.stats.new == 2 * SEEDS - stored_at_kill
    assert resumed.summary.n_runs == 2 * SEEDS and resumed.summary.failed_runs == []

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name="resume/runs", storage=f"sqlite:///{db}").get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert Counter((t.user_attrs["arm"], t.user_attrs["seed"]) for t in complete) == {
        (a, s): 1 for a in ARMS for s in range(SEEDS)
    }

    # the same study, uninterrupted, under another name and output
    reference = run_protocol(
        parse_study({**doc, "name": "resume-ref", "output": str(tmp_path / "reference")}),
        progress=False,
        executor=executor,
    )
    assert reference.stats.new == 2 * SEEDS
    for arm in ARMS:
        got, want = resumed.summary.arm(arm).metrics, reference.summary.arm(arm).metrics
        assert len(got["test_acc"].values) == SEEDS
        for metric in ("test_acc", "test_loss", "val_acc", "train_acc"):
            assert got[metric].values == want[metric].values, (arm, metric)
    cols = ["arm", "seed", "status", "train_loss", "val_loss", "test_loss", "test_acc", "epochs_run"]
    killed_finals = resumed.finals.sort_values(["arm", "seed"])[cols].reset_index(drop=True)
    ref_finals = reference.finals.sort_values(["arm", "seed"])[cols].reset_index(drop=True)
    assert killed_finals.equals(ref_finals)
    assert resumed.summary.ranking == reference.summary.ranking


def _study_with_relative_paths(root: Path) -> Path:
    """``root/proj/s.yaml`` reading ``sub/d.csv`` (relative to the study file), one tuned arm."""
    import numpy as np

    (root / "proj" / "sub").mkdir(parents=True)
    x = np.random.default_rng(0).normal(size=(120, 3))
    rows = "".join(f"{a:.4f},{b:.4f},{c:.4f},{int(a > 0)}\n" for a, b, c in x)
    (root / "proj" / "sub" / "d.csv").write_text("a,b,c,target\n" + rows, encoding="utf-8")
    study = root / "proj" / "s.yaml"
    study.write_text(
        "name: moved\ndata: {path: sub/d.csv, data_dir: sub}\nmodel: {hidden: [8]}\n"
        "train: {epochs: 1, batch_size: 32, device: cpu}\narms: {none: {}, l2: {l2: tune}}\n"
        "search: {sampler: random, trials: 2}\nseeds: 2\noutput: out\n",
        encoding="utf-8",
    )
    return study


def test_fingerprints_do_not_depend_on_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The study's and each arm's tuning fingerprint are the same from the study's folder, from
    ``/`` and from below it - and, from its own folder, what they were before paths were made
    portable (a stored study stays resumable)."""
    from reglab.study.definition.spec import relative_to_file
    from reglab.study.protocol.protocol import arm_fingerprint

    study = _study_with_relative_paths(tmp_path)
    keys = []
    for cwd in (study.parent, Path("/"), study.parent / "sub"):
        monkeypatch.chdir(cwd)
        spec = load_study(study)
        keys.append((spec.fingerprint(), spec.store_keys(spec), [arm_fingerprint(spec, a) for a in spec.arm_list]))
    assert keys[0] == keys[1] == keys[2]
    monkeypatch.chdir(study.parent)
    as_before = parse_study(relative_to_file(yaml.safe_load(study.read_text()), study.parent))  # no folder known
    assert as_before.fingerprint() == keys[0][0]
    assert [arm_fingerprint(as_before, a) for a in as_before.arm_list] == keys[0][2]


def test_a_study_with_absolute_paths_keeps_its_fingerprint(tmp_path: Path) -> None:
    study = _study_with_relative_paths(tmp_path)
    doc = yaml.safe_load(study.read_text())
    doc["data"] = {"path": str(study.parent / "sub" / "d.csv"), "data_dir": str(study.parent / "sub")}
    study.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert load_study(study).fingerprint() == parse_study(doc).fingerprint()


def test_a_study_resumes_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the study's folder, then ``reglab run /path/to/s.yaml`` from ``/``: resumed, with
    nothing tuned or trained again (it was refused: "run with a different configuration")."""
    from reglab.study.execution.executors import InProcessExecutor

    study = _study_with_relative_paths(tmp_path)
    monkeypatch.chdir(study.parent)
    first = run_protocol(load_study(study), progress=False, executor=InProcessExecutor())
    assert first.stats.new == 4
    monkeypatch.chdir("/")
    again = run_protocol(load_study(study), progress=False, executor=InProcessExecutor())
    assert (again.stats.new, again.stats.skipped) == (0, 4)
    assert again.table().equals(first.table())


def test_a_study_stored_before_fingerprints_ignored_the_directory_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study run by an older reglab from another directory than its file's (as the README's
    ``bin/reglab run examples/...`` does) stored fingerprints of its paths as written relative to
    that directory: from the same directory it resumes - trials and runs kept, keys updated - and
    from then on from anywhere."""
    from reglab.study.definition.spec import StudySpec
    from reglab.study.execution.executors import InProcessExecutor

    study = _study_with_relative_paths(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the study's folder: the old and new keys differ
    spec = load_study(study)
    assert spec.fingerprint() != spec.located(None).fingerprint()
    with monkeypatch.context() as old:  # an older reglab: the dump as it is, paths relative to the cwd
        old.setattr(StudySpec, "portable", lambda self, config: config.model_dump(mode="json"))
        first = run_protocol(load_study(study), progress=False, executor=InProcessExecutor())
    assert first.stats.new == 4
    again = run_protocol(load_study(study), progress=False, executor=InProcessExecutor())
    assert (again.stats.new, again.stats.skipped) == (0, 4)
    assert again.table().equals(first.table())
    monkeypatch.chdir("/")
    moved = run_protocol(load_study(study), progress=False, executor=InProcessExecutor())
    assert (moved.stats.new, moved.stats.skipped) == (0, 4)
