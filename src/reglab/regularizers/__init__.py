"""The regularizers: one file each, registered at its bottom with :func:`register`.

Adding a regularizer = one file (settings, hook object, ``register(RegularizerSpec(...))``) + one
import line here; a regularizer registered from any other module after import works the same way.
The config's ``regularization`` section is derived from the registry, and the conformance suite in
``tests/regularizers/test_conformance.py`` tests every registered regularizer.
The import order below is the registry order, in which batch transforms run.
"""

from __future__ import annotations

from reglab.regularizers.base import (
    PenaltyOptions,
    Regularizer,
    RegularizerSpec,
    Settings,
    TrainContext,
    TuneRange,
)
from reglab.regularizers.registry import REGULARIZERS, build_regularizers, register, structural_args, unregister

# isort: off
from reglab.regularizers import l1 as l1
from reglab.regularizers import l2 as l2
from reglab.regularizers import elastic_net as elastic_net
from reglab.regularizers import weight_decay as weight_decay
from reglab.regularizers import dropout as dropout
from reglab.regularizers import batch_norm as batch_norm
from reglab.regularizers import variational_dropout as variational_dropout
from reglab.regularizers import weight_drop as weight_drop
from reglab.regularizers import stochastic_depth as stochastic_depth
from reglab.regularizers import max_norm as max_norm
from reglab.regularizers import generative_augment as generative_augment
from reglab.regularizers import augment as augment
from reglab.regularizers import adaptive_augment as adaptive_augment
from reglab.regularizers import cutout as cutout
from reglab.regularizers import input_noise as input_noise
from reglab.regularizers import label_smoothing as label_smoothing
from reglab.regularizers import mixup as mixup
from reglab.regularizers import early_stopping as early_stopping
from reglab.regularizers import swa as swa
from reglab.regularizers import snapshot as snapshot
from reglab.regularizers import dropconnect as dropconnect  # after early_stopping, swa, snapshot: see its docstring
# isort: on

__all__ = [
    "REGULARIZERS",
    "PenaltyOptions",
    "Regularizer",
    "RegularizerSpec",
    "Settings",
    "TrainContext",
    "TuneRange",
    "build_regularizers",
    "register",
    "structural_args",
    "unregister",
]
