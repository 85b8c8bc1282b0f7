"""Regularization paths: sweep one setting (e.g. L2 strength on a log scale) over several seeds,
recording train and validation accuracy, weight sparsity and norms per value - the picture that
shows under- and over-regularization. Each value is an arm of an ordinary study, so a path is
stored, resumed and summarized like any study."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from reglab.config import FIELD_SECTION, deep_merge, nest_overrides
from reglab.errors import ConfigError

if TYPE_CHECKING:
    from reglab.study.definition.spec import StudySpec
    from reglab.study.results.results import StudyResults


def parse_values(text: str, num: int = 10, scale: str = "auto") -> list[float]:
    """``LOW:HIGH`` (``num`` points, log-spaced for scale=log or auto with HIGH/LOW >= 100) or a
    comma-separated list."""
    if num < 2:
        raise ConfigError("--num: must be >= 2")
    if scale not in ("auto", "log", "linear"):
        raise ConfigError(f"--scale: unknown scale {scale!r}; valid choices: auto, log, linear")
    try:
        if ":" in text:
            lo_s, hi_s = text.split(":", 1)
            lo, hi = float(lo_s), float(hi_s)
            if lo > hi:
                raise ConfigError(f"--values: low ({lo:g}) must be <= high ({hi:g})")
            log = scale == "log" or (scale == "auto" and lo > 0 and hi / lo >= 100)
            if log:
                if lo <= 0:
                    raise ConfigError(f"--values: a log-scale range must be > 0 (low is {lo:g}); use --scale linear")
                return [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (num - 1)) for i in range(num)]
            return [lo + i * (hi - lo) / (num - 1) for i in range(num)]
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--values: expected LOW:HIGH or a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise ConfigError("--values: no values given")
    return values


def path_spec(spec: StudySpec, param: str, values: list[float], seeds: int, arm: str | None = None) -> StudySpec:
    """A study whose arms are the values of ``param`` applied to ``arm`` (default: the baseline)."""
    head = param.split(".")[0]
    if spec.objective is not None:  # the user's function: the param is one of its settings
        return _function_path_spec(spec, param, values, seeds, arm)
    if head not in FIELD_SECTION:
        raise ConfigError(f"--param: unknown setting {param!r}; valid: {', '.join(sorted(FIELD_SECTION))}")
    base_arm = arm or spec.baseline_arm
    if base_arm not in spec.arms:
        raise ConfigError(f"--arm: unknown arm {base_arm!r}; arms: {', '.join(spec.arms)}")
    fixed = nest_overrides(spec.arm(base_arm).fixed)
    integer = _is_int_field(spec, param)
    new = _path_study(
        spec,
        param,
        seeds,
        {
            name: deep_merge(fixed, nest_overrides({param: value}))
            for name, value in _named_values(param, values, integer)
        },
    )
    for a in new.arms:  # validate every value (e.g. dropout 1.5) before anything runs
        new.arm(a)
    return new


def _named_values(param: str, values: list[float], integer: bool) -> list[tuple[str, Any]]:
    """(arm name, value) for each value of the path: ``dropout=0.1``, ..."""
    out = []
    for v in values:
        value: Any = round(v) if integer else v
        name = f"{param}={value:.3g}" if isinstance(value, float) else f"{param}={value}"
        out.append((name.replace(":", "_"), value))
    return out


def _path_study(spec: StudySpec, param: str, seeds: int, arms: dict[str, Any]) -> StudySpec:
    """The path's own study: one arm per value, no search, in ``<output>/path-<param>``."""
    return spec.model_copy(
        update={
            "name": f"{spec.name}.path.{param}"[:64],
            "arms": arms,
            "baseline": None,
            "seeds": seeds,
            "search": None,
            "output": str(spec.output_dir() / f"path-{param}"),
        }
    )


def _function_path_spec(spec: StudySpec, param: str, values: list[float], seeds: int, arm: str | None) -> StudySpec:
    """:func:`path_spec` for a study of the user's function: ``param`` names one of its settings."""
    from reglab.study.definition.objective import get_dotted, nest_dotted

    base_arm = arm or spec.baseline_arm
    if base_arm not in spec.arms:
        raise ConfigError(f"--arm: unknown arm {base_arm!r}; arms: {', '.join(spec.arms)}")
    base = spec.arm(base_arm)
    assert base.function is not None
    current = get_dotted(base.function.settings, param)
    integer = isinstance(current, int) and not isinstance(current, bool)
    from reglab.study.definition.spec import check_arm

    new = _path_study(
        spec,
        param,
        seeds,
        {
            name: deep_merge(base.fixed, nest_dotted({param: value}))
            for name, value in _named_values(param, values, integer)
        },
    )
    for a in new.arms:  # every value checked against the declared settings before anything runs
        try:
            check_arm(new, new.arm(a))
        except ConfigError as err:
            raise ConfigError(f"--param {param}: {str(err).splitlines()[0]}") from None
    return new


def _is_int_field(spec: StudySpec, param: str) -> bool:
    cfg = spec.shared_config().model_dump()
    section = FIELD_SECTION[param.split(".")[0]]
    node: Any = cfg[section]
    for part in param.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return isinstance(node, int) and not isinstance(node, bool)


def run_path(
    spec: StudySpec,
    param: str,
    values: list[float],
    *,
    seeds: int = 3,
    arm: str | None = None,
    jobs: int | None = None,
    new: bool = False,
    progress: bool = True,
) -> tuple[StudyResults, list[dict[str, Any]]]:
    """Run the sweep and write ``path.json`` (one row per value x seed) next to its summary."""
    from reglab.study.protocol.protocol import run_protocol

    pspec = path_spec(spec, param, values, seeds, arm)
    results = run_protocol(pspec, jobs=jobs, new=new, progress=progress, storage=spec.storage_url())
    by_arm = dict(zip(pspec.arms, values, strict=True))
    rows = []
    for rec in results.finals.to_dict("records"):
        rows.append(
            {
                "param": param,
                "value": by_arm[rec["arm"]],
                "seed": int(rec["seed"]),
                "status": rec["status"],
                **{k: _num(rec.get(k)) for k in ("train_acc", "val_acc", "test_acc", "sparsity", "weight_l2", "gap")},
            }
        )
    rows.sort(key=lambda r: (r["value"], r["seed"]))
    (pspec.output_dir() / "path.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return results, rows


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
