"""Search spaces: documented default ranges, explicit ranges, conditional dimensions, and
one-line errors (in Python and through ``reglab validate``) for every kind of bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from reglab.cli import main as cli_main
from reglab.errors import ConfigError
from reglab.space import Dim, condition_values, default_range, grid_space, split_overrides
from reglab.study.definition.spec import StudySpec, parse_study
from reglab.tuning.sampling import suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEARCH = {"sampler": "random", "trials": 4}


def study(arms: dict[str, Any], search: dict[str, Any] | None = SEARCH, **more: Any) -> StudySpec:
    doc: dict[str, Any] = {"name": "s", "data": {"name": "digits"}, "seeds": 1, "arms": arms, **more}
    if search is not None:
        doc["search"] = search
    return parse_study(doc, "s.yaml")


def space_of(overrides: dict[str, Any], search: dict[str, Any] | None = SEARCH) -> dict[str, Dim]:
    return study({"a": overrides}, search).arm("a").space


def config_error(doc_arms: dict[str, Any], search: dict[str, Any] | None = SEARCH) -> str:
    with pytest.raises(ConfigError) as info:
        study(doc_arms, search)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# -- default ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "low", "high", "log"),
    [("l2", 1e-6, 1e-1, True), ("dropout", 0.0, 0.7, False), ("lr", 1e-4, 1.0, True)],
)
def test_tune_uses_the_documented_default_range(field: str, low: float, high: float, log: bool) -> None:
    d = space_of({field: "tune"})[field]
    assert (d.low, d.high, d.log, d.choices, d.when) == (low, high, log, None, None)
    assert default_range(field) == {"low": low, "high": high, "log": log}


def test_defaults_for_training_choices_and_ints() -> None:
    space = space_of({"batch_size": "tune", "optimizer": "tune", "epochs": "tune", "cutout": "tune"})
    assert space["batch_size"].choices == [32, 64, 128, 256]
    assert "adam" in space["optimizer"].choices
    assert (space["epochs"].low, space["epochs"].high, space["epochs"].integer) == (5, 50, True)
    assert (space["cutout"].low, space["cutout"].high, space["cutout"].integer) == (1, 16, True)


def test_tune_without_default_range_names_the_field() -> None:
    msg = config_error({"a": {"hidden": "tune"}})
    assert "arms.a.hidden" in msg and "no default range" in msg


# -- explicit ranges ---------------------------------------------------------------------------


def test_explicit_float_range_and_log() -> None:
    space = space_of({"l2": {"low": 1e-5, "high": 1e-2, "log": True}, "dropout": {"low": 0.1, "high": 0.5}})
    assert (space["l2"].low, space["l2"].high, space["l2"].log) == (1e-5, 1e-2, True)
    assert (space["dropout"].low, space["dropout"].high, space["dropout"].log) == (0.1, 0.5, False)


def test_explicit_choices_and_int_range() -> None:
    space = space_of(
        {
            "hidden": {"choices": [[16], [32, 16]]},
            "batch_size": {"low": 16, "high": 64, "int": True, "step": 16},
        }
    )
    assert space["hidden"].choices == [[16], [32, 16]]
    assert space["batch_size"].integer and space["batch_size"].grid() == [16, 32, 48, 64]


def test_nested_tune_gives_a_dotted_dimension_and_keeps_fixed_siblings() -> None:
    s = study({"a": {"augment": {"shift": "tune", "rotation": 5.0}}})
    fixed, space = (s.arm("a").fixed, s.arm("a").space)
    assert list(space) == ["augment.shift"]
    assert (space["augment.shift"].low, space["augment.shift"].high) == (0.0, 0.2)
    assert fixed == {"augment": {"rotation": 5.0}}
    # a sampled value lands in the right place of the run configuration
    cfg = s.arm("a").run_config(0, {"augment.shift": 0.15})
    assert cfg.regularization.augment.shift == 0.15 and cfg.regularization.augment.rotation == 5.0


def test_section_form_and_shared_space() -> None:
    s = study(
        {"a": {"train": {"lr": {"low": 0.01, "high": 0.5, "log": True}}}, "b": {"l2": "tune"}},
        {**SEARCH, "space": {"lr": "tune", "dropout": {"low": 0.0, "high": 0.3}}},
    )
    a, b = s.arm("a").space, s.arm("b").space
    assert a["lr"].low == 0.01  # the arm's own range wins over the shared one
    assert b["lr"].low == 1e-4 and set(b) == {"lr", "dropout", "l2"}
    assert set(a) == {"lr", "dropout"}


def test_split_overrides_directly() -> None:
    fixed, space = split_overrides({"l2": "tune", "lr": 0.1, "augment": {"shift": "tune"}}, "arms.x.")
    assert fixed == {"lr": 0.1}
    assert set(space) == {"l2", "augment.shift"}


def test_grid_points() -> None:
    assert Dim(low=0.0, high=1.0, num=3).grid() == [0.0, 0.5, 1.0]
    g = Dim(low=1e-4, high=1e-2, log=True, num=3).grid()
    assert g == pytest.approx([1e-4, 1e-3, 1e-2])
    for d in (
        Dim(low=1e-4, high=1e-2, log=True, num=3),
        Dim(low=1e-6, high=0.1, log=True),
        Dim(low=0.1, high=0.7, num=7),
    ):
        g = d.grid()  # the ends exactly, nothing outside the range (Optuna warns about such values)
        assert (g[0], g[-1]) == (d.low, d.high) and all(d.low <= v <= d.high for v in g)
    assert Dim(low=1, high=7, int=True, num=4).grid() == [1, 3, 5, 7]
    assert grid_space({"o": Dim(choices=["sgd", "adam"])}) == {"o": ["sgd", "adam"]}


# -- conditional dimensions --------------------------------------------------------------------

CONDITIONAL = {
    "optimizer": {"choices": ["sgd", "momentum", "nesterov", "adam"]},
    "momentum": {"low": 0.5, "high": 0.99, "when": {"optimizer": ["momentum", "nesterov"]}},
}


@pytest.mark.parametrize(
    ("optimizer", "sampled"), [("sgd", False), ("adam", False), ("momentum", True), ("nesterov", True)]
)
def test_conditional_dimension_with_fixed_trial(optimizer: str, sampled: bool) -> None:
    space = space_of(CONDITIONAL)
    params = suggest(optuna.trial.FixedTrial({"optimizer": optimizer, "momentum": 0.7}), space)
    assert params == ({"optimizer": optimizer, "momentum": 0.7} if sampled else {"optimizer": optimizer})


def test_conditional_dimension_in_a_real_study() -> None:
    # listed before the dimension it depends on: the order of the file does not matter
    space = space_of({"momentum": CONDITIONAL["momentum"], "optimizer": CONDITIONAL["optimizer"]})
    st = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(40):
        trial = st.ask()
        params = suggest(trial, space)
        st.tell(trial, 0.0)
        seen.add(params["optimizer"])
        assert ("momentum" in params) == (params["optimizer"] in ("momentum", "nesterov"))
        assert set(trial.params) == set(params)
        if "momentum" in params:
            assert 0.5 <= params["momentum"] <= 0.99
    assert seen == {"sgd", "momentum", "nesterov", "adam"}


def test_condition_on_a_fixed_setting() -> None:
    """``when`` on a setting the arm does not tune is judged by the arm's fixed value."""
    s = study(
        {
            "sgd": {"optimizer": "sgd", "momentum": CONDITIONAL["momentum"]},
            "mom": {"optimizer": "nesterov", "momentum": CONDITIONAL["momentum"]},
        }
    )
    trial = optuna.trial.FixedTrial({"momentum": 0.8})
    for arm, expected in (("sgd", {}), ("mom", {"momentum": 0.8})):
        space = s.arm(arm).space
        fixed = condition_values(s.arm(arm).config, space)
        assert fixed == {"optimizer": arm.replace("mom", "nesterov")}
        assert suggest(trial, space, fixed) == expected


