"""Keep the winner: ``reglab export STUDY_DIR [--arm NAME] [--to DIR]``.

Writes one arm's saved models (default: the best arm by the study's compare metric) with the run
configuration each was trained with (YAML) and a README whose five-line example rebuilds the
network and evaluates it. Loading never unpickles: the weights are safetensors and the network is
rebuilt from its configuration by the function the engine trains with (``load_model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from reglab.errors import ReglabError
from reglab.files import write_atomic
from reglab.study.results.saved_models import (
    MODELS_DIR,
    SUFFIX,
    is_current,
    load_model,
    load_models,
    load_run_data,
    read_header,
    saved_files,
)

if TYPE_CHECKING:
    from reglab.config import RunConfig

__all__ = ["Export", "export_models", "load_model", "load_models", "load_run_data", "loading_example"]


@dataclass(frozen=True)
class Export:
    """What :func:`export_models` wrote."""

    study: str
    arm: str
    best: bool  # the arm is the study's best (by its compare metric)
    folder: Path
    files: list[Path]
    skipped: list[str] = field(default_factory=list)  # files of outdated settings, not exported


def export_models(study_dir: str | Path, arm: str | None = None, to: str | Path | None = None) -> Export:
    """Copy ``arm``'s saved models of the study in ``study_dir`` (default arm: the best) to ``to``
    (default ``STUDY_DIR/export/ARM``) with their run configurations and a loading example."""
    from reglab.stats.summary import StudySummary

    root = Path(study_dir)
    summary = StudySummary.of_output(root)
    best = summary.ranking[0] if summary.ranking else None
    if arm is not None and arm not in summary.arms:
        raise ReglabError(f"--arm {arm!r}: study {summary.study!r} has no such arm; arms: {', '.join(summary.arms)}")
    chosen = arm or best
    assert chosen is not None  # a summary has at least one arm
    files = saved_files(root / MODELS_DIR)
    if not files:
        raise ReglabError(
            f"{root}: the study saved no models (save_models: none); add `save_models: best` (or `all`) to the "
            "study file and run it again with --new (models are saved by the runs that train them)"
        )
    mine = {seed: f for (a, seed), f in sorted(files.items()) if a == chosen}
    if not mine:
        saved = sorted({a for a, _ in files})
        hint = (
            " (save_models: best keeps only the best arm's; use save_models: all to keep every arm's)"
            if saved == [best]
            else ""
        )
        raise ReglabError(f"arm {chosen!r} has no saved models; arms with saved models: {', '.join(saved)}{hint}")

    skipped: list[str] = []
    current: dict[int, Path] = {}
    for seed, f in mine.items():
        expected = _expected_config(root, chosen, seed)
        if expected is not None and not is_current(f, expected):
            skipped.append(f"{f.relative_to(root)}: trained with other settings than the study's (changed or re-tuned)")
        else:
            current[seed] = f
    if not current:
        raise ReglabError(
            f"arm {chosen!r}: its saved models were trained with other settings than the study now has "
            f"({', '.join(s.split(':')[0] for s in skipped)}); run the study to completion to replace them"
        )

    out = Path(to) if to is not None else root / "export" / chosen
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReglabError(f"--to {out}: cannot create the folder ({err})") from None
    written = []
    for seed, f in current.items():
        target = out / f"seed{seed}{SUFFIX}"
        _copy_atomic(f, target)
        head = read_header(target)
        config = yaml.safe_dump(head.config.model_dump(mode="json"), sort_keys=False)
        write_atomic(
            out / f"seed{seed}.yaml", f"# run configuration of {summary.study} / {chosen} / seed {seed}\n{config}"
        )
        written.append(target)
    first = read_header(written[0])
    text = _readme(summary.study, chosen, chosen == best, summary.compare_metric, written, first.final)
    write_atomic(out / "README.md", text)
    return Export(summary.study, chosen, chosen == best, out, written, skipped)


def _expected_config(root: Path, arm: str, seed: int) -> RunConfig | None:
    """The run configuration the study gives ``arm``'s seed now (from ``config.resolved.yaml``),
    or None when that file cannot be read (then the models' own configurations are all there is)."""
    from reglab.study.results.outputs import read_resolved_arms

    try:
        return read_resolved_arms(root)[arm].run_config(seed)
    except (ReglabError, KeyError):
        return None


def _copy_atomic(src: Path, dst: Path) -> None:
    try:
        write_atomic(dst, src.read_bytes())
    except OSError as err:
        raise ReglabError(f"cannot write {dst}: {err}") from None


def loading_example(file_name: str, final: dict[str, float]) -> str:
    """Five lines of Python that rebuild the saved model and evaluate it on its run's test split
    (run in the folder that holds ``file_name``)."""
    lines = [
        "from reglab.study.results.export import load_model, load_run_data",
        f'model = load_model("{file_name}")  # rebuilt from its configuration; weights via safetensors (no pickle)',
        f'x, y = load_run_data("{file_name}").test.read()  # its run\'s test split, normalized as in training',
    ]
    if "test_acc" in final:
        lines += [
            "accuracy = (model(x).argmax(1) == y).double().mean().item()",
            f'print(f"test accuracy {{accuracy:.4f}}")  # the study recorded {final["test_acc"]:.4f}',
        ]
    else:
        lines += ["predictions = model(x)", "print(predictions[:5], y[:5])"]
    return "\n".join(lines) + "\n"


def _readme(study: str, arm: str, best: bool, metric: str, files: list[Path], final: dict[str, float]) -> str:
    names = ", ".join(f"`{f.name}`" for f in files)
    why = f"the best arm by {metric}" if best else f"chosen with --arm (not the best arm by {metric})"
    return f"""# {study}: arm `{arm}`

Arm `{arm}` ({why}): one model per confirmation seed, {names}. Each
`seedK.safetensors` holds the model's weights and buffers (batch-norm statistics included) as
safetensors, so loading runs no pickle; `seedK.yaml` is the run configuration it was trained with
(also stored inside the file). The model is the one the study evaluated: best epoch restored under
early stopping, the average under SWA, the whole ensemble under snapshot ensembles.

```python
{loading_example(files[0].name, final)}```

The network expects inputs prepared as in training: normalized with the training split's mean and
standard deviation (`load_run_data` rebuilds that run's splits). Without reglab,
`safetensors.torch.load_file("{files[0].name}")` gives the `state_dict` for your own instance of
the network.
"""
