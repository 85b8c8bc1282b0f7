"""A small class-conditional variational autoencoder (Kingma & Welling 2014; Sohn et al. 2015) for
generative augmentation: MLPs on the flattened (normalized) inputs, the class as a one-hot vector
on both sides. Everything random draws from an explicit generator: the same seed gives the same
model and the same samples. Imported lazily (it imports torch)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reglab.regularizers import functional as Fn


class ConditionalVAE(nn.Module):
    """Encoder q(z | x, y) and decoder p(x | z, y), two hidden ReLU layers each."""

    def __init__(self, dim: int, n_classes: int, latent: int, hidden: int) -> None:
        super().__init__()
        self.n_classes, self.latent = n_classes, latent
        self.encoder = nn.Sequential(
            nn.Linear(dim + n_classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent + n_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def _onehot(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.n_classes).to(torch.float32)

    def encode(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(torch.cat([x.flatten(1), self._onehot(y)], 1))
        return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        return self.decoder(torch.cat([z, self._onehot(y)], 1))

    @torch.no_grad()
    def sample(self, y: Tensor, gen: torch.Generator) -> Tensor:
        """Decoded means for z ~ N(0, I), one per label in ``y`` (flattened inputs)."""
        z = torch.randn(len(y), self.latent, generator=gen).to(y.device)
        return self.decode(z, y)


@dataclass
class VAETraining:
    """What training the VAE cost and reached: epochs, seconds, last epoch's mean loss (-ELBO)."""

    epochs: int
    seconds: float
    loss: float


def build_vae(dim: int, n_classes: int, latent: int, hidden: int, seed: int) -> ConditionalVAE:
    """The VAE initialized from ``seed`` without touching the caller's global RNG (torch's layer
    initialization has no generator argument)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConditionalVAE(dim, n_classes, latent, hidden)


def _shuffled(x: Tensor, y: Tensor, batch_size: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    perm = torch.randperm(len(y), generator=gen).to(x.device)
    for i in range(0, len(y), batch_size):
        idx = perm[i : i + batch_size]
        yield x[idx], y[idx]


def train_vae(
    vae: ConditionalVAE,
    examples: tuple[Tensor, Tensor] | Callable[[int], Iterable[tuple[Tensor, Tensor]]],
    epochs: int,
    batch_size: int,
    lr: float,
    gen: torch.Generator,
) -> VAETraining:
    """Fit ``vae`` by Adam on the negative ELBO (:func:`functional.cvae_loss`). ``examples``: the
    training split in memory (shuffled every epoch with ``gen``) or a function giving its batches
    in order (streamed data)."""
    t0 = time.perf_counter()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    vae.train()
    loss_sum, n = math.nan, 0
    for _ in range(epochs):
        loss_sum, n = 0.0, 0
        if isinstance(examples, tuple):
            batches: Iterable[tuple[Tensor, Tensor]] = _shuffled(*examples, batch_size, gen)
        else:
            batches = examples(batch_size)
        for xb, yb in batches:
            x = xb.flatten(1).float()
            mu, logvar = vae.encode(x, yb)
            eps = torch.randn(mu.shape, generator=gen).to(mu.device)
            z = mu + eps * (0.5 * logvar).exp()  # the reparameterization trick
            loss = Fn.cvae_loss(x, vae.decode(z, yb), mu, logvar)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(yb)
            n += len(yb)
    vae.eval()
    return VAETraining(epochs, time.perf_counter() - t0, loss_sum / max(n, 1))


def sample_grid(vae: ConditionalVAE, shape: tuple[int, ...], classes: int, per_class: int, seed: int) -> Tensor:
    """``per_class`` samples of each of the first ``classes`` classes as uint8 images
    (classes, per_class, C, H, W), scaled to the grid's 1st-99th percentile range (inputs are
    normalized, so there is no natural pixel range)."""
    device = next(vae.parameters()).device
    y = torch.arange(classes, device=device).repeat_interleave(per_class)
    x = vae.sample(y, torch.Generator().manual_seed(seed)).float().cpu()
    lo, hi = torch.quantile(x.flatten(), torch.tensor([0.01, 0.99])).tolist()
    scaled = ((x - lo) / max(hi - lo, 1e-12)).clamp(0, 1) * 255
    return scaled.round().to(torch.uint8).view(classes, per_class, *shape)
