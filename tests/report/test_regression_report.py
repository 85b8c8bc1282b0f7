"""The report of a regression study like the diabetes example (issue 21): the interval legend names
the scale actually used for RMSE, numbers of one column keep one precision, the regime line gives
the network's trainable parameters, the reference error stands beside the diagnosis thresholds,
and the verdict table fits a 1280-px window with a long arm name."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from reglab.report import build_report
from reglab.stats.summary import StudySummary
from reglab.study.definition.spec import parse_study
from reglab.study.results.outcome import RunOutcome, RunStatus
from reglab.study.results.results import summarize
from reglab.study.results.storage import RunRecord


def verdict_section(html: str) -> str:
    start = html.index('<section id="verdict"')
    return html[start : html.index("</section>", start)]


def text_of(fragment: str) -> str:
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


SPREAD = [-1.0, 0.5, 0.5, -0.5, 0.5]  # sums to 0: the means are exactly the centres below
# the diabetes example's arms; test RMSE centres as issue 21 saw them ("67" printed beside "56.25")
ARMS: dict[str, tuple[dict[str, Any], float]] = {
    "none": ({}, 67.0008),
    "l2": ({"l2": 1.0e-3}, 64.33),
    "dropout": ({"dropout": 0.2}, 58.1),
    "early_stopping": ({"early_stopping": {"patience": 8, "monitor": "val_rmse"}}, 56.25),
}
CONFIG = {
    "data": {"name": "diabetes"},
    "model": {"arch": "mlp", "hidden": [64, 64]},
    "train": {"optimizer": "adam", "lr": 0.003, "epochs": 60, "batch_size": 32},
}
N_PARAMS = 10 * 64 + 64 + 64 * 64 + 64 + 64 + 1  # 4,929


def _outcome(arm: str, centre: float, seed: int) -> RunOutcome:
    fits = arm == "early_stopping"
    final = {
        "test_rmse": centre + SPREAD[seed],
        "val_rmse": centre + 2,
        "train_rmse": centre - (6 if fits else 40),
        "train_r2": 0.58 if fits else 0.9,
        "val_r2": 0.43 if fits else 0.2,
        "test_r2": 0.45,
    }
    info: dict[str, Any] = {"n_params": N_PARAMS}
    if arm == "none":
        info["reference"] = {"errors": {"ridge": 0.6, "hist_gradient_boosting": 0.67}, "seconds": 0.02}
    return RunOutcome(status=RunStatus.COMPLETED, final=final, info=info)


def write_regression_study(out: Path) -> StudySummary:
    doc = {"name": "diabetes-like", "data": {"name": "diabetes"}, "arms": {a: o for a, (o, _) in ARMS.items()}}
    spec = parse_study({**doc, "seeds": 5})
    records = {(a, s): RunRecord(a, s, _outcome(a, c, s), 0) for a, (_, c) in ARMS.items() for s in range(5)}
    summary = summarize(spec, records)
    out.mkdir(parents=True)
    (out / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    config = {"name": "diabetes-like", "arms": {a: {"overrides": o, "config": CONFIG} for a, (o, _) in ARMS.items()}}
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return summary


def test_the_rmse_interval_legend_says_what_was_computed(tmp_path: Path) -> None:
    write_regression_study(tmp_path / "s")
    text = text_of(verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8")))
    assert "test_rmse: mean over seeds · 95% CI, a Student-t interval of the mean over seeds on the log scale, " in text
    assert "log(x) (delta method), mapped back: it never goes below 0." in text
    assert "logit" not in text
    md = build_report(tmp_path / "s", fmt="md").read_text(encoding="utf-8")
    assert "on the log scale, log(x)" in md and "logit" not in md


def test_a_column_keeps_one_precision(tmp_path: Path) -> None:
    from reglab.report.format import column_places, fmt_value

    assert [fmt_value("test_rmse", x, column_places([67.0008, 56.25])) for x in (67.0008, 56.25)] == ["67.00", "56.25"]
    assert column_places([0.8512, 0.9]) == 4 and column_places([1234.5, 3.0]) == 0 and column_places([None]) == 3
    write_regression_study(tmp_path / "s")
    section = verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8"))
    means = dict(re.findall(r'<tr data-arm="([^"]+)".*?data-key="mean" data-value="[^"]*">([^<]+)<', section, re.S))
    assert means == {"none": "67.00", "l2": "64.33", "dropout": "58.10", "early_stopping": "56.25"}
    diffs = re.findall(r'data-key="mean_diff" data-value="[^"]*">([^<]+)<', section)
    assert len(diffs) == 3 and len({len(d.split(".")[1]) for d in diffs}) == 1, diffs  # one precision


def test_the_regime_line_and_summary_give_the_parameter_count(tmp_path: Path) -> None:
    summary = write_regression_study(tmp_path / "s")
    assert all(a.n_params == N_PARAMS for a in summary.arms.values())
    stored = json.loads((tmp_path / "s" / "summary.json").read_text(encoding="utf-8"))
    assert stored["arms"]["none"]["n_params"] == 4929
    text = text_of(verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8")))
    assert "Regime: the training split of diabetes, a 64-64-unit MLP of 4,929 trainable parameters, 60 epochs" in text


def test_the_reference_stands_beside_the_thresholds(tmp_path: Path) -> None:
    summary = write_regression_study(tmp_path / "s")
    assert summary.reference_error is not None and summary.reference_error.value == pytest.approx(0.6)
    text = text_of(verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8")))
    assert "Diagnosis from the seed-averaged train and validation R²: high bias when avoidable bias" in text
    assert "reference error 0.600 (validation 1 − R² of ridge regression, better than HistGradientBoosting 0.670" in (
        text
    )
    best = summary.arm("early_stopping").diagnosis
    assert best is not None and best.label == "good fit" and "≤ reference 0.600" in best.reason


# run by Chromium: the verdict table's right edge, the runs column's right edge and the window's width
MEASURE = """<script>
const table = document.querySelector('#verdict table');
const wrap = table.closest('.table-wrap');
const cells = table.querySelectorAll('tr > :last-child');
const right = Math.max(...Array.from(cells, c => c.getBoundingClientRect().right));
document.body.setAttribute('data-runs-right', Math.ceil(right));
document.body.setAttribute('data-wrap-right', Math.floor(wrap.getBoundingClientRect().right));
document.body.setAttribute('data-overflow', wrap.scrollWidth - wrap.clientWidth);
</script>"""


@pytest.mark.slow
def test_the_verdict_table_fits_1280_px_with_a_long_arm_name(chromium: Any, tmp_path: Path) -> None:
    """Issue 21: the diabetes example's ``early_stopping`` arm (and its two settings) pushed the runs
    column out of the table's box at 1280 px; every column is now inside it, unscrolled."""
    summary = write_regression_study(tmp_path / "s")
    doc = summary.model_dump(mode="json")
    reasons = {  # the longest one-line reasons: an old summary's, a near label, the reference's
        "none": "training relative error 1 − R² = 0.051 > 0.050; near the threshold: other seeds could flip this label",
        "l2": "avoidable bias 0.051 > 0.050 (1 − train R² 0.647 − reference 0.596); near the threshold: other seeds "
        "could flip this label",
        "early_stopping": "validation 1 − R² 0.568 ≤ reference 0.596 (it reaches the attainable error)",
    }
    for arm, reason in reasons.items():
        doc["arms"][arm]["diagnosis"]["reason"] = reason
    doc["arms"]["l2"]["comparison"]["verdict"] = "no significant difference"
    doc["arms"]["dropout"]["n_failed"] = 1
    (tmp_path / "s" / "summary.json").write_text(StudySummary.model_validate(doc).to_json(), encoding="utf-8")
    page = build_report(tmp_path / "s")
    measured = tmp_path / "s" / "measured.html"
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom, _ = chromium.dump_dom(measured, size="1280,900")
    found = re.search(r'data-runs-right="(\d+)" data-wrap-right="(\d+)" data-overflow="(-?\d+)"', dom)
    assert found, dom[:2000]
    runs_right, wrap_right, overflow = map(int, found.groups())
    # (1 px: sub-pixel rounding of a table that fills its box exactly)
    assert overflow <= 1 and runs_right <= wrap_right + 1 <= 1280, (runs_right, wrap_right, overflow)
