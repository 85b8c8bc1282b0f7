"""Benchmark: adaptive seeds (``seeds: {min, max, step, equivalence}``) against fixed seeds.

1. Simulation (NumPy, seconds): 8 arms against a baseline with true paired differences of
   -2, -1, 0, 0, 0, +0.5, +1, +2 pp, seed-to-seed standard deviation of the difference 1 pp,
   seeds {min: 5, max: 40, step: 5, equivalence: 0.01}, 4,000 replications (fixed NumPy seed).
   The fixed design: 40 seeds for every arm, paired t-test, Holm across the 8 arms (reglab's
   fixed-seed statistics). Runs count the baseline too (fixed: 9 x 40 = 360).
   Targets: adaptive runs <= 60 % of the fixed design's; family-wise false verdicts (a wrong sign,
   better/worse for a true 0, "equivalent" for a true difference on or outside the margin)
   <= 5 %; the right verdict on the +-1 and +-2 pp arms at least as often as the fixed design.
2. ``--demo``: the demo study (``reglab demo``, 9 arms) with 20 fixed seeds, then the same study
   with ``seeds: {min: 5, max: 20, step: 5, equivalence: 0.01}`` on the same storage: seed i is
   the same run, so the adaptive study trains nothing new and decides from the runs it needs;
   printed side by side (verdict, seeds at which each arm was decided, runs used). Costs the
   fixed study's 180 runs (about 5-10 minutes on 2 cores).

Run: ``.venv/bin/python benchmarks/adaptive_seeds.py`` (simulation) or ``... --demo OUTPUT``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table, verdict

from reglab.stats.compare import holm
from reglab.stats.sequential import Design, looks, simulate

TRUE = np.array([-2, -1, 0, 0, 0, 0.5, 1, 2]) / 100
SD, MAX, REPS, MARGIN = 0.01, 40, 4000, 0.01


def simulation() -> bool:
    from scipy.stats import t

    rng = np.random.default_rng(2026)
    d = TRUE[None, :, None] + SD * rng.standard_normal((REPS, len(TRUE), MAX))
    design = Design(tuple(looks(5, MAX, 5)), 0.05, arms=len(TRUE), equivalence=MARGIN)
    s = simulate(d, design)
    runs = s.seeds.sum(axis=1) + s.seeds.max(axis=1)  # the baseline runs as long as the longest arm
    fixed_runs = (len(TRUE) + 1) * MAX
    code = np.sign(TRUE).astype(int)
    wrong = ((s.verdict == 1) & (TRUE <= 0)) | ((s.verdict == -1) & (TRUE >= 0))
    wrong |= (s.verdict == 2) & (np.abs(TRUE) >= MARGIN)
    # the fixed design: paired t-test over 40 seeds, Holm across the arms
    mean, se = d.mean(axis=2), d.std(axis=2, ddof=1) / np.sqrt(MAX)
    p = 2 * t.sf(np.abs(mean / se), MAX - 1)
    sig = np.array([holm(row) for row in p]) < 0.05
    fixed_verdict = np.where(sig, np.sign(mean), 0).astype(int)
    fixed_wrong = ((fixed_verdict == 1) & (TRUE <= 0)) | ((fixed_verdict == -1) & (TRUE >= 0))
    rows = []
    for j, true in enumerate(TRUE):
        counts = {v: float((s.verdict[:, j] == c).mean()) for v, c in (("better", 1), ("worse", -1), ("equiv", 2))}
        rows.append(
            [
                f"{true * 100:+.1f} pp",
                f"{s.seeds[:, j].mean():.1f}",
                f"{counts['better']:.4f}",
                f"{counts['worse']:.4f}",
                f"{counts['equiv']:.4f}",
                f"{float((s.verdict[:, j] == 0).mean()):.4f}",
                f"{float(((s.low[:, j] <= true) & (true <= s.high[:, j])).mean()):.4f}",
                f"{float((fixed_verdict[:, j] == code[j]).mean()):.4f}",
            ]
        )
    print(design.method)
    print(f"{REPS} replications, seed-to-seed sd of the difference {SD * 100:g} pp, margin {MARGIN * 100:g} pp\n")
    print(table(["true diff", "seeds", "better", "worse", "equivalent", "open", "coverage", "fixed: right"], rows))
    frac = float(runs.mean()) / fixed_runs
    fw = float(wrong.any(axis=1).mean())
    fixed_fw = float(fixed_wrong.any(axis=1).mean())
    judged = [j for j, v in enumerate(TRUE) if abs(v) >= 0.01]
    power = {j: float((s.verdict[:, j] == code[j]).mean()) for j in judged}
    fixed_power = {j: float((fixed_verdict[:, j] == code[j]).mean()) for j in judged}
    se = {j: np.sqrt(power[j] * (1 - power[j]) / REPS + fixed_power[j] * (1 - fixed_power[j]) / REPS) for j in judged}
    print()
    ok_runs, ok_false = frac <= 0.6, fw <= 0.05
    ok_power = all(power[j] >= fixed_power[j] for j in judged)
    print(
        f"runs: adaptive {runs.mean():.1f} of the fixed design's {fixed_runs} = {frac:.1%} (target <= 60 %)  "
        + verdict(ok_runs)
    )
    print(f"family-wise false verdicts: adaptive {fw:.2%}, fixed {fixed_fw:.2%} (target <= 5 %)  {verdict(ok_false)}")
    print(
        "right verdict on the +-1, +-2 pp arms: "
        + ", ".join(
            f"{TRUE[j] * 100:+g} pp {power[j]:.4f} vs fixed {fixed_power[j]:.4f} (±{se[j]:.4f})" for j in judged
        )
        + f"  (target: >= fixed)  {verdict(ok_power)}"
    )
    return ok_runs and ok_false and ok_power


def demo(output: str) -> None:
    from reglab.study import run_protocol
    from reglab.study.definition.spec import demo_study

    fixed = run_protocol(demo_study(output, seeds=20), jobs=2, progress=False)
    adaptive = run_protocol(
        demo_study(output, seeds={"min": 5, "max": 20, "step": 5, "equivalence": 0.01}), jobs=2, progress=False
    )
    fs, ad = fixed.summary, adaptive.summary
    rows = []
    for arm, a in ad.ranked():
        c, fc = a.comparison, fs.arm(arm).comparison
        if c is None or fc is None or c.sequential is None:
            continue
        rows.append(
            [
                arm,
                f"{fc.mean_diff * 100:+.2f} [{fc.ci_low * 100:+.2f}, {fc.ci_high * 100:+.2f}]"
                if fc.ci_low is not None
                else "-",
                fc.verdict,
                f"{c.mean_diff * 100:+.2f} [{(c.ci_low or 0) * 100:+.2f}, {(c.ci_high or 0) * 100:+.2f}]",
                c.verdict,
                str(c.sequential.decided_at or f"open ({c.sequential.seeds_used})"),
            ]
        )
    print(
        table(
            ["arm", "fixed 20: diff pp [95% CI]", "fixed verdict", "adaptive: diff [RCI]", "adaptive", "decided at"],
            rows,
        )
    )
    assert ad.adaptive is not None
    print(
        f"\nruns: fixed {fs.n_runs}, adaptive {ad.adaptive.runs_used} of {ad.adaptive.runs_max} "
        f"({ad.adaptive.runs_saved} saved); adaptive trained {adaptive.stats.new} new runs (it shares the fixed "
        "study's)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--demo", metavar="OUTPUT", help="run the demo side by side (fixed 20 vs adaptive max 20) in OUTPUT"
    )
    args = ap.parse_args()
    if args.demo:
        demo(args.demo)
        return
    simulation()


if __name__ == "__main__":
    main()
