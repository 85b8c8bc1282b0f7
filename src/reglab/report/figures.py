"""The report's figures: matplotlib (object API, no pyplot state) rendered to inline SVG.

Every figure uses one style and one colour per arm (the baseline in slate grey), so an arm looks
the same in every panel. Builders take plain data prepared by :mod:`reglab.report.build` and
return a :class:`matplotlib.figure.Figure`; :func:`render` turns it into an SVG string with
IDs unique across the page (several SVGs share one HTML document) and, optionally, a PNG file.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BASELINE_COLOR = "#3d4451"
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#b07aa1",
    "#76b7b2",
    "#d4a72c",
    "#ff9da7",
    "#9c755f",
    "#2f8f9d",
    "#a0cbe8",
    "#8cd17d",
    "#d37295",
    "#b6992d",
    "#86bcb6",
    "#f1a05a",
)
INK = "#1f2933"
MUTED = "#6b7280"
GRID = "#e6e8ec"
FONTS = ["Inter", "Segoe UI", "Helvetica Neue", "Helvetica", "Arial", "DejaVu Sans", "Liberation Sans"]
FULL_WIDTH = 11.0  # inches; the page column is ~1080 px, so 9 pt text shows at ~12 px
PX_PER_PT = 1.36

STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": FONTS,
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 6,
    "axes.labelsize": 8.5,
    "axes.labelcolor": "#374151",
    "axes.edgecolor": "#b8bec8",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.7,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "xtick.bottom": False,  # tick marks off (labels stay): less SVG, calmer axes
    "ytick.left": False,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "lines.linewidth": 1.7,
    "lines.solid_capstyle": "round",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.facecolor": "white",
    "text.color": INK,
    "mathtext.default": "regular",
}


def arm_colors(arms: Sequence[str], baseline: str | None) -> dict[str, str]:
    """Fixed colour per arm, in study order (the baseline is always slate grey)."""
    out: dict[str, str] = {}
    i = 0
    for arm in arms:
        if arm in out:
            continue
        if arm == baseline:
            out[arm] = BASELINE_COLOR
        else:
            out[arm] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def plain(text: Any) -> str:
    """Text for matplotlib without mathtext ($...$ would be parsed as TeX)."""
    return str(text).replace("$", r"\$")


@dataclass
class Rendered:
    name: str
    svg: str
    title: str = ""
    caption: str = ""
    png: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@contextmanager
def style(name: str) -> Iterator[None]:
    import matplotlib

    rc: dict[str, Any] = {**STYLE, "svg.hashsalt": f"reglab-{name}"}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        yield


_ID = re.compile(r'\sid="([^"]+)"')
_REF = re.compile(r'(?:url\(#|href="#)([^)"]+)')
_GEOMETRY = re.compile(r'\s(?:d|x|y|x1|x2|y1|y2|cx|cy|r|width|height|transform|points)="[^"]*"')
_LONG_NUMBER = re.compile(r"(-?\d+\.\d\d)\d+")
_FONT_FAMILY = re.compile(r"font-family:[^;\"]*;?\s*")
_EMPTY_G = re.compile(r"<g>\s*</g>")


def clean_svg(svg: str, prefix: str, width_pt: float, label: str = "") -> str:
    """Inline-ready SVG: no XML prolog or metadata; only referenced IDs kept, prefixed so they
    are unique in the page; coordinates rounded to 0.01 pt; fonts left to the page's CSS; and
    scaling with the page width up to the size that keeps text at the report's font size."""
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    pre = re.sub(r"[^A-Za-z0-9_-]", "-", prefix)
    referenced = set(_REF.findall(svg))

    def _id(m: re.Match[str]) -> str:
        ident = m.group(1)
        return f' id="{pre}-{ident}"' if ident in referenced else ""

    svg = _ID.sub(_id, svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{pre}-{m.group(1)})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{pre}-{m.group(1)}"', svg)
    svg = _GEOMETRY.sub(lambda m: _LONG_NUMBER.sub(r"\1", m.group(0)), svg)
    svg = _FONT_FAMILY.sub("", svg)
    while True:
        svg, n = _EMPTY_G.subn("", svg)
        if not n:
            break
    svg = re.sub(r"\n\s*\n", "\n", svg)
    max_px = round(width_pt * PX_PER_PT)
    svg = re.sub(
        r'<svg([^>]*?)\swidth="[^"]*"\s+height="[^"]*"',
        rf'<svg\1 width="100%" style="max-width:{max_px}px;height:auto" preserveAspectRatio="xMidYMid meet"',
        svg,
        count=1,
    )
    aria = html.escape(label or prefix, quote=True)
    return svg.replace("<svg", f'<svg role="img" aria-label="{aria}" class="plot"', 1).strip()


