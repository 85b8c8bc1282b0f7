"""Generative augmentation: a class-conditional VAE (Kingma & Welling 2014; Sohn et al. 2015) is
trained at the start of the run on the training split only, and its samples are added to every
training batch (``ratio`` generated examples per real one, labels drawn with the asked balance)."""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from reglab.errors import ConfigError
from reglab.regularizers import Regularizer, RegularizerSpec, Settings, TrainContext, TuneRange, register
from reglab.regularizers.base import section_switch

if TYPE_CHECKING:
    from torch import Tensor, nn

    from reglab.regularizers.vae import ConditionalVAE, VAETraining

SAMPLE_CLASSES = 10  # the report's grid: at most this many classes ...
SAMPLES_PER_CLASS = 8  # ... with this many samples each


class GenerativeAugmentConfig(Settings):
    """Batches get ``ratio`` generated examples per real one from a conditional VAE trained on the
    training split when the run starts (its cost counts in the run's time)."""

    ratio: float = Field(0.5, gt=0.0, le=4.0, description="generated examples per real example in a batch")
    balance: Literal["uniform", "train"] = Field(
        "uniform", description="labels of generated examples: uniform over classes, or the training split's frequencies"
    )
    vae_epochs: int = Field(100, ge=1, le=1000, description="epochs of VAE training at the start of the run")
    latent: int = Field(2, ge=1, le=512, description="latent dimensions of the VAE (few: samples keep their class)")
    hidden: int = Field(256, ge=8, le=4096, description="units of each hidden layer of the VAE")
    vae_lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate of the VAE")
    vae_batch_size: int = Field(64, ge=1, le=65536, description="batch size of VAE training")


class GenerativeAugmentSettings(Settings):
    generative_augment: GenerativeAugmentConfig | None = None

    @field_validator("generative_augment", mode="before")
    @classmethod
    def _generative_augment_switch(cls, v: Any) -> Any:
        return section_switch(v)


def n_generated(n_real: int, ratio: float) -> int:
    """Generated examples added to a batch of ``n_real`` (rounded half up)."""
    return math.floor(n_real * ratio + 0.5)


class GenerativeAugment(Regularizer):
    """Train a conditional VAE on the training split in ``setup`` (never validation or test: it
    sees only ``TrainContext``'s training examples), then append ``round(ratio * n)`` decoded
    samples to every training batch of n, their labels drawn uniformly or with the training
    split's class frequencies (``balance``). Random draws: the VAE from a seed drawn from the
    run's generator, the per-batch samples from the run's generator itself."""

    name = "generative_augment"

    def __init__(self, cfg: GenerativeAugmentConfig) -> None:
        self.cfg = cfg
        self.vae: ConditionalVAE | None = None
        self.class_probs: Tensor | None = None
        self.training: VAETraining | None = None
        self.grid: Tensor | None = None

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        import torch

        from reglab.regularizers.vae import build_vae, sample_grid, train_vae

        c = self.cfg
        if ctx.x_train is not None and ctx.y_train is not None:
            x, y = ctx.x_train, ctx.y_train
            examples: Any = (x, y)
        else:  # streamed: the training split in order, batch by batch
            x = next(iter(ctx.example_batches(2)))[0]  # the input shape and device
            y = torch.cat([yb for _, yb in ctx.example_batches(4096)])
            examples = ctx.example_batches
        if y.dtype != torch.long or y.ndim != 1:
            raise ConfigError("generative_augment: needs class labels, and this is a regression task; remove it")
        counts = torch.bincount(y.cpu(), minlength=ctx.n_classes).double()
        if c.balance == "train":
            self.class_probs = counts / counts.sum()
        else:
            self.class_probs = torch.full((ctx.n_classes,), 1.0 / ctx.n_classes, dtype=torch.float64)
        seed = int(torch.randint(0, 2**62, (1,), generator=ctx.gen))
        shape = tuple(x.shape[1:])
        vae = build_vae(math.prod(shape), ctx.n_classes, c.latent, c.hidden, seed).to(x.device)
        vae_gen = torch.Generator().manual_seed(seed)
        self.training = train_vae(vae, examples, c.vae_epochs, c.vae_batch_size, c.vae_lr, vae_gen)
        self.vae = vae
        if ctx.image:
            k = min(ctx.n_classes, SAMPLE_CLASSES)
            self.grid = sample_grid(vae, shape, k, SAMPLES_PER_CLASS, seed + 1)

    def generate(self, n: int, ctx: TrainContext, device: Any) -> tuple[Tensor, Tensor]:
        """``n`` generated inputs (flattened) and their labels, drawn from the run's generator."""
        import torch

        assert self.vae is not None and self.class_probs is not None, "setup trains the VAE first"
        labels = torch.multinomial(self.class_probs, n, replacement=True, generator=ctx.gen).to(device)
        return self.vae.sample(labels, ctx.gen), labels

    def transform_batch(self, x: Tensor, y: Tensor, ctx: TrainContext) -> tuple[Tensor, Tensor]:
        import torch

        from reglab.regularizers import functional as Fn

        k = n_generated(len(x), self.cfg.ratio)
        if k == 0:
            return x, y
        x_gen, labels = self.generate(k, ctx, x.device)
        y_gen = labels if y.ndim == 1 else Fn.one_hot(labels, y.shape[1]).to(y.dtype)
        return torch.cat([x, x_gen.view(k, *x.shape[1:]).to(x.dtype)]), torch.cat([y, y_gen])

    def summary(self) -> dict[str, Any]:
        if self.training is None:
            return {}
        out: dict[str, Any] = {
            "generative_vae_epochs": self.training.epochs,
            "generative_vae_seconds": self.training.seconds,
            "generative_vae_loss": self.training.loss,
        }
        if self.grid is not None:  # the packed form of reglab.study.results.outcome.PackedArray
            g = self.grid.contiguous().numpy()
            out["generative_samples"] = {
                "dtype": "uint8",
                "shape": list(g.shape),
                "b64": base64.b64encode(g.tobytes()).decode("ascii"),
            }
        return out


register(
    RegularizerSpec(
        name="generative_augment",
        settings=GenerativeAugmentSettings,
        dump_defaults=False,
        make=lambda s: GenerativeAugment(s.generative_augment) if s.generative_augment else None,
        doc="a conditional VAE trained on the training split at the start of the run; its samples "
        "are added to every batch (ratio generated per real example, uniform or training class balance)",
        citation="Kingma & Welling 2014; Sohn et al. 2015",
        example={"generative_augment": {"ratio": 0.5, "vae_epochs": 3, "hidden": 32, "latent": 4}},
        tune={"generative_augment.ratio": TuneRange(0.1, 1.0)},
    )
)
