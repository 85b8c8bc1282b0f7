"""The mathematics of every regularizer as pure functions on tensors (thin wrappers live beside).

Penalties take the list of penalized parameters; in-place operations end in ``_``. A population
(issue 24) uses these same functions on its stacked tensors (a leading member dimension, strengths
as (P,) tensors): the penalties sum per member (``members=True``: one reduction per member, which
the backward pass of a vmapped sum costs a third more), label smoothing broadcasts, decoupled
weight decay and max-norm take per-member strengths. The single run's path is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _total(terms: list[Tensor], members: bool) -> Tensor:
    """The sum of ``terms`` (each a parameter's elementwise term): one number, or with ``members``
    one per member (P,), the parameters stacked with a leading member dimension."""
    if members:
        return torch.stack([t.flatten(1).sum(1) for t in terms]).sum(0)
    return torch.stack([t.sum() for t in terms]).sum()


def l1_penalty(params: Sequence[Tensor], members: bool = False) -> Tensor:
    """sum |w| (Tibshirani 1996): drives weights to exactly zero -> sparsity."""
    return _total([p.abs() for p in params], members)


def l2_penalty(params: Sequence[Tensor], members: bool = False) -> Tensor:
    """sum w^2 (Tikhonov; Krogh & Hertz 1992). Coupled: it enters the loss and so the gradient."""
    return _total([p.pow(2) for p in params], members)


def elastic_net_penalty(params: Sequence[Tensor], l1_ratio: float | Tensor, members: bool = False) -> Tensor:
    """r * sum|w| + (1 - r) * sum w^2 (Zou & Hastie 2005); with ``members`` r may be a (P,) tensor."""
    return l1_ratio * l1_penalty(params, members) + (1.0 - l1_ratio) * l2_penalty(params, members)


@torch.no_grad()
def l1_penalty_grad_(params: Sequence[Tensor], grads: Sequence[Tensor], strength: Tensor) -> None:
    """Add the gradient of ``strength * l1_penalty(params, members=True)`` - strength * sign(w),
    autograd's subgradient - to ``grads`` in place (a population's per-member form: one fused pass
    instead of a second backward; the population conformance suite checks it against autograd)."""
    for w, g in zip(params, grads, strict=True):
        g.addcmul_(w.sign(), per_member(strength, w))


@torch.no_grad()
def l2_penalty_grad_(params: Sequence[Tensor], grads: Sequence[Tensor], strength: Tensor) -> None:
    """Add the gradient of ``strength * l2_penalty(params, members=True)`` - 2 strength w - to
    ``grads`` in place (as :func:`l1_penalty_grad_`)."""
    for w, g in zip(params, grads, strict=True):
        g.addcmul_(w, per_member(strength, w), value=2.0)


def per_member(values: Tensor, like: Tensor) -> Tensor:
    """(P,) values viewed to broadcast over stacked tensors like ``like`` (P, ...)."""
    return values.view(-1, *([1] * (like.ndim - 1)))


@torch.no_grad()
def decoupled_weight_decay_(params: Sequence[Tensor], lr: float | Tensor, decay: float | Tensor) -> None:
    """w <- w - lr * decay * w, outside the gradient (Loshchilov & Hutter 2019, AdamW). In a
    population ``lr`` and ``decay`` are (P,) tensors and ``params`` stacked (P, ...)."""
    if isinstance(lr, Tensor) or isinstance(decay, Tensor):
        factor = 1.0 - torch.as_tensor(lr) * decay
        for w in params:
            w.mul_(per_member(factor, w))
        return
    torch._foreach_mul_(list(params), 1.0 - lr * decay)


@torch.no_grad()
def max_norm_(weight: Tensor, max_norm: float | Tensor, dims: tuple[int, ...] = ()) -> None:
    """Project each unit's incoming weight vector onto the L2 ball of radius ``max_norm``
    (Srebro & Shraibman 2005; used with dropout by Srivastava et al. 2014). In a population
    ``max_norm`` is each member's radius (P,) (inf: unconstrained), ``weight`` stacked and ``dims``
    the dims of one unit's incoming weights; the rule is ``torch.renorm``'s."""
    if not isinstance(max_norm, Tensor):
        weight.copy_(torch.renorm(weight, p=2, dim=0, maxnorm=max_norm))
        return
    c = per_member(max_norm, weight)
    norm = weight.pow(2).sum(dims, keepdim=True).sqrt_()
    weight.mul_(torch.where(norm > c, c / (norm + 1e-7), 1.0))


def one_hot(y: Tensor, n_classes: int) -> Tensor:
    return F.one_hot(y, n_classes).to(torch.float32) if y.dtype == torch.long else y


def smooth_labels(y: Tensor, n_classes: int, eps: float | Tensor) -> Tensor:
    """(1 - eps) * onehot + eps / K (Szegedy et al. 2016)."""
    return one_hot(y, n_classes) * (1.0 - eps) + eps / n_classes


def mixup(x: Tensor, y_soft: Tensor, lam: float, perm: Tensor) -> tuple[Tensor, Tensor]:
    """Convex combination of each example with a partner (Zhang et al. 2018)."""
    return lam * x + (1 - lam) * x[perm], lam * y_soft + (1 - lam) * y_soft[perm]


def cutout(x: Tensor, size: int, gen: torch.Generator) -> Tensor:
    """Zero one random ``size`` x ``size`` square per image; the square may overlap the border
    (DeVries & Taylor 2017)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=gen).to(x.device)
    cx = torch.randint(0, w, (n, 1, 1), generator=gen).to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    half = size // 2
    inside = (ys >= cy - half) & (ys < cy - half + size) & (xs >= cx - half) & (xs < cx - half + size)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def gaussian_noise(x: Tensor, std: float, gen: torch.Generator) -> Tensor:
    """x + N(0, std^2): training with noise is Tikhonov regularization (Bishop 1995)."""
    return x + std * torch.randn(x.shape, generator=gen).to(x.device)


