"""The study's reference error (issue 21): classical models fitted on the runs' own splits (never the
test split), carried by the baseline's runs from their workers, stored with them and reused on
resume; near what reglab's own networks reach on validation; none for image data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reglab.data import load_data
from reglab.study import load_study, parse_study, run_protocol
from reglab.study.execution.executors import InProcessExecutor
from reglab.study.execution.population_executor import PopulationExecutor
from reglab.study.protocol.protocol import make_task
from reglab.study.results.outcome import RunStatus
from reglab.study.results.reference import estimate
from reglab.study.results.storage import RunStore
from reglab.training.engine import fit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _split(example: str, arm: str, seed: int = 0) -> tuple[Any, Any]:
    spec = load_study(EXAMPLES / example)
    cfg = spec.arm(arm).run_config(seed).override({"device": "cpu"})
    return cfg, load_data(cfg.data)


def test_on_diabetes_the_classical_reference_is_near_the_networks_validation_error() -> None:
    """Ridge regression on seed 0's split reaches about what the example's best arm (early stopping)
    reaches on the same validation split, both far above 0: the attainable 1 − R² is about 0.6."""
    cfg, data = _split("diabetes_regression.yaml", "early_stopping")
    reads = data.test.reads
    t0 = time.perf_counter()
    found = estimate(data)
    took = time.perf_counter() - t0
    assert found is not None and set(found["errors"]) == {"ridge", "hist_gradient_boosting"}
    assert found["n_train"] == len(data.y_train) and found["n_val"] == len(data.y_val)
    assert 0 < found["seconds"] <= took and data.test.reads == reads  # the test split is never read
    reference = min(found["errors"].values())
    mlp = 1 - fit(cfg, data).final["val_r2"]
    assert 0.3 < reference < 0.9 and reference <= mlp + 0.1, (reference, mlp)


def test_on_breast_cancer_the_classical_reference_is_near_the_networks_validation_error() -> None:
    cfg, data = _split("breast_cancer_auc.yaml", "none")
    found = estimate(data)
    assert found is not None and set(found["errors"]) == {"logistic_regression", "hist_gradient_boosting"}
    reference = min(found["errors"].values())
    mlp = 1 - fit(cfg, data).final["val_acc"]
    assert 0 <= reference <= mlp + 0.05, (reference, mlp)


def test_image_data_has_no_classical_reference() -> None:
    _, data = _split("digits-quick.yaml", "none")
    assert data.image and estimate(data) is None


def _tiny_regression(out: Path, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "tiny-ref",
        "data": {"name": "diabetes"},
        "model": {"hidden": [16]},
        "train": {"optimizer": "adam", "lr": 0.01, "epochs": 3, "device": "cpu"},
        "arms": {"none": {}, "l2": {"l2": 1.0e-3}},
        "seeds": 2,
        "output": str(out),
    }
    return {**doc, **changes}


def _infos(doc: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    spec = parse_study(doc)
    store = RunStore(spec.storage_url(), spec.name, spec.fingerprint())
    return {key: rec.outcome.info for key, rec in store.done().items()}


def test_the_baseline_runs_carry_the_reference_and_a_resume_reuses_it(
    tmp_path: Path, executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _tiny_regression(tmp_path / "out")
    first = run_protocol(parse_study(doc), progress=False, executor=executor).summary
    ref = first.reference_error
    assert (
        ref is not None and ref.source == "classical model" and set(ref.models) == {"ridge", "hist_gradient_boosting"}
    )
    assert ref.value == min(ref.models.values()) and ref.seconds is not None and ref.seconds > 0
    assert "mean over 2 seeds" in ref.how and "1 − R²" in ref.how
    infos = _infos(doc)
    assert all(("reference" in info) == (arm == "none") for (arm, _), info in infos.items())  # the baseline's only
    assert all(first.arm(a).n_params == 11 * 16 + 16 + 1 for a in first.arms)  # 10 features -> 16 -> 1

    def refit(data: Any) -> None:
        raise AssertionError("the reference was fitted again")

    monkeypatch.setattr("reglab.study.results.reference.estimate", refit)
    again = run_protocol(parse_study(doc), progress=False, executor=executor)
    assert again.stats.new == 0 and again.summary.reference_error == ref
    report = (again.output_dir / "summary.json").read_text(encoding="utf-8")
    assert '"reference_error"' in report and '"source": "classical model"' in report


def test_a_study_that_sets_its_reference_fits_no_classical_model(tmp_path: Path, executor: Any) -> None:
    doc = _tiny_regression(tmp_path / "out", diagnosis={"reference_error": 0.5}, seeds=1)
    s = run_protocol(parse_study(doc), progress=False, executor=executor).summary
    assert s.reference_error is not None and s.reference_error.source == "user" and s.reference_error.value == 0.5
    assert not any("reference" in info for info in _infos(doc).values())
    for a in s.arms:
        d = s.arm(a).diagnosis
        assert d is not None and ("reference 0.500" in d.reason or d.label == "over-regularized")


def test_a_population_member_carries_the_reference_too(tmp_path: Path) -> None:
    """Populations train classification: the baseline's member of one (synthetic tabular classes)
    carries the reference, as its single run would."""
    doc = _tiny_regression(tmp_path / "out", seeds=1, data={"name": "synthetic"})
    doc["train"] = {**doc["train"], "population": "auto", "epochs": 2}
    spec = parse_study(doc)
    todo = [make_task(spec.arm(a), 0, reference=a == "none") for a in spec.arms]
    ex = PopulationExecutor(InProcessExecutor(), size=8)
    for t in todo:
        ex.submit(t)
    out: dict[str, Any] = {}
    while len(out) < len(todo):
        _, finished = ex.poll(0.1)
        out.update({t.key: o for t, o in finished})
    ex.close()
    [population] = ex.populations
    assert {m.key for m in population.members} == set(out) == {"none/seed0", "l2/seed0"}
    assert all(o.status is RunStatus.COMPLETED for o in out.values())
    assert "reference" not in out["l2/seed0"].info
    assert set(out["none/seed0"].info["reference"]["errors"]) == {"logistic_regression", "hist_gradient_boosting"}
