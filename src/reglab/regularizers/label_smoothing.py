"""Label smoothing: soft targets (1 - eps) onehot + eps / K (Szegedy et al. 2016)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.base import Members, Stacked

if TYPE_CHECKING:
    from torch import Tensor


class LabelSmoothingSettings(Settings):
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class LabelSmoothing(Regularizer):
    """Soft targets (1 - eps) onehot + eps / K (Szegedy et al. 2016)."""

    name = "label_smoothing"

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        from reglab.regularizers import functional as Fn

        return x, Fn.smooth_labels(y, ctx.n_classes, self.eps)


class StackedLabelSmoothing(Stacked):
    """Each member's soft targets with its own eps: the same kernel, one value per member."""

    def targets(self, y: Tensor, n_classes: int) -> Tensor:
        from reglab.regularizers import functional as Fn

        return Fn.smooth_labels(y, n_classes, self.strengths["label_smoothing"].view(-1, 1, 1))


register(
    RegularizerSpec(
        name="label_smoothing",
        settings=LabelSmoothingSettings,
        make=lambda s: LabelSmoothing(s.label_smoothing) if s.label_smoothing > 0 else None,
        doc="soft targets (1 - eps) onehot + eps / K",
        citation="Szegedy et al. 2016",
        example={"label_smoothing": 0.1},
        tune={"label_smoothing": TuneRange(0.0, 0.3)},
        members=Members.stacking(StackedLabelSmoothing, "label_smoothing"),
    )
)
