"""Saved models (``save_models: best | all``): one ``safetensors`` file per confirmation run.

A file holds the run's *evaluated* model - the one whose test metrics the study reports: the
restored best epoch under early stopping, the weight average under SWA (batch-norm statistics
recomputed), and under snapshot ensembles the whole ensemble (its members as ``members.<i>.*``,
so the loaded model predicts exactly what was evaluated). Every entry of ``state_dict`` is kept,
buffers (batch-norm running statistics) included. The file's metadata carries the run
configuration, the input shape and the number of classes, so :func:`load_model` rebuilds the
network with the same function the engine trains it with and loads the weights - safetensors
never unpickles (a checkpoint is data, not code).

Files are written by the process that trained the model (any executor) to a private temporary
file next to the target, then moved into place with ``os.replace``: a killed run never leaves a
half-written file, and a resumed study neither retrains nor rewrites the runs it has. At the end
of a study whose runs are all done, :func:`finish_models` removes what no longer belongs (files of
other settings after re-tuning or ``--new``; with ``best``, every arm but the best).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reglab.errors import ReglabError
from reglab.files import write_atomic

if TYPE_CHECKING:
    from torch import nn

    from reglab.config import RunConfig
    from reglab.data.base import DataSplits
    from reglab.data.streaming import StreamSplits
    from reglab.study.definition.spec import StudySpec
    from reglab.study.results.storage import RunRecord

FORMAT = "reglab.model/1"
MODELS_DIR = "models"
SUFFIX = ".safetensors"
_SEED_FILE = re.compile(r"^seed(\d+)\.safetensors$")


def models_dir(spec: StudySpec) -> Path | None:
    """Where the study's confirmation runs save their models (None for ``save_models: none``).
    Absolute, because worker processes may run in another directory."""
    if spec.save_models == "none":
        return None
    return (spec.output_dir() / MODELS_DIR).resolve()


def model_path(folder: Path, arm: str, seed: int) -> Path:
    return folder / arm / f"seed{seed}{SUFFIX}"


# -- writing ---------------------------------------------------------------------------------------


def save_model(
    model: nn.Module,
    path: str | Path,
    cfg: RunConfig,
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    final: dict[str, float] | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s whole ``state_dict`` (parameters and buffers) as safetensors, with the
    metadata :func:`load_model` needs; atomically (temporary file, then ``os.replace``)."""
    from safetensors.torch import save

    from reglab.regularizers.ensembles import SoftmaxEnsemble

    path = Path(path)
    # clone: safetensors refuses tensors that share storage (tied weights); loading restores both
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "config": cfg.model_dump_json(),
        "input_shape": json.dumps(list(input_shape)),
        "n_classes": str(n_classes),
        "ensemble": str(len(model.members)) if isinstance(model, SoftmaxEnsemble) else "0",
        "final": json.dumps(final or {}),
        **(extra or {}),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, save(tensors, metadata=meta))
    except OSError as err:
        raise ReglabError(f"cannot save the model to {path}: {err}") from None
    return path


def save_run_model(
    model: nn.Module, path: str | Path, cfg: RunConfig, data: DataSplits | StreamSplits, final: dict[str, float]
) -> Path:
    """Save a finished run's evaluated model (what the executor's worker calls). ``n_classes`` in
    the file is the network's output size, which rebuilds it (one logit for a binary task)."""
    from reglab.training.objective import output_size

    return save_model(
        model,
        path,
        cfg,
        data.input_shape,
        output_size(getattr(data, "task", "classification"), data.n_classes),
        final=final,
    )


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedModel:
    """What a saved model's file says about itself (its header only; no weights read)."""

    path: Path
    config: RunConfig
    input_shape: tuple[int, ...]
    n_classes: int
    ensemble: int  # number of snapshot-ensemble members; 0 for one network
    final: dict[str, float]  # the run's final metrics (train/val/test)


