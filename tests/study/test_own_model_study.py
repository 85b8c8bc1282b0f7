"""Studies with the user's own model: arms that differ in (and tune) its constructor arguments,
identical results when run twice (in this process and in spawned worker processes, which import
the model by reference), ``run_protocol(spec, model=...)``, and refusal before anything is stored."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reglab.errors import ConfigError, ReglabError
from reglab.study import parse_study, run_protocol
from reglab.study.execution.executors import InProcessExecutor, LocalExecutor

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_model"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run from the example's folder, whose package ``mynets`` is then importable (the current
    directory is; sys.path is restored afterwards)."""
    monkeypatch.chdir(EXAMPLE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    if "" not in sys.path:  # `python -m pytest` puts the current directory first; xdist workers may not
        sys.path.insert(0, "")
    yield EXAMPLE


def own_study(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "own",
        "data": {"name": "digits", "n_train": 200},
        "model": {"class_path": "mynets:ResNetish", "init_args": {"width": 6, "blocks": 1}},
        "train": {"epochs": 2, "batch_size": 32, "device": "cpu", "lr": 0.1},
        "arms": {"none": {}, "l2": {"l2": 1.0e-3}, "dropout": {"dropout": 0.3}, "wide": {"init_args": {"width": 10}}},
        "seeds": 2,
        "output": str(tmp_path / "out"),
    }
    doc.update(changes)
    return doc


def finals(results: Any) -> pd.DataFrame:
    return results.finals.set_index(["arm", "seed"]).drop(columns=["wall_time"])


def test_arms_differ_in_the_constructor_and_run_identically_twice(in_example: Path, tmp_path: Path) -> None:
    spec = parse_study(own_study(tmp_path))
    assert spec.arm("wide").config.model.init_args == {"width": 10, "blocks": 1}
    first = run_protocol(spec, progress=False, executor=InProcessExecutor())
    again = run_protocol(
        parse_study(own_study(tmp_path, output=str(tmp_path / "again"))), progress=False, executor=InProcessExecutor()
    )
    assert first.stats.new == again.stats.new == 8
    pd.testing.assert_frame_equal(finals(first), finals(again))
    f = finals(first)
    assert f.loc[("wide", 0), "weight_l1"] > 1.2 * f.loc[("none", 0), "weight_l1"]  # 10 channels, not 6
    assert f.loc[("dropout", 0), "train_loss"] != f.loc[("none", 0), "train_loss"]
    resolved = (tmp_path / "out" / "config.resolved.yaml").read_text()
    assert "class_path: mynets:ResNetish" in resolved and "hidden" not in resolved


@pytest.mark.slow
def test_worker_processes_import_the_model_by_reference(in_example: Path, tmp_path: Path) -> None:
    """A spawned worker process gets "mynets:ResNetish" and imports it (from the current
    directory): the same results as in this process."""
    doc = own_study(tmp_path, arms={"none": {}, "dropout": {"dropout": 0.3}}, seeds=1)
    here = run_protocol(parse_study(doc), progress=False, executor=InProcessExecutor())
    doc["output"] = str(tmp_path / "spawned")
    spawned = run_protocol(parse_study(doc), progress=False, executor=LocalExecutor(1))
    assert spawned.stats.new == 2
    pd.testing.assert_frame_equal(finals(here), finals(spawned))


def test_an_init_arg_is_tuned_like_any_setting(in_example: Path, tmp_path: Path) -> None:
    arms = {"none": {}, "tuned": {"model": {"init_args": {"width": {"low": 4, "high": 12, "int": True}}}}}
    doc = own_study(tmp_path, arms=arms, seeds=1, search={"sampler": "random", "trials": 2})
    spec = parse_study(doc)
    assert list(spec.arm("tuned").space) == ["init_args.width"]
    ex = InProcessExecutor(record=True)
    res = run_protocol(spec, progress=False, executor=ex)
    widths = [t.config.model.init_args["width"] for t in ex.submitted if "/trial" in t.key]
    assert len(widths) == 2 and all(4 <= w <= 12 and isinstance(w, int) for w in widths)
    confirmed = res.spec.arm("tuned").config.model.init_args["width"]
    assert confirmed in widths and res.spec.arm("none").config.model.init_args["width"] == 6


def test_run_protocol_takes_the_model_by_reference(in_example: Path, tmp_path: Path) -> None:
    import mynets

    doc = own_study(tmp_path, model={"init_args": {}}, arms={"none": {}, "dropout": {"dropout": 0.2}}, seeds=1)
    doc.pop("model")
    res = run_protocol(parse_study(doc), model=mynets.make_net, progress=False, executor=InProcessExecutor())
    assert res.spec.arm("dropout").config.model.class_path == "mynets:make_net" and res.stats.new == 2
    for bad in (lambda **kw: mynets.make_net(**kw), "mynets:nothing"):
        with pytest.raises(ConfigError, match=r"run_protocol\(model=\.\.\.\): (a lambda|module 'mynets' has no)"):
            run_protocol(parse_study(own_study(tmp_path, name="bad")), model=bad, progress=False)
    assert not (tmp_path / "bad").exists()


def _refused(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        run_protocol(parse_study(doc), progress=False, executor=InProcessExecutor())
    assert "\n" not in str(err.value)
    assert not Path(doc["output"]).exists()  # nothing stored


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"arms": {"none": {}, "bn": {"batch_norm": True}}, "model": {"class_path": "mynets:make_net"}},
            r"arms\.bn: batch_norm: the model mynets:make_net has no 'batch_norm' parameter",
        ),
        (
            {"arms": {"t": {"model.init_args.depth": {"low": 1, "high": 3}}}, "search": {"trials": 1}},
            r"arms\.t \(init_args\.depth=1\.0\): model\.init_args\.depth: mynets:ResNetish has no parameter 'depth'",
        ),
        (
            {
                "arms": {"t": {"dropout": {"low": 0.1, "high": 0.5}}},
                "search": {"trials": 1},
                "model": {"class_path": "mynets:make_net", "init_args": {"width": 4}},
            },
            None,  # make_net takes dropout: fine
        ),
        (
            {"model": {"class_path": "mynets:ResNetish", "init_args": {"num_classes": 4}}},
            r"arms\.none: model: mynets:ResNetish returns \(2, 4\) for a batch of input shape \(2, 1, 8, 8\); "
            r"expected \(2, 10\)",
        ),
        (
            {
                "arms": {"none": {}, "w0": {"init_args": {"width": {"low": 0, "high": 4, "int": True}}}},
                "search": {"trials": 1},
            },
            r"arms\.w0 \(init_args\.width=0\): model: mynets:ResNetish fails on a batch of input shape "
            r"\(2, 1, 8, 8\): RuntimeError",
        ),
        (
            {"model": {"class_path": "nowhere_pkg.nets:Net"}},
            r"model\.class_path: cannot import 'nowhere_pkg\.nets' \(No module named 'nowhere_pkg'\)",
        ),
    ],
)
def test_bad_models_are_refused_before_anything_is_stored(
    in_example: Path, tmp_path: Path, changes: dict[str, Any], message: str | None
) -> None:
    doc = own_study(tmp_path, **changes)
    if message is None:
        parse_study(doc)
        return
    _refused(tmp_path, doc, message)


