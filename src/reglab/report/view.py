"""What every report section reads: the study's outputs, its arms in rank order, their colors,
and the figures drawn so far (a figure that fails to draw becomes a note, not an error)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reglab.report import figures as F
from reglab.report.data import StudyOutput
from reglab.stats.summary import ArmSummary, MetricStats, StudySummary

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ReportView:
    so: StudyOutput
    png_dir: Path | None = None
    figures: list[F.Rendered] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.summary
        self.baseline: str | None = s.baseline if s.baseline in s.arms else None
        self.metric = s.compare_metric
        self.order = [name for name, _ in s.ranked()]
        self.colors = F.arm_colors([*s.arms, *(self.so.tuning or {})], self.baseline)

    @property
    def summary(self) -> StudySummary:
        return self.so.summary

    @property
    def notes(self) -> list[str]:
        return self.so.notes

    def arms(self) -> list[tuple[str, ArmSummary]]:
        """The arms in rank order."""
        return [(a, self.summary.arms[a]) for a in self.order]

    def stats(self, arm: str, metric: str) -> MetricStats:
        return self.summary.metric(arm, metric)

    def fig(self, name: str, build: Callable[[], Any], title: str, caption: str = "") -> F.Rendered | None:
        """Build and render one figure; a plotting failure drops the figure (with a note), not the report."""
        try:
            with F.style(name):
                fig = build()
            r = F.render(fig, name, self.png_dir, title)
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError) as err:
            self.notes.append(f"figure {name!r} left out ({type(err).__name__}: {str(err)[:200]})")
            return None
        r.caption = caption
        self.figures.append(r)
        return r

    def completed(self, df: pd.DataFrame | None) -> pd.DataFrame | None:
        """The rows of completed runs (runs.csv or finals.csv), None when there are none."""
        if df is None or df.empty:
            return None
        if "status" in df.columns:
            df = df[df["status"].astype(str) == "completed"]
        return df if not df.empty else None
