"""Rendering the report context: HTML through the Jinja template (figures inline as SVG) or a
Markdown summary (tables and linked PNGs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("reglab.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(ctx: dict[str, Any]) -> str:
    from markupsafe import Markup

    env = _environment()
    env.filters["svg"] = lambda r: Markup(r.svg)  # matplotlib output: text inside is XML-escaped
    return str(env.get_template("report.html.j2").render(**ctx))


def _md(text: Any) -> str:
    """A table-safe Markdown cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |"]
    lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|")
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return lines


def render_markdown(ctx: dict[str, Any], directory: Path) -> str:
    v = ctx["verdict"]
    m = ctx["metric"]
    lines = [f"# reglab report: {_md(ctx['study'])}", ""]
    meta = [f"compare metric `{m}`"]
    if ctx["baseline"]:
        meta.append(f"baseline `{ctx['baseline']}`")
    meta.append(f"{ctx['n_seeds']} seed{'s' * (ctx['n_seeds'] != 1)}")
    if ctx["n_runs"] is not None:
        meta.append(f"{ctx['n_runs']}/{ctx['n_expected']} runs")
    lines += [" · ".join(meta), "", f"**{_md(v['headline'])}**", ""]
    if v["note"]:
        lines += [f"> **Note:** {_md(v['note'])}", ""]
    if v["top"]:
        t = v["top"]
        lines += [f"Highest mean {m} ({v['top_split']}): **{_md(t['arm'])}** at {t['mean']['text']}.", ""]
    if v["regime"] or v["fit_note"]:
        regime = f"**Regime:** {_md(v['regime'])}." if v["regime"] else ""
        lines += [" ".join(x for x in (regime, _md(v["fit_note"] or "")) if x), ""]
    header = ["#", "arm", "settings", f"{m} mean", "95% CI"]
    if v["has_comparison"]:
        p = "p (sequential)" if v.get("adaptive") else "p (Holm)"
        ci = "Δ repeated CI" if v.get("adaptive") else "Δ 95% CI"
        header += [f"Δ vs {ctx['baseline']}", ci, "P(better)", "P 95% CI", p, "verdict"]
    header += ["diagnosis"]
    rows = []
    for r in v["rows"]:
        row = [
            r["rank"] if r["rank"] is not None else "–",
            r["arm"] + (" (baseline)" if r["is_baseline"] else ""),
            "; ".join(x["text"] + (" (tuned)" if x["tuned"] else "") for x in r["settings"]) or "shared settings only",
            r["mean"]["text"],
            r["ci"],
        ]
        if v["has_comparison"]:
            if r["is_baseline"]:
                row += ["–", "–", "–", "–", "–", r["verdict"]]
            else:
                row += [
                    r["diff"]["text"],
                    r["diff_ci"],
                    r["prob"]["text"],
                    r["prob_ci"],
                    r["p_holm"]["text"],
                    r["verdict"],
                ]
        row.append(r["diagnosis"] or "–")
        rows.append(row)
    align = "rll" + "r" * (len(header) - 5) + "ll"
    lines += [*_md_table(header, rows, align), ""]
    lines += [f"95% CI of the mean: a {_md(v['interval_method'])}.", ""]
    if v.get("adaptive"):
        lines += [
            "Adaptive seeds: Δ's interval and p are the sequential design's (valid at any stopping time), not the "
            "plain t-test's, which looking after every round would invalidate.",
            "",
        ]
    if v["holm_note"]:
        lines += [f"> {_md(v['holm_note'])}", ""]
    ad = ctx["sections"].get("adaptive")
    if ad:
        lines += [
            "## Adaptive seeds",
            "",
            f"{ad['runs_used']} of {ad['runs_max']} runs ({ad['runs_saved']} saved against {ad['max']} seeds per arm). "
            f"Method: {_md(ad['method'])}.",
            "",
        ]
        lines += _md_table(
            ["arm", "verdict", "decided at", "seeds run", "repeated interval of Δ"],
            [
                [
                    r["arm"],
                    r["verdict"],
                    "open" if r["decided_at"] is None else r["decided_at"],
                    r["seeds_used"],
                    r["interval"],
                ]
                for r in ad["rows"]
            ],
            "llrrr",
        )
        lines.append("")
    if v["diagnoses"]:
        lines += ["## Diagnosis and recommendations", ""]
        for g in v["diagnoses"]:
            lines.append(f"- **{_md(g['label'])}** ({_md(', '.join(g['arms']))}): {_md(g['recommendation'] or '')}")
        lines.append("")
        if v["thresholds"]:
            lines += [f"Thresholds: {_md(v['thresholds'])}.", ""]
    if ctx["failed"]:
        lines += ["## Failed runs", ""]
        lines += _md_table(
            ["arm", "seed", "status", "epoch", "reason"],
            [
                [f["arm"], f["seed"], f["status"], "–" if f["epoch"] is None else f["epoch"], f["reason"] or "–"]
                for f in ctx["failed"]
            ],
            "lrlrl",
        )
        lines.append("")
    pngs = [f for f in ctx["figures"] if f.png is not None]
    if pngs:
        lines += ["## Figures", ""]
        for f in pngs:
            try:
                rel = Path(f.png).resolve().relative_to(directory.resolve()).as_posix()
            except ValueError:
                rel = Path(f.png).resolve().as_posix()
            lines += [f"![{_md(f.title or f.name)}]({rel})", ""]
    r = ctx["repro"]
    env = [f"python {r['python']}"] if r["python"] else []
    env += [f"{k} {val}" for k, val in r["versions"]]
    if r["device"]:
        env.append(f"device {r['device']}")
    lines += ["## Reproducibility", "", f"- seeds: {r['seeds']}", f"- wall time: {r['wall_time']}"]
    if env:
        lines.append(f"- environment: {_md(', '.join(env))}")
    if r["storage"]:
        lines.append(f"- storage: `{_md(r['storage'])}`")
    if r["fingerprint"]:
        lines.append(f"- fingerprint: `{_md(r['fingerprint'])}`")
    lines.append("")
    return "\n".join(lines)