def test_the_cli_refuses_with_exit_2_and_stores_nothing(tmp_path: Path) -> None:
    pkg = tmp_path / "proj"
    pkg.mkdir()
    (pkg / "usernets_cli.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def make(width=8):
                return nn.Sequential(nn.Flatten(), nn.Linear(64, width))  # 8 outputs, 10 classes
            """
        )
    )
    arms = {"none": {}, "l2": {"l2": 1e-3}}
    doc = own_study(tmp_path, model={"class_path": "usernets_cli:make"}, arms=arms, output=str(tmp_path / "out"))
    import yaml

    (pkg / "study.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    for cmd in ("validate", "run"):
        res = subprocess.run(
            [sys.executable, "-m", "reglab.cli", cmd, "study.yaml"],
            cwd=pkg,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert res.returncode == 2, res.stderr[-2000:]
        assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
        assert "arms.none: model: usernets_cli:make returns (2, 8)" in res.stderr
    assert not (tmp_path / "out").exists()


def test_a_constructor_that_rejects_a_tuned_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "usernets_even.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def make(width=8, in_features=64, n_classes=10):
                if width % 2:
                    raise ValueError(f"width must be even, got {width}")
                layers = [nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, n_classes)]
                return nn.Sequential(*layers)
            """
        )
    )
    arms = {"none": {}, "t": {"init_args": {"width": {"choices": [4, 7]}}}}
    doc = own_study(tmp_path, model={"class_path": "usernets_even:make"}, arms=arms, search={"trials": 2})
    _refused(
        tmp_path,
        doc,
        r"arms\.t \(init_args\.width=7\): model usernets_even:make\(width=7\) failed: "
        r"ValueError: width must be even, got 7",
    )


@pytest.mark.slow
def test_the_readme_api_example_works_pasted_into_a_script(tmp_path: Path) -> None:
    """The README's run_protocol(spec, model=make_net) block, saved as run.py next to a nets.py,
    run as a script (two spawned worker processes)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("# run.py, next to nets.py", 1)[1].split("```", 1)[0]
    (tmp_path / "run.py").write_text("# run.py, next to nets.py" + block)
    (tmp_path / "nets.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def make_net(in_features, n_classes, width=64, dropout=0.0):
                return nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(width, n_classes))
            """
        )
    )
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "dropout" in res.stdout and "none" in res.stdout
    resolved = (tmp_path / "reglab-runs" / "mine" / "config.resolved.yaml").read_text()
    assert "class_path: nets:make_net" in resolved


def test_an_output_shape_wrong_only_in_training_gets_reglabs_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before the study runs the model in eval mode; a model whose training-mode output
    has another shape got torch's loss error in every run. The first training batch is checked too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    (tmp_path / "usernets_mode.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            class Net(nn.Module):
                def __init__(self, in_features=64, n_classes=10):
                    super().__init__()
                    self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, n_classes))

                def forward(self, x):
                    out = self.body(x)
                    return out[:, :4] if self.training else out  # 4 outputs while training
            """
        )
    )
    doc = own_study(tmp_path, model={"class_path": "usernets_mode:Net"}, arms={"none": {}}, seeds=1)
    expected = (
        "none/seed0: model: usernets_mode:Net returns (32, 4) for a batch of input shape (32, 1, 8, 8) in training "
        "mode; expected (32, 10)"
    )
    with pytest.raises(ReglabError, match=re.escape(expected)):
        run_protocol(parse_study(doc), executor=InProcessExecutor(), progress=False)
