"""The report's first screen (issue 15): what each arm is (settings and tuned values) beside its
result, the regime, intervals inside [0, 100 %], "best" qualified by its split, differences in
percentage points, the Holm sentence where an unadjusted interval disagrees with the verdict, and
diagnosis wording with its thresholds."""

from __future__ import annotations

import html as html_lib
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

# arm -> (overrides, per-seed difference to the baseline's test accuracy)
ARMS: dict[str, tuple[dict[str, Any], list[float]]] = {
    "none": ({}, [0.0] * 5),
    "smooth": ({"label_smoothing": 0.1}, [0.010, 0.012, 0.011, 0.013, 0.012]),  # better
    "l2+dropout": ({"l2": 5e-4, "dropout": 0.5}, [0.004, 0.001, 0.006, 0.001, 0.004]),  # p ~ 0.03 before Holm
    "augment": ({"augment": {"shift": 0.125, "rotation": 10}}, [0.001, -0.004, 0.001, -0.002, 0.001]),  # null
}
# the baseline's test accuracy per seed: near 100 %, where its t-interval passes 100 %
BASE = [0.985, 0.92, 0.985, 0.93, 0.985]
REGIME = {
    "data": {"name": "digits", "n_train": 100},
    "model": {"arch": "mlp", "hidden": [512, 512]},
    "train": {"optimizer": "adam", "lr": 0.001, "epochs": 150, "batch_size": 32},
}


def _outcome(test: float) -> RunOutcome:
    final = {"train_acc": 1.0, "val_acc": test - 0.04, "test_acc": test, "test_loss": 0.1, "gap": 1.0 - test}
    return RunOutcome(status=RunStatus.COMPLETED, final=final)


def write_study(out: Path) -> StudySummary:
    """A study output (summary.json and config.resolved.yaml) of 5 seeds near 100 % accuracy, in
    which "l2+dropout"'s unadjusted interval excludes 0 while Holm's test is not significant."""
    spec = parse_study({"name": "first-screen", "arms": {a: o for a, (o, _) in ARMS.items()}, "seeds": 5})
    records = {
        (a, s): RunRecord(a, s, _outcome(BASE[s] + diffs[s]), 0) for a, (_, diffs) in ARMS.items() for s in range(5)
    }
    summary = summarize(spec, records)
    out.mkdir(parents=True)
    (out / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    config = {
        "name": "first-screen",
        "diagnosis": spec.diagnosis.model_dump(),
        "arms": {a: {"overrides": o, "config": REGIME} for a, (o, _) in ARMS.items()},
    }
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return summary


def verdict_section(html: str) -> str:
    start = html.index('<section id="verdict"')
    return html[start : html.index("</section>", start)]


def text_of(fragment: str) -> str:
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_first_section_says_what_each_arm_is(tmp_path: Path) -> None:
    write_study(tmp_path / "s")
    section = verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8"))
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-arm="([^"]+)".*?</tr>', section, re.S)}
    assert set(rows) == set(ARMS)
    assert "shared settings only" in text_of(rows["none"])
    assert "label_smoothing = 0.1" in text_of(rows["smooth"])
    assert "l2 = 0.0005" in text_of(rows["l2+dropout"]) and "dropout = 0.5" in text_of(rows["l2+dropout"])
    assert "augment.shift = 0.125" in text_of(rows["augment"]) and "augment.rotation = 10" in text_of(rows["augment"])
    text = text_of(section)
    assert (
        "Regime: 100 training examples of digits, a 512-512-unit MLP, 150 epochs of Adam (lr 0.001, batch 32)." in text
    )
    assert (
        "The baseline (none) reaches 100.00% training" in text and "it over-fits, so regularization should pay" in text
    )


def test_tuned_values_stand_beside_the_arm(tmp_path: Path) -> None:
    summary = write_study(tmp_path / "s")
    doc = summary.model_dump(mode="json")
    doc["arms"]["smooth"]["overrides"] = {"label_smoothing": {"low": 0.0, "high": 0.3}}
    doc["tuning"] = {"smooth": {"best_params": {"label_smoothing": 0.137}, "n_trials": 4}}
    (tmp_path / "s" / "summary.json").write_text(StudySummary.model_validate(doc).to_json(), encoding="utf-8")
    section = verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8"))
    row = re.search(r'<tr data-arm="smooth".*?</tr>', section, re.S)
    assert row and "label_smoothing = 0.137 (tuned)" in text_of(row.group(0))


def test_intervals_stay_inside_0_100_and_differences_are_points(tmp_path: Path) -> None:
    summary = write_study(tmp_path / "s")
    section = verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8"))
    bounds = [float(x) for x in re.findall(r'data-ci-(?:low|high)="([^"]+)"', section)]
    assert len(bounds) == 2 * len(ARMS) and all(0.0 <= b <= 1.0 for b in bounds)
    shown = [float(x) for x in re.findall(r"\[(-?[\d.]+)%, (-?[\d.]+)%\]", text_of(section)) for x in x]
    assert shown and all(0.0 <= x <= 100.0 for x in shown)
    m = summary.arm("none").metric("test_acc")
    assert m.std and m.mean + 2.776 * m.std / 5**0.5 > 1.0  # the t-interval would have passed 100 %
    assert "logit scale" in text_of(section)  # the method is named
    diffs = re.findall(r'data-key="mean_diff" data-value="[^"]*">([^<]+)<', section)
    assert len(diffs) == len(ARMS) - 1 and all(d.endswith(" pp") for d in diffs)