def read_header(path: str | Path) -> SavedModel:
    """The metadata of a saved model (one line :class:`ReglabError` when it is not one)."""
    from pydantic import ValidationError
    from safetensors import SafetensorError, safe_open

    from reglab.config import RunConfig, validation_messages

    p = Path(path)
    if not p.is_file():
        raise ReglabError(f"{p}: no such model file (a .safetensors file written by reglab)")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ReglabError(f"{p}: not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise ReglabError(f"{p}: not a model saved by reglab (no {FORMAT!r} metadata)")
    try:
        cfg = RunConfig.model_validate_json(meta["config"])
    except ValidationError as err:
        raise ReglabError(
            f"{p}: its run configuration is not valid here ({'; '.join(validation_messages(err))}); a regularizer or "
            "model registered by your own code must be registered (imported) before loading"
        ) from None
    return SavedModel(
        path=p,
        config=cfg,
        input_shape=tuple(json.loads(meta["input_shape"])),
        n_classes=int(meta["n_classes"]),
        ensemble=int(meta.get("ensemble", "0")),
        final=json.loads(meta.get("final", "{}")),
    )


def load_model(path: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild a saved model from the configuration in its file and load its weights (no pickle:
    safetensors). Returned in eval mode, without gradients: ready to predict on inputs prepared
    as in training (:func:`load_run_data` gives the run's own normalized splits)."""
    import torch
    from safetensors.torch import load_file

    from reglab.regularizers.ensembles import SoftmaxEnsemble
    from reglab.training.engine import build_network
    from reglab.training.rng import seeded_global_rng

    head = read_header(path)
    cfg = head.config
    with seeded_global_rng(cfg.train.seed):  # the initialization is overwritten; the caller's RNG is untouched
        nets = [build_network(cfg, head.input_shape, head.n_classes) for _ in range(max(head.ensemble, 1))]
    model: nn.Module = SoftmaxEnsemble(nets) if head.ensemble else nets[0]
    state = load_file(str(head.path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise ReglabError(
            f"{head.path}: its weights do not fit the network its configuration builds ({first}); was the "
            "model's code changed since it was saved?"
        ) from None
    model.eval().requires_grad_(False)
    return model.to(torch.device(device))


def load_models(folder: str | Path, device: str = "cpu") -> dict[str, nn.Module]:
    """Every saved model in ``folder`` (e.g. an export), by file name without suffix."""
    files = sorted(Path(folder).glob(f"*{SUFFIX}"))
    if not files:
        raise ReglabError(f"{folder}: no {SUFFIX} files")
    return {f.name.removesuffix(SUFFIX): load_model(f, device) for f in files}


def load_run_data(path: str | Path) -> DataSplits:
    """The splits of the run that trained the saved model: its dataset, split seed and train-only
    normalization, so its test split is the one the study evaluated."""
    from reglab.data import load_data

    return load_data(read_header(path).config.data)


# -- the end of a study ----------------------------------------------------------------------------


def saved_files(folder: Path) -> dict[tuple[str, int], Path]:
    """The model files under ``folder`` by (arm, seed)."""
    out: dict[tuple[str, int], Path] = {}
    if not folder.is_dir():
        return out
    for arm_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in arm_dir.iterdir():
            m = _SEED_FILE.match(f.name)
            if m:
                out[(arm_dir.name, int(m.group(1)))] = f
    return out


def is_current(path: Path, expected: RunConfig) -> bool:
    """Whether the file was trained with ``expected`` (not by an earlier version of the study)."""
    try:
        return read_header(path).config.model_dump(mode="json") == expected.model_dump(mode="json")
    except ReglabError:
        return False


@dataclass(frozen=True)
class FinishedModels:
    """What :func:`finish_models` did."""

    kept: int = 0
    removed: int = 0
    missing: int = 0  # done runs without a file (stored before save_models was set)
    complete: bool = False


def finish_models(spec: StudySpec, records: dict[tuple[str, int], RunRecord], ranking: Iterable[str]) -> FinishedModels:
    """Once every run of the study is done: remove temporary leftovers of killed runs, files that
    do not belong to the study as it is now (arms or seeds removed, settings changed or re-tuned),
    and with ``save_models: best`` the files of every arm but the best (``ranking``'s first, by the
    compare metric). While runs are still missing nothing is removed: a resumed study may change
    which arm is best, and its files must still be there."""
    from reglab.study.results.outcome import RunStatus

    folder = models_dir(spec)
    if folder is None or not folder.is_dir():
        return FinishedModels()
    keys = {(a, s) for a in spec.arms for s in spec.seed_list}
    files = saved_files(folder)
    if spec.adaptive is not None:  # adaptive seeds: the runs each arm's verdict needed, once none is pending
        from reglab.study.results import adaptive

        seqs = adaptive.outcomes(spec, records)
        if any(q.pending is not None for q in seqs.values()):
            return FinishedModels(kept=len(files), complete=False)
        used = adaptive.seeds_used(spec, seqs)
        keys = {(a, s) for a in spec.arms for s in range(used[a])}
    if not keys <= set(records):
        return FinishedModels(kept=len(files), complete=False)
    best = next(iter(ranking), None)
    removed = 0
    for tmp in folder.glob("*/.*"):  # a killed run's temporary file (no writer is left)
        tmp.unlink(missing_ok=True)
    for (arm, seed), f in files.items():
        keep = (arm, seed) in keys and is_current(f, spec.arm(arm).run_config(seed))
        if keep and spec.save_models == "best" and arm != best:
            keep = False
        if not keep:
            f.unlink(missing_ok=True)
            removed += 1
    for arm_dir in folder.iterdir():
        if arm_dir.is_dir() and not any(arm_dir.iterdir()):
            arm_dir.rmdir()
    left = saved_files(folder)
    wanted = {k for k in keys if spec.save_models == "all" or k[0] == best}
    done = {k for k in wanted if records[k].outcome.status is RunStatus.COMPLETED}
    return FinishedModels(kept=len(left), removed=removed, missing=len(done - set(left)), complete=True)
