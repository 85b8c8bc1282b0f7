"""Study files: arm overrides, baseline and seeds, error messages with field paths and line numbers,
and the ``validate`` / ``schema`` / ``run`` commands on good and bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from studylib import cli

from reglab.errors import ConfigError
from reglab.study.definition.spec import StudySpec, load_study, parse_study

REGLAB = str(Path(sys.executable).with_name("reglab"))
VALID_DATASETS = ("digits", "synthetic", "mnist", "fashion-mnist", "kmnist", "cifar10")


# -- arms -----------------------------------------------------------------------------------------


def test_flat_dotted_and_nested_arm_overrides_are_equal(tiny_study: Callable[..., dict[str, Any]]) -> None:
    spec = parse_study(
        tiny_study(
            arms={
                "flat": {"l2": 1e-3, "lr": 0.1, "dropout": 0.25},
                "nested": {"regularization": {"l2": 1e-3, "dropout": 0.25}, "train": {"lr": 0.1}},
                "dotted": {"regularization.l2": 1e-3, "train.lr": 0.1, "regularization.dropout": 0.25},
                "mixed": {"regularization": {"l2": 1e-3}, "train.lr": 0.1, "dropout": 0.25},
            }
        )
    )
    configs = {a: spec.arm(a).config for a in spec.arms}
    assert len({c.model_dump_json() for c in configs.values()}) == 1
    cfg = configs["flat"]
    assert cfg.regularization.l2 == 1e-3 and cfg.train.lr == 0.1 and cfg.regularization.dropout == 0.25
    # the shared settings are kept under the overrides
    assert cfg.data.n_train == 200 and cfg.model.hidden == (32,) and cfg.train.epochs == 2


def test_nested_override_merges_into_a_section(tiny_study: Callable[..., dict[str, Any]]) -> None:
    doc = tiny_study(
        regularization={"augment": {"shift": 0.1, "noise": 0.2}, "l1": 1e-5},
        arms={"base": {}, "rot": {"augment": {"rotation": 10}}, "flat": {"augment.rotation": 10}},
    )
    spec = parse_study(doc)
    base, rot = spec.arm("base").config, spec.arm("rot").config
    assert rot.regularization.augment.rotation == 10
    assert rot.regularization.augment.shift == 0.1 and rot.regularization.augment.noise == 0.2
    assert rot.regularization.l1 == 1e-5
    assert base.regularization.augment.rotation == 0
    assert spec.arm("flat").config == rot
    assert spec.arms["base"] == {}


def test_arm_without_overrides(tiny_study: Callable[..., dict[str, Any]]) -> None:
    spec = parse_study(tiny_study(arms={"none": {}, "l2": {"l2": 1e-4}}))
    assert spec.arms["none"] == {}
    assert spec.arm("none").config == spec.shared_config()
    # `none:` with nothing after it is YAML null: an arm without overrides, like `none: {}`
    spec = parse_study(tiny_study(arms={"none": None, "l2": {"l2": 1e-4}}))
    assert spec.arms["none"] == {}
    assert spec.arm("none").config == spec.shared_config()


@pytest.mark.parametrize(
    ("arms", "match"),
    [
        ({}, "at least one arm"),
        ({"bad name!": {}}, "arm name"),
        ({"a": [1, 2]}, r"arms\.a"),
        ({"a": {"l3": 0.1}}, r"arms\.a\.l3: unknown setting"),
        ({"a": {"regularization": {"l3": 0.1}}}, r"arms\.a\.regularization\.l3: unknown field"),
        ({"a": {"l2": -1.0}}, r"arms\.a\.regularization\.l2"),
        ({"a": {"train": 5}}, r"arms\.a\.train: expected a mapping"),
        ({"a": {"data": {"name": "nope"}}}, r"arms\.a\.data\.name: unknown dataset"),
    ],
)
def test_bad_arms_name_the_field(tiny_study: Callable[..., dict[str, Any]], arms: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_study(tiny_study(arms=arms))


# -- baseline and seeds --------------------------------------------------------------------------


def test_baseline_defaults_to_the_first_arm(tiny_study: Callable[..., dict[str, Any]]) -> None:
    arms = {"l2": {"l2": 1e-3}, "none": {}, "dropout": {"dropout": 0.5}}
    assert parse_study(tiny_study(arms=arms)).baseline_arm == "l2"
    assert parse_study(tiny_study(arms=arms, baseline="none")).baseline_arm == "none"
    assert parse_study(tiny_study(arms=arms, baseline="none")).resolved()["baseline"] == "none"


def test_unknown_baseline_lists_the_arms(tiny_study: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ConfigError, match=r"baseline 'nope' is not an arm; arms: none, l2"):
        parse_study(tiny_study(baseline="nope"))


def test_seed_count_or_list(tiny_study: Callable[..., dict[str, Any]]) -> None:
    assert parse_study(tiny_study(seeds=4)).seed_list == [0, 1, 2, 3]
    assert parse_study(tiny_study(seeds=[7, 3, 11])).seed_list == [7, 3, 11]
    assert parse_study(tiny_study(seeds=[0])).seed_list == [0]
    assert StudySpec(name="x", arms={"a": {}}).seed_list == [0, 1, 2, 3, 4]  # default: 5 seeds


@pytest.mark.parametrize("seeds", [0, -2, [], [1, 1], [3, -1], 10_001, "many", 1.5])
def test_bad_seeds(tiny_study: Callable[..., dict[str, Any]], seeds: Any) -> None:
    with pytest.raises(ConfigError, match="seeds"):
        parse_study(tiny_study(seeds=seeds))


def test_seed_i_gives_every_arm_the_same_split_and_init(tiny_study: Callable[..., dict[str, Any]]) -> None:
    doc = tiny_study(arms={"none": {}, "l2": {"l2": 1e-3}, "fast": {"lr": 0.2, "seed": 100}}, seeds=[0, 4])
    doc["data"]["split_seed"] = 10
    spec = parse_study(doc)
    for seed in spec.seed_list:
        cfgs = {a: spec.arm(a).run_config(seed) for a in spec.arms}
        assert {c.data.split_seed for c in cfgs.values()} == {10 + seed}
        assert cfgs["none"].train.seed == cfgs["l2"].train.seed == seed
        assert cfgs["fast"].train.seed == 100 + seed  # an arm's own base seed is offset the same way
        # everything except the seeds is the arm's configuration
        assert cfgs["l2"].override({"split_seed": 10, "seed": 0}) == spec.arm("l2").config
    assert spec.arm("none").run_config(0).data.split_seed != spec.arm("none").run_config(4).data.split_seed


def test_fingerprint_covers_results_not_bookkeeping(tiny_study: Callable[..., dict[str, Any]]) -> None:
    fp = parse_study(tiny_study()).fingerprint()
    assert parse_study(tiny_study(output="/elsewhere", jobs=3, storage="sqlite:///x.db")).fingerprint() == fp
    assert parse_study(tiny_study(name="other")).fingerprint() == fp
    assert parse_study(tiny_study(seeds=4)).fingerprint() != fp
    assert parse_study(tiny_study(arms={"none": {}, "l2": {"l2": 1e-2}})).fingerprint() != fp
    # the same effective configuration written differently is the same study
    assert parse_study(tiny_study(arms={"none": {}, "l2": {"regularization": {"l2": 1e-3}}})).fingerprint() == fp


# -- loading files: field paths and line numbers -------------------------------------------------

BAD_SHARED = """\
name: lines
data:
  name: digits
  n_train: 200