# -- errors ------------------------------------------------------------------------------------


def test_low_above_high() -> None:
    msg = config_error({"a": {"l2": {"low": 0.1, "high": 0.01}}})
    assert "arms.a.l2" in msg and "low (0.1) must be <= high (0.01)" in msg


def test_log_range_touching_zero() -> None:
    msg = config_error({"a": {"l2": {"low": 0, "high": 0.01, "log": True}}})
    assert "arms.a.l2" in msg and "log" in msg and "> 0" in msg


def test_range_outside_what_the_setting_allows() -> None:
    msg = config_error({"a": {"dropout": {"low": 0.0, "high": 1.5}}})
    assert "arms.a.dropout" in msg and "1.5" in msg


def test_unknown_tuned_setting() -> None:
    msg = config_error({"a": {"dropuot": {"low": 0.0, "high": 0.5}}})
    assert "arms.a.dropuot" in msg and "unknown setting" in msg


def test_unknown_condition_setting() -> None:
    msg = config_error({"a": {"momentum": {"low": 0.5, "high": 0.9, "when": {"optimiser": ["momentum"]}}}})
    assert "arms.a.momentum" in msg and "optimiser" in msg


def test_range_must_be_finite() -> None:
    msg = config_error({"a": {"cutout": {"low": 1, "high": float("inf"), "int": True}}})
    assert "arms.a.cutout" in msg and "finite" in msg


