"""Study reports: a self-contained HTML file (inline SVG figures, no network) or a Markdown summary.

>>> from reglab.report import build_report
>>> build_report("reglab-demo")            # -> reglab-demo/report.html
>>> build_report("reglab-demo", fmt="md")  # -> reglab-demo/report.md
"""

from __future__ import annotations

from reglab.report.build import build_report

__all__ = ["build_report"]