regularization:
  dropout: 0.2
  l2: -1.0
arms:
  none: {}
"""


def test_bad_field_names_path_and_line(write_yaml: Callable[..., Path]) -> None:
    p = write_yaml(BAD_SHARED)
    with pytest.raises(ConfigError) as e:
        load_study(p)
    msg = str(e.value)
    assert f"{p}:7:" in msg
    assert "regularization.l2" in msg and "greater than or equal to 0" in msg and "-1.0" in msg


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("name: t\narms:\n  a: {}\nseeds: 3\nepochz: 5\n", 5, "epochz: unknown field"),
        ("name: t\narms:\n  a: {}\ntrain:\n  epochs: 2\n  lr: zero\n", 6, "train.lr"),
        ("name: t\nmodel:\n  hidden: [32, -4]\narms:\n  a: {}\n", 3, "model.hidden"),
        ("name: t\narms:\n  a: {}\nseeds:\n  - 1\n  - 1\n", 4, "seeds"),
        ("name: bad name\narms:\n  a: {}\n", 1, "name"),
        ("name: t\narms:\n  a: {}\nmetric:\n  select: test_acc\n", 5, "metric.select"),
        # an error inside an arm points at the arm
        ("name: t\narms:\n  a: {}\n  b:\n    l2: 1.0e-3\n    dropuot: 0.5\n", 4, "arms.b.dropuot"),
        ("name: t\narms:\n  a: {}\nbaseline: c\n", None, "baseline 'c' is not an arm"),
    ],
)
def test_errors_name_field_and_line(write_yaml: Callable[..., Path], text: str, line: int | None, field: str) -> None:
    p = write_yaml(text)
    with pytest.raises(ConfigError) as e:
        load_study(p)
    msg = str(e.value)
    assert field in msg
    assert msg.startswith(f"{p}:{line}: " if line else f"{p}")


def test_several_errors_are_all_reported(write_yaml: Callable[..., Path]) -> None:
    p = write_yaml("name: t\narms:\n  a: {}\ntrain:\n  epochs: 0\n  batch_size: 0\n")
    with pytest.raises(ConfigError) as e:
        load_study(p)
    msg = str(e.value)
    assert f"{p}:5: train.epochs" in msg and f"{p}:6: train.batch_size" in msg


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: t\narms: {a: {}\nseeds: 3\n", 3),
        ("name: t\narms:\n  a: {}\n\tb: {}\n", 4),
        ("name: t\narms:\n  a: [1, 2\nseeds: 3\n", 4),
    ],
)
def test_invalid_yaml_names_the_line(write_yaml: Callable[..., Path], text: str, line: int) -> None:
    p = write_yaml(text)
    with pytest.raises(ConfigError, match=rf"^{p}:{line}: invalid YAML: "):
        load_study(p)


def test_unknown_dataset_lists_the_valid_ones(write_yaml: Callable[..., Path]) -> None:
    for text in (
        "name: t\ndata:\n  name: mnsit\narms:\n  a: {}\n",  # shared
        "name: t\narms:\n  a: {}\n  b:\n    data:\n      name: mnsit\n",  # in an arm
    ):
        p = write_yaml(text)
        with pytest.raises(ConfigError) as e:
            load_study(p)
        msg = str(e.value)
        assert "unknown dataset 'mnsit'" in msg
        assert all(name in msg for name in VALID_DATASETS), msg
        assert "csv:PATH" in msg
        assert f"{p}:3:" in msg or f"{p}:4:" in msg


def test_missing_file_and_non_mapping(tmp_path: Path, write_yaml: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "nope.yaml")
    for text in ("", "- a\n- b\n", "just text\n", "42\n"):
        with pytest.raises(ConfigError, match="must be a mapping"):
            load_study(write_yaml(text))
    with pytest.raises(ConfigError, match=r"name: Field required\n.*arms: Field required"):
        load_study(write_yaml("seeds: 3\n"))


def test_resolved_config_has_every_arms_full_configuration(tiny_study: Callable[..., dict[str, Any]]) -> None:
    spec = parse_study(tiny_study())
    r = spec.resolved()
    assert r["seeds"] == [0, 1, 2] and r["baseline"] == "none" and r["fingerprint"] == spec.fingerprint()
    assert r["arms"]["l2"]["overrides"] == {"l2": 1e-3}
    assert r["arms"]["l2"]["config"]["regularization"]["l2"] == 1e-3
    assert r["arms"]["none"]["config"]["data"]["n_train"] == 200


# -- the commands ---------------------------------------------------------------------------------


def test_validate_good_file(
    write_yaml: Callable[..., Path],
    tiny_study: Callable[..., dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    p = write_yaml(tiny_study(output=str(out)))
    assert cli(["validate", str(p)]) == 0
    assert "ok - 2 arms x 3 seeds = 6 runs, baseline none" in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize(
    "text",
    [BAD_SHARED, "name: t\narms: {a: {}\n", "name: t\narms:\n  a: {l2: lots}\n"],
    ids=["bad-value", "bad-yaml", "bad-arm"],
)
def test_validate_and_run_bad_file_exit_2_and_write_nothing(
    write_yaml: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # where the default output (reglab-runs/NAME) would go
    out = tmp_path / "out"
    p = write_yaml(text)
    for argv in (["validate", str(p)], ["run", str(p), "--no-progress"], ["run", str(p), "--output", str(out)]):
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {p}:") and err.count("\n") == 1 and "Traceback" not in err
        assert list(tmp_path.iterdir()) == [p]


def test_run_with_bad_option_writes_nothing(
    write_yaml: Callable[..., Path],
    tiny_study: Callable[..., dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    p = write_yaml(tiny_study(output=str(out)))
    assert cli(["run", str(p), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert not out.exists()


def test_failed_run_in_a_real_process_has_no_traceback(write_yaml: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = write_yaml(BAD_SHARED + f"output: {out}\n")
    proc = subprocess.run(
        [REGLAB, "run", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"error: {p}:7: regularization.l2: Input should be greater than or equal to 0 (got -1.0)"
    ]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [p]


def test_schema_is_json_with_arms(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "arms" in schema["properties"]
    assert {"name", "arms"} <= set(schema["required"])
    for section in ("data", "model", "train", "regularization", "seeds", "baseline", "diagnosis"):
        assert section in schema["properties"]


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("name: a\narms:\n  x: {}\nseeds: 3\nname: b\n", "name", (1, 5)),
        ("name: a\narms:\n  x: {}\n  y: {l2: 0.1}\n  x: {dropout: 0.2}\n", "x", (3, 5)),
        ("name: a\narms:\n  x: {l2: 0.1, l2: 0.2}\n", "l2", (3, 3)),
    ],
    ids=["top-level", "arm", "override"],
)
def test_a_key_given_twice_is_refused_with_both_lines(
    write_yaml: Callable[..., Path], text: str, key: str, lines: tuple[int, int]
) -> None:
    p = write_yaml(text)
    with pytest.raises(ConfigError) as e:
        load_study(p)
    assert str(e.value) == (
        f"{p}:{lines[1]}: invalid YAML: key {key!r} appears twice (lines {lines[0]} and {lines[1]}); "
        "remove or rename one"
    )


def test_yaml_merge_keys_may_be_overridden(write_yaml: Callable[..., Path]) -> None:
    spec = load_study(write_yaml("name: a\narms:\n  x: &b {l2: 0.1, dropout: 0.2}\n  y: {<<: *b, l2: 0.3}\n"))
    assert spec.arm("y").config.regularization.l2 == 0.3
    assert spec.arm("y").config.regularization.dropout == 0.2
