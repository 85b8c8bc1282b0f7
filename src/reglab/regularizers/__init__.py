"""The regularizer registry: ``name -> RegularizerSpec``.

Adding a regularizer = one file with a :class:`Regularizer` subclass + one ``_add`` line here; the
conformance suite in ``tests/regularizers/test_conformance.py`` then tests it automatically.
Order matters: batch transforms run in registration order (augment before mixup, etc.).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reglab.registry import Registry
from reglab.regularizers.base import Regularizer, RegularizerSpec, Structural, TrainContext, TuneRange
from reglab.regularizers.data_transforms import Augment, Cutout, InputNoise, LabelSmoothing, Mixup
from reglab.regularizers.early_stopping import EarlyStopping
from reglab.regularizers.ensembles import SWA, Snapshot
from reglab.regularizers.max_norm import MaxNorm
from reglab.regularizers.penalties import L1, L2, ElasticNet
from reglab.regularizers.weight_decay import DecoupledWeightDecay

if TYPE_CHECKING:
    from reglab.config import RegularizationConfig, RunConfig

__all__ = ["REGULARIZERS", "Regularizer", "RegularizerSpec", "TrainContext", "build_regularizers"]

REGULARIZERS: Registry[RegularizerSpec] = Registry("regularizer")


def _add(spec: RegularizerSpec) -> None:
    REGULARIZERS.add(spec.name, spec)


def _reg(cfg: RunConfig) -> RegularizationConfig:
    return cfg.regularization


def _dropout_active(cfg: RunConfig) -> bool:
    d = cfg.regularization.dropout
    return any(r > 0 for r in (d if isinstance(d, tuple) else (d,))) or cfg.regularization.input_dropout > 0


# fmt: off
_add(RegularizerSpec("l1", L1.__doc__ or "", lambda c: L1(_reg(c).l1) if _reg(c).l1 > 0 else None,
                     {"l1": 1e-4}, {"l1": TuneRange(1e-7, 1e-2, log=True)}))
_add(RegularizerSpec("l2", L2.__doc__ or "", lambda c: L2(_reg(c).l2) if _reg(c).l2 > 0 else None,
                     {"l2": 1e-3}, {"l2": TuneRange(1e-6, 1e-1, log=True)}))
_add(RegularizerSpec("elastic_net", ElasticNet.__doc__ or "",
                     lambda c: ElasticNet(_reg(c).elastic_net, _reg(c).l1_ratio) if _reg(c).elastic_net > 0 else None,
                     {"elastic_net": 1e-4, "l1_ratio": 0.5},
                     {"elastic_net": TuneRange(1e-7, 1e-2, log=True), "l1_ratio": TuneRange(0.0, 1.0)}))
_add(RegularizerSpec("weight_decay", DecoupledWeightDecay.__doc__ or "",
                     lambda c: DecoupledWeightDecay(_reg(c).weight_decay) if _reg(c).weight_decay > 0 else None,
                     {"weight_decay": 1e-2}, {"weight_decay": TuneRange(1e-5, 1e-1, log=True)}))
_add(RegularizerSpec("dropout", "Dropout (Srivastava et al. 2014): zero units at random in training, "
                     "scale by 1/(1-p); identity in evaluation. Input dropout as in the paper.",
                     lambda c: Structural("dropout") if _dropout_active(c) else None,
                     {"dropout": 0.3}, {"dropout": TuneRange(0.0, 0.7)}, structural=True))
_add(RegularizerSpec("batch_norm", "Batch normalization (Ioffe & Szegedy 2015): normalizes layer "
                     "inputs with batch statistics in training, running statistics in evaluation.",
                     lambda c: Structural("batch_norm") if _reg(c).batch_norm else None,
                     {"batch_norm": True}, structural=True))
_add(RegularizerSpec("max_norm", MaxNorm.__doc__ or "",
                     lambda c: MaxNorm(m) if (m := _reg(c).max_norm) else None,
                     {"max_norm": 2.0}, {"max_norm": TuneRange(0.5, 5.0, log=True)}))
_add(RegularizerSpec("augment", Augment.__doc__ or "",
                     lambda c: Augment(_reg(c).augment) if _reg(c).augment.active else None,
                     {"augment": {"shift": 0.1, "rotation": 10, "scale": 0.1, "noise": 0.1}},
                     {"augment.shift": TuneRange(0.0, 0.2), "augment.rotation": TuneRange(0.0, 30.0)}))
_add(RegularizerSpec("cutout", Cutout.__doc__ or "",
                     lambda c: Cutout(_reg(c).cutout) if _reg(c).cutout > 0 else None,
                     {"cutout": 3}, {"cutout": TuneRange(1, 16, kind="int")}))
_add(RegularizerSpec("input_noise", InputNoise.__doc__ or "",
                     lambda c: InputNoise(_reg(c).input_noise) if _reg(c).input_noise > 0 else None,
                     {"input_noise": 0.2}, {"input_noise": TuneRange(0.01, 1.0, log=True)}))
_add(RegularizerSpec("label_smoothing", LabelSmoothing.__doc__ or "",
                     lambda c: LabelSmoothing(_reg(c).label_smoothing) if _reg(c).label_smoothing > 0 else None,
                     {"label_smoothing": 0.1}, {"label_smoothing": TuneRange(0.0, 0.3)}))
_add(RegularizerSpec("mixup", Mixup.__doc__ or "",
                     lambda c: Mixup(_reg(c).mixup) if _reg(c).mixup > 0 else None,
                     {"mixup": 0.2}, {"mixup": TuneRange(0.05, 1.0, log=True)}))
_add(RegularizerSpec("early_stopping", EarlyStopping.__doc__ or "",
                     lambda c: EarlyStopping(e) if (e := _reg(c).early_stopping) else None,
                     {"early_stopping": {"patience": 2}},
                     {"early_stopping.patience": TuneRange(2, 20, kind="int")}))
_add(RegularizerSpec("swa", SWA.__doc__ or "", lambda c: SWA(w) if (w := _reg(c).swa) else None,
                     {"swa": {"start": 0.5}}))
_add(RegularizerSpec("snapshot", Snapshot.__doc__ or "",
                     lambda c: Snapshot(n) if (n := _reg(c).snapshot) else None,
                     {"snapshot": {"cycles": 2}}))
# fmt: on


def build_regularizers(cfg: RunConfig) -> list[Regularizer]:
    """The active regularizers of a run, in registry order."""
    out = []
    for _, spec in REGULARIZERS.items():
        r = spec.build(cfg)
        if r is not None:
            out.append(r)
    return out
