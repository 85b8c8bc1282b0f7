"""Keep the winner: ``save_models`` stores each confirmation run's evaluated model as safetensors,
``reglab export`` writes an arm's models with their configs and a loading example, and the loaded
model reproduces the run's stored test results exactly - without unpickling anything."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reglab.cli import main
from reglab.errors import ConfigError, ReglabError
from reglab.regularizers.ensembles import SoftmaxEnsemble
from reglab.study import parse_study, run_protocol
from reglab.study.execution.executors import InProcessExecutor
from reglab.study.execution.worker import execute_run
from reglab.study.results.export import export_models, load_model, load_run_data, loading_example
from reglab.study.results.outcome import PackedArray, RunOutcome, RunStatus
from reglab.study.results.saved_models import (
    FinishedModels,
    finish_models,
    model_path,
    models_dir,
    read_header,
    save_model,
    saved_files,
)
from reglab.study.results.storage import RunRecord
from reglab.training.metrics import evaluate

Doc = Callable[..., dict[str, Any]]


def _files(out: Path) -> dict[tuple[str, int], Path]:
    return saved_files(out / "models")


def _readme_code(folder: Path) -> str:
    text = (folder / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match is not None, text
    return match.group(1)


def _run_readme(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute the export's loading example in its folder, as a user pasting it would."""
    code = _readme_code(folder)
    assert len(code.strip().splitlines()) == 5
    monkeypatch.chdir(folder)
    scope: dict[str, Any] = {}
    exec(compile(code, str(folder / "README.md"), "exec"), scope)
    return scope


def _final(results: Any, arm: str, seed: int, metric: str) -> float:
    f = results.finals
    return float(f[(f["arm"] == arm) & (f["seed"] == seed)][metric].iloc[0])


def test_all_saves_one_file_per_arm_and_seed_from_worker_processes_and_export_reproduces_each_run(
    tmp_path: Path, tiny_study: Doc, executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    spec = parse_study(tiny_study(name="keep", seeds=2, output=str(out), save_models="all"))
    results = run_protocol(spec, progress=False, executor=executor)  # two spawned worker processes write
    files = _files(out)
    assert set(files) == {(a, s) for a in ("none", "l2") for s in (0, 1)}
    assert results.stats.models == FinishedModels(kept=4, removed=0, missing=0, complete=True)
    assert not [p for p in (out / "models").rglob(".*")]  # no temporary file left

    for arm in ("none", "l2"):
        exported = export_models(out, arm=arm, to=tmp_path / "export" / arm)
        assert [f.name for f in exported.files] == ["seed0.safetensors", "seed1.safetensors"]
        assert exported.best == (arm == results.summary.ranking[0])
        scope = _run_readme(exported.folder, monkeypatch)
        assert scope["accuracy"] == _final(results, arm, 0, "test_acc")  # exactly the stored number
        for seed, f in enumerate(exported.files):
            model, cfg = load_model(f), read_header(f).config
            assert cfg == spec.arm(arm).run_config(seed)
            assert (exported.folder / f"seed{seed}.yaml").read_text().count("l2:") == 1
            x, y = load_run_data(f).test.read()
            loss, acc, _ = evaluate(model, x, y, cfg.train.eval_batch_size)
            assert acc == _final(results, arm, seed, "test_acc")
            assert loss == _final(results, arm, seed, "test_loss")


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_norm": True, "dropout": 0.3},  # buffers (running statistics) and a train-only layer
        {"swa": {"start": 0.5}, "batch_norm": True},  # the average, batch-norm statistics recomputed
        {"snapshot": {"cycles": 2}},  # the whole ensemble
        {"early_stopping": {"patience": 1, "restore_best": True}},  # the restored best epoch
    ],
    ids=["batch_norm+dropout", "swa", "snapshot", "early_stopping"],
)
def test_the_saved_model_is_the_evaluated_one_its_test_probabilities_match_exactly(
    tmp_path: Path, tiny_study: Doc, overrides: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    doc = tiny_study(name="evaluated", seeds=[3], output=str(out), save_models="all", arms={"arm": overrides})
    doc["train"]["epochs"] = 4
    ex = InProcessExecutor(record=True)
    run_protocol(parse_study(doc), progress=False, executor=ex)
    [(_, outcome)] = ex.payloads
    assert outcome.test_probs is not None
    path = _files(out)[("arm", 3)]
    model = load_model(path)
    if "batch_norm" in overrides:
        assert any(k.endswith("running_mean") for k in model.state_dict())
    assert isinstance(model, SoftmaxEnsemble) == ("snapshot" in overrides)
    x, y = load_run_data(path).test.read()
    _, _, probs = evaluate(model, x, y, 512, probs=True)
    assert probs is not None
    again = PackedArray.pack(probs.numpy(), "float16")
    assert np.array_equal(again.unpack(), outcome.test_probs.unpack())
    assert model.training is False and not any(p.requires_grad for p in model.parameters())


def test_best_keeps_only_the_best_arm_and_export_defaults_to_it(
    tmp_path: Path, tiny_study: Doc, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    arms = {"none": {}, "strong_l2": {"l2": 0.5}, "dropout": {"dropout": 0.2}}
    spec = parse_study(tiny_study(name="best", seeds=2, arms=arms, output=str(out), save_models="best"))
    results = run_protocol(spec, progress=False, executor=InProcessExecutor())
    best = results.summary.ranking[0]
    assert {a for a, _ in _files(out)} == {best}
    assert set(_files(out)) == {(best, 0), (best, 1)}
    assert results.stats.models is not None and results.stats.models.removed == 4
    assert sorted(p.name for p in (out / "models").iterdir()) == [best]  # emptied arm folders removed

    with pytest.raises(SystemExit) as e:
        main(["export", str(out)])
    assert e.value.code == 0
    assert f"best arm {best!r}" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "export" / best).iterdir()) == [
        "README.md",
        "seed0.safetensors",
        "seed0.yaml",
        "seed1.safetensors",
        "seed1.yaml",
    ]
    other = next(a for a in arms if a != best)
    with pytest.raises(SystemExit) as e:
        main(["export", str(out), "--arm", other])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"arm {other!r} has no saved models" in err and "save_models: all" in err


def test_resume_neither_retrains_nor_rewrites_nor_loses_files(tmp_path: Path, tiny_study: Doc) -> None:
    out = tmp_path / "out"
    spec = parse_study(tiny_study(name="resume-models", seeds=2, output=str(out), save_models="all"))
    run_protocol(spec, progress=False, executor=InProcessExecutor())
    before = {k: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for k, p in _files(out).items()}
    leftover = out / "models" / "l2" / ".seed0.safetensors.999.dead"  # a killed run's temporary file
    leftover.write_bytes(b"half a file")

    again = run_protocol(spec, progress=False, executor=InProcessExecutor(record=True))
    assert again.stats.new == 0 and again.stats.skipped == 4
    after = {k: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for k, p in _files(out).items()}
    assert after == before
    assert not leftover.exists()
    assert (
        sorted(p.name for p in (out / "models").rglob("*") if p.is_file())
        == ["seed0.safetensors"] * 2 + ["seed1.safetensors"] * 2
    )


def _done(arm: str, seed: int) -> RunRecord:
    return RunRecord(arm, seed, RunOutcome(status=RunStatus.COMPLETED), 0)


def test_nothing_is_removed_while_runs_are_missing_and_stale_files_go_when_complete(
    tmp_path: Path, tiny_study: Doc
) -> None:
    out = tmp_path / "out"
    spec = parse_study(tiny_study(name="partial", seeds=2, output=str(out), save_models="best"))
    folder = models_dir(spec)
    assert folder is not None
    for arm in ("none", "l2"):  # every arm's files, as while the study is still running
        for seed in (0, 1):
            execute_run(spec.arm(arm).run_config(seed), save_to=str(model_path(folder, arm, seed)))
    records = {k: _done(*k) for k in [("none", 0), ("l2", 0), ("l2", 1)]}  # ("none", 1) is not done yet
    state = finish_models(spec, records, ["l2", "none"])
    assert state == FinishedModels(kept=4, removed=0, missing=0, complete=False)
    assert len(_files(out)) == 4  # a resumed study may still find "none" the best: its files stay

    # the study now has another l2 (e.g. re-tuned): once every run is done, the old l2 files go
    arms = {"none": {}, "l2": {"l2": 0.1}}
    changed = parse_study(tiny_study(name="partial", seeds=2, output=str(out), save_models="all", arms=arms))
    records[("none", 1)] = _done("none", 1)
    state = finish_models(changed, records, ["l2", "none"])
    assert set(_files(out)) == {("none", 0), ("none", 1)}
    assert state == FinishedModels(kept=2, removed=2, missing=2, complete=True)


def test_export_skips_a_file_of_other_settings(tmp_path: Path, tiny_study: Doc) -> None:
    out = tmp_path / "out"
    spec = parse_study(tiny_study(name="stale", seeds=2, output=str(out), save_models="all"))
    run_protocol(spec, progress=False, executor=InProcessExecutor())
    files = _files(out)
    files[("l2", 1)].write_bytes(files[("l2", 0)].read_bytes())  # seed 1's file now holds seed 0's run
    exported = export_models(out, arm="l2")
    assert [f.name for f in exported.files] == ["seed0.safetensors"]
    assert len(exported.skipped) == 1 and "models/l2/seed1.safetensors" in exported.skipped[0]


def test_loading_never_unpickles(
    tmp_path: Path, tiny_cfg: Any, tiny_digits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reglab.training.engine import fit

    cfg = tiny_cfg.override({"batch_norm": True})
    result = fit(cfg, tiny_digits, keep_model=True)
    path = save_model(result.model, tmp_path / "m.safetensors", cfg, tiny_digits.input_shape, tiny_digits.n_classes)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was used")

    real_torch_load = torch.load

    def torch_load(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is not True:
            raise AssertionError("torch.load without weights_only=True")
        return real_torch_load(*args, **kwargs)

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", torch_load)
    model = load_model(path)
    x, y = tiny_digits.test.read()
    assert evaluate(model, x, y, 512)[1] == result.final["test_acc"]
    assert not path.read_bytes().startswith(b"\x80")  # not a pickle stream


def test_a_failed_write_leaves_no_file(tmp_path: Path, tiny_cfg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    net = torch.nn.Linear(64, 10)
    target = tmp_path / "models" / "m.safetensors"

    def killed(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt  # the process is stopped between writing and moving into place

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(net, target, tiny_cfg, (64,), 10)
    assert list((tmp_path / "models").iterdir()) == []


def test_train_save_writes_a_loadable_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    target = tmp_path / "one" / "model.safetensors"
    args = ["train", "--epochs", "2", "--n-train", "100", "--hidden", "16", "--device", "cpu", "--json"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--save", str(target)])
    assert e.value.code == 0
    final = json.loads(capsys.readouterr().out)["final"]
    head = read_header(target)
    assert head.final == final and head.config.data.n_train == 100
    x, y = load_run_data(target).test.read()
    assert evaluate(load_model(target), x, y, 512)[1] == final["test_acc"]


def test_loading_example_is_five_lines_and_covers_other_tasks() -> None:
    assert len(loading_example("seed0.safetensors", {"test_acc": 0.5}).splitlines()) == 5
    assert len(loading_example("seed0.safetensors", {"test_rmse": 0.5}).splitlines()) == 5


# -- bad input: one line, exit 2 --------------------------------------------------------------------


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_export_of_a_folder_without_a_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(["export", str(tmp_path)], capsys)
    assert "no study results here" in err and "reglab run" in err
    assert not (tmp_path / "export").exists()


def test_export_of_a_study_without_models_and_of_an_unknown_arm(
    tmp_path: Path, tiny_study: Doc, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    run_protocol(parse_study(tiny_study(name="nomodels", seeds=1, output=str(out))), executor=InProcessExecutor())
    assert not (out / "models").exists()  # save_models: none is the default
    err = _cli_error(["export", str(out)], capsys)
    assert "save_models: none" in err and "save_models: best" in err and "--new" in err
    err = _cli_error(["export", str(out), "--arm", "l3"], capsys)
    assert "'l3'" in err and "arms: none, l2" in err
    assert not (out / "export").exists()


def test_a_file_that_is_not_a_reglab_model(tmp_path: Path) -> None:
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(ReglabError, match="not a readable safetensors file"):
        load_model(bad)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(bad))
    with pytest.raises(ReglabError, match="not a model saved by reglab"):
        load_model(bad)
    with pytest.raises(ReglabError, match="no such model file"):
        load_model(tmp_path / "missing.safetensors")


def test_save_models_takes_only_none_best_all(tiny_study: Doc) -> None:
    with pytest.raises(ConfigError, match="save_models"):
        parse_study(tiny_study(save_models="winner"))


@pytest.mark.parametrize("mode", ["local", "worker-sqlite"])
def test_a_tuned_study_saves_confirmation_models_only_in_every_mode(mode: str, tmp_path: Path, tiny_study: Doc) -> None:
    from reglab.study.protocol.protocol import work

    out = tmp_path / mode
    doc = tiny_study(name="tuned", seeds=2, output=str(out), save_models="best")
    doc["arms"] = {"none": {}, "l2": {"l2": "tune"}}
    doc["search"] = {"sampler": "random", "trials": 2}
    spec = parse_study(doc)
    ex = InProcessExecutor(record=True)
    if mode == "local":
        res = run_protocol(spec, executor=ex, progress=False)
    else:
        out.mkdir()
        res = work(spec, spec.storage_url(), executor=ex, say=lambda line: None, heartbeat=0.5)
    assert all(t.save_to is None for t in ex.submitted if "/trial" in t.key)
    runs = [t for t in ex.submitted if "/seed" in t.key]
    assert len(runs) == 4 and all(t.save_to and Path(t.save_to).is_absolute() for t in runs)
    best = res.summary.ranking[0]
    assert set(_files(out)) == {(best, 0), (best, 1)}
    tuned = read_header(_files(out)[(best, 0)]).config
    assert tuned == res.spec.arm(best).run_config(0)  # the confirmed (tuned) configuration