def render(fig: Figure, name: str, png_dir: Path | None = None, title: str = "") -> Rendered:
    """SVG text (and ``png_dir/name.png``) of a figure."""
    buf = io.StringIO()
    width_pt = float(fig.get_figwidth()) * 72
    with style(name):
        fig.savefig(buf, format="svg", metadata={"Date": None})
        png = None
        if png_dir is not None:
            png = png_dir / f"{name}.png"
            fig.savefig(png, format="png", dpi=150, metadata={"Software": None})
    return Rendered(name, clean_svg(buf.getvalue(), name, width_pt, title), title=title, png=png)


@dataclass(frozen=True)
class Margins:
    """Space around and between panels, in inches (a fixed layout: fast and predictable)."""

    left: float = 0.75
    right: float = 0.2
    top: float = 0.35
    bottom: float = 0.5
    wspace: float = 0.3
    hspace: float = 0.5


def _grid(width: float, panel_h: float, rows: int, cols: int, m: Margins, **kw: Any) -> tuple[Figure, Any]:
    """A figure of ``rows x cols`` panels, each ``panel_h`` inches high, with margins ``m``."""
    from matplotlib.figure import Figure

    height = m.top + m.bottom + rows * panel_h + (rows - 1) * m.hspace
    fig = Figure(figsize=(width, height))
    aw = max(0.5, (width - m.left - m.right - (cols - 1) * m.wspace) / cols)
    fig.subplots_adjust(
        left=m.left / width,
        right=1 - m.right / width,
        bottom=m.bottom / height,
        top=1 - m.top / height,
        wspace=m.wspace / aw if cols > 1 else 0.2,
        hspace=m.hspace / panel_h if rows > 1 else 0.2,
    )
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def _small_multiples(n: int, panel_h: float, m: Margins, **kw: Any) -> tuple[Figure, Any]:
    """A grid of ``n`` equal panels (rows and columns from ``_grid_shape``)."""
    rows, cols = _grid_shape(n)
    return _grid(_panel_width(cols), panel_h, rows, cols, m, **kw)


def _bottom_legend(fig: Figure, handles: list[Any], ncol: int) -> None:
    h = float(fig.get_figheight())
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.04 / h),
        ncol=max(1, ncol),
        handlelength=2.2,
        columnspacing=1.6,
    )


def _text_width(labels: Sequence[str], size: float = 8.0) -> float:
    """Rough width in inches of the longest label (for margins)."""
    return max((len(str(x)) for x in labels), default=0) * size * 0.0085 + 0.1


