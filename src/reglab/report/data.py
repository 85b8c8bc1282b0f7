"""Reading a study's output directory for the report.

``summary.json`` is required and is the only source of printed statistics; ``runs.csv`` (learning
curves), ``finals.csv`` (per-seed points), ``config.resolved.yaml``, ``path.json`` and
``tuning.json`` are optional: a missing or unreadable one only hides its section (with a note).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reglab.stats.summary import StudySummary
from reglab.urls import mask_url

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class PathSweep:
    """One regularization path: rows of {param, value, seed, train_acc, val_acc, sparsity, weight_l2}."""

    param: str
    rows: list[dict[str, Any]]
    source: str


@dataclass
class StudyOutput:
    directory: Path
    summary: StudySummary
    runs: pd.DataFrame | None = None
    finals: pd.DataFrame | None = None
    config_text: str | None = None
    config: dict[str, Any] | None = None
    paths: list[PathSweep] = field(default_factory=list)
    tuning: dict[str, dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)


def num(x: Any) -> float | None:
    """A finite float, or None (for None, NaN, inf, strings that are not numbers)."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def load_output(output_dir: str | Path) -> StudyOutput:
    """Read everything the report can use; raise :class:`ReglabError` without a valid ``summary.json``."""
    out = Path(output_dir)
    summary = StudySummary.of_output(out)  # missing, unreadable or not this schema: one line
    so = StudyOutput(out, summary)
    so.runs = _read_csv(out / "runs.csv", so.notes)
    so.finals = _read_csv(out / "finals.csv", so.notes)
    _read_config(out / "config.resolved.yaml", so)
    so.paths = _read_paths(out, so.notes)
    so.tuning = _read_tuning(out / "tuning.json", so.notes)
    return so


def _read_csv(path: Path, notes: list[str]) -> pd.DataFrame | None:
    import pandas as pd

    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except Exception as err:  # empty, truncated or not CSV
        notes.append(f"{path.name} could not be read ({type(err).__name__}); its figures are left out")
        return None
    if "arm" not in df.columns or "seed" not in df.columns:
        notes.append(f"{path.name} has no arm/seed columns; its figures are left out")
        return None
    df["arm"] = df["arm"].astype(str)
    return df


def _read_config(path: Path, so: StudyOutput) -> None:
    import yaml

    if not path.is_file():
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        so.notes.append(f"{path.name} could not be read ({type(err).__name__})")
        return
    so.config_text = mask_url(text)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        so.notes.append(f"{path.name} is not valid YAML; shown as text only")
        return
    so.config = doc if isinstance(doc, dict) else None


def _path_rows(rows: Any) -> list[dict[str, Any]] | None:
    if isinstance(rows, dict):  # {"param": ..., "rows": [...]} is accepted too
        rows = rows.get("rows")
    if not isinstance(rows, list):
        return None
    good = [r for r in rows if isinstance(r, dict) and num(r.get("value")) is not None]
    return good or None


def _read_paths(out: Path, notes: list[str]) -> list[PathSweep]:
    """``path.json`` (or ``path.csv``) in the directory, and ``path-*/path.json`` below it."""
    candidates = [out / "path.json", out / "path.csv", *sorted(out.glob("path-*/path.json"))]
    sweeps: list[PathSweep] = []
    seen_json = (out / "path.json").is_file()
    for p in candidates:
        if not p.is_file() or (p.name == "path.csv" and seen_json):
            continue
        try:
            if p.suffix == ".csv":
                import pandas as pd

                raw: Any = pd.read_csv(p).to_dict("records")
            else:
                raw = json.loads(p.read_text(encoding="utf-8"))
        except Exception as err:
            notes.append(f"{p.relative_to(out)} could not be read ({type(err).__name__}); its section is left out")
            continue
        rows = _path_rows(raw)
        if rows is None:
            notes.append(f"{p.relative_to(out)} has no rows with a numeric value; its section is left out")
            continue
        params = sorted({str(r.get("param")) for r in rows if r.get("param") is not None})
        sweeps.append(PathSweep(", ".join(params) or "value", rows, str(p.relative_to(out))))
    return sweeps


def _read_tuning(path: Path, notes: list[str]) -> dict[str, dict[str, Any]] | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        notes.append(f"tuning.json could not be read ({type(err).__name__}); its section is left out")
        return None
    arms = doc.get("arms", doc) if isinstance(doc, dict) else None
    if not isinstance(arms, dict):
        notes.append("tuning.json has no arms; its section is left out")
        return None
    good = {str(a): v for a, v in arms.items() if isinstance(v, dict) and isinstance(v.get("trials"), list)}
    return good or None
