"""The example examples/own_model/ as CI runs it: the user's package and study file, run with the
CLI from that folder (so ``class_path: mynets:ResNetish`` is found in the current directory) on the
real Fashion-MNIST files, made cheap (smaller data, one epoch, one seed, one trial per arm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "own_model"


def test_the_example_study_is_valid_as_written() -> None:
    doc = yaml.safe_load((EXAMPLE / "study.yaml").read_text())
    assert doc["model"]["class_path"] == "mynets:ResNetish"
    assert set(doc["arms"]) == {"none", "l2", "dropout", "augmentation"} and doc["search"]["trials"] >= 1


@pytest.mark.realdata
def test_the_example_runs_from_its_folder(tmp_path: Path) -> None:
    data = (EXAMPLE / "../../../shared/data").resolve()
    if not (data / "fashion-mnist").is_dir():
        pytest.skip(f"{data / 'fashion-mnist'} not found: the example reads ../shared/data/fashion-mnist")
    doc = yaml.safe_load((EXAMPLE / "study.yaml").read_text())
    # the copy lives in tmp_path and paths of a study file are relative to its folder: the data's, absolute
    doc["data"].update(n_train=400, val_fraction=0.02, download=False, data_dir=str(data))
    doc["model"]["init_args"] = {"width": 8, "blocks": 1}
    doc["train"].update(epochs=1, batch_size=64)
    doc["search"]["trials"] = 1
    doc["seeds"] = 1
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "reglab.cli", "run", str(study), "--output", str(out), "--jobs", "2", "--no-progress"]
    res = subprocess.run(cmd, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_runs"] == summary["n_expected"] == 4
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    configs = {arm: a["config"] for arm, a in resolved["arms"].items()}
    assert {c["model"]["class_path"] for c in configs.values()} == {"mynets:ResNetish"}
    assert 0.1 <= configs["dropout"]["regularization"]["dropout"] <= 0.5
    assert configs["augmentation"]["regularization"]["augment"]["hflip"] is True
    assert (out / "report.html").exists()