def _pct_axis(ax: Axes, axis: str = "y") -> None:
    """Percent tick labels; the number of decimals follows the axis range."""
    from matplotlib.ticker import PercentFormatter

    fmt = PercentFormatter(1.0, decimals=None)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _log_y(ax: Axes) -> None:
    """Log y axis with plain tick labels (0.1, 0.2, 0.5, 1, ...) instead of powers of ten; call it
    after plotting (the tick density follows the data range)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def _int_x(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))


def _grid_shape(n: int) -> tuple[int, int]:
    if n <= 4:
        cols = n
    elif n in (5, 6, 9):
        cols = 3
    else:
        cols = 4
    return math.ceil(n / cols), cols


def _panel_width(cols: int) -> float:
    """Figure width for a row of ``cols`` panels (wide enough for the legend below it)."""
    return FULL_WIDTH if cols >= 3 else max(7.0, 0.5 + 3.9 * cols)


# -- learning curves ----------------------------------------------------------------------------


@dataclass
class Curve:
    """Mean and min-max band over seeds per epoch of one metric of one arm."""

    epochs: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass
class ArmCurves:
    arm: str
    curves: dict[str, Curve]  # train_acc, val_acc, train_loss, val_loss
    n_seeds: int
    best_epoch: float | None  # mean over seeds, from summary.json
    stops: list[tuple[float, float | None, float | None]]  # early-stopped seeds: (epoch, val_acc, val_loss)


def _best_y(c: Curve, epoch: float) -> float | None:
    ok = np.isfinite(c.mean)
    if not ok.any():
        return None
    return float(np.interp(epoch, c.epochs[ok], c.mean[ok]))


def curves_small_multiples(data: list[ArmCurves], colors: dict[str, str], kind: str) -> Figure:
    """One panel per arm: train (dashed) and validation (solid) mean with min-max band."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, axes = _small_multiples(
        len(data), 1.75, Margins(left=0.75, top=0.3, bottom=0.85, hspace=0.42), sharex=True, sharey=True
    )
    tr, va = f"train_{kind}", f"val_{kind}"
    for ax, arm in zip(axes.flat, data, strict=False):
        col = colors[arm.arm]
        for key, ls, alpha in ((tr, (0, (4, 2.5)), 0.10), (va, "-", 0.20)):
            c = arm.curves.get(key)
            if c is None:
                continue
            ax.fill_between(c.epochs, c.lo, c.hi, color=col, alpha=alpha, lw=0)
            ax.plot(c.epochs, c.mean, color=col, ls=ls, lw=1.7 if key == va else 1.4)
        if arm.best_epoch is not None:
            ax.axvline(arm.best_epoch, color=col, ls=":", lw=1.2, alpha=0.9)
            epochs = np.concatenate([c.epochs for c in arm.curves.values()])
            right = arm.best_epoch > epochs.min() + 0.7 * (epochs.max() - epochs.min())
            ax.annotate(
                f"best {arm.best_epoch:.3g}",
                (arm.best_epoch, 0.03 if kind == "acc" else 0.97),
                xycoords=("data", "axes fraction"),
                xytext=(-3 if right else 3, 0),
                textcoords="offset points",
                fontsize=7.5,
                color=MUTED,
                ha="right" if right else "left",
                va="bottom" if kind == "acc" else "top",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
            )
        ys = [s[1] if kind == "acc" else s[2] for s in arm.stops]
        pts = [(s[0], y) for s, y in zip(arm.stops, ys, strict=True) if y is not None]
        if pts:
            ax.scatter(*zip(*pts, strict=True), marker="X", s=34, color=col, edgecolor="white", lw=0.6, zorder=4)
        ax.set_title(plain(arm.arm), color=col)
        ax.set_title(
            f"{arm.n_seeds} seed{'s' * (arm.n_seeds != 1)}", loc="right", fontsize=7.5, color=MUTED, fontweight="normal"
        )
    for ax in list(axes.flat)[len(data) :]:
        ax.set_visible(False)
    first = axes[0, 0]
    if kind == "acc":
        _pct_axis(first)
        lo = [np.nanmin(a.curves[k].lo) for a in data for k in (tr, va) if k in a.curves]
        finite = [v for v in lo if np.isfinite(v)]
        if finite:
            first.set_ylim(max(0.0, min(finite) - 0.03), 1.01)
    else:
        _log_y(first)
    _int_x(first)
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy" if kind == "acc" else "loss (log scale)")
    gray = "#6b7280"
    handles = [
        Line2D([], [], color=gray, ls="-", lw=1.7, label="validation (mean)"),
        Line2D([], [], color=gray, ls=(0, (4, 2.5)), lw=1.4, label="train (mean)"),
        Patch(color=gray, alpha=0.2, lw=0, label="min-max over seeds"),
        Line2D([], [], color=gray, ls=":", lw=1.2, label="best epoch (mean)"),
    ]
    if any(a.stops for a in data):
        handles.append(Line2D([], [], color=gray, marker="X", ls="", label="early stop"))
    _bottom_legend(fig, handles, len(handles))
    return fig


def curves_overlaid(data: list[ArmCurves], colors: dict[str, str]) -> Figure:
    """All arms in one set of axes per metric (validation/train x accuracy/loss)."""
    from matplotlib.lines import Line2D

    ncol = min(len(data) + 1, 7)
    legend_rows = math.ceil((len(data) + 1) / ncol)
    fig, axes = _grid(
        FULL_WIDTH,
        2.3,
        2,
        2,
        Margins(left=0.6, top=0.3, bottom=0.6 + 0.22 * legend_rows, wspace=0.75, hspace=0.42),
        sharex=True,
    )
    panels = (
        ("val_acc", "validation accuracy"),
        ("train_acc", "train accuracy"),
        ("val_loss", "validation loss"),
        ("train_loss", "train loss"),
    )
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for arm in data:
            c = arm.curves.get(key)
            if c is None:
                continue
            col = colors[arm.arm]
            lw = 2.0 if col == BASELINE_COLOR else 1.6
            ax.fill_between(c.epochs, c.lo, c.hi, color=col, alpha=0.08, lw=0)
            ax.plot(c.epochs, c.mean, color=col, lw=lw)
            if arm.best_epoch is not None and key.startswith("val"):
                y = _best_y(c, arm.best_epoch)
                if y is not None:
                    ax.scatter([arm.best_epoch], [y], s=26, color=col, edgecolor="white", lw=0.8, zorder=4)
        ax.set_title(title)
        if key.endswith("acc"):
            _pct_axis(ax)
        else:
            _log_y(ax)
    _int_x(axes[0, 0])
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    handles = [Line2D([], [], color=colors[a.arm], lw=2, label=plain(a.arm)) for a in data]
    handles.append(Line2D([], [], color="#6b7280", marker="o", ls="", label="best epoch (mean)"))
    _bottom_legend(fig, handles, ncol)
    return fig


