"""``reglab path``'s study: one arm per value of the swept setting, applied over the chosen arm's
settings, no search, in the study's ``path-<param>`` folder; bad values refused before any run."""

from __future__ import annotations

import pytest

from reglab.errors import ConfigError
from reglab.study.definition.spec import parse_study
from reglab.study.protocol.path import parse_values, path_spec


def test_the_path_study_has_one_arm_per_value_over_the_chosen_arm() -> None:
    spec = parse_study(
        {"name": "p", "arms": {"none": {}, "wd": {"weight_decay": 0.01, "lr": 0.2}}, "seeds": 4, "output": "o"}
    )
    new = path_spec(spec, "dropout", [0.0, 0.25], seeds=2, arm="wd")
    assert list(new.arms) == ["dropout=0", "dropout=0.25"]
    assert [new.arm(a).config.regularization.dropout for a in new.arms] == [0.0, 0.25]  # type: ignore[attr-defined]
    assert {new.arm(a).config.train.lr for a in new.arms} == {0.2}  # the chosen arm's other settings
    assert new.search is None and new.seed_list == [0, 1] and new.output is not None
    assert new.output.endswith("path-dropout") and new.name == "p.path.dropout"
    epochs = path_spec(spec, "epochs", [2.4, 7.6], seeds=1)  # an integer setting: values rounded
    assert [epochs.arm(a).config.train.epochs for a in epochs.arms] == [2, 8]


def test_bad_paths_are_refused_before_anything_runs() -> None:
    spec = parse_study({"name": "p", "arms": {"none": {}}, "seeds": 2})
    with pytest.raises(ConfigError, match="unknown setting 'dropot'"):
        path_spec(spec, "dropot", [0.1], seeds=1)
    with pytest.raises(ConfigError):
        path_spec(spec, "dropout", [1.5], seeds=1)  # dropout must stay below 1
    with pytest.raises(ConfigError, match="--arm: unknown arm 'x'"):
        path_spec(spec, "dropout", [0.1], seeds=1, arm="x")
    assert parse_values("1e-4:1e-2", 3, "auto") == pytest.approx([1e-4, 1e-3, 1e-2])