def random_affine(x: Tensor, shift: float, rotation: float, scale: float, gen: torch.Generator) -> Tensor:
    """Random translation (fraction of the side), rotation (degrees) and zoom per image, by one
    batched ``affine_grid``/``grid_sample`` (Simard et al. 2003's elastic-free distortions).
    Uncovered pixels repeat the border (the background of normalized digits, not 0 = the mean)."""
    n = x.shape[0]

    def uniform(lim: float) -> Tensor:
        return (torch.rand(n, generator=gen) * 2 - 1) * lim

    angle = uniform(rotation * math.pi / 180)
    s = 1.0 + uniform(scale)
    tx, ty = uniform(2 * shift), uniform(2 * shift)  # grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_crop(x: Tensor, padding: int, gen: torch.Generator) -> Tensor:
    """Zero-pad by ``padding`` and crop back at a random offset (Krizhevsky et al. 2012)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
    rows = (oy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * padding)
    out = padded.gather(2, rows)
    cols = (ox.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return out.gather(3, cols)


def random_hflip(x: Tensor, gen: torch.Generator) -> Tensor:
    """Mirror half of the images left-right."""
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def with_probability(x: Tensor, p: float, gen: torch.Generator, transform: Callable[[Tensor], Tensor]) -> Tensor:
    """``transform`` applied to each example independently with probability ``p``, the others left
    as they are (Karras et al. 2020: every augmentation is skipped or applied per image with the
    one probability p that their controller adjusts). Only the chosen examples are transformed."""
    chosen = torch.rand(x.shape[0], generator=gen) < p
    if not bool(chosen.any()):
        return x
    idx = chosen.nonzero().squeeze(1).to(x.device)
    out = x.clone()
    out[idx] = transform(x[idx])
    return out


def ada_update(p: float, signal: float, target: float, step: float) -> float:
    """One step of adaptive augmentation's controller (Karras et al. 2020): raise p by ``step``
    when the over-fitting ``signal`` exceeds its ``target``, lower it otherwise, keep it in [0, 1]."""
    direction = (signal > target) - (signal < target)
    return min(1.0, max(0.0, p + direction * step))


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example, summed over latent dimensions (Kingma &
    Welling 2014, appendix B)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def calibrated_gaussian_nll(x: Tensor, x_hat: Tensor) -> Tensor:
    """-log N(x; x_hat, sigma^2 I) per example (constant dropped), with sigma^2 the batch's mean
    squared error (Rybkin et al. 2021's calibrated decoder): the inputs are standardized, not in
    [0, 1], and a fixed sigma would have to be tuned against the KL term (too large: posterior
    collapse, blurry class means; too small: no regularization of the latent space)."""
    err = (x - x_hat).pow(2).flatten(1)
    var = err.mean().detach().clamp_min(1e-6)
    return 0.5 * err.sum(1) / var + 0.5 * err.shape[1] * torch.log(var)


def cvae_loss(x: Tensor, x_hat: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The negative evidence lower bound of a conditional VAE, mean over the batch (Sohn et al. 2015)."""
    return (calibrated_gaussian_nll(x, x_hat) + gaussian_kl(mu, logvar)).mean()


def keep_mask(shape: Sequence[int], p: float, like: Tensor, gen: torch.Generator | None = None) -> Tensor:
    """Bernoulli(1 - p) entries scaled by 1 / (1 - p) (inverted dropout: the expectation is 1), in
    ``like``'s dtype and device; drawn from ``gen`` (on its own device) or torch's global RNG."""
    u = torch.rand(tuple(shape), generator=gen, device=gen.device if gen is not None else like.device)
    return (u >= p).to(like.device, like.dtype) / (1.0 - p)


def dropout_mask_(out: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """Fill ``out`` with an inverted-dropout mask, Bernoulli(1 - p) / (1 - p) (Srivastava et al.
    2014), drawn as ``nn.Dropout`` draws its noise (``bernoulli_``, here from ``gen``): a population
    draws each member's masks with it, on a CPU the very draws of the member's single run."""
    return out.bernoulli_(1 - p, generator=gen).div_(1 - p)


def member_masks_(out: Tensor, rates: Sequence[float], gens: Sequence[torch.Generator]) -> Tensor:
    """A population's masks (P, ...): member k's row drawn by :func:`dropout_mask_` with its rate
    ``rates[k]`` from its generator ``gens[k]``; rows of members at rate 0 are left as they are."""
    for k, (p, gen) in enumerate(zip(rates, gens, strict=True)):
        if p > 0:
            dropout_mask_(out[k], p, gen)
    return out


def dropconnect(weight: Tensor, p: float, gen: torch.Generator | None = None) -> Tensor:
    """Drop each connection (weight entry) with probability p and scale the rest by 1 / (1 - p)
    (Wan et al. 2013's DropConnect with dropout's inverted scaling, so evaluation uses the plain
    weights; the paper instead averages a Gaussian moment-matched to the masked sums at test time).
    Gradients reach only the kept weights. Merity et al. 2018's weight drop is this on an LSTM's
    hidden-to-hidden weights."""
    if p == 0.0:
        return weight
    return weight * keep_mask(weight.shape, p, weight, gen)


def drop_path(x: Tensor, p: float, gen: torch.Generator | None = None) -> Tensor:
    """Stochastic depth (Huang et al. 2016) as timm's ``drop_path``: zero a residual branch's output
    for each example with probability p, scale the kept ones by 1 / (1 - p) (so evaluation is
    identity + branch). Huang et al. drop a block for the whole mini-batch and scale by 1 - p at
    test time; one draw per example, as timm and torchvision do, gives less noisy steps."""
    if p == 0.0:
        return x
    return x * keep_mask((x.shape[0],) + (1,) * (x.ndim - 1), p, x, gen)