# -- generalization gap -------------------------------------------------------------------------


@dataclass
class GapRow:
    arm: str
    train: float
    test: float
    gap: float | None


@dataclass
class SequenceArm:
    """One arm of an adaptive study: its repeated intervals of the difference to the baseline,
    (seeds, mean, low, high) per look, and the seed count it was decided at (None: open)."""

    arm: str
    looks: list[tuple[int, float, float, float]]
    decided_at: int | None


def sequence_intervals(
    arms: list[SequenceArm], colors: dict[str, str], equivalence: float | None, scale: float
) -> Figure:
    """Adaptive seeds: each arm's repeated confidence interval of the difference to the baseline at
    every look (seeds on x), 0 and ±equivalence marked; a filled dot where the arm was decided."""
    fig, axes = _grid(8.0, 3.0, 1, 1, Margins(left=0.8, right=1.6, top=0.35, bottom=0.55))
    ax = axes[0, 0]
    width = max(1, len(arms))
    ax.axhline(0, color=INK, lw=0.8)
    if equivalence:
        for margin in (-equivalence * scale, equivalence * scale):
            ax.axhline(margin, color=MUTED, lw=0.8, ls="--")
    for i, a in enumerate(arms):
        col = colors.get(a.arm, PALETTE[0])
        pts = [(n + (i - (width - 1) / 2) * 0.25, m * scale, lo * scale, hi * scale) for n, m, lo, hi in a.looks]
        if not pts:
            continue
        x = [p[0] for p in pts]
        y = [p[1] for p in pts]
        ax.plot(x, y, color=col, lw=1, label=plain(a.arm))
        for px, py, lo, hi in pts:
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([px, px], [lo, hi], color=col, lw=1.6, alpha=0.7)
            ax.scatter([px], [py], s=16, color=col, zorder=3)
        if a.decided_at is not None:
            ax.scatter([x[-1]], [y[-1]], s=60, facecolor="white", edgecolor=col, lw=1.8, zorder=4)
    ax.set_xlabel("seeds")
    ax.set_ylabel("difference to the baseline" + (" (pp)" if scale == 100 else ""))
    _int_x(ax)
    if arms:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return fig


def gap_dumbbell(rows: list[GapRow], colors: dict[str, str]) -> Figure:
    """Train vs test accuracy per arm (rank order, best on top), the gap written at the right."""
    from matplotlib.lines import Line2D

    left = _text_width([r.arm for r in rows], 8.5) + 0.15
    fig, axes = _grid(8.0, 0.34 * len(rows) + 0.2, 1, 1, Margins(left=left, right=1.0, top=0.45, bottom=0.5))
    ax = axes[0, 0]
    ys = np.arange(len(rows))[::-1]
    for y, r in zip(ys, rows, strict=True):
        col = colors[r.arm]
        ax.plot([r.test, r.train], [y, y], color="#d3d7de", lw=4, solid_capstyle="round", zorder=1)
        ax.scatter([r.train], [y], s=44, facecolor="white", edgecolor=col, lw=1.8, zorder=3, clip_on=False)
        ax.scatter([r.test], [y], s=48, color=col, zorder=4, clip_on=False)
        if r.gap is not None:
            ax.annotate(
                f"{r.gap * 100:+.2f} pp",
                (1.0, y),
                xycoords=("axes fraction", "data"),
                xytext=(14, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=MUTED,
            )
    ax.annotate(
        "gap",
        (1.0, 1.0),
        xycoords="axes fraction",
        xytext=(14, 4),
        textcoords="offset points",
        va="bottom",
        fontsize=8,
        color=INK,
        fontweight="bold",
    )
    ax.set_yticks(ys, [plain(r.arm) for r in rows])
    for lab, r in zip(ax.get_yticklabels(), rows, strict=True):
        lab.set_color(colors[r.arm])
        lab.set_fontweight("bold")
    ax.grid(axis="y", visible=False)
    _pct_axis(ax, "x")
    lo = min(min(r.test, r.train) for r in rows)
    hi = max(max(r.test, r.train) for r in rows)
    pad = max(0.005, (hi - lo) * 0.06)
    ax.set_xlim(max(0.0, lo - pad), min(1.0, hi + pad) if hi <= 1.0 else hi + pad)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("accuracy (mean over seeds)")
    g = "#6b7280"
    handles = [
        Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor=g, mew=1.8, label="train"),
        Line2D([], [], marker="o", ls="", color=g, label="test"),
    ]
    ax.legend(handles=handles, loc="lower left", ncol=2, bbox_to_anchor=(0, 1.0), borderaxespad=0.2, handletextpad=0.3)
    return fig


