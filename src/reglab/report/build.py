"""The study report: one self-contained HTML file (inline CSS and SVG figures, no network) or a
Markdown summary, built from a study's output directory.

Printed statistics come from ``summary.json`` only (formatted, never recomputed); learning curves
come from ``runs.csv`` and per-seed points from ``finals.csv``. Each section is built by its own
function (``verdict``, ``results_sections``, ``search_sections``) from a :class:`ReportView`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reglab.errors import ReglabError
from reglab.files import write_atomic
from reglab.report.data import load_output
from reglab.report.format import is_fraction
from reglab.report.render import render_html, render_markdown
from reglab.report.results_sections import (
    adaptive_section,
    augmentation_section,
    curves_section,
    distribution_section,
    gap_section,
    weights_section,
)
from reglab.report.search_sections import path_section, tuning_section
from reglab.report.verdict import failed_runs, reproducibility, verdict_section
from reglab.report.view import ReportView

FORMATS = ("html", "md")
SECTION_TITLES = {
    "verdict": "Verdict",
    "adaptive": "Adaptive seeds",
    "curves": "Learning curves",
    "gap": "Generalization gap",
    "distribution": "Per-seed results",
    "weights": "Weights",
    "augmentation": "Augmentation",
    "path": "Regularization path",
    "tuning": "Tuning",
    "failed": "Failed runs",
    "reproducibility": "Reproducibility",
}
FIGURE_SECTIONS = {
    "adaptive": adaptive_section,
    "curves": curves_section,
    "gap": gap_section,
    "distribution": distribution_section,
    "weights": weights_section,
    "augmentation": augmentation_section,
    "path": path_section,
    "tuning": tuning_section,
}


def build_report(output_dir: str | Path, fmt: str = "html", png_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``report.md`` for ``fmt="md"``) into ``output_dir`` and return its
    path; with ``png_dir`` every figure is also saved there as PNG."""
    if fmt not in FORMATS:
        raise ReglabError(f"unknown report format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    so = load_output(output_dir)
    pngs: Path | None = None
    if png_dir is not None:
        pngs = Path(png_dir)
        try:
            pngs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ReglabError(f"--png {pngs}: cannot create the folder ({err.strerror or err})") from None
    ctx = context(ReportView(so, pngs), figures=fmt == "html" or pngs is not None)
    if fmt == "md":
        text = render_markdown(ctx, so.directory)
        target = so.directory / "report.md"
    else:
        text = render_html(ctx)
        target = so.directory / "report.html"
    try:
        write_atomic(target, text)  # workers sharing the folder never leave a half-written report
    except OSError as err:
        raise ReglabError(f"{target}: cannot write the report ({err.strerror or err})") from None
    return target


def context(v: ReportView, figures: bool = True) -> dict[str, Any]:
    """Everything the templates show: the header facts, each section's content (None: left out),
    notes, figures and the navigation."""
    s = v.summary
    ctx: dict[str, Any] = {
        "study": s.study or v.so.directory.name,
        "baseline": v.baseline,
        "metric": v.metric,
        "metric_is_fraction": is_fraction(v.metric),
        "select_metric": s.select_metric,
        "seeds": s.seeds,
        "n_seeds": len(s.seeds),
        "n_runs": s.n_runs,
        "n_expected": s.n_expected,
        "n_arms": len(s.arms),
        "colors": v.colors,
        "version": s.environment.versions.get("reglab") if s.environment else None,
        "verdict": verdict_section(v),
        "failed": failed_runs(v),
        "repro": reproducibility(v),
        "sections": {name: build(v) for name, build in FIGURE_SECTIONS.items()} if figures else {},
    }
    if not figures:  # the adaptive-seeds table belongs in every report, with or without figures
        ctx["sections"]["adaptive"] = adaptive_section(v, figure=False)
    ctx["notes"] = list(v.notes)
    ctx["figures"] = v.figures
    present = ["verdict", *(k for k, x in ctx["sections"].items() if x)]
    if ctx["failed"]:
        present.append("failed")
    present.append("reproducibility")
    ctx["nav"] = [(k, SECTION_TITLES[k]) for k in present]
    return ctx