def test_typo_in_a_dimension_key() -> None:
    msg = config_error({"a": {"l2": {"low": 1e-4, "high": 1e-2, "lgo": True}}})
    assert "arms.a.l2: lgo: unknown field" in msg
    msg = config_error({"a": {"l2": {"low": 1e-4, "high": 1e-2, "num": 1000}}})
    assert "arms.a.l2: num:" in msg


def test_grid_needs_plain_values() -> None:
    msg = config_error({"a": {"hidden": {"choices": [[16], [32]]}}}, {"sampler": "grid"})
    assert "grid sampler" in msg and "hidden" in msg


def test_bad_dimension_keys() -> None:
    msg = config_error({"a": {"l2": {"low": 0.1, "high": 0.2, "choices": [1]}}})
    assert "arms.a.l2" in msg and "either choices or low/high" in msg
    msg = config_error({"a": {"l2": {"choices": []}}})
    assert "arms.a.l2" in msg and "empty" in msg


def test_grid_too_large_for_the_budget() -> None:
    msg = config_error(
        {"a": {"l2": "tune", "dropout": {"low": 0.0, "high": 0.5, "num": 3}}},
        {"sampler": "grid", "trials": 10},
    )
    assert "search.trials" in msg and "15 points" in msg and "10 trials" in msg
    # a budget that covers the grid is fine, and a grid without trials gets its size as budget
    study(
        {"a": {"l2": "tune", "dropout": {"low": 0.0, "high": 0.5, "num": 3}}},
        {"sampler": "grid", "trials": 15},
    )
    study({"a": {"l2": "tune"}}, {"sampler": "grid"})


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (
            {"sampler": "bayes", "trials": 5},
            "search.sampler: unknown sampler 'bayes'; valid choices: grid, random, tpe",
        ),
        (
            {"sampler": "tpe", "trials": 5, "pruner": "asha"},
            "search.pruner: unknown pruner 'asha'; valid choices: none, median",
        ),
        ({"sampler": "tpe"}, "search: give search.trials and/or search.timeout"),
        ({"sampler": "tpe", "trials": 0}, "search.trials"),
        ({"sampler": "tpe", "trials": 5, "cv": 1}, "search.cv"),
    ],
)
def test_bad_search_section(search: dict[str, Any], expected: str) -> None:
    assert expected in config_error({"a": {"l2": "tune"}}, search)


def test_tune_without_search_section() -> None:
    msg = config_error({"none": {}, "l2": {"l2": "tune"}}, None)
    assert "arms.l2" in msg and "no search section" in msg
    msg = config_error({"a": {"augment": {"shift": {"low": 0.0, "high": 0.1}}}}, None)
    assert "augment.shift" in msg and "no search section" in msg