# -- per-seed distribution ----------------------------------------------------------------------


@dataclass
class StripArm:
    arm: str
    values: dict[int, float]  # seed -> value (completed runs)
    mean: float | None
    ci: tuple[float, float] | None


def strip_limits(arms: list[StripArm], fraction: bool) -> tuple[float, float] | None:
    """y range around the points and means: a 2-seed t-interval can be far wider than the data,
    so confidence whiskers may run off the plot (they are cut at its edge)."""
    ys = [v for a in arms for v in a.values.values()] + [a.mean for a in arms if a.mean is not None]
    if not ys:
        return None
    lo, hi = min(ys), max(ys)
    pad = max((hi - lo) * 0.35, 0.005 if fraction else abs(hi) * 0.02 + 1e-9)
    return lo - pad, hi + pad


def paired_strip(
    arms: list[StripArm], baseline: str | None, colors: dict[str, str], metric: str, fraction: bool
) -> Figure:
    """Each seed's value per arm; lines join it to the baseline's value for the same seed."""
    from matplotlib.lines import Line2D

    rotate = len(arms) > 6
    bottom = (0.2 + _text_width([a.arm for a in arms], 8.5) * 0.55) if rotate else 0.45
    fig, axes = _grid(
        max(6.6, min(FULL_WIDTH, 1.6 + 0.85 * len(arms))),
        3.0,
        1,
        1,
        Margins(left=0.85, right=0.2, top=0.45, bottom=bottom),
    )
    ax = axes[0, 0]
    base = next((a for a in arms if a.arm == baseline), None)
    off = 0.16 if base is not None else 0.0
    paired_any = False
    for x, a in enumerate(arms):
        col = colors[a.arm]
        is_base = a.arm == baseline
        xa = x if is_base else x + off
        if base is not None and not is_base:
            common = sorted(set(a.values) & set(base.values))
            for s in common:
                ax.plot([x - off, xa], [base.values[s], a.values[s]], color=col, alpha=0.45, lw=1.1, zorder=2)
                paired_any = True
            if common:
                ax.scatter(
                    [x - off] * len(common),
                    [base.values[s] for s in common],
                    s=18,
                    facecolor="white",
                    edgecolor=BASELINE_COLOR,
                    lw=1.0,
                    zorder=3,
                )
        if a.values:
            ax.scatter(
                [xa] * len(a.values), list(a.values.values()), s=30, color=col, edgecolor="white", lw=0.6, zorder=4
            )
        if a.mean is not None:
            xm = xa + (0.2 if not is_base else 0.22)
            ax.plot([xm - 0.07, xm + 0.07], [a.mean, a.mean], color=col, lw=2.2, zorder=5)
            if a.ci is not None:
                ax.plot([xm, xm], list(a.ci), color=col, lw=1.1, zorder=5)

    ax.set_xticks(range(len(arms)), [plain(a.arm) for a in arms])
    for lab, a in zip(ax.get_xticklabels(), arms, strict=True):
        lab.set_color(colors[a.arm])
        lab.set_fontweight("bold")
        if rotate:
            lab.set_rotation(30)
            lab.set_ha("right")
            lab.set_rotation_mode("anchor")
    limits = strip_limits(arms, fraction)
    if limits is not None:
        ax.set_ylim(*limits)
    ax.set_xlim(-0.6, len(arms) - 0.4)
    ax.grid(axis="x", visible=False)
    if fraction:
        _pct_axis(ax)
    ax.set_ylabel(f"{metric} per seed")
    g = "#6b7280"
    handles = [Line2D([], [], marker="o", ls="", color=g, label="arm, one seed")]
    if paired_any:
        handles += [
            Line2D(
                [],
                [],
                marker="o",
                ls="-",
                color=g,
                alpha=0.6,
                markerfacecolor="white",
                markeredgecolor=BASELINE_COLOR,
                label="baseline, same seed",
            ),
        ]
    handles.append(Line2D([], [], ls="-", color=g, lw=2.2, label="mean and 95% CI"))
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(handles), borderaxespad=0.2)
    return fig


