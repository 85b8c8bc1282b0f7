"""The pure maths in ``reglab.regularizers.functional`` against direct computations."""

from __future__ import annotations

import pytest
import torch

from reglab.regularizers import functional as Fn


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g), torch.randn(5, generator=g), torch.randn(2, 2, 3, generator=g)]


def test_l1_and_l2_penalties() -> None:
    ps = _params()
    assert Fn.l1_penalty(ps).item() == pytest.approx(sum(float(p.abs().sum()) for p in ps), rel=1e-6)
    assert Fn.l2_penalty(ps).item() == pytest.approx(sum(float((p * p).sum()) for p in ps), rel=1e-6)
    w = [torch.tensor([3.0, -4.0])]
    assert Fn.l1_penalty(w).item() == 7.0
    assert Fn.l2_penalty(w).item() == 25.0


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_elastic_net_interpolates(ratio: float) -> None:
    ps = _params(1)
    expected = ratio * Fn.l1_penalty(ps) + (1 - ratio) * Fn.l2_penalty(ps)
    assert Fn.elastic_net_penalty(ps, ratio).item() == pytest.approx(expected.item(), rel=1e-6)


def test_penalty_gradients() -> None:
    w = torch.tensor([0.5, -2.0, 3.0], requires_grad=True)
    Fn.l1_penalty([w]).backward()
    assert torch.equal(w.grad, torch.tensor([1.0, -1.0, 1.0]))
    w.grad = None
    Fn.l2_penalty([w]).backward()
    assert torch.allclose(w.grad, 2 * w.detach())


def test_decoupled_weight_decay_scales_in_place() -> None:
    ps = _params(2)
    before = [p.clone() for p in ps]
    Fn.decoupled_weight_decay_(ps, lr=0.1, decay=0.5)
    for p, b in zip(ps, before, strict=True):
        assert torch.allclose(p, b * 0.95)


def test_max_norm_projects_rows_onto_the_ball() -> None:
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0], [-6.0, 8.0]])
    Fn.max_norm_(w, 1.0)
    norms = w.norm(dim=1)
    assert norms[0] == pytest.approx(1.0, abs=1e-5)
    assert norms[3] == pytest.approx(1.0, abs=1e-5)
    # rows inside the ball are untouched; direction is preserved
    assert torch.equal(w[1], torch.tensor([0.3, 0.4]))
    assert torch.equal(w[2], torch.zeros(2))
    assert torch.allclose(w[0], torch.tensor([0.6, 0.8]), atol=1e-5)
    assert torch.allclose(w[3], torch.tensor([-0.6, 0.8]), atol=1e-5)


def test_max_norm_on_conv_kernels_is_per_output_filter() -> None:
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0)) * 2
    w[0] *= 0.01  # one filter well inside the ball
    small = w[0].clone()
    Fn.max_norm_(w, 0.5)
    norms = w.flatten(1).norm(dim=1)
    assert torch.all(norms <= 0.5 + 1e-5)
    assert torch.allclose(norms[1:], torch.full((5,), 0.5), atol=1e-5)
    assert torch.equal(w[0], small)


def test_one_hot_and_label_smoothing() -> None:
    y = torch.tensor([0, 2, 1])
    oh = Fn.one_hot(y, 3)
    assert oh.dtype == torch.float32
    assert torch.equal(oh, torch.eye(3)[[0, 2, 1]])
    assert Fn.one_hot(oh, 3) is oh  # soft targets pass through
    eps, k = 0.1, 3
    s = Fn.smooth_labels(y, k, eps)
    assert torch.allclose(s.sum(1), torch.ones(3))
    assert torch.allclose(s[torch.arange(3), y], torch.full((3,), 1 - eps + eps / k))
    assert s[0, 1].item() == pytest.approx(eps / k)


def test_mixup_is_a_convex_combination() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g)
    y = Fn.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3)
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    xm, ym = Fn.mixup(x, y, 0.7, perm)
    assert torch.allclose(xm, 0.7 * x + 0.3 * x[perm])
    assert torch.allclose(ym, 0.7 * y + 0.3 * y[perm])
    assert torch.allclose(ym.sum(1), torch.ones(6))
    x1, y1 = Fn.mixup(x, y, 1.0, perm)
    assert torch.equal(x1, x) and torch.equal(y1, y)


