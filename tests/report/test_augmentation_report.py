"""The report's Augmentation section on a real study: the adaptive augmentation probability per
epoch (from runs.csv) and the generative arm's VAE samples and cost (from summary.json)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reglab.report import build_report
from reglab.report.data import load_output
from reglab.report.results_sections import augment_p_data, sample_grid_data
from reglab.report.view import ReportView

ARMS = {
    "none": {},
    "adaptive": {"adaptive_augment": {"target": 0.0, "ramp_epochs": 2}},
    "generative": {"generative_augment": {"ratio": 0.5, "vae_epochs": 2, "hidden": 32}},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reglab.study import parse_study, run_protocol

    root = tmp_path_factory.mktemp("augmentation-report")
    spec = parse_study(
        {
            "name": "report-augmentation",
            "data": {"name": "digits", "n_train": 200},
            "model": {"hidden": [32]},
            "train": {"epochs": 4},
            "arms": ARMS,
            "seeds": 2,
            "output": str(root / "out"),
        }
    )
    return run_protocol(spec, progress=False).output_dir


def test_summary_keeps_the_vae_facts_only_for_the_generative_arm(study: Path) -> None:
    s = json.loads((study / "summary.json").read_text(encoding="utf-8"))
    assert "generated" not in s["arms"]["none"] and "generated" not in s["arms"]["adaptive"]
    g = s["arms"]["generative"]["generated"]
    assert g["n_runs"] == 2 and g["vae_epochs"] == 2 and g["vae_seconds"] > 0 and g["seed"] == 0
    images = np.frombuffer(base64.b64decode(g["b64"]), dtype=np.uint8).reshape(g["shape"])
    assert images.shape == (10, 8, 1, 8, 8) and images.max() > images.min()


def test_the_section_shows_p_per_epoch_and_the_samples(study: Path) -> None:
    path = build_report(study)
    html = path.read_text(encoding="utf-8")
    assert 'data-section="augmentation"' in html
    assert 'data-figure="augment_p"' in html and 'data-figure="vae_samples"' in html
    assert "VAE: 2 epochs" in html
    view = ReportView(load_output(study))
    p = augment_p_data(view)
    assert [arm for arm, _ in p] == ["adaptive"]  # the only arm with adaptive augmentation
    runs = pd.read_csv(study / "runs.csv")
    want = runs[runs["arm"] == "adaptive"].groupby("epoch")["adaptive_augment_p"].mean()
    assert np.array_equal(p[0][1].mean, want.to_numpy()) and ((want >= 0) & (want <= 1)).all()
    grids, table = sample_grid_data(view)
    assert [g.arm for g in grids] == [r["arm"] for r in table] == ["generative"]


def test_a_study_without_them_has_no_augmentation_section(study: Path, tmp_path: Path) -> None:
    s = json.loads((study / "summary.json").read_text(encoding="utf-8"))
    del s["arms"]["generative"]["generated"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    html = build_report(out).read_text(encoding="utf-8")
    assert 'data-section="augmentation"' not in html
