"""A study with the user's own model (``model.class_path``, or ``run_protocol(spec, model=make_net)``),
checked before anything is stored:

- when the study is read (:func:`reglab.study.definition.spec.check_arguments`, from
  ``parse_study``): the reference imports, and the constructor takes every ``init_args`` entry and
  every structural setting an arm switches on, at both ends of every tuned range that reaches the
  model;
- when it starts (:func:`check_outputs`, from ``run_protocol`` and ``work``): each distinct model is
  built and run once on one training batch, its output shape compared with the number of classes.

Every failure is one ConfigError naming the arm, the model and what to do (exit 2 in the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError

if TYPE_CHECKING:
    from reglab.config import RunConfig
    from reglab.models import ModelCallable
    from reglab.study.definition.spec import StudySpec


def uses_own_model(spec: StudySpec) -> bool:
    return any(a.config.model.class_path is not None for a in spec.arm_list)


def check_outputs(spec: StudySpec) -> None:
    """Build each distinct model of the study (range ends included) and run it once on one
    training batch; a model that fails, or returns another shape than (batch, classes), stops the
    study here. In a child process: a model that ends or crashes its process (``sys.exit``,
    ``os._exit``, a segmentation fault) is reported with its arm like any other failure."""
    if not uses_own_model(spec):
        return
    import multiprocessing as mp
    import os

    from reglab.study.execution.executors import exit_status

    ctx = mp.get_context("fork") if _may_fork() else mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_check_in_child, args=(spec, send, os.getpid()), name="reglab-model-check")
    child.start()
    send.close()  # the child holds the only writer: its end (or death) is our end of file
    checking = "the model check (loading the data)"  # the last step the child announced
    failure: str | None = None
    passed = False
    try:
        while True:
            try:
                kind, text = receive.recv()
            except EOFError:
                break
            if kind == "model":
                checking = text
            elif kind == "failed":
                failure = text
            else:
                passed = True
        child.join(timeout=30)  # a thread the model left running must not hold the check up
    finally:
        receive.close()
        if child.is_alive():  # interrupted: the driver decides, the child goes
            child.kill()
            child.join()
    if failure is not None:
        raise ConfigError(failure)
    if not passed:
        code = exit_status(child.exitcode if child.exitcode is not None else 1)
        raise ConfigError(f"{checking} crashed its process ({code}) while it was built and run on one batch"[:600])


def _may_fork() -> bool:
    """Whether :func:`check_outputs` forks its child: on Linux while this process runs one thread
    (forking is safe then, and the child starts in milliseconds with the imports and the model
    module this process has - ``validate`` stays fast); else it is spawned like the workers."""
    import sys
    import threading

    return sys.platform == "linux" and threading.active_count() == 1


def _check_in_child(spec: StudySpec, conn: Any, driver: int) -> None:
    """The body of :func:`check_outputs`' child process: each step announced before it runs (so a
    crash names its model), then "passed" or "failed" with the message."""
    import signal

    from reglab.study.execution.executors import _child_process

    _child_process(driver)  # before torch is imported: it ends with the driver
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked child has the CLI's handler: the driver decides

    import torch

    from reglab.errors import from_user_code

    torch.set_num_threads(1)  # as DataLoader workers: a forked child must not use the parent's OpenMP pool
    try:
        _check_models(spec, lambda what: conn.send(("model", what)))
    except ConfigError as err:
        conn.send(("failed", str(err)))
    except BaseException as err:  # not the user's model (checked inside): reglab's own bug, said in one line
        if not from_user_code(err):
            raise
        conn.send(("failed", f"the model check failed: {type(err).__name__}: {err}"[:600]))
    else:
        conn.send(("passed", ""))
    finally:
        conn.close()


def _check_models(spec: StudySpec, announce: Callable[[str], None]) -> None:
    """:func:`check_outputs` in this process; ``announce`` gets each model before it is built."""
    import torch

    from reglab.data import load_data
    from reglab.errors import from_user_code
    from reglab.models import build_model
    from reglab.regularizers import build_regularizers, structural_args
    from reglab.study.definition.spec import model_configs

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
                what = f"arms.{arm.name}{label}: model {cfg.model.class_path}({_args(cfg)})"
                announce(what)
                try:
                    build_model(cfg.model, data.input_shape, data.n_classes, regs, structure, example=data.x_train[:2])
                except ConfigError as err:
                    raise ConfigError(f"arms.{arm.name}{label}: {err}") from None
                except BaseException as err:  # the constructor or forward failed, or called sys.exit
                    if not from_user_code(err):
                        raise
                    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    raise ConfigError(f"{what} failed: {type(err).__name__}: {msg}"[:600]) from None


def _args(cfg: RunConfig) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in cfg.model.init_args.items())


def with_model(spec: StudySpec, model: ModelCallable | str) -> StudySpec:
    """``spec`` with its model replaced by ``model`` (a class or module-level function, by
    reference): ``run_protocol(spec, model=make_net)``. The study's ``init_args`` of an own model
    are kept; the built-in model's sizes do not apply."""
    from reglab.models.user import reference
    from reglab.study.definition.spec import parse_study

    ref = reference(model, "run_protocol(model=...)")
    doc = spec.model_dump()
    own = {"class_path": ref, "init_args": dict(spec.model.init_args) if spec.model.class_path else {}}
    doc["model"] = {**own, "activation": spec.model.activation, "init": spec.model.init}
    return parse_study(doc, f"study {spec.name!r} with model={ref}").located(spec.folder)
