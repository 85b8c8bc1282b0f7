"""Model families: a registry of factories ``(model config, input_shape, n_classes, hooks) -> nn.Module``
(the built-in ``mlp`` and ``cnn``, each also with residual blocks (``model.residual``), and ``lstm``),
and the user's own model by reference (``model.class_path``, :mod:`reglab.models.user`).

Structural regularizers (dropout, batch norm, ...) reach a model through ``hooks``
(:class:`reglab.models.hooks.LayerHooks`): the builder asks them for layers at named points, so
models never read the regularization config. ``build_model`` builds and then initializes the
network with the ``model.init`` scheme from :data:`reglab.models.init.INITIALIZATIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from reglab.models.hooks import LayerHook, LayerHooks, Site
from reglab.models.user import ModelCallable, StructuralArgs
from reglab.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor, nn

    from reglab.models.config import ModelConfig

ModelFactory = Callable[["ModelConfig", tuple[int, ...], int, LayerHooks], "nn.Module"]

MODELS: Registry[ModelFactory] = Registry("model")
MODELS.add_lazy("mlp", "reglab.models.mlp:build_mlp")
MODELS.add_lazy("cnn", "reglab.models.cnn:build_cnn")
MODELS.add_lazy("lstm", "reglab.models.lstm:build_lstm")
STACKED = ("mlp", "cnn")  # those models.stacked runs as populations (plain or residual, model.residual)

__all__ = [
    "MODELS",
    "LayerHook",
    "LayerHooks",
    "ModelCallable",
    "ModelFactory",
    "Site",
    "StructuralArgs",
    "build_model",
    "offered_sites",
]


def build_model(
    model: ModelConfig,
    input_shape: tuple[int, ...],
    n_classes: int,
    hooks: Iterable[LayerHook] = (),
    structural: StructuralArgs | None = None,
    factory: ModelCallable | None = None,
    example: Tensor | None = None,
) -> nn.Module:
    """Build and initialize the network that ``model`` describes for this input shape.

    A built-in model (``model.arch``) asks ``hooks`` (e.g. the run's regularizers) for layers at its
    sites, in order. The user's own model (``factory``, else ``model.class_path``) gets
    ``model.init_args``, the shape arguments it names and the ``structural`` settings (see
    :mod:`reglab.models.user`); with ``example`` (a batch) its output shape is checked once."""
    from reglab.models.init import initialize

    if factory is None and model.class_path is None:
        sites = LayerHooks(hooks)
        net = MODELS.create(model.arch, model, input_shape, n_classes, sites)
        if unmet := sites.unmet():  # e.g. stochastic depth on a network without residual blocks
            from reglab.errors import ConfigError

            raise ConfigError(f"model.arch {model.arch}: " + "; ".join(unmet))
    else:
        from reglab.models import user

        ref = model.class_path if factory is None else str(getattr(factory, "__name__", repr(factory)))
        assert ref is not None
        make = factory or user.resolve(ref)
        net = user.build_user_model(make, ref, model.init_args, input_shape, n_classes, structural or StructuralArgs())
        if example is not None:
            user.check_output(net, example, n_classes, ref)
    initialize(net, model.init, model.activation)
    return net


def offered_sites(model: ModelConfig) -> frozenset[str] | None:
    """The hook points (:mod:`reglab.models.hooks`) that the built-in network ``model`` describes
    offers, so a regularizer that acts only elsewhere is refused when the configuration is read
    (the model tests check this against what the builders ask); None for other registered archs and
    the user's own models (a built-in build still refuses it, see :meth:`LayerHooks.unmet`)."""
    if model.class_path is not None:
        return None
    if model.arch in ("mlp", "cnn"):
        return frozenset({"input", "pre_activation", "post_activation", *(("residual",) if model.residual else ())})
    if model.arch == "lstm":
        return frozenset({"input", "post_activation", "recurrent", "recurrent_weight"})
    return None