# -- weights ------------------------------------------------------------------------------------


@dataclass
class ArmHistogram:
    arm: str
    edges: np.ndarray
    frac: np.ndarray
    label: str  # "sparsity 87.5% · L2 9.41" (numbers from summary.json)


def weight_histograms(
    hists: list[ArmHistogram], baseline_hist: ArmHistogram | None, colors: dict[str, str], view: str
) -> Figure:
    """Small multiples of the final-weight histogram per arm (baseline outline for reference)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, axes = _small_multiples(
        len(hists), 1.6, Margins(left=0.8, top=0.3, bottom=0.85, hspace=0.42), sharex=True, sharey=True
    )
    for ax, h in zip(axes.flat, hists, strict=False):
        col = colors[h.arm]
        ax.stairs(h.frac, h.edges, fill=True, color=col, alpha=0.35, lw=0)
        ax.stairs(h.frac, h.edges, color=col, lw=1.2)
        if baseline_hist is not None and h.arm != baseline_hist.arm:
            ax.stairs(baseline_hist.frac, baseline_hist.edges, color=BASELINE_COLOR, lw=0.9, ls=(0, (3, 2)), alpha=0.8)
        if view == "log":
            ax.axvline(-3, color="#9ca3af", lw=0.9, ls=":")
        ax.set_title(plain(h.arm), color=col)
        ax.text(
            0.03,
            0.97,
            h.label,
            transform=ax.transAxes,
            fontsize=7.5,
            color=MUTED,
            ha="left",
            va="top",
            bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    for ax in list(axes.flat)[len(hists) :]:
        ax.set_visible(False)
    if view == "linear":
        from matplotlib.ticker import FuncFormatter

        _log_y(axes[0, 0])
        axes[0, 0].yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:g}%"))
    else:
        _pct_axis(axes[0, 0])
    for ax in axes[-1, :]:
        ax.set_xlabel("log10 |w|" if view == "log" else "w")
    for ax in axes[:, 0]:
        ax.set_ylabel("share of weights" + (" (log)" if view == "linear" else ""))
    g = "#6b7280"
    handles: list[Any] = [Patch(color=g, alpha=0.35, label="arm (all seeds)")]
    if baseline_hist is not None and any(h.arm != baseline_hist.arm for h in hists):
        handles.append(
            Line2D([], [], color=BASELINE_COLOR, ls=(0, (3, 2)), label=f"baseline ({plain(baseline_hist.arm)})")
        )
    if view == "log":
        handles.append(Line2D([], [], color="#9ca3af", ls=":", label="|w| = 1e-3 (sparsity threshold)"))
    _bottom_legend(fig, handles, len(handles))
    return fig


@dataclass
class BarRow:
    arm: str
    value: float | None
    ci: tuple[float, float] | None


def weight_bars(sparsity: list[BarRow], l2: list[BarRow], colors: dict[str, str]) -> Figure:
    """Sparsity and weight L2 norm per arm (mean and 95% CI over seeds)."""
    n = len(sparsity)
    left = _text_width([r.arm for r in sparsity], 8.5) + 0.15
    fig, grid = _grid(
        FULL_WIDTH * 0.8,
        0.28 * n + 0.15,
        1,
        2,
        Margins(left=left, right=0.3, top=0.35, bottom=0.4, wspace=0.35),
        sharey=True,
    )
    axes = grid[0]
    ys = np.arange(n)[::-1]
    for ax, data, title in ((axes[0], sparsity, "sparsity (share of |w| < 1e-3)"), (axes[1], l2, "weight L2 norm")):
        for y, r in zip(ys, data, strict=True):
            col = colors[r.arm]
            if r.value is None:
                ax.text(0, y, "  n/a", va="center", fontsize=8, color=MUTED)
                continue
            ax.barh(y, r.value, color=col, height=0.62, alpha=0.9)
            if r.ci is not None:
                ax.plot(list(r.ci), [y, y], color=INK, lw=1, alpha=0.7)
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
    _pct_axis(axes[0], "x")
    axes[0].set_xlim(left=0)
    axes[1].set_xlim(left=0)
    axes[0].set_yticks(ys, [plain(r.arm) for r in sparsity])
    for lab, r in zip(axes[0].get_yticklabels(), sparsity, strict=True):
        lab.set_color(colors[r.arm])
        lab.set_fontweight("bold")
    return fig


# -- regularization path ------------------------------------------------------------------------


@dataclass
class PathPoint:
    value: float
    stats: dict[str, tuple[float, float, float] | None]  # key -> (mean, min, max) over seeds
    points: dict[str, list[float]]


def path_figure(points: list[PathPoint], param: str, best: float | None, log_x: bool) -> Figure:
    """Train/validation accuracy, sparsity and weight norm against the swept value."""
    fig, grid = _grid(FULL_WIDTH, 2.5, 1, 3, Margins(left=0.6, top=0.35, bottom=0.5, wspace=0.75))
    axes = grid[0]
    xs = np.array([p.value for p in points])
    specs = (
        (
            axes[0],
            (("train_acc", "train", PALETTE[0], (0, (4, 2.5))), ("val_acc", "validation", PALETTE[1], "-")),
            "accuracy",
            True,
        ),
        (axes[1], (("sparsity", "sparsity", PALETTE[2], "-"),), "sparsity (share of |w| < 1e-3)", True),
        (axes[2], (("weight_l2", "weight L2", PALETTE[4], "-"),), "weight L2 norm", False),
    )
    for ax, series, title, frac in specs:
        for key, label, col, ls in series:
            st = [p.stats.get(key) for p in points]
            ok = [i for i, s in enumerate(st) if s is not None]
            if not ok:
                continue
            x = xs[ok]
            mean = np.array([st[i][0] for i in ok])  # type: ignore[index]
            lo = np.array([st[i][1] for i in ok])  # type: ignore[index]
            hi = np.array([st[i][2] for i in ok])  # type: ignore[index]
            ax.fill_between(x, lo, hi, color=col, alpha=0.15, lw=0)
            ax.plot(x, mean, color=col, ls=ls, marker="o", ms=3.5, label=label)
            for i in ok:
                pts = points[i].points.get(key, [])
                ax.scatter([points[i].value] * len(pts), pts, s=7, color=col, alpha=0.45, lw=0)
        if best is not None:
            ax.axvline(best, color=INK, ls=":", lw=1.1)
        if log_x:
            ax.set_xscale("log")
        if frac:
            _pct_axis(ax)
        ax.set_title(title)
        ax.set_xlabel(plain(param))
    axes[0].legend(loc="best")
    if best is not None:
        axes[0].annotate(
            f"best {best:.3g}",
            (best, 0.02),
            xycoords=("data", "axes fraction"),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=7.5,
            color=INK,
        )
    return fig


# -- tuning -------------------------------------------------------------------------------------


@dataclass
class TuningCurves:
    arm: str
    best_so_far: list[float | None]
    expected: list[tuple[int, float, float]]  # (budget, mean, std)


def tuning_progress(data: list[TuningCurves], colors: dict[str, str], metric: str) -> Figure:
    """Best value so far per trial, and the expected best value for a budget of k trials."""
    fig, grid = _grid(FULL_WIDTH, 2.6, 1, 2, Margins(left=0.7, top=0.35, bottom=0.5, wspace=0.8))
    axes = grid[0]
    for d in data:
        col = colors.get(d.arm, PALETTE[0])
        pts = [(i + 1, v) for i, v in enumerate(d.best_so_far) if v is not None]
        if pts:
            x, y = zip(*pts, strict=True)
            axes[0].step(x, y, where="post", color=col, label=plain(d.arm))
        if d.expected:
            k = np.array([e[0] for e in d.expected])
            m = np.array([e[1] for e in d.expected])
            s = np.array([e[2] for e in d.expected])
            axes[1].fill_between(k, m - s, m + s, color=col, alpha=0.12, lw=0)
            axes[1].plot(k, m, color=col, label=plain(d.arm))
    _int_x(axes[0])
    _int_x(axes[1])
    axes[0].set_title(f"best {plain(metric)} so far")
    axes[0].set_xlabel("trial")
    axes[1].set_title(f"expected best {plain(metric)} (mean ± std)")
    axes[1].set_xlabel("budget (trials)")
    for ax in axes:
        from reglab.tasks import metric_info

        info = metric_info(metric)
        if info.percent if info is not None else metric.endswith("acc"):
            _pct_axis(ax)
    if data:
        axes[1].legend(loc="lower right", ncol=1 if len(data) < 6 else 2)
    return fig


def importance_bars(importance: dict[str, dict[str, float]], colors: dict[str, str]) -> Figure:
    """Parameter importance per arm (horizontal bars, largest on top)."""
    arms = list(importance)
    n_params = max(len(v) for v in importance.values())
    left = _text_width([k for v in importance.values() for k in v], 8.0) + 0.1
    fig, axes = _small_multiples(
        len(arms), 0.25 * n_params + 0.2, Margins(left=left, top=0.3, bottom=0.5, wspace=left + 0.2, hspace=0.5)
    )
    for ax, arm in zip(axes.flat, arms, strict=False):
        items = sorted(importance[arm].items(), key=lambda kv: kv[1])
        ax.barh([plain(k) for k, _ in items], [v for _, v in items], color=colors.get(arm, PALETTE[0]), height=0.6)
        ax.set_title(plain(arm), color=colors.get(arm, PALETTE[0]))
        ax.set_xlim(0, max(1e-9, max(v for _, v in items)) * 1.1)
        ax.grid(axis="y", visible=False)
    for ax in list(axes.flat)[len(arms) :]:
        ax.set_visible(False)
    for ax in axes[-1, :]:
        ax.set_xlabel("importance")
    return fig


# -- augmentation -------------------------------------------------------------------------------


def augment_p(data: list[tuple[str, Curve]], colors: dict[str, str]) -> Figure:
    """The adaptive augmentation probability p per epoch: each arm's mean over seeds with its
    min-max band (p is in [0, 1])."""
    from matplotlib.lines import Line2D

    fig, axes = _grid(7.0, 2.2, 1, 1, Margins(left=0.6, top=0.3, bottom=0.55 + 0.22 * math.ceil(len(data) / 4)))
    ax = axes[0, 0]
    for arm, c in data:
        col = colors[arm]
        ax.fill_between(c.epochs, c.lo, c.hi, color=col, alpha=0.15, lw=0)
        ax.plot(c.epochs, c.mean, color=col, lw=1.8, marker="o", ms=3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("augmentation p")
    ax.set_xlabel("epoch")
    _int_x(ax)
    handles = [Line2D([], [], color=colors[a], lw=2, label=plain(a)) for a, _ in data]
    _bottom_legend(fig, handles, min(len(handles), 4))
    return fig


@dataclass
class SampleGrid:
    arm: str
    images: np.ndarray  # uint8 (classes, per class, C, H, W)
    caption: str


def _mosaic(images: np.ndarray) -> np.ndarray:
    """One image of a (rows, cols, C, H, W) grid with a 1-pixel white gap: (H', W') or (H', W', 3)."""
    rows, cols, ch, h, w = images.shape
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, ch), 255, dtype=np.uint8)
    for i in range(rows):
        for j in range(cols):
            out[i * (h + 1) : i * (h + 1) + h, j * (w + 1) : j * (w + 1) + w] = images[i, j].transpose(1, 2, 0)
    return out[..., 0] if ch == 1 else out[..., :3]


def sample_grids(grids: list[SampleGrid], colors: dict[str, str]) -> Figure:
    """Generated samples per arm: one row per class (the class index on the left)."""
    n = len(grids)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = _grid(min(FULL_WIDTH, 0.5 + 3.4 * cols), 3.0, rows, cols, Margins(left=0.4, top=0.35, bottom=0.45))
    for ax, g in zip(axes.flat, grids, strict=False):
        img = _mosaic(g.images)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        h = g.images.shape[3] + 1
        ax.set_yticks(
            [i * h + (h - 1) / 2 for i in range(g.images.shape[0])], [str(i) for i in range(g.images.shape[0])]
        )
        ax.set_xticks([])
        ax.grid(False)
        for s in ax.spines.values():
            s.set_visible(False)
        ax.set_title(plain(g.arm), color=colors[g.arm])
        ax.set_xlabel(plain(g.caption), fontsize=7.5, color=MUTED)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig
