"""The study file as a new user meets it: ``--set`` overrides of the document, every problem at
once (one line each), paths relative to the file, examples that run from anywhere, ``reglab init``
studies that run, and a wall time that adds up over resumed sessions."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from studylib import cli

from reglab.errors import ConfigError
from reglab.study.definition.spec import apply_sets, load_study
from reglab.study.results.outputs import SESSION_ATTR, study_wall_time

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_set_overrides_address_the_study_document(
    write_yaml: Callable[..., Path], tiny_study: Callable[..., dict[str, Any]]
) -> None:
    p = write_yaml(tiny_study())
    spec = load_study(p, ["train.epochs=5", "seeds=2", "arms.l2.l2=0.01", "dropout=0.1", "data.n_train=150"])
    assert spec.seed_list == [0, 1]
    assert spec.train.epochs == 5 and spec.data.n_train == 150
    assert spec.arm("l2").config.regularization.l2 == 0.01
    assert spec.arm("none").config.regularization.dropout == 0.1  # a setting's own name: its shared section
    assert load_study(p).train.epochs == 2  # the file itself is unchanged


def test_set_adds_an_arm_and_the_file_is_not_shared(tiny_study: Callable[..., dict[str, Any]]) -> None:
    doc = tiny_study()
    out, sets = apply_sets(doc, ["arms.dropout.dropout=0.3", "epochs=4"])
    assert out["arms"]["dropout"] == {"dropout": 0.3} and out["train"]["epochs"] == 4
    assert "dropout" not in doc["arms"] and doc["train"]["epochs"] == 2
    assert sets == {("arms", "dropout", "dropout"): "arms.dropout.dropout=0.3", ("train", "epochs"): "epochs=4"}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("trian.epochs=3", "--set trian.epochs: unknown key; did you mean train?"),
        ("epochs", "--set: expected KEY=VALUE, got 'epochs'"),
        ("data.n_train.x=1", "--set data.n_train.x: data.n_train is 200 in the study, not a mapping"),
        ("train.epochs=0", "(--set train.epochs=0): train.epochs: Input should be greater than or equal to 1"),
        ("arms.l2.l2=-1", "(--set arms.l2.l2=-1): arms.l2.regularization.l2: Input should be greater"),
        ("seeds=0", "(--set seeds=0): seeds: seed count must be in 1..10000"),
    ],
)
def test_set_errors_name_the_key(
    item: str, message: str, write_yaml: Callable[..., Path], tiny_study: Callable[..., dict[str, Any]]
) -> None:
    p = write_yaml(tiny_study())
    with pytest.raises(ConfigError) as info:
        load_study(p, [item])
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_run_takes_set(
    tmp_path: Path, write_yaml: Callable[..., Path], tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> None:
    from reglab.study import run_protocol

    p = write_yaml(tiny_study(output=str(tmp_path / "out")))
    assert cli(["validate", str(p), "--set", "seeds=2", "--set", "arms.dropout.dropout=0.2"]) == 0
    spec = load_study(p, ["seeds=1", "train.epochs=1"])
    results = run_protocol(spec, executor=executor, progress=False)
    assert results.summary.seeds == [0] and results.summary.n_runs == 2
    assert len(results.epochs.query("arm == 'none'")) == 1  # one epoch of one seed


def test_every_problem_of_a_study_file_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(
        "name: bad study\n"  # 1
        "data: {name: digits, n_train: -3}\n"  # 2
        "trian: {epochs: 2}\n"  # 3
        "arms:\n"
        "  none: {}\n"
        "  l2: {l2: -1}\n"  # 6
        "  drop: {dropuot: 0.3}\n"  # 7
        "seeds: 0\n",  # 8
        encoding="utf-8",
    )
    assert cli(["validate", str(p)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith(f"error: {p}:") for line in lines), lines
    found = {line.split(":")[2]: line for line in lines}  # line number -> message
    assert set(found) == {"1", "2", "3", "6", "7", "8"}, lines
    assert "name: use 1-64 letters" in found["1"]
    assert "data.n_train: Input should be greater than or equal to 10" in found["2"]
    assert "trian: unknown field; did you mean train?" in found["3"]
    assert "arms.l2.regularization.l2: Input should be greater than or equal to 0" in found["6"]
    assert "arms.drop.dropuot: unknown setting; did you mean dropout" in found["7"]
    assert "n_train" not in found["7"]  # a suggestion, not the list of every setting
    assert "seeds: seed count" in found["8"]


def test_paths_are_relative_to_the_study_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "studies" / "mine"
    folder.mkdir(parents=True)
    (folder / "t.csv").write_text("a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(60)))
    p = folder / "s.yaml"
    doc = {"name": "rel", "data": {"path": "t.csv", "data_dir": "../data"}, "output": "out", "arms": {"none": {}}}
    p.write_text(yaml.safe_dump(doc), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (tmp_path, elsewhere, folder):
        monkeypatch.chdir(cwd)
        spec = load_study(p)
        assert Path(spec.data.name.removeprefix("csv:")).resolve() == folder / "t.csv"
        assert Path(str(spec.data.data_dir)).resolve() == tmp_path / "studies" / "data"
        assert spec.output_dir().resolve() == folder / "out"
    monkeypatch.chdir(folder)
    assert load_study("s.yaml").output == "out"  # from its own folder: as written (same fingerprint)
    assert load_study(p, ["output=here"]).output == "here"  # --set values are the command line's: as given


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_examples_validate_from_any_directory(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load(example.read_text(encoding="utf-8"))
    for cwd in (ROOT, tmp_path):
        monkeypatch.chdir(cwd)
        assert cli(["validate", str(example.relative_to(ROOT) if cwd == ROOT else example)]) == 0
        assert "ok - " in capsys.readouterr().out
        data_dir = raw.get("data", {}).get("data_dir")
        if data_dir:
            spec = load_study(example)
            assert Path(spec.data.data_dir).resolve() == (example.parent / data_dir).resolve()
            if cwd == ROOT:  # from the repository root the value is what it was before paths became
                assert spec.data.data_dir == os.path.relpath(example.parent / data_dir)  # file-relative


def test_a_digits_example_exists() -> None:
    quick = load_study(ROOT / "examples" / "digits-quick.yaml")
    assert quick.data.name == "digits" and len(quick.arms) >= 2


@pytest.mark.slow
def test_digits_quick_example_runs_in_under_a_minute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert cli(["run", str(ROOT / "examples" / "digits-quick.yaml"), "--jobs", "2", "--no-progress"]) == 0
    assert time.perf_counter() - t0 < 60
    summary = json.loads((tmp_path / "reglab-runs" / "digits-quick" / "summary.json").read_text())
    assert summary["n_runs"] == summary["n_expected"] == 15


def test_init_study_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: Any) -> None:
    from reglab.study import run_protocol

    monkeypatch.chdir(tmp_path)
    assert cli(["init", "--output", "s.yaml"]) == 0
    spec = load_study("s.yaml", ["seeds=1", "epochs=1", "data.n_train=200", "hidden=[16]"])
    results = run_protocol(spec, executor=executor, progress=False)
    assert results.summary.n_runs == results.summary.n_expected == 4
    assert (tmp_path / "reglab-runs" / "s" / "summary.json").exists()


class _Study:
    """The part of an Optuna study that :func:`study_wall_time` uses."""

    def __init__(self) -> None:
        self.user_attrs: dict[str, Any] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


class _Store:
    def __init__(self) -> None:
        self.study = _Study()


def test_wall_time_adds_sessions_and_counts_overlap_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    store = _Store()
    now = time.time()
    store.study.user_attrs[f"{SESSION_ATTR}a"] = [now - 1000, now - 976.2]  # a first session of 23.8 s
    total = study_wall_time(store, 0.9)  # type: ignore[arg-type]  # the resume: 0.9 s more
    assert total == pytest.approx(24.7, abs=1e-3)
    store.study.user_attrs[f"{SESSION_ATTR}b"] = [now - 999, now - 980]  # a worker inside the first
    assert study_wall_time(store, 0.0) == pytest.approx(24.7, abs=1e-3)  # type: ignore[arg-type]


def test_resumed_study_accumulates_its_wall_time(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], executor: Any
) -> None:
    from reglab.study import parse_study, run_protocol

    spec = parse_study(tiny_study(output=str(tmp_path / "out"), seeds=1))
    first = run_protocol(spec, executor=executor, progress=False).summary.wall_time
    second = run_protocol(spec, executor=executor, progress=False).summary.wall_time
    assert first is not None and second is not None and second > first  # not replaced by the resume's time
    stored = json.loads((tmp_path / "out" / "summary.json").read_text())["wall_time"]
    assert stored == pytest.approx(second)
    import optuna

    from reglab.study.results.outputs import SESSION_ATTR

    def sessions() -> int:
        runs = optuna.load_study(study_name="tiny/runs", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
        return sum(1 for k in runs.user_attrs if k.startswith(SESSION_ATTR))

    assert sessions() == 2
    run_protocol(spec, executor=executor, progress=False, new=True)
    assert sessions() == 1  # --new starts the count again


def test_a_study_planning_more_runs_than_max_runs_is_refused_until_allowed(
    tmp_path: Path, write_yaml: Callable[..., Path], tiny_study: Callable[..., dict[str, Any]], capsys: Any
) -> None:
    """A study of thousands of arms (a typo in a generated file) started training at once; over
    ``max_runs`` (default 5,000 planned runs) validate and run refuse it with one line saying how
    to allow it, before any arm is built or anything written."""
    out = tmp_path / "out"
    p = write_yaml(tiny_study(arms={f"a{i}": {"l2": i * 1e-6} for i in range(1001)}, seeds=5, output=str(out)))
    for argv in (["validate", str(p)], ["run", str(p), "--no-progress"]):
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "the study plans 5,005 runs (1,001 arms x 5 seeds), more than max_runs" in err
        assert "(or --set max_runs=5005)" in err, err
    assert not out.exists()
    assert cli(["validate", str(p), "--set", "max_runs=5005"]) == 0
    tuned = tiny_study(arms={"none": {}, "l2": {"l2": "tune"}}, search={"trials": 5000, "sampler": "random"})
    with pytest.raises(ConfigError, match=r"plans 5,006 runs \(2 arms x 3 seeds \+ 5,000 tuning trials\)"):
        load_study(write_yaml(tuned))
    tuned["search"]["timeout"] = 60  # a time budget bounds the tuning: only the confirmation runs count
    assert load_study(write_yaml(tuned)).max_runs == 5000