def test_best_is_qualified_by_its_split(tmp_path: Path) -> None:
    write_study(tmp_path / "s")
    text = text_of(verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8")))
    assert "Highest mean test_acc (the test split, used for this final comparison only;" in text
    md = build_report(tmp_path / "s", fmt="md").read_text(encoding="utf-8")
    assert "Highest mean test_acc (the test split" in md and "| smooth | label_smoothing = 0.1 |" in md


def test_holm_sentence_and_diagnosis_wording(tmp_path: Path) -> None:
    summary = write_study(tmp_path / "s")
    disagree = [
        a
        for a, x in summary.arms.items()
        if (c := x.comparison) and not c.significant and c.ci_low is not None and (c.ci_low > 0 or c.ci_high < 0)  # type: ignore[operator]
    ]
    assert disagree, "the fixture should have an unadjusted interval that excludes 0 without significance"
    text = text_of(verdict_section(build_report(tmp_path / "s").read_text(encoding="utf-8")))
    assert f"For {', '.join(disagree)} the unadjusted 95 % interval of the difference excludes 0" in text
    assert "Holm's correction for the 3 comparisons" in text
    # the unregularized baseline over-fits: it is told to add regularization, never to reduce it
    none = summary.arm("none").diagnosis
    assert none is not None and none.label == "high variance" and none.recommendation.startswith("add regularization")
    assert "> 3 pp" in none.reason.replace(".0 pp", " pp")
    assert "high variance when train − validation gap > 3 pp" in text  # thresholds shown
    reduce = re.compile(r"none[^—]*— (reduce|lower)")
    assert not reduce.search(text)


# run by Chromium after the page's own scripts: where each arm's settings end on the page (CSS px
# from its top) and whether they are rendered (a box with a height)
MEASURE = """<script>
for (const row of document.querySelectorAll('#verdict tr[data-arm]')) {
  const box = row.querySelector('[data-settings]').getBoundingClientRect();
  row.setAttribute('data-settings-bottom', Math.ceil(box.bottom + window.scrollY));
  row.setAttribute('data-settings-height', Math.round(box.height));
}
</script>"""
LAID_OUT = r'<tr data-arm="([^"]+)"[^>]*data-settings-bottom="(\d+)" data-settings-height="(\d+)"'
FIRST_SCREEN = (1280, 900)  # CSS px: a laptop's browser window


@pytest.mark.slow
def test_first_screen_in_headless_chromium(chromium: Any, tmp_path: Path) -> None:
    """In a real browser: the first screen (1280 x 900) shows every arm's settings - laid out within
    the first 900 px of the page, not only present in the DOM - and no interval anywhere in the
    report leaves [0 %, 100 %]."""
    write_study(tmp_path / "s")
    page = build_report(tmp_path / "s")
    measured = tmp_path / "s" / "measured.html"
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    width, height = FIRST_SCREEN
    dom, _ = chromium.dump_dom(measured, size=f"{width},{height}")
    section = verdict_section(dom)
    text = text_of(section)
    assert all(arm in text for arm in ARMS)
    for needle in ("label_smoothing = 0.1", "l2 = 0.0005", "augment.shift = 0.125", "shared settings only"):
        assert needle in text
    laid_out = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(
            r'<tr data-arm="([^"]+)"[^>]*data-settings-bottom="(\d+)" data-settings-height="(\d+)"', dom
        )
    }
    assert set(laid_out) == set(ARMS), laid_out
    assert all(0 < bottom <= height and box > 0 for bottom, box in laid_out.values()), laid_out
    # every interval of the report (the verdict table, the per-arm tables, the text) stays in range
    bounds = [float(x) for x in re.findall(r'data-ci-(?:low|high)="([^"]+)"', dom)]
    assert bounds and all(0.0 <= b <= 1.0 for b in bounds)
    body = text_of(dom[dom.index("<body") :])
    intervals = re.findall(r"\[(-?[\d.]+) ?%, (-?[\d.]+) ?%\]", body)
    assert len(intervals) >= len(ARMS) and all(0.0 <= float(x) <= 100.0 for pair in intervals for x in pair)
    shot = tmp_path / "first-screen.png"
    chromium.screenshot(page, shot, size=f"{width},{height}")
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("reason", "short"),
    [
        ("train − validation gap 9.1 pp > 3.0 pp (training error 0.0 % ≤ 5.0 %)", "gap 9.1 pp > 3.0 pp"),
        ("training error 75.5 % > 5.0 %", "train error 75.5 % > 5.0 %"),
        (
            "training error 4.6 % ≤ 5.0 %, train − validation gap 1.0 pp ≤ 3.0 pp; near the threshold: other "
            "seeds could flip this label",
            "train error 4.6 % ≤ 5.0 % · near threshold",
        ),
    ],
)
def test_the_verdict_table_shows_the_deciding_number_of_a_diagnosis(reason: str, short: str) -> None:
    from reglab.stats.diagnosis import Diagnosis

    assert Diagnosis(label="good fit", reason=reason, recommendation="").short == short