def test_cutout_zeros_one_square_of_the_given_size() -> None:
    size, n = 3, 200
    x = torch.ones(n, 2, 8, 8)
    out = Fn.cutout(x, size, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out[:, 0], out[:, 1])  # same square in every channel
    full = 0
    for img in out[:, 0]:
        zeros = (img == 0).nonzero()
        assert len(zeros) > 0
        rows = zeros[:, 0].max() - zeros[:, 0].min() + 1
        cols = zeros[:, 1].max() - zeros[:, 1].min() + 1
        assert rows <= size and cols <= size
        assert len(zeros) == rows * cols  # a (clipped) rectangle, nothing else
        assert torch.all(img[img != 0] == 1)
        full += int(len(zeros) == size * size)
    assert full > n // 3  # squares away from the border are complete


def test_cutout_is_deterministic_per_generator_seed() -> None:
    x = torch.randn(10, 1, 8, 8)
    a = Fn.cutout(x, 4, torch.Generator().manual_seed(3))
    b = Fn.cutout(x, 4, torch.Generator().manual_seed(3))
    c = Fn.cutout(x, 4, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_gaussian_noise_has_the_requested_std() -> None:
    x = torch.zeros(200, 100)
    out = Fn.gaussian_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert out.std().item() == pytest.approx(0.5, rel=0.02)
    assert out.mean().item() == pytest.approx(0.0, abs=0.01)


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``img`` (C, H, W) moved by (dy, dx) with zeros shifted in."""
    _, h, w = img.shape
    out = torch.zeros_like(img)
    ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[:, yd, xd] = img[:, ys, xs]
    return out


@pytest.mark.parametrize("padding", [1, 2])
def test_random_crop_only_shifts_content(padding: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 8, 8, generator=g) + 0.5  # no zeros in the input
    out = Fn.random_crop(x, padding, torch.Generator().manual_seed(1))
    shifts = set()
    for img, o in zip(x, out, strict=True):
        found = [
            (dy, dx)
            for dy in range(-padding, padding + 1)
            for dx in range(-padding, padding + 1)
            if torch.equal(_shift(img, dy, dx), o)
        ]
        assert len(found) == 1, "output is not a zero-filled shift of the input"
        shifts.add(found[0])
    assert len(shifts) > 3  # offsets are random


def test_random_crop_without_padding_is_identity() -> None:
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(Fn.random_crop(x, 0, torch.Generator().manual_seed(0)), x)


def test_random_hflip_mirrors_about_half_the_images() -> None:
    x = torch.randn(200, 1, 4, 5)
    out = Fn.random_hflip(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)])
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert torch.all(flipped ^ same)
    assert 60 < int(flipped.sum()) < 140


def test_random_affine_without_distortion_is_identity_and_changes_images_otherwise() -> None:
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    same = Fn.random_affine(x, 0.0, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-5)
    moved = Fn.random_affine(x, 0.2, 20.0, 0.1, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape
    per_image = (moved - x).flatten(1).abs().amax(1)
    assert torch.all(per_image > 1e-3)


def test_random_affine_shift_is_bounded_by_the_fraction_of_the_side() -> None:
    side, shift = 16, 0.25
    x = torch.zeros(100, 1, side, side)
    x[:, 0, 6:10, 6:10] = 1.0  # a centred blob, far from the border
    out = Fn.random_affine(x, shift, 0.0, 0.0, torch.Generator().manual_seed(0))
    coords = torch.arange(side, dtype=torch.float32)

    def centre(t: torch.Tensor) -> torch.Tensor:
        mass = t.sum((1, 2, 3))
        return torch.stack([(t.sum((1, 3)) * coords).sum(1) / mass, (t.sum((1, 2)) * coords).sum(1) / mass], 1)

    moved = (centre(out) - centre(x)).abs()
    assert torch.all(moved <= shift * side + 1e-3)
    assert moved.max() > 0.6 * shift * side  # the range is used, not just tiny moves
    assert out.sum((1, 2, 3)).sub(16).abs().max() < 1e-3  # content kept (blob stays inside)


def test_random_affine_fills_uncovered_pixels_with_the_background_not_zero() -> None:
    # normalized digits have a negative background; zero padding would add grey bands
    x = torch.full((50, 1, 12, 12), -0.4)
    x[:, 0, 5:7, 5:7] = 2.0
    out = Fn.random_affine(x, 0.25, 10.0, 0.0, torch.Generator().manual_seed(0))
    assert out.min() >= -0.4 - 1e-5
    assert torch.isclose(out[:, 0, 0, :], torch.tensor(-0.4), atol=1e-4).float().mean() > 0.9
