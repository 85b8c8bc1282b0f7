"""The study's output folder: ``config.resolved.yaml``, ``tuning.json``, ``runs.csv``,
``finals.csv`` and ``summary.json``, all computed from the storage (never from memory), each
written to a private file first and moved into place (``os.replace``: atomic), so drivers and
workers sharing a folder never leave a half-written file."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reglab.files import write_atomic
from reglab.jsonsafe import json_safe
from reglab.urls import mask_url

if TYPE_CHECKING:
    from reglab.study.definition.spec import Arm, StudySpec
    from reglab.study.results.results import ProtocolStats, StudyResults
    from reglab.study.results.storage import RunStore
    from reglab.tuning.insight import ArmTuning


def environment(device: str | None = None) -> dict[str, Any]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for pkg in ("reglab", "torch", "optuna", "numpy", "scipy", "pydantic"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "device": device,
    }


def write_resolved(spec: StudySpec, url: str) -> None:
    """The study with every arm's full run configuration, next to its results."""
    doc = {**spec.resolved(), "storage": mask_url(url)}
    write_atomic(spec.output_dir() / "config.resolved.yaml", yaml.safe_dump(doc, sort_keys=False))


def read_resolved_arms(out: Path) -> dict[str, Arm]:
    """Every arm as the study in ``out`` confirmed it (tuned values included), rebuilt from its
    ``config.resolved.yaml``: ``arms[name].run_config(seed)`` is the configuration of a run."""
    from reglab.config import RunConfig
    from reglab.errors import ReglabError
    from reglab.study.definition.spec import Arm

    path = out / "config.resolved.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {
            name: Arm(
                name=name,
                overrides=a.get("overrides") or {},
                fixed=a.get("overrides") or {},
                config=RunConfig.model_validate(a["config"]),
                space={},
                function=_function_arm(doc, a),
            )
            for name, a in doc["arms"].items()
        }
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise ReglabError(f"{path}: cannot read the arms' settings ({type(err).__name__}); rerun the study") from None


def _function_arm(doc: dict[str, Any], arm: dict[str, Any]) -> Any:
    """A function study's arm settings (``objective.function``), as ``config.resolved.yaml`` holds them."""
    if "settings" not in arm or not doc.get("objective"):
        return None
    from reglab.study.definition.objective import FunctionArm

    metric = doc.get("metric") or {}
    return FunctionArm(
        objective=doc["objective"],
        settings=arm["settings"],
        select=metric.get("select", "val_acc"),
        compare=metric.get("compare", "test_acc"),
    )


def write_tuning(spec: StudySpec, url: str, results: dict[str, ArmTuning], out: Path) -> None:
    assert spec.search is not None
    doc = {
        "study": spec.name,
        "search": spec.search.model_dump(),
        "storage": mask_url(url),
        "arms": {arm: r.model_dump(mode="json") for arm, r in results.items()},
    }
    write_atomic(out / "tuning.json", json.dumps(json_safe(doc), indent=2))


SESSION_ATTR = "session:"  # user attrs of the runs' Optuna study: one [start, end] (epoch seconds) per session


def study_wall_time(store: RunStore, seconds: float) -> float:
    """The study's wall time over every session that reached its outputs: this session's
    ``seconds`` (ending now) are stored with the runs, and the result is the length of the union
    of all stored sessions - a resumed study adds its time to the earlier sessions' instead of
    replacing it, and workers running at once (``reglab worker``) are not counted twice. Starts
    again with the runs (``--new``). A session interrupted before its outputs is not counted."""
    import os
    import socket
    import time

    end = time.time()
    start = end - max(float(seconds), 0.0)
    store.study.set_user_attr(f"{SESSION_ATTR}{socket.gethostname()}-{os.getpid()}-{start:.6f}", [start, end])
    spans = sorted(
        (float(v[0]), float(v[1]))
        for k, v in store.study.user_attrs.items()
        if k.startswith(SESSION_ATTR) and isinstance(v, list | tuple) and len(v) == 2
    )
    total, reach = 0.0, float("-inf")
    for a, b in spans:  # the union of the intervals, in order of start
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def publish(
    spec: StudySpec,
    store: RunStore,
    url: str,
    *,
    wall_time: float,
    stats: ProtocolStats,
    tuning: dict[str, ArmTuning] | None,
    search: StudySpec,
) -> StudyResults:
    """Write the outputs of the confirmation study ``spec`` (``search``: the study as written,
    whose search produced ``tuning``) and return the results. ``wall_time``: this session's seconds
    (``summary.json`` holds the sum over sessions, :func:`study_wall_time`)."""
    from reglab.study.results.results import StudyResults, epochs_frame, finals_frame, summarize

    out = spec.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    if tuning is not None:
        write_tuning(search, url, tuning, out)
    records = store.done()
    devices = sorted({str(r.outcome.info.get("device")) for r in records.values()})
    extra: dict[str, Any] = {
        "environment": environment(", ".join(devices) or None),
        "storage": mask_url(url),
        "fingerprint": spec.fingerprint(),
        "wall_time": study_wall_time(store, wall_time),  # summed over resumed sessions
        "total_run_time": sum(float(r.outcome.info.get("wall_time") or 0) for r in records.values()),
        "resolved_config": "config.resolved.yaml",
    }
    if tuning is not None:
        extra["tuning"] = {arm: r.summary() for arm, r in tuning.items()}
    failed = store.failed()  # runs that raised: reported in every output, never averaged
    summary = summarize(spec, {**failed, **records}, extra)
    if spec.save_models != "none":  # the best arm is known now: keep what save_models asks for
        from reglab.study.results.saved_models import finish_models

        stats.models = finish_models(spec, records, summary.ranking)
    ep, fin = epochs_frame(spec, {**failed, **records}), finals_frame(spec, {**failed, **records})
    write_atomic(out / "runs.csv", ep.to_csv(index=False))
    write_atomic(out / "finals.csv", fin.to_csv(index=False))
    write_atomic(out / "summary.json", summary.to_json())
    return StudyResults(spec, summary, ep, fin, out, stats)
