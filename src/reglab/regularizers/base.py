"""The regularizer protocol: small objects whose hooks default to no-ops (like skorch callbacks).

The engine calls, per run: ``setup`` once; per batch ``transform_batch`` -> ``penalty`` (added to the
loss) -> ``before_step`` -> optimizer step -> ``after_step``; per epoch ``adjust_lr`` and
``on_epoch_end``; and ``on_train_end``, which returns the module to evaluate (restored best weights,
SWA average or snapshot ensemble). Structural regularizers (dropout, batch norm) instead answer
``modules(site)`` while the model is built: the layers to insert at a named point of the network.

A regularizer is one unit: its settings (a :class:`Settings` model with flat field names, which
become fields of the config's ``regularization`` section), its hook object and its
:class:`RegularizerSpec`, registered with ``reglab.regularizers.register``. This module imports
neither torch nor ``reglab.config``, so the config can be derived from the registry cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from reglab.models.hooks import Site


class HasRegularization(Protocol):
    """A run configuration, as regularizers see it: only its ``regularization`` section (the
    config composes the regularizers' settings, so they never import it)."""

    @property
    def regularization(self) -> Any: ...


class Settings(BaseModel):
    """A regularizer's settings: its fields of the ``regularization`` section (flat names, unique
    across the whole run config), frozen and strict like every config model. The section inherits
    every regularizer's settings class, so validator names must be unique too (``_<name>_...``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PenaltyOptions(Settings):
    """The option shared by the parameter penalties (L1, L2, elastic net, weight decay): which
    parameters they act on (``TrainContext.penalized``)."""

    penalize_biases: bool = Field(False, description="also penalize biases and norm parameters")


def section_switch(v: Any) -> Any:
    """``true`` turns an optional section on with its defaults, ``false`` off (``swa: true``)."""
    if v is True:
        return {}
    if v is False:
        return None
    return v


@dataclass
class TrainContext:
    """What hooks may need to know about the run; created by the engine."""

    gen: torch.Generator
    n_classes: int
    image: bool
    epochs: int
    penalized: list[nn.Parameter]
    x_train: Tensor | None  # the training inputs when they are in memory (None: streamed)
    batch_size: int
    epoch: int = 0
    best_epoch: int | None = None  # set by early stopping: the epoch whose weights are evaluated
    extras: dict[str, Any] = field(default_factory=dict)
    train_inputs: Callable[[int], Iterable[Tensor]] | None = None  # the training inputs in batches, in order
    y_train: Tensor | None = None  # the training labels when they are in memory (None: streamed)
    # the training split with its labels in batches, in order (a generative model trains on it)
    train_examples: Callable[[int], Iterable[tuple[Tensor, Tensor]]] | None = None

    def input_batches(self, batch_size: int) -> Iterable[Tensor]:
        """The training inputs in order, in batches (from memory or streamed)."""
        if self.train_inputs is not None:
            return self.train_inputs(batch_size)
        assert self.x_train is not None, "the engine gives x_train or train_inputs"
        x = self.x_train
        return (x[i : i + batch_size] for i in range(0, len(x), batch_size))

    def example_batches(self, batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
        """The training inputs and labels in order, in batches (from memory or streamed); never
        the validation or test split."""
        if self.train_examples is not None:
            return self.train_examples(batch_size)
        assert self.x_train is not None and self.y_train is not None, "the engine gives the training split"
        x, y = self.x_train, self.y_train
        return ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size))


class Regularizer:
    """Base class: every hook is a no-op. Subclasses override only what they need."""

    name: str = "regularizer"
    # structural ones that act only at some points of a network: a built-in model that offers none
    # of them refuses the run, saying what to set instead (``needs``)
    sites: tuple[str, ...] = ()
    needs: str = ""

    def modules(self, site: Site) -> list[nn.Module]:
        """Layers to insert at ``site`` while the model is built (structural regularizers only)."""
        return []

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        """Called once before training."""

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        """Change a training batch; ``y`` holds class indices or (N, C) soft targets."""
        return x, y

    def penalty(self, ctx: TrainContext) -> Tensor | None:
        """A term added to the training loss (already multiplied by its strength)."""
        return None

    def before_step(self, model: nn.Module, lr: float, ctx: TrainContext) -> None:
        """After backward, before the optimizer step."""

    def after_step(self, model: nn.Module, ctx: TrainContext) -> None:
        """After the optimizer step (e.g. projections)."""

    def adjust_lr(self, epoch: int, lr: float, ctx: TrainContext) -> float:
        """The learning rate for ``epoch`` given the schedule's ``lr``."""
        return lr

    def on_epoch_end(self, model: nn.Module, record: dict[str, float], ctx: TrainContext) -> bool:
        """After validation; return True to stop training."""
        return False

    def on_train_end(self, model: nn.Module, ctx: TrainContext) -> nn.Module:
        """Return the module to evaluate (default: the trained model)."""
        return model

    def summary(self) -> dict[str, Any]:
        """Facts to record in the run's results (e.g. how many epochs SWA averaged)."""
        return {}


@dataclass(frozen=True)
class TuneRange:
    """A documented default search range for ``field: tune``."""

    low: float
    high: float
    log: bool = False
    kind: str = "float"


class Stacked:
    """A regularizer's hooks in a population (issue 24): the members' parameters stacked with a
    leading member dimension, each member's strengths one row of a (P,) tensor (``strengths``, by
    setting name). Every hook is a no-op; a unit overrides those its single-run hook object
    overrides, calling the same kernels of :mod:`reglab.regularizers.functional` on the stacked
    tensors (each kernel takes a leading member dimension and per-member strengths).

    ``used``: which members use the regularizer. The population orders its members by what they
    use, so a hook need only touch ``span``, the rows from the first member using it to the last
    (views, not gathered copies); the rows in between that do not use it have zero strength."""

    def __init__(self, used: Sequence[bool], **strengths: Tensor) -> None:
        self.strengths = strengths
        self._use(list(used))

    def _use(self, used: list[bool]) -> None:
        self.used, self.size = used, len(used)
        rows = [i for i, u in enumerate(used) if u]
        self.span = slice(rows[0], rows[-1] + 1) if rows else slice(0, 0)

    def rows(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """The rows in :attr:`span` of each stacked tensor (the tensors themselves when it spans
        every member: a slice would cost its backward a full-size copy)."""
        if self.span == slice(0, self.size):
            return list(tensors)
        return [t[self.span] for t in tensors]

    def at(self, name: str) -> Tensor:
        """The strengths ``name`` of the members in :attr:`span`."""
        return self.strengths[name][self.span]

    def setup(self, weights: Sequence[tuple[Tensor, tuple[int, ...]]]) -> None:
        """Once before training (``weights`` as in :meth:`after_step`)."""

    def penalty(self, rows: Sequence[Tensor]) -> Tensor | None:
        """The term added to the loss of each member in :attr:`span` (``rows``: those members'
        rows of the penalized parameters); the population differentiates it, as autograd does
        the single run's."""
        return None

    def penalty_grad_(self, rows: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
        """Add the gradient of :meth:`penalty` to ``grads`` (those members' rows of the gradients)
        in place and return True - the derivative written next to the kernel, for speed; False
        (the default): the population differentiates :meth:`penalty` with autograd. The
        population conformance suite checks every written derivative against autograd's."""
        return False

    def targets(self, y: Tensor, n_classes: int) -> Tensor:
        """Each member's targets (P, B) class indices -> (P, B) or (P, B, K) soft targets."""
        return y

    def before_step(self, params: Sequence[Tensor], lr: Tensor) -> None:
        """After backward, before the optimizer step (``params``: the penalized ones, ``lr`` (P,))."""

    def after_step(self, weights: Sequence[tuple[Tensor, tuple[int, ...]]]) -> None:
        """After the optimizer step: ``weights`` the constrained weights (as ``constrained_weights``
        gives them) with the dims of one unit's incoming weights in their stacked layout."""

    def keep(self, rows: Tensor) -> None:
        """Only the members ``rows`` go on (the others left the population)."""
        self.strengths = {k: v[rows] for k, v in self.strengths.items()}
        self._use([self.used[r] for r in rows.tolist()])


class StackedHooks:
    """A population's stacked hooks: one :class:`Stacked` per regularizer some member uses, each
    hook called on the units that override it (in registry order), as the single engine calls the
    hook objects that override theirs."""

    def __init__(self, units: Sequence[Stacked]) -> None:
        self.units = list(units)
        hooks = ("setup", "penalty", "targets", "before_step", "after_step")
        self.of = {h: [u for u in self.units if getattr(type(u), h) is not getattr(Stacked, h)] for h in hooks}

    def setup(self, weights: Sequence[tuple[Tensor, tuple[int, ...]]]) -> None:
        for u in self.of["setup"]:
            u.setup(weights)

    def penalties_(self, params: Sequence[Tensor], grads: Sequence[Tensor], size: int) -> Tensor | None:
        """Each of the ``size`` members' penalty (P,), None without any: the units' terms over the
        rows of the members that use each, their gradients added to those rows of ``grads`` (of
        the penalized ``params``) in place - written next to the kernel where the unit declares
        it, else by autograd of the term (one call for all such units)."""
        import torch

        if not self.of["penalty"]:
            return None
        total = torch.zeros(size, device=params[0].device)
        spans, leaves, terms = [], [], []
        for s in self.of["penalty"]:
            rows = [p.detach()[s.span] for p in params]
            if s.penalty_grad_(rows, [g[s.span] for g in grads]):
                with torch.no_grad():
                    values = s.penalty(rows)
                if values is not None:
                    total[s.span] += values
                continue
            rows = [r.requires_grad_(True) for r in rows]
            with torch.enable_grad():
                values = s.penalty(rows)
            if values is not None:
                spans.append(s.span)
                leaves.append(rows)
                terms.append(values)
        if terms:
            flat = torch.autograd.grad(torch.stack([v.sum() for v in terms]).sum(), [r for rs in leaves for r in rs])
            for k, (span, values) in enumerate(zip(spans, terms, strict=True)):
                for j, g in enumerate(grads):
                    g[span].add_(flat[k * len(params) + j])
                total[span] += values.detach()
        return total

    def targets(self, y: Tensor, n_classes: int) -> Tensor:
        for u in self.of["targets"]:
            y = u.targets(y, n_classes)
        return y

    def before_step(self, params: Sequence[Tensor], lr: Tensor) -> None:
        for u in self.of["before_step"]:
            u.before_step(params, lr)

    def after_step(self, weights: Sequence[tuple[Tensor, tuple[int, ...]]]) -> None:
        for u in self.of["after_step"]:
            u.after_step(weights)

    def keep(self, rows: Tensor) -> None:
        for u in self.units:
            u.keep(rows)


@dataclass(frozen=True)
class Members:
    """How a regularizer trains in a population (issue 24), declared in its registry entry: a
    regularizer without it makes a run train alone. ``settings``: those of its fields that may
    differ between the members of one population (the others must be equal). ``stacked``: its
    hooks on stacked tensors, made from the members' ``regularization`` sections and the device
    (None when no member uses it); without it the population calls each member's own hook object
    for what runs per member (batch transforms, epoch ends) - the network builds the structural
    ones (dropout, batch norm) into every member."""

    settings: tuple[str, ...] = ()
    stacked: Callable[[Sequence[Any], torch.device], Stacked | None] | None = None

    @classmethod
    def stacking(cls, unit: type[Stacked], *settings: str, off: float = 0.0) -> Members:
        """The usual declaration: ``settings`` may differ between members and are ``unit``'s
        strengths, by name; a member whose first setting is off (0 or None) does not use it."""
        import functools

        return cls(settings, functools.partial(_stack, unit, settings, off))


def _stack(
    unit: type[Stacked], names: tuple[str, ...], off: float, sections: Sequence[Any], device: torch.device
) -> Stacked | None:
    used = [bool(getattr(s, names[0])) for s in sections]
    if not any(used):
        return None
    return unit(used, **{n: member_values(sections, n, device, off) for n in names})


def member_values(sections: Sequence[Any], name: str, device: torch.device, off: float = 0.0) -> Tensor:
    """The members' setting ``name`` as a (P,) float32 tensor (``off`` where it is None)."""
    import torch

    values = [off if getattr(s, name) is None else float(getattr(s, name)) for s in sections]
    return torch.tensor(values, dtype=torch.float32, device=device)


S = TypeVar("S", bound=Settings)


@dataclass(frozen=True)
class RegularizerSpec(Generic[S]):
    """A registry entry, everything about one regularizer.

    ``settings`` declares its fields of the ``regularization`` section; ``make`` builds its hook
    object from that section (which has every registered regularizer's fields), or returns None
    when the settings leave it off. ``example`` is an override that activates it (conformance
    tests, docs), ``tune`` its default search ranges, ``excludes`` regularizers it cannot be
    combined with, ``structural`` says it changes the network (answers ``modules``).
    ``dump_defaults=False`` leaves its settings out of config dumps while they are at their
    defaults, so adding it changes neither the dumps nor the fingerprints of studies without it.
    ``members``: how it trains in a population (None: runs using it train one at a time).
    """

    name: str
    settings: type[S]
    make: Callable[[S], Regularizer | None]
    doc: str
    citation: str
    example: dict[str, Any]
    tune: dict[str, TuneRange] = field(default_factory=dict)
    structural: bool = False
    excludes: tuple[str, ...] = ()
    dump_defaults: bool = True
    members: Members | None = None

    def build(self, cfg: HasRegularization) -> Regularizer | None:
        """The hook object for this run, or None when the regularizer is off."""
        return self.from_section(cfg.regularization)

    def from_section(self, section: Any) -> Regularizer | None:
        """As :meth:`build`, from the ``regularization`` section alone."""
        return self.make(section)

    def active(self, cfg: HasRegularization) -> bool:
        return self.build(cfg) is not None

    @property
    def fields(self) -> list[str]:
        """The flat setting names this regularizer owns (shared penalty options aside)."""
        return [f for f in self.settings.model_fields if f not in PenaltyOptions.model_fields]


def penalized_parameters(model: nn.Module, include_biases: bool) -> list[nn.Parameter]:
    """The weights of any model: parameters with >= 2 dimensions (linear and conv weights, embeddings),
    so biases and normalization parameters are left out; with ``include_biases`` every parameter."""
    return [p for p in model.parameters() if p.requires_grad and (include_biases or p.ndim > 1)]


def constrained_weights(model: nn.Module) -> Sequence[Tensor]:
    """Weight matrices/kernels of linear and conv (1-, 2-, 3-d) layers, for max-norm: any model's.
    Their first dimension indexes the output units (transposed convolutions are left out: theirs
    indexes the inputs)."""
    from torch import nn

    kinds = nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d
    return [m.weight for m in model.modules() if isinstance(m, kinds) and m.weight.requires_grad]
