"""The study report: a self-contained HTML file (and a Markdown summary) built from real study
outputs; every printed statistic must equal the one in summary.json."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reglab.errors import ReglabError
from reglab.report import build_report
from reglab.report.data import load_output
from reglab.report.results_sections import curve_data, strip_data
from reglab.report.view import ReportView

REPO = Path(__file__).resolve().parents[2]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
OPTIONAL = ("curves", "gap", "distribution", "weights", "path", "tuning", "failed")


# -- helpers ------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Checks nesting (every non-void element closed, in order) and collects what tests look at:
    sections, figures, the number of elements inside each <svg>, and data-value cells per arm."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.sections: list[str] = []
        self.figures: list[dict[str, Any]] = []
        self.svg_sizes: list[int] = []
        self.scripts = 0
        self.external: list[str] = []
        self.cells: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.notes: list[str] = []
        self._svg_depth = 0
        self._table: list[str | None] = []
        self._arm: str | None = None
        self._cell: dict[str, str] | None = None
        self._note: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self._element(tag, a)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, {k: v or "" for k, v in attrs})

    def _element(self, tag: str, a: dict[str, str]) -> None:
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])
        if tag == "link" or (tag == "script" and "src" in a):
            self.external.append(tag)
        if tag == "script":
            self.scripts += 1
        if self._svg_depth:
            self.svg_sizes[-1] += 1
        if tag == "svg":
            self._svg_depth += 1
            self.svg_sizes.append(0)
            if self.figures:
                self.figures[-1]["svgs"] += 1
        if tag == "section" and "data-section" in a:
            self.sections.append(a["data-section"])
        if tag == "figure":
            self.figures.append({"name": a.get("data-figure"), "svgs": 0, "section": self.sections[-1]})
        if tag == "table":
            self._table.append(a.get("data-table"))
        if tag == "tr":
            self._arm = a.get("data-arm")
        if tag == "span" and "data-key" in a and self._arm and self._table:
            self._cell = {"key": a["data-key"], "value": a.get("data-value", ""), "text": ""}
            self.cells.setdefault((self._table[-1] or "", self._arm), []).append(self._cell)
        if "data-note" in a:
            self._note = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()
        if tag == "svg":
            self._svg_depth -= 1
        if tag == "table" and self._table:
            self._table.pop()
        if tag == "span":
            self._cell = None
        if self._note is not None and tag in ("p", "div"):
            self.notes.append(self._note.strip())
            self._note = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data
        if self._note is not None:
            self._note += data


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    return p


def check_page(path: Path) -> Page:
    """Well-formed, self-contained, every figure a non-empty inline SVG."""
    html = path.read_text(encoding="utf-8")
    p = parse(html)
    assert not p.errors, p.errors[:5]
    assert p.stack == [], f"unclosed: {p.stack}"
    assert p.external == [], f"external resources: {p.external}"
    assert "@import" not in html and "url(http" not in html
    assert p.scripts == 1  # the small inline one
    assert p.figures and all(f["svgs"] == 1 for f in p.figures)
    assert p.svg_sizes and min(p.svg_sizes) > 20, p.svg_sizes  # axes, lines, labels inside each
    assert p.sections[0] == "verdict" and p.sections[-1] == "reproducibility"
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids"
    return p


def summary_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def pp(x: float) -> str:
    return f"{x * 100:+.2f} pp"


# -- HTML for real studies ----------------------------------------------------------------------


def test_main_study_report(studies: dict[str, Path]) -> None:
    out = studies["main"]
    path = build_report(out)
    assert path == out / "report.html"
    p = check_page(path)
    s = summary_of(out)
    assert [x for x in p.sections if x in OPTIONAL] == ["curves", "gap", "distribution", "weights"]
    names = {f["name"] for f in p.figures}
    assert {"curves_accuracy", "curves_loss", "curves_overlaid", "generalization_gap", "per_seed"} <= names
    assert {"weights_log", "weights_linear", "weights_norms"} <= names
    # the underpowered note (2 seeds) is shown verbatim
    assert s["underpowered_note"] and any(s["underpowered_note"] in n for n in p.notes)
    # arms in ranking order, numbers exactly those of summary.json
    html = path.read_text(encoding="utf-8")
    rows = re.findall(r'<tr data-arm="([^"]+)"', html.split('data-table="verdict"')[1].split("</table>")[0])
    assert rows == s["ranking"]
    for arm, a in s["arms"].items():
        cells = {c["key"]: c for c in p.cells[("verdict", arm)]}
        mean = a["metrics"]["test_acc"]["mean"]
        assert float(cells["mean"]["value"]) == mean
        assert cells["mean"]["text"] == pct(mean)
        assert f"[{pct(a['metrics']['test_acc']['ci_low'])}, {pct(a['metrics']['test_acc']['ci_high'])}]" in html
        if arm == s["baseline"]:
            assert "mean_diff" not in cells
            continue
        c = a["comparison"]
        assert float(cells["mean_diff"]["value"]) == c["mean_diff"]
        assert cells["mean_diff"]["text"] == pp(c["mean_diff"])
        assert float(cells["prob_improvement"]["value"]) == c["prob_improvement"]
        assert cells["prob_improvement"]["text"] == f"{c['prob_improvement']:.2f}"
        assert float(cells["p_holm"]["value"]) == c["p_holm"]
        assert cells["p_holm"]["text"] == ("<0.001" if c["p_holm"] < 0.001 else f"{c['p_holm']:.3f}")
        shown = html_lib.unescape(html)  # "seeds' spread" is "seeds&#39; spread" in the page
        assert a["diagnosis"]["label"] in shown and a["diagnosis"]["recommendation"] in shown
    for arm, a in s["arms"].items():  # weights table
        cells = {c["key"]: c for c in p.cells[("weights", arm)]}
        assert float(cells["sparsity"]["value"]) == a["metrics"]["sparsity"]["mean"]
        assert float(cells["weight_l2"]["value"]) == a["metrics"]["weight_l2"]["mean"]
    assert s["environment"]["versions"]["torch"] in html
    assert "Resolved configuration" in html and "<summary>" in html


def test_plotted_data_matches_the_outputs(studies: dict[str, Path]) -> None:
    """Per-seed points are the summary's values; best-epoch marks are the summary's means."""
    so = load_output(studies["main"])
    s = so.summary
    view = ReportView(so)
    strip = {a.arm: a for a in strip_data(view)}
    curves = {c.arm: c for c in curve_data(view)}
    for arm, a in s.arms.items():
        assert sorted(strip[arm].values.values()) == pytest.approx(sorted(a.metrics["test_acc"].values))
        assert strip[arm].mean == a.metrics["test_acc"].mean
        assert curves[arm].best_epoch == a.metrics["best_epoch"].mean
        assert curves[arm].n_seeds == 2
        assert list(curves[arm].curves["val_acc"].epochs) == [1.0, 2.0, 3.0]
    assert set(strip[s.baseline].values) == set(s.seeds)


def test_single_arm_single_seed(studies: dict[str, Path]) -> None:
    out = studies["single"]
    p = check_page(build_report(out))
    s = summary_of(out)
    assert "failed" not in p.sections and "path" not in p.sections and "tuning" not in p.sections
    assert {"curves", "gap", "weights"} <= set(p.sections)
    assert "distribution" not in p.sections  # one value per arm: the verdict table shows it
    assert 'data-figure="curves_overlaid"' not in (out / "report.html").read_text(encoding="utf-8")  # one arm
    cells = {c["key"]: c for c in p.cells[("verdict", "none")]}
    assert cells["mean"]["text"] == pct(s["arms"]["none"]["metrics"]["test_acc"]["mean"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Δ vs" not in html  # nothing to compare against
    assert "1 seed<" in html


def test_diverged_run_is_listed(studies: dict[str, Path]) -> None:
    out = studies["diverged"]
    s = summary_of(out)
    assert [f["arm"] for f in s["failed_runs"]] == ["crazy"]
    p = check_page(build_report(out))
    assert "failed" in p.sections
    html = (out / "report.html").read_text(encoding="utf-8")
    failed = html.split('data-table="failed"')[1].split("</table>")[0]
    f = s["failed_runs"][0]
    assert "crazy" in failed and f["status"] in failed and f["reason"] in failed
    assert f"<td>{f['epoch']}</td>" in failed
    assert "no completed runs" in html  # the diverged arm's verdict row
    assert "1 failed or diverged run left out" in html


def test_study_whose_every_run_failed(studies: dict[str, Path]) -> None:
    out = studies["all_failed"]
    s = summary_of(out)
    assert [a["n_completed"] for a in s["arms"].values()] == [0, 0] and len(s["failed_runs"]) == 4
    p = check_report_without_figures(build_report(out))
    assert [x for x in p.sections if x in OPTIONAL] == ["failed"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "No run completed: all 4 runs failed or diverged" in html
    assert html.count("non-finite training loss") == 4 and "no completed runs" in html
    md = build_report(out, fmt="md").read_text(encoding="utf-8")
    assert "**No run completed: all 4 runs failed or diverged" in md and "## Failed runs" in md


def check_report_without_figures(path: Path) -> Page:
    """Well-formed and self-contained (a study without a completed run has no figure to draw)."""
    p = parse(path.read_text(encoding="utf-8"))
    assert not p.errors and p.stack == [] and p.external == [] and p.figures == []
    assert p.sections[0] == "verdict" and p.sections[-1] == "reproducibility"
    return p


def test_optional_files_missing_or_broken(copy_of: Callable[[str], Path]) -> None:
    out = copy_of("main")
    for name in ("runs.csv", "finals.csv", "config.resolved.yaml"):
        (out / name).unlink()
    p = check_page(build_report(out))
    assert "curves" not in p.sections  # no runs.csv: no learning curves
    assert {"gap", "distribution", "weights"} <= set(p.sections)  # from summary.json alone
    assert "Resolved configuration" not in (out / "report.html").read_text(encoding="utf-8")
    (out / "runs.csv").write_text('"unclosed\n\x00', encoding="utf-8")
    (out / "tuning.json").write_text("{not json", encoding="utf-8")
    (out / "path.json").write_text("[]", encoding="utf-8")
    p = check_page(build_report(out))
    assert "curves" not in p.sections and "tuning" not in p.sections and "path" not in p.sections
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "tuning.json could not be read" in html and "path.json has no rows" in html


def test_path_and_tuning_sections(copy_of: Callable[[str], Path]) -> None:
    out = copy_of("main")
    write_path_and_tuning(out)
    p = check_page(build_report(out))
    assert [x for x in p.sections if x in OPTIONAL] == ["curves", "gap", "distribution", "weights", "path", "tuning"]
    names = {f["name"] for f in p.figures}
    assert {"path", "tuning_progress", "tuning_importance"} <= names
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Best value by mean <b>validation</b> accuracy" in html  # qualified: the verdict's best is on test
    assert ">0.001</b>" in html  # the max mean val_acc in the fake sweep
    assert "lr = 0.0123" in html
    cells = {c["key"]: c for c in p.cells[("tuning", "l1")]}
    assert float(cells["best_value"]["value"]) == 0.96
    # what the search cost: epochs and minutes per arm (l1: 101 epochs, 180 s)
    row = re.search(r'<tr data-arm="l1">(.*?)</tr>', html.split('data-table="tuning"')[1], re.S)
    assert row is not None and "<td>101</td><td>3.0</td>" in row.group(1)


def test_user_strings_are_escaped_and_storage_masked(copy_of: Callable[[str], Path]) -> None:
    out = copy_of("diverged")
    s = summary_of(out)
    s["study"] = "<script>alert(1)</script>"
    s["failed_runs"][0]["reason"] = '<img src=x onerror="alert(2)"> & more'
    s["storage"] = "postgresql://alice:s3cret@db.example:5432/reglab"
    (out / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    cfg = (out / "config.resolved.yaml").read_text(encoding="utf-8")
    (out / "config.resolved.yaml").write_text(cfg + "\nextra: postgresql://bob:hunter2@h/db\n", encoding="utf-8")
    html = build_report(out).read_text(encoding="utf-8")
    check_page(out / "report.html")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert "s3cret" not in html and "postgresql://alice:***@db.example:5432/reglab" in html
    assert "hunter2" not in html and "postgresql://bob:***@h/db" in html


# -- Markdown, PNGs, errors ---------------------------------------------------------------------


def test_markdown_summary(studies: dict[str, Path], copy_of: Callable[[str], Path]) -> None:
    out = copy_of("main")
    path = build_report(out, fmt="md")
    assert path == out / "report.md"
    md = path.read_text(encoding="utf-8")
    s = summary_of(out)
    assert md.startswith("# reglab report: report-main")
    assert s["underpowered_note"] in md
    for arm in s["ranking"]:
        a = s["arms"][arm]
        line = next(x for x in md.splitlines() if x.startswith(f"| {a['rank']} | {arm}"))
        assert pct(a["metrics"]["test_acc"]["mean"]) in line
        if arm != s["baseline"]:
            assert pp(a["comparison"]["mean_diff"]) in line and a["comparison"]["verdict"] in line
    assert "## Diagnosis and recommendations" in md and "## Failed runs" not in md
    assert not (out / "report.html").exists()
    md2 = build_report(studies["diverged"], fmt="md").read_text(encoding="utf-8")
    assert "## Failed runs" in md2 and "non-finite training loss" in md2


def test_headline_follows_the_verdicts(copy_of: Callable[[str], Path]) -> None:
    out = copy_of("main")
    s = summary_of(out)
    s["underpowered_note"] = None
    s["arms"]["l1"]["comparison"]["verdict"] = "better"
    s["arms"]["dropout"]["comparison"]["verdict"] = "worse"
    (out / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    md = build_report(out, fmt="md").read_text(encoding="utf-8")
    assert "**Better than the baseline (none) after Holm correction: l1. Significantly worse: dropout.**" in md
    assert "Note:" not in md
    s["arms"]["l1"]["comparison"]["verdict"] = "no significant difference"
    (out / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    md = build_report(out, fmt="md").read_text(encoding="utf-8")
    assert "No arm is significantly better than the baseline (none)" in md


def test_png_dir(copy_of: Callable[[str], Path], tmp_path: Path) -> None:
    out = copy_of("main")
    pngs = tmp_path / "figs" / "nested"
    p = check_page(build_report(out, png_dir=pngs))
    files = sorted(f.name for f in pngs.iterdir())
    assert files == sorted(f"{f['name']}.png" for f in p.figures)
    for f in pngs.iterdir():
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000
    single = copy_of("single")  # Markdown with PNGs (a smaller study: fewer panels to draw)
    md = build_report(single, fmt="md", png_dir=single / "png").read_text(encoding="utf-8")
    assert "![Train vs test accuracy](png/generalization_gap.png)" in md
    assert (single / "png" / "generalization_gap.png").is_file()


def test_errors(tmp_path: Path, copy_of: Callable[[str], Path], studies: dict[str, Path]) -> None:
    with pytest.raises(ReglabError, match=r"no summary\.json.*reglab run"):
        build_report(tmp_path)
    with pytest.raises(ReglabError, match="no such directory"):
        build_report(tmp_path / "missing")
    out = copy_of("single")
    with pytest.raises(ReglabError, match="unknown report format 'pdf'"):
        build_report(out, fmt="pdf")
    (out / "summary.json").write_text("{", encoding="utf-8")
    with pytest.raises(ReglabError, match="cannot read it"):
        build_report(out)
    (out / "summary.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ReglabError, match="not a reglab study summary"):
        build_report(out)
    with pytest.raises(ReglabError) as info:
        build_report(tmp_path)
    assert "\n" not in str(info.value)
    doc = summary_of(studies["single"])  # a renamed key
    doc["arms"]["none"]["metrics"]["test_acc"]["average"] = doc["arms"]["none"]["metrics"]["test_acc"].pop("mean")
    (out / "summary.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ReglabError) as info:
        build_report(out)
    msg = str(info.value)
    assert "\n" not in msg and str(out / "summary.json") in msg and "arms.none.metrics.test_acc.mean: missing" in msg


# -- real browser -------------------------------------------------------------------------------


@pytest.mark.browser
def test_report_in_headless_chromium(
    chromium: Any, copy_of: Callable[[str], Path], studies: dict[str, Path], tmp_path: Path
) -> None:
    # the log scan below must see console errors when there are some
    probe = tmp_path / "probe.html"
    probe.write_text("<p>x</p><script>undefinedFunction();</script>", encoding="utf-8")
    _, log = chromium.dump_dom(probe)
    assert console_errors(log), "chromium's log shows no console messages: the error scan would be blind"

    out = copy_of("main")
    write_path_and_tuning(out)
    for page in (build_report(out), build_report(studies["diverged"])):
        expected = check_page(page)
        dom, log = chromium.dump_dom(page)
        assert console_errors(log) == []
        rendered = parse(dom)
        assert rendered.sections == expected.sections
        # the inline script ran and measured every figure in a visible tab
        figs = re.findall(r'<figure class="fig" data-figure="([^"]+)" data-rendered="(yes|hidden)"', dom)
        assert len(figs) == len(expected.figures)
        hidden = {n for n, state in figs if state == "hidden"}
        assert hidden <= {"curves_loss", "curves_overlaid", "weights_linear"}  # second/third tabs only
        shown = re.search(r'data-figures-rendered="(\d+)"', dom)
        assert shown and int(shown.group(1)) == len(figs) - len(hidden) > 0
    target = REPO / "test-artifacts" / "report.png"
    target.unlink(missing_ok=True)
    chromium.screenshot(out / "report.html", target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 50_000
    shutil.copy(out / "report.html", target.with_suffix(".html"))


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line and ("Uncaught" in line or "error" in line.lower())]


# -- fake later-feature files -------------------------------------------------------------------


def write_path_and_tuning(out: Path) -> None:
    """A regularization path (l2 on a log grid, 2 seeds, one diverged point) and tuning results in
    the shapes ``reglab path`` and ``reglab tune`` write."""
    rows = []
    for i, v in enumerate([1e-5, 1e-4, 1e-3, 1e-2, 1e-1]):
        for seed in (0, 1):
            val = 0.9 - 0.02 * (i - 2) ** 2 + 0.001 * seed
            rows.append(
                {
                    "param": "l2",
                    "value": v,
                    "seed": seed,
                    "status": "completed",
                    "train_acc": 1 - 0.02 * i,
                    "val_acc": val,
                    "test_acc": val,
                    "sparsity": 0.01 * i,
                    "weight_l2": 20 / (1 + 100 * v),
                    "gap": 0.05,
                }
            )
    rows.append(
        {
            "param": "l2",
            "value": 1.0,
            "seed": 0,
            "status": "diverged",
            "train_acc": None,
            "val_acc": None,
            "test_acc": None,
            "sparsity": None,
            "weight_l2": None,
            "gap": None,
        }
    )
    (out / "path.json").write_text(json.dumps(rows), encoding="utf-8")
    arms = {}
    for k, arm in enumerate(("none", "l1", "dropout")):
        values = [0.9 + 0.005 * ((n * 7 + k) % 5) if n % 4 else None for n in range(12)]
        values[-1] = 0.95 + 0.01 * k
        scores = sorted(v for v in values if v is not None)
        arms[arm] = {
            "arm": arm,
            "trials": [
                {
                    "number": n,
                    "state": "COMPLETE" if v is not None else "PRUNED",
                    "value": v,
                    "params": {"lr": 10 ** (-3 + n / 6), "batch_size": 32 * (1 + n % 2)},
                }
                for n, v in enumerate(values)
            ],
            "best_value": scores[-1],
            "best_params": {"lr": 0.0123, "batch_size": 64},
            "epochs_spent": 100 + k,
            "seconds_spent": 90.0 * (k + 1),
            "expected_best": [{"n": n, "mean": scores[-1] - 0.02 / n, "std": 0.01 / n} for n in range(1, 10)],
            "importance": {"fanova": {"lr": 0.7, "batch_size": 0.3}, "ped_anova": {"_error": "too few trials"}},
            "metric": "val_acc",
        }
    doc = {"study": "report-main", "search": {"trials": 12}, "storage": "sqlite:///x.db", "arms": arms}
    (out / "tuning.json").write_text(json.dumps(doc), encoding="utf-8")