def test_fixed_values_are_not_dimensions() -> None:
    s = study({"a": {"l2": 1e-4, "dropout": 0.2, "early_stopping": {"patience": 3}}}, None)
    assert (s.arm("a").fixed, s.arm("a").space) == ({"l2": 1e-4, "dropout": 0.2, "early_stopping": {"patience": 3}}, {})


# -- through the command line ------------------------------------------------------------------

BAD_FILES = {
    "low_high": ({"a": {"l2": {"low": 0.1, "high": 0.01}}}, SEARCH, "arms.a.l2: low (0.1) must be <= high"),
    "log_zero": ({"a": {"l2": {"low": 0, "high": 0.1, "log": True}}}, SEARCH, "arms.a.l2: a log-scale range"),
    "grid": ({"a": {"l2": "tune", "lr": "tune"}}, {"sampler": "grid", "trials": 10}, "has 25 points"),
    "sampler": ({"a": {"l2": "tune"}}, {"sampler": "bayes", "trials": 5}, "unknown sampler 'bayes'"),
    "pruner": (
        {"a": {"l2": "tune"}},
        {"sampler": "tpe", "trials": 5, "pruner": "asha"},
        "unknown pruner 'asha'",
    ),
    "no_search": ({"a": {"l2": "tune"}}, None, "no search section"),
}


def _write(tmp_path: Path, key: str) -> tuple[Path, str]:
    arms, search, expected = BAD_FILES[key]
    doc: dict[str, Any] = {"name": "bad", "data": {"name": "digits"}, "arms": arms}
    if search is not None:
        doc["search"] = search
    path = tmp_path / f"{key}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, expected


@pytest.mark.parametrize("key", sorted(BAD_FILES))
def test_validate_command_reports_one_line(key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, expected = _write(tmp_path, key)
    with pytest.raises(SystemExit) as info:
        cli_main(["validate", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and str(path) in err and expected in err


def test_validate_command_in_a_subprocess(tmp_path: Path) -> None:
    path, expected = _write(tmp_path, "grid")
    exe = Path(sys.executable).with_name("reglab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "reglab.cli"]
    proc = subprocess.run([*cmd, "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_validate_command_accepts_a_good_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {
        "name": "good",
        "data": {"name": "digits"},
        "seeds": 2,
        "search": {"sampler": "tpe", "trials": 5},
        "arms": {"none": {}, "l2": {"l2": "tune"}, "momentum": CONDITIONAL},
    }
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        cli_main(["validate", str(path)])
    assert info.value.code == 0
    assert "ok - 3 arms x 2 seeds = 6 runs, baseline none" in capsys.readouterr().out


def test_log_dimension_samples_stay_in_range() -> None:
    space = space_of({"l2": "tune", "lr": {"low": 1e-3, "high": 0.5, "log": True}})
    st = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    logs = []
    for _ in range(60):
        t = st.ask()
        p = suggest(t, space)
        st.tell(t, 0.0)
        assert 1e-6 <= p["l2"] <= 1e-1 and 1e-3 <= p["lr"] <= 0.5
        logs.append(math.log10(p["l2"]))
    # log-uniform: about as many draws in each decade
    assert sum(v < -3.5 for v in logs) > 15 and sum(v > -3.5 for v in logs) > 15


def test_default_choices_follow_the_registries() -> None:
    """``optimizer: tune`` searches every registered optimizer, including one a user registers."""
    from reglab.models.init import INITIALIZATIONS
    from reglab.optim import OPTIMIZERS, SCHEDULES

    assert default_range("schedule")["choices"] == SCHEDULES.names()
    assert default_range("init")["choices"] == INITIALIZATIONS.names()
    OPTIMIZERS.add("my-sgd", OPTIMIZERS.get("sgd"))
    try:
        assert default_range("optimizer")["choices"] == [*OPTIMIZERS.names()[:-1], "my-sgd"]
    finally:
        OPTIMIZERS.remove("my-sgd")
    assert "my-sgd" not in default_range("optimizer")["choices"]
