"""The configuration models: overrides (flat, dotted, nested), validation messages, immutability."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reglab.config import (
    FIELD_SECTION,
    SECTIONS,
    AugmentConfig,
    EarlyStoppingConfig,
    RunConfig,
    nest_overrides,
)
from reglab.errors import ConfigError


def test_defaults_are_valid_and_documented_values() -> None:
    cfg = RunConfig()
    assert cfg.data.name == "digits"
    assert cfg.model.arch == "mlp"
    assert cfg.train.optimizer == "sgd"
    assert cfg.regularization.early_stopping is None
    assert not cfg.regularization.augment.active


def test_flat_dotted_and_nested_overrides_are_equal() -> None:
    nested = RunConfig().override(
        {
            "regularization": {"l2": 1e-4, "early_stopping": {"patience": 3}},
            "train": {"lr": 0.1},
            "model": {"hidden": [64]},
        }
    )
    dotted = RunConfig().override(
        {"regularization.l2": 1e-4, "train.lr": 0.1, "model.hidden": "64", "early_stopping.patience": 3}
    )
    flat = RunConfig().override({"l2": 1e-4, "lr": 0.1, "hidden": 64, "early_stopping": {"patience": 3}})
    assert flat == nested == dotted
    assert flat.train.lr == 0.1
    assert flat.model.hidden == (64,)
    assert flat.regularization.early_stopping == EarlyStoppingConfig(patience=3)
    assert flat != RunConfig()


def test_override_returns_a_copy_and_merges_sections_deeply() -> None:
    base = RunConfig()
    a = base.override({"augment": {"shift": 0.1}})
    b = a.override({"augment": {"rotation": 5}})
    assert base.regularization.augment == AugmentConfig()  # unchanged
    assert b.regularization.augment.shift == 0.1  # kept when a sibling is set
    assert b.regularization.augment.rotation == 5
    c = b.override({"train": {"epochs": 7}})
    assert c.train.lr == base.train.lr and c.train.epochs == 7


def test_nest_overrides_shapes() -> None:
    assert nest_overrides({"l2": 1.0, "train.lr": 0.5, "augment.shift": 0.1}) == {
        "regularization": {"l2": 1.0, "augment": {"shift": 0.1}},
        "train": {"lr": 0.5},
    }


def test_field_names_map_to_their_section() -> None:
    for section, model in SECTIONS.items():
        for name in model.model_fields:
            assert FIELD_SECTION[name] == section
    assert set(SECTIONS) == set(RunConfig.model_fields)


@pytest.mark.parametrize("cfg", [RunConfig(), RunConfig().override({"dropout": "0.1,0.2", "swa": True})])
def test_configs_are_frozen(cfg: RunConfig) -> None:
    with pytest.raises(ValidationError):
        cfg.train = cfg.train  # type: ignore[misc]
    with pytest.raises(ValidationError):
        cfg.train.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        cfg.regularization.augment.shift = 0.2  # type: ignore[misc]
    assert hash(cfg) == hash(RunConfig.model_validate(cfg.model_dump()))


def test_dump_round_trips_through_json() -> None:
    cfg = RunConfig().override(
        {"hidden": "64,32", "dropout": "0.1,0.2", "early_stopping": True, "augment": {"noise": 0.1}}
    )
    assert RunConfig.model_validate(cfg.model_dump()) == cfg
    assert RunConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_unknown_flat_setting_suggests_instead_of_listing_all() -> None:
    """A typo names the close settings (difflib), not the fifty valid ones; with none close, the
    message says where the list is."""
    with pytest.raises(ConfigError) as e:
        RunConfig().override({"learning_rate": 0.1})
    msg = str(e.value)
    assert msg == "learning_rate: unknown setting; `reglab schema` lists the settings"
    with pytest.raises(ConfigError) as e:
        RunConfig().override({"dropuot": 0.1})
    msg = str(e.value)
    assert msg.startswith("dropuot: unknown setting; did you mean dropout")
    assert "n_train" not in msg and "epochs" not in msg


def test_unknown_field_in_a_section_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError) as e:
        RunConfig().override({"train": {"epocs": 3}})
    assert str(e.value).startswith("train.epocs: unknown field; did you mean epochs?")


def test_unknown_nested_field_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"^train\.learning_rate: unknown field"):
        RunConfig().override({"train": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match=r"regularization\.augment\.twist: unknown field"):
        RunConfig().override({"augment.twist": 3})


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"lr": -1}, "train.lr"),
        ({"lr": 0}, "train.lr"),
        ({"epochs": 0}, "train.epochs"),
        ({"l2": -1}, "regularization.l2"),
        ({"dropout": 1.5}, "regularization.dropout"),
        ({"dropout": "0.5,1.0"}, "regularization.dropout"),
        ({"optimizer": "foo"}, "train.optimizer"),
        ({"schedule": "linear"}, "train.schedule"),
        ({"device": "tpu"}, "train.device"),
        ({"name": "foo"}, "data.name"),
        ({"name": "csv:"}, "data.name"),
        ({"hidden": "a,b"}, "model.hidden"),
        ({"hidden": "0"}, "model.hidden"),
        ({"arch": "rnn"}, "model.arch"),
        ({"early_stopping": {"patience": 0}}, "regularization.early_stopping.patience"),
        ({"augment": {"shift": 0.9}}, "regularization.augment.shift"),
        ({"synthetic": {"n_features": 5, "n_informative": 6}}, "data.synthetic"),
        ({"swa": True, "snapshot": True}, "regularization"),
        ({"val_fraction": 1.0}, "data.val_fraction"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(overrides: dict, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        RunConfig().override(overrides)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg


def test_error_messages_carry_the_where_prefix_and_the_value() -> None:
    with pytest.raises(ConfigError) as e:
        RunConfig().override({"lr": -1}, where="arm 'x': ")
    assert str(e.value).startswith("arm 'x': train.lr: ")
    assert "(got -1)" in str(e.value)
    with pytest.raises(ConfigError, match=r"^arm 'x': foo: unknown setting"):
        RunConfig().override({"foo": 1}, where="arm 'x': ")


def test_section_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^train: expected a mapping"):
        RunConfig().override({"train": 5})


def test_string_and_bool_parsing() -> None:
    cfg = RunConfig().override(
        {"hidden": "64, 32", "channels": "8,16", "dropout": "0.1,0.2", "early_stopping": True, "swa": False}
    )
    assert cfg.model.hidden == (64, 32)
    assert cfg.model.channels == (8, 16)
    assert cfg.regularization.dropout == (0.1, 0.2)
    assert cfg.regularization.early_stopping == EarlyStoppingConfig()
    assert cfg.regularization.swa is None
    assert RunConfig().override({"dropout": "0.3"}).regularization.dropout == 0.3


@pytest.mark.parametrize("field", ["shift", "rotation", "scale", "crop_padding", "hflip", "noise"])
def test_augment_active_when_any_setting_is_nonzero(field: str) -> None:
    value = True if field == "hflip" else (2 if field == "crop_padding" else 0.1)
    assert AugmentConfig(**{field: value}).active
    assert not AugmentConfig().active
