"""A study with the user's own model (``model.class_path``, or ``run_protocol(spec, model=make_net)``),
checked before anything is stored:

- when the study is read (:func:`check_arguments`, from ``parse_study``): the reference imports, and
  the constructor takes every ``init_args`` entry and every structural setting an arm switches on,
  at both ends of every tuned range that reaches the model;
- when it starts (:func:`check_outputs`, from ``run_protocol`` and ``work``): each distinct model is
  built and run once on one training batch, its output shape compared with the number of classes.

Every failure is one ConfigError naming the arm, the model and what to do (exit 2 in the CLI).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError

if TYPE_CHECKING:
    from reglab.config import RunConfig
    from reglab.models import ModelCallable
    from reglab.study.spec import Arm, StudySpec


def uses_own_model(spec: StudySpec) -> bool:
    return any(a.config.model.class_path is not None for a in spec.arm_list)


def _reaches_model(name: str) -> bool:
    """Whether the tuned setting ``name`` changes how the model is built."""
    from reglab.regularizers import REGULARIZERS

    structural = {f for _, s in REGULARIZERS.items() if s.structural for f in s.fields}
    return name.split(".")[0] in {"model", "init_args", "class_path", *structural}


def model_configs(arm: Arm) -> Iterator[tuple[str, RunConfig]]:
    """The arm's configuration, and with each tuned setting that reaches the model at either end
    of its range (first and last choice): the models its trials can build, as far as a check can
    tell without trying every value. Each with a label for messages (``" (init_args.width=4)"``)."""
    yield "", arm.config
    for name, dim in arm.space.items():
        if not _reaches_model(name):
            continue
        ends: list[Any] = [dim.choices[0], dim.choices[-1]] if dim.choices is not None else [dim.low, dim.high]
        if dim.integer and dim.choices is None:
            ends = [int(v) for v in ends]
        for value in ends:
            try:
                yield f" ({name}={value!r})", arm.config.override({name: value})
            except ConfigError:  # reported by the study's own check of the space
                continue


def check_config(cfg: RunConfig) -> None:
    """The run's own model (if any) imports and its constructor takes every argument reglab would
    pass; the data is not read."""
    from reglab.models.user import arguments, resolve
    from reglab.regularizers import structural_args

    ref = cfg.model.class_path
    if ref is not None:
        arguments(resolve(ref), ref, cfg.model.init_args, structural_args(cfg))


def check_arguments(arm: Arm) -> None:
    """:func:`check_config` for each model the arm's trials can build (``parse_study``)."""
    for label, cfg in model_configs(arm):
        try:
            check_config(cfg)
        except ConfigError as err:
            raise ConfigError(f"arms.{arm.name}{label}: {err}") from None


def check_outputs(spec: StudySpec) -> None:
    """Build each distinct model of the study (range ends included) and run it once on one
    training batch; a model that fails, or returns another shape than (batch, classes), stops the
    study here. Loads each dataset once in this process (torch is imported only for own models)."""
    if not uses_own_model(spec):
        return
    import torch

    from reglab.data import load_data
    from reglab.models import build_model
    from reglab.regularizers import build_regularizers, structural_args

    datasets: dict[str, Any] = {}
    seen: set[str] = set()
    with torch.random.fork_rng(devices=[]):  # building models draws from the global RNG
        for arm in spec.arm_list:
            for label, cfg in model_configs(arm):
                if cfg.model.class_path is None:
                    continue
                structure = structural_args(cfg)
                key = repr((cfg.model.model_dump_json(), sorted(structure.values.items()), cfg.data.model_dump_json()))
                if key in seen:
                    continue
                seen.add(key)
                data_key = cfg.data.model_dump_json()
                if data_key not in datasets:
                    datasets[data_key] = load_data(cfg.data)
                data = datasets[data_key]
                regs = build_regularizers(cfg)
                try:
                    build_model(cfg.model, data.input_shape, data.n_classes, regs, structure, example=data.x_train[:2])
                except ConfigError as err:
                    raise ConfigError(f"arms.{arm.name}{label}: {err}") from None
                except Exception as err:  # the constructor itself failed
                    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    raise ConfigError(
                        f"arms.{arm.name}{label}: model {cfg.model.class_path}({_args(cfg)}) failed: "
                        f"{type(err).__name__}: {msg}"[:600]
                    ) from None


def _args(cfg: RunConfig) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in cfg.model.init_args.items())


def with_model(spec: StudySpec, model: ModelCallable | str) -> StudySpec:
    """``spec`` with its model replaced by ``model`` (a class or module-level function, by
    reference): ``run_protocol(spec, model=make_net)``. The study's ``init_args`` of an own model
    are kept; the built-in model's sizes do not apply."""
    from reglab.models.user import reference
    from reglab.study.spec import parse_study

    ref = reference(model, "run_protocol(model=...)")
    doc = spec.model_dump()
    own = {"class_path": ref, "init_args": dict(spec.model.init_args) if spec.model.class_path else {}}
    doc["model"] = {**own, "activation": spec.model.activation, "init": spec.model.init}
    return parse_study(doc, f"study {spec.name!r} with model={ref}").located(spec.folder)
