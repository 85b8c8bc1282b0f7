"""A regularizer registered after import, from a module outside reglab, works end to end with no
other edit: config validation (flat and nested), study files, ``reglab train --set`` and the
conformance checks. The test-only regularizer is a variant of DropConnect (Wan et al. 2013; the
built-in ``dropconnect`` masks conv layers too): random masks on the weights of linear layers in
training only."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from test_conformance import (
    check_cnn_and_tabular,
    check_documented,
    check_example_activates,
    check_inactive_by_default,
    check_run,
    check_structure,
    check_tune_ranges,
)
from typer.testing import CliRunner

import reglab.config
from reglab.cli import app
from reglab.config import FIELD_SECTION, RunConfig
from reglab.data.base import DataSplits
from reglab.errors import ConfigError
from reglab.regularizers import REGULARIZERS, RegularizerSpec, unregister
from reglab.study.definition.spec import StudySpec, parse_study

DROPCONNECT = '''
    """DropConnect (Wan et al. 2013): a fresh Bernoulli mask on every linear weight per forward pass
    in training, scaled by 1/(1-p); the plain weights in evaluation."""

    from __future__ import annotations

    import torch
    from pydantic import Field
    from torch import nn
    from torch.nn.utils import parametrize

    from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TuneRange, register


    class DropConnectSettings(Settings):
        lin_dropconnect: float = Field(0.0, ge=0.0, lt=0.9, description="share of linear weights dropped")


    class _Mask(nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            if not self.training:
                return w
            return w * (torch.rand_like(w) >= self.p) / (1 - self.p)


    class DropConnect(Regularizer):
        name = "lin_dropconnect"

        def __init__(self, p: float) -> None:
            self.p = p

        def setup(self, model, ctx) -> None:
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    parametrize.register_parametrization(m, "weight", _Mask(self.p))


    SPEC = register(
        RegularizerSpec(
            name="lin_dropconnect",
            settings=DropConnectSettings,
            make=lambda s: DropConnect(s.lin_dropconnect) if s.lin_dropconnect > 0 else None,
            doc="drop linear weights at random in training",
            citation="Wan et al. 2013",
            example={"lin_dropconnect": 0.3},
            tune={"lin_dropconnect": TuneRange(0.05, 0.6)},
        )
    )
'''


@pytest.fixture
def lin_dropconnect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegularizerSpec[Any]]:
    """Write the module, import it (which registers it), and unregister it afterwards."""
    (tmp_path / "my_lin_dropconnect.py").write_text(textwrap.dedent(DROPCONNECT).lstrip(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_lin_dropconnect")
    try:
        yield module.SPEC
    finally:
        unregister("lin_dropconnect")
        sys.modules.pop("my_lin_dropconnect", None)


def test_the_config_accepts_it_flat_and_nested_and_checks_its_range(lin_dropconnect: RegularizerSpec[Any]) -> None:
    assert REGULARIZERS.names()[-1] == "lin_dropconnect"
    assert FIELD_SECTION["lin_dropconnect"] == "regularization"
    cfg = RunConfig().override({"lin_dropconnect": 0.3})
    assert cfg.regularization.lin_dropconnect == 0.3  # type: ignore[attr-defined]
    assert RunConfig().override({"regularization": {"lin_dropconnect": 0.2}}).regularization.lin_dropconnect == 0.2  # type: ignore[attr-defined]
    assert RunConfig().regularization.lin_dropconnect == 0.0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"regularization\.lin_dropconnect: Input should be less than 0\.9"):
        RunConfig().override({"lin_dropconnect": 0.95})
    # the built-in settings and rules are unchanged
    assert cfg.override({"dropout": "0.5,0.3"}).regularization.dropout == (0.5, 0.3)
    with pytest.raises(ConfigError, match="swa and snapshot cannot be combined"):
        RunConfig().override({"swa": True, "snapshot": True})
    schema = RunConfig.model_json_schema()["$defs"]["RegularizationConfig"]["properties"]
    assert schema["lin_dropconnect"]["exclusiveMaximum"] == 0.9


def test_a_study_arm_can_use_it(lin_dropconnect: RegularizerSpec[Any]) -> None:
    spec = parse_study({"name": "dc", "arms": {"none": {}, "dc": {"lin_dropconnect": 0.3}}})
    assert spec.arm("dc").config.regularization.lin_dropconnect == 0.3  # type: ignore[attr-defined]
    assert spec.arm("none").config.regularization.lin_dropconnect == 0.0  # type: ignore[attr-defined]
    assert "lin_dropconnect" in StudySpec.model_json_schema()["$defs"]["RegularizationConfig"]["properties"]
    with pytest.raises(ConfigError, match="lin_dropconnect"):
        parse_study({"name": "dc", "arms": {"none": {}, "dc": {"lin_dropconnect": 2}}})


def test_reglab_train_set_accepts_it(lin_dropconnect: RegularizerSpec[Any]) -> None:
    args = ["train", "--epochs", "1", "--n-train", "100", "--hidden", "16", "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, [*args, "--set", "lin_dropconnect=0.3"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["config"]["regularization"]["lin_dropconnect"] == 0.3
    assert out["info"]["regularizers"] == ["lin_dropconnect"]
    bad = CliRunner().invoke(app, [*args, "--set", "lin_dropconect=0.3"])
    assert bad.exit_code == 2 and "did you mean lin_dropconnect" in bad.stderr


def test_the_conformance_checks_pass_for_it(
    lin_dropconnect: RegularizerSpec[Any], tiny_cfg: RunConfig, load: Callable[..., DataSplits], helpers: Any
) -> None:
    check_documented(lin_dropconnect)
    check_inactive_by_default(lin_dropconnect)
    check_example_activates(lin_dropconnect)
    check_tune_ranges(lin_dropconnect)
    check_structure(lin_dropconnect)
    check_run(lin_dropconnect, tiny_cfg, load, helpers)
    for setting in ("cnn", "tabular"):
        check_cnn_and_tabular(lin_dropconnect, setting, tiny_cfg, load, helpers)


def test_it_changes_training_only(lin_dropconnect: RegularizerSpec[Any], tiny_cfg: RunConfig) -> None:
    from reglab.training.engine import fit

    plain = fit(tiny_cfg)
    dc = fit(tiny_cfg.override({"lin_dropconnect": 0.5}), keep_model=True)
    assert dc.history[0]["train_loss"] != plain.history[0]["train_loss"]
    model = dc.model
    assert model is not None
    model.eval()
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(model(x), model(x))


def test_it_is_gone_afterwards() -> None:
    assert "lin_dropconnect" not in REGULARIZERS
    assert "lin_dropconnect" not in FIELD_SECTION
    assert "lin_dropconnect" not in reglab.config.RegularizationConfig.model_fields
    with pytest.raises(ConfigError, match="lin_dropconnect: unknown setting"):
        RunConfig().override({"lin_dropconnect": 0.3})
    with pytest.raises(ConfigError):
        parse_study({"name": "dc", "arms": {"none": {}, "dc": {"lin_dropconnect": 0.3}}})


@pytest.mark.parametrize(
    ("setting", "said"),
    [("l2", "'l2' is already defined by 'l2'"), ("lr", "'lr' is already a train setting")],
    ids=["another-regularizer", "another-section"],
)
def test_a_clashing_setting_name_is_refused_at_registration(setting: str, said: str) -> None:
    """A setting another regularizer or another section already has is refused (issue 24: at
    registration, before any model is built with it)."""
    from reglab.regularizers import Regularizer, Settings, register

    Clash = type("Clash", (Settings,), {"__annotations__": {setting: float}, setting: 0.0})
    spec = RegularizerSpec(
        name="clash", settings=Clash, make=lambda s: Regularizer(), doc="x", citation="x", example={}
    )
    with pytest.raises(ValueError, match=said):
        register(spec)
    assert "clash" not in REGULARIZERS


BUILT_AT_IMPORT = RunConfig().override({"l2": 1e-3})


def test_registering_rewrites_no_loaded_model_and_old_configs_still_pickle(
    lin_dropconnect: RegularizerSpec[Any],
) -> None:
    """Issue 24: the section is built from the registry per generation; a registration leaves the
    classes of configs built before it as they were, and such a config pickles and unpickles (the
    flake of the process-wide rebuild: 'not the same object as reglab.config.RegularizationConfig')."""
    import pickle

    old = type(BUILT_AT_IMPORT.regularization)
    assert "lin_dropconnect" not in old.model_fields
    assert "lin_dropconnect" in reglab.config.RegularizationConfig.model_fields
    assert reglab.config.RegularizationConfig is not old
    back = pickle.loads(pickle.dumps(BUILT_AT_IMPORT))
    assert back == BUILT_AT_IMPORT.override({}) and back.regularization.l2 == 1e-3
    assert BUILT_AT_IMPORT.override({"lin_dropconnect": 0.2}).regularization.lin_dropconnect == 0.2  # type: ignore[attr-defined]
