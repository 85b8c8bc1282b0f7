"""The user's own model (``model.class_path`` / ``fit(model=...)``): the config, resolving the
reference (the current directory importable), routing hyperparameters to the constructor, the
one-batch output check, and one clear ConfigError for each kind of bad input."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from reglab.config import ModelConfig, RunConfig
from reglab.data.base import DataSplits
from reglab.errors import ConfigError
from reglab.models import StructuralArgs, build_model
from reglab.models.user import arguments, reference, resolve
from reglab.regularizers import structural_args
from reglab.training import fit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_model"
OWN = {"class_path": "mynets:ResNetish", "init_args": {"width": 8, "blocks": 1}}


@pytest.fixture
def own(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example's package ``mynets`` importable (sys.path restored afterwards)."""
    monkeypatch.setattr(sys, "path", [str(EXAMPLE), *sys.path])
    import mynets

    return mynets


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    """``user_module(name, source)``: write ``name.py`` into a fresh current directory (sys.path and
    the module cache restored afterwards); returns the module name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    yield write  # type: ignore[misc]
    for name in [m for m in sys.modules if m.startswith("usernet_")]:
        del sys.modules[name]


def test_builtin_dumps_are_unchanged_and_own_models_dump_only_their_fields() -> None:
    assert set(ModelConfig().model_dump()) == {"arch", "hidden", "activation", "channels", "fc", "init"}
    own = ModelConfig.model_validate(OWN)
    assert own.model_dump() == {**OWN, "activation": "relu", "init": "default"}
    assert ModelConfig.model_validate(own.model_dump()) == own and own.label == "ResNetish"
    assert RunConfig().override({"arch": "cnn"}).model.label == "cnn"


def test_init_args_merge_per_arm_and_by_dotted_path() -> None:
    base = RunConfig().override({"model": OWN})
    assert base.override({"model": {"init_args": {"width": 32}}}).model.init_args == {"width": 32, "blocks": 1}
    assert base.override({"model.init_args.width": 64}).model.init_args["width"] == 64
    assert base.override({"init_args.blocks": 3}).model.init_args == {"width": 8, "blocks": 3}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"class_path": "not a path"}, r"model\.class_path: expected 'package\.module:Name'"),
        ({"init_args": {"width": 8}}, r"model: init_args are the arguments of class_path"),
        ({**OWN, "hidden": [64]}, r"hidden belongs to the built-in models .* through model\.init_args"),
        ({**OWN, "arch": "cnn"}, r"arch belongs to the built-in models"),
        ({"class_path": "m:N", "init_args": {"f": float("nan")}}, r"model\.init_args: values must be numbers"),
        ({"class_path": "m:N", "init_args": {"x-y": 1}}, r"'x-y' is not a parameter name"),
    ],
)
def test_bad_model_sections_are_one_line_errors(model: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        RunConfig().override({"model": model})
    assert "\n" not in str(err.value)


def test_the_current_directory_is_importable(user_module: Callable[[str, str], str]) -> None:
    name = user_module("usernet_cwd", "from torch import nn\ndef net(**kw):\n    return nn.Linear(64, 10)\n")
    assert "" not in sys.path and str(Path.cwd()) not in sys.path
    assert resolve(f"{name}:net")().in_features == 64
    assert sys.path[0] == str(Path.cwd())  # as `python -m` does


@pytest.mark.parametrize(
    ("ref", "source", "message"),
    [
        (
            "usernet_gone.sub:Net",
            None,
            r"cannot import 'usernet_gone\.sub' \(No module named 'usernet_gone'\); run from",
        ),
        (
            "usernet_a:Nett",
            "class Net: pass\ndef make(): pass\n",
            r"'usernet_a' has no 'Nett'; its classes and functions: Net, make",
        ),
        ("usernet_b:WIDTH", "WIDTH = 3\n", r"usernet_b:WIDTH is a int, not a class or a function"),
        ("usernet_c:Net", "import not_installed_pkg_xyz\n", r"importing 'usernet_c' failed: No module named"),
        ("usernet_d:Net", "raise RuntimeError('boom')\n", r"importing 'usernet_d' failed: RuntimeError: boom"),
    ],
)
def test_references_that_do_not_resolve(
    user_module: Callable[[str, str], str], ref: str, source: str | None, message: str
) -> None:
    if source is not None:
        user_module(ref.split(":")[0], source)
    with pytest.raises(ConfigError, match=r"model\.class_path: (module )?" + message) as err:
        resolve(ref)
    assert "\n" not in str(err.value)


def test_a_factory_that_does_not_return_a_module(user_module: Callable[[str, str], str]) -> None:
    user_module("usernet_e", "def make(**kw):\n    return {'not': 'a module'}\n")
    cfg = ModelConfig(class_path="usernet_e:make")
    with pytest.raises(ConfigError, match=r"model: usernet_e:make\(\.\.\.\) returned a dict, not a torch\.nn\.Module"):
        build_model(cfg, (1, 8, 8), 10)


def test_hyperparameters_are_routed_by_name(own: Any) -> None:
    """init_args, the shape arguments the constructor names, and structural settings (always
    when it has the parameter, so "off" means off; required when an arm switches one on)."""
    kw = arguments(
        own.ResNetish, "r", {"width": 8}, StructuralArgs({"dropout": 0.0, "batch_norm": False}), (3, 32, 32), 7
    )
    assert kw == {"width": 8, "dropout": 0.0, "batch_norm": False, "in_channels": 3, "num_classes": 7}

    def flat(in_features: int, n_classes: int, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        assert (in_features, n_classes, input_shape, out_features) == (12, 3, (12,), 3)
        return nn.Linear(in_features, n_classes)

    assert isinstance(build_model(ModelConfig(), (12,), 3, factory=flat), nn.Linear)
    with pytest.raises(
        ConfigError, match=r"batch_norm: the model make_net has no 'batch_norm' parameter.*add a batch_norm"
    ):
        arguments(own.make_net, "make_net", {}, structural_args(RunConfig().override({"batch_norm": True})))
    with pytest.raises(
        ConfigError, match=r"model\.init_args\.depth: r has no parameter 'depth' \(its parameters: in_channels"
    ):
        arguments(own.ResNetish, "r", {"depth": 3}, StructuralArgs())
    with pytest.raises(ConfigError, match=r"model\.init_args\.dropout: also set as the regularization setting"):
        arguments(own.ResNetish, "r", {"dropout": 0.1}, structural_args(RunConfig().override({"dropout": 0.3})))

    def needs(width: int) -> nn.Module:
        return nn.Linear(width, 3)

    with pytest.raises(ConfigError, match=r"model\.init_args: needs needs width; give it in model\.init_args"):
        build_model(ModelConfig(), (12,), 3, factory=needs)


def test_structural_settings_reach_the_model_through_its_constructor(own: Any) -> None:
    cfg = RunConfig().override({"model": OWN, "dropout": 0.4, "batch_norm": True})
    net = build_model(cfg.model, (1, 8, 8), 10, structural=structural_args(cfg))
    assert net.dropout.p == 0.4 and any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    off = RunConfig().override({"model": OWN})
    net = build_model(off.model, (1, 8, 8), 10, structural=structural_args(off))
    assert net.dropout.p == 0.0 and not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert net.features[0].in_channels == 1 and net.classifier.out_features == 10


def test_the_output_is_checked_on_one_batch(tiny_digits: DataSplits) -> None:
    cfg = RunConfig().override({"n_train": 150, "epochs": 1, "device": "cpu"})
    with pytest.raises(
        ConfigError, match=r"model: .* returns \(2, 5\) for a batch of input shape \(2, 1, 8, 8\); expected \(2, 10\)"
    ):
        fit(cfg, tiny_digits, model=lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 5)))
    with pytest.raises(
        ConfigError, match=r"fails on a batch of input shape \(2, 1, 8, 8\): RuntimeError: mat1 and mat2"
    ):
        fit(cfg, tiny_digits, model=lambda: nn.Sequential(nn.Flatten(), nn.Linear(20, 10)))
    assert tiny_digits.test.reads == 0


def test_fit_takes_any_callable_and_is_deterministic(tiny_digits: DataSplits, helpers: Any) -> None:
    cfg = RunConfig().override({"n_train": 150, "epochs": 2, "device": "cpu"})

    def make(in_features: int, n_classes: int, hidden: int = 16) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    a = fit(cfg, helpers.fresh_copy(tiny_digits), model=make)
    b = fit(cfg, helpers.fresh_copy(tiny_digits), model=lambda in_features, n_classes: make(in_features, n_classes))
    assert a.status == "completed" and a.info["n_params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert helpers.history_without_time(a.history) == helpers.history_without_time(b.history)


def test_the_parameter_count_is_of_trainable_parameters(tiny_digits: DataSplits, helpers: Any) -> None:
    """Issue 21: a user model's size was in no output; runs record its trainable parameters (a
    frozen layer does not count), which the summary and the report's regime line give."""
    cfg = RunConfig().override({"n_train": 150, "epochs": 1, "device": "cpu"})

    def make(in_features: int, n_classes: int) -> nn.Module:
        frozen = nn.Linear(in_features, 16)
        frozen.requires_grad_(False)
        return nn.Sequential(nn.Flatten(), frozen, nn.ReLU(), nn.Linear(16, n_classes))

    r = fit(cfg, helpers.fresh_copy(tiny_digits), model=make)
    assert r.status == "completed" and r.info["n_params"] == 16 * 10 + 10


def test_references_for_workers(own: Any) -> None:
    assert reference(own.ResNetish) == "mynets:ResNetish" and reference(own.make_net) == "mynets:make_net"
    assert reference("mynets:make_net") == "mynets:make_net"
    with pytest.raises(ConfigError, match=r"a lambda cannot be imported by name; .*from nets import make_net"):
        reference(lambda: nn.Linear(1, 1))

    def nested() -> nn.Module:
        return nn.Linear(1, 1)

    with pytest.raises(ConfigError, match=r"is defined inside a function; .*top level of a module"):
        reference(nested)
    main = type("Net", (nn.Module,), {"__module__": "__main__"})
    with pytest.raises(
        ConfigError, match=r"Net is defined in the script being run \(__main__\); .*from nets import Net"
    ):
        reference(main)
    with pytest.raises(ConfigError, match="expected a class or a function"):
        reference(42)


def test_every_initialization_reaches_own_conv_layers(own: Any) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate({**OWN, "init": "he"})
    net = build_model(cfg, (1, 8, 8), 10)
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear))
