"""The user's own data through the Python API and study files (issue 11): ``fit(cfg, data=...)``,
``run_protocol(spec, data=...)`` (written once as a content-addressed .npz that workers read by
path), determinism, one test-split read per run, and bad data refused before anything is stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from reglab.cli import main
from reglab.config import RunConfig
from reglab.errors import DataError
from reglab.study import parse_study, run_protocol
from reglab.study.execution.executors import InProcessExecutor
from reglab.training.engine import fit

CFG = RunConfig().override({"hidden": [16], "epochs": 2, "batch_size": 32, "device": "cpu"})


def _data(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def test_fit_takes_arrays_dicts_and_datasets_deterministically() -> None:
    x, y = _data()
    a = fit(CFG, data=(x, y))
    b = fit(CFG, data=(torch.from_numpy(x), torch.from_numpy(y)))
    c = fit(CFG, data=torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)))
    assert a.status == "completed" and a.info["data_sizes"] == {"train": 163, "val": 29, "test": 48}
    assert a.history == [{**h, "time": a.history[i]["time"]} for i, h in enumerate(b.history)]
    assert a.final == b.final == c.final  # same seed, same data -> identical results
    d = fit(CFG, data={"train": (x[:200], y[:200]), "test": (x[200:], y[200:])})
    assert d.info["data_sizes"]["test"] == 40


def test_fit_refuses_bad_arrays() -> None:
    x, y = _data()
    with pytest.raises(DataError, match="240 rows but the targets have 239"):
        fit(CFG, data=(x, y[:-1]))


def _spec(tmp_path: Path, **extra: Any) -> Any:
    doc = {
        "name": "own",
        "model": {"hidden": [16]},
        "train": {"epochs": 2, "batch_size": 32, "device": "cpu"},
        "arms": {"none": {}, "l2": {"l2": 1e-3}},
        "seeds": 2,
        "output": str(tmp_path / "out"),
        **extra,
    }
    return parse_study(doc)


def test_run_protocol_with_arrays_writes_them_once_and_reads_them_by_path(tmp_path: Path) -> None:
    x, y = _data()
    ex = InProcessExecutor()
    res = run_protocol(_spec(tmp_path), data=(x, y), executor=ex, progress=False)
    files = list((tmp_path / "out" / "data").glob("*.npz"))
    assert len(files) == 1
    resolved = yaml.safe_load((tmp_path / "out" / "config.resolved.yaml").read_text())
    assert str(files[0]) in yaml.safe_dump(resolved)
    table = res.table()
    assert len(table) == 2
    # the worker's cached splits: one test read per run (each run gets a fresh guard)
    from reglab.config import DataConfig

    cached = [ex.cache.peek(DataConfig.model_validate({"name": f"npz:{files[0]}", "split_seed": s})) for s in (0, 1)]
    assert all(c is not None and c.test.reads == 1 for c in cached)
    # the same data again: resumed, nothing retrained; the fingerprint follows the content
    again = run_protocol(_spec(tmp_path), data=(x.copy(), y.copy()), executor=InProcessExecutor(), progress=False)
    assert again.table().equals(table)
    x[0, 0] += 1.0
    from reglab.errors import ConfigError

    with pytest.raises(ConfigError, match="new"):
        run_protocol(_spec(tmp_path), data=(x, y), executor=InProcessExecutor(), progress=False)


def test_run_protocol_refuses_bad_data_before_storing_anything(tmp_path: Path) -> None:
    x, y = _data()
    with pytest.raises(DataError, match="single class"):
        run_protocol(_spec(tmp_path), data=(x, np.zeros_like(y)), executor=InProcessExecutor(), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"path": "missing.csv"}, "file not found"),
        ({"path": "t.csv", "target": "price"}, "no 'price' column"),
        ({"path": "one.csv"}, "single class"),
        ({"class_path": "no_such_mod_q:load"}, "cannot import 'no_such_mod_q'"),
    ],
)
def test_cli_bad_data_one_line_exit_2_nothing_stored(
    data: dict[str, Any],
    match: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("a,b,target\n1,2,0\n3,4,1\n5,6,0\n")
    Path("one.csv").write_text("a,b,target\n1,2,0\n3,4,0\n5,6,0\n")
    doc = {"name": "bad", "data": data, "train": {"epochs": 1, "device": "cpu"}, "arms": {"none": {}}, "seeds": 1}
    Path("s.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SystemExit) as e:
        main(["run", "s.yaml", "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not Path("reglab-runs").exists()


def test_study_file_with_a_csv_target_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_yaml: Callable[..., Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    x, y = _data(120)
    rows = ["f0,f1,colour,kind"] + [
        f"{a:.5f},{b:.5f},{['red', 'blue'][i % 2]},{'yes' if t else 'no'}"
        for i, (a, b, t) in enumerate(zip(x[:, 0], x[:, 1], y, strict=True))
    ]
    Path("d.csv").write_text("\n".join(rows) + "\n")
    spec = parse_study(
        {
            "name": "tab",
            "data": {"path": "d.csv", "target": "kind"},
            "model": {"hidden": [8]},
            "train": {"epochs": 2, "device": "cpu"},
            "arms": {"none": {}},
            "seeds": 1,
        }
    )
    assert spec.data.name == "csv:d.csv"
    res = run_protocol(spec, executor=InProcessExecutor(), progress=False)
    assert len(res.table()) == 1


def test_spawned_workers_read_the_arrays_by_path(tmp_path: Path, executor: Any) -> None:
    """Worker processes get a config naming the .npz, not the arrays; results equal in-process ones."""
    x, y = _data()
    spawned = run_protocol(_spec(tmp_path / "a"), data=(x, y), executor=executor, progress=False)
    local = run_protocol(_spec(tmp_path / "b"), data=(x, y), executor=InProcessExecutor(), progress=False)
    cols = ["test_acc_mean", "test_acc_ci_low"]
    assert spawned.table()[cols].equals(local.table()[cols])
