"""The study file: a validated, frozen description of a fair comparison of arms.

```yaml
name: mnist-mlp
data: {name: mnist}
model: {arch: mlp, hidden: [256, 128]}
train: {optimizer: momentum, lr: 0.05, epochs: 10}
arms:                  # name -> overrides merged over the shared settings above
  none: {}
  l2: {l2: 1.0e-4}
  dropout: {dropout: 0.5}
seeds: 5               # or a list; seed i fixes split, initialization and batch order for every arm
                       # or {min: 5, max: 40, step: 5, equivalence: 0.01}: adaptive (docs/adaptive-seeds.md)
```
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reglab.config import (
    DataConfig,
    ModelConfig,
    RegularizationSection,
    RunConfig,
    TrainConfig,
    regularization_field,
    validation_messages,
)
from reglab.errors import ConfigError
from reglab.space import Dim
from reglab.study.definition.objective import (
    ArmSettings,
    FunctionArm,
    ObjectiveConfig,
    arm_problems,
    declaration,
    get_dotted,
    nest_dotted,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAX_SEED = 2**31 - 1  # every seed (+ its base) stays inside what numpy and torch accept
MAX_RUNS = 5000  # default max_runs: far above the studies reglab is made for (the demo plans 90 runs)


class MetricConfig(BaseModel):
    """Which metric selects (tuning, pruning, best epoch) and which one compares the arms. Any
    registered metric (``reglab metrics``) that applies to the task; the direction is the metric's
    (loss, log-loss, RMSE, MAE: lower is better). Default: the task's (accuracy; RMSE for regression)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    select: str = Field("val_acc", description="val_<metric>: for any selection (never test)")
    compare: str = Field("test_acc", description="test_<metric> (or val_<metric>): the final comparison")

    @field_validator("select", "compare")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        from reglab.tasks import check_metric

        splits = ("val",) if info.field_name == "select" else ("test", "val")
        return check_metric(v, splits, None, f"metric.{info.field_name}")

    @property
    def maximize(self) -> bool:
        """Whether a larger selection metric is better (accuracy, AUC, R²) or not (loss, RMSE)."""
        from reglab.tasks import higher_is_better

        return higher_is_better(self.select)

    @property
    def engine_metrics(self) -> list[str]:
        """The metrics a run must measure for this selection and comparison (besides loss and
        accuracy, which every classification run records): the selection metric first."""
        names = [k.partition("_")[2] for k in (self.select, self.compare)]
        return list(dict.fromkeys(n for n in names if n not in ("acc", "loss")))


class DiagnosisConfig(BaseModel):
    """Thresholds of the bias/variance diagnosis (accuracy units, 0..1), and the error bias is
    measured against (Ng's avoidable bias: training error - the best attainable error)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    high_bias_train_error: float = Field(
        0.05, ge=0, le=1, description="avoidable bias (train error - reference_error) above this: high bias"
    )
    high_variance_gap: float = Field(0.03, ge=0, le=1, description="train - val accuracy above this: high variance")
    over_reg_train_drop: float = Field(
        0.02, ge=0, le=1, description="train accuracy this far below the baseline's, ..."
    )
    over_reg_val_gain: float = Field(0.002, ge=0, le=1, description="... with less validation gain than this")
    reference_error: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the best attainable error (human-level or Bayes; 1 - accuracy, or 1 - R² for regression); "
        "default: a classical model's validation error for tabular data, else the lowest training error of any arm",
    )


class SearchConfig(BaseModel):
    """Per-arm hyperparameter search (Optuna). Every arm gets the same budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    sampler: str = Field("tpe", description="grid, random, tpe, gp, cmaes, qmc")
    trials: int | None = Field(None, ge=1, le=100_000, description="trials per arm (same for every arm)")
    timeout: float | None = Field(
        None, gt=0, description="seconds per arm; trials still running then stop at their next epoch end (pruned)"
    )
    pruner: str = Field("none", description="none, median, successive-halving, hyperband")
    cv: int | None = Field(None, ge=2, le=20, description="select by K-fold CV on the training split")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="sampler seed, and the data/init seed of tuning runs (+1000)")
    startup_trials: int = Field(5, ge=0, description="trials before the median pruner starts")
    space: dict[str, Any] = Field(default_factory=dict, description="dimensions tuned in every arm")

    @field_validator("sampler", "pruner")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        from reglab.tuning.optuna_adapters import PRUNERS, SAMPLERS

        try:
            (SAMPLERS if info.field_name == "sampler" else PRUNERS).get(v)  # lists the valid names
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return v

    @model_validator(mode="after")
    def _budget(self) -> SearchConfig:
        if self.trials is None and self.timeout is None and self.sampler != "grid":
            raise ValueError("give search.trials and/or search.timeout (the budget per arm)")
        return self

    @property
    def tuning_seed(self) -> int:
        return 1000 + self.seed


class SeedsConfig(BaseModel):
    """Adaptive seeds (docs/adaptive-seeds.md): every arm runs ``min`` seeds, then ``step`` more at
    a time while its verdict against the baseline is still open, up to ``max``; the decisions use a
    group-sequential design that stays valid under this peeking (:mod:`reglab.stats.sequential`).
    Seed i is the same run as in a fixed study, so the two share their first runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    min: int = Field(5, ge=3, le=10_000, description="seeds every arm runs before the first decision")
    max: int = Field(40, ge=3, le=10_000, description="seeds an arm whose verdict stays open runs at most")
    step: int = Field(5, ge=1, le=10_000, description="seeds added per round to the arms still open")
    equivalence: float | None = Field(
        None,
        gt=0,
        description="margin in the compare metric's units (0.01 of accuracy: 1 pp): 'equivalent' "
        "when the whole interval of the difference lies inside ±equivalence; none: no equivalence verdict",
    )
    spending: Literal["pocock", "obrien-fleming"] = Field(
        "pocock", description="Lan-DeMets alpha-spending function of the looks"
    )

    @model_validator(mode="after")
    def _range(self) -> SeedsConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        n_looks = len(range(self.min, self.max + 1, self.step)) + ((self.max - self.min) % self.step != 0)
        if n_looks > 50:
            raise ValueError(f"{n_looks} looks (min..max in steps of step) are too many: at most 50; raise step")
        return self

    @property
    def looks(self) -> list[int]:
        from reglab.stats.sequential import looks

        return looks(self.min, self.max, self.step)


_SEEDS_RANGES = {
    "min": "an integer in 3..10000",
    "max": "an integer in 3..10000",
    "step": "an integer in 1..10000",
    "equivalence": "a number > 0 in the compare metric's units (0.01 of accuracy = 1 pp)",
    "spending": "pocock or obrien-fleming",
}


class Arm(BaseModel):
    """One arm of a study, built once from the study file: its overrides as written, the fixed
    part of them, its run configuration (shared settings + fixed overrides) and its search space
    (its own dimensions and the study's ``search.space``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    overrides: dict[str, Any]
    fixed: dict[str, Any]
    config: RunConfig
    space: dict[str, Dim]
    function: FunctionArm | None = None  # a study of the user's function: its settings (study.definition.objective)

    def run_config(self, seed: int, params: dict[str, Any] | None = None) -> RunConfig:
        """Seed ``seed`` fixes the split, initialization and batch order - the same for every arm.
        ``params``: tuned values of this arm's search dimensions (a function's: in its settings)."""
        tuned = params if params and self.function is None else None
        base = self.config.override(tuned, where=f"arms.{self.name}.") if tuned else self.config
        return base.override({"split_seed": base.data.split_seed + seed, "seed": base.train.seed + seed})

    def condition_values(self) -> dict[str, Any]:
        """Values of the settings that ``when`` conditions refer to but that are not tuned."""
        from reglab.space import condition_values

        if self.function is not None:
            when = {k for d in self.space.values() for k in (d.when or {}) if k not in self.space}
            return {k: get_dotted(self.function.settings, k) for k in when}
        return condition_values(self.config, self.space)

    def space_dump(self) -> dict[str, Any]:
        return {k: d.model_dump() for k, d in self.space.items()}


class StudySpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="study name: letters, digits, _ . + -")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    regularization: RegularizationSection = regularization_field()
    arms: dict[str, dict[str, Any]] = Field(description="arm name -> overrides of the shared settings")
    baseline: str | None = Field(None, description="arm compared against (default: the first)")
    seeds: int | list[int] | SeedsConfig = Field(
        5, description="a count (0..n-1), an explicit list, or {min, max, step, equivalence}: adaptive seeds"
    )
    metric: MetricConfig = MetricConfig()
    diagnosis: DiagnosisConfig = DiagnosisConfig()
    search: SearchConfig | None = Field(None, description="tune every arm before confirming it")
    storage: str | None = Field(None, description="Optuna storage URL (default: SQLite in the output dir)")
    output: str | None = Field(None, description="output directory (default: reglab-runs/<name>)")
    jobs: int | None = Field(None, ge=1, le=1024, description="parallel workers (default: cores)")
    objective: ObjectiveConfig | None = Field(
        None, description="your own training function instead of reglab's engine (docs/own-training.md)"
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="with objective: the settings every run of the function gets (arms override)"
    )
    save_models: Literal["none", "best", "all"] = Field(
        "none",
        description="keep confirmation models as safetensors in <output>/models: all arms, only the best arm's "
        "(decided when every run is done), or none; `reglab export` writes them out",
    )
    max_runs: int = Field(
        MAX_RUNS,
        ge=1,
        description="refuse a study that plans more runs than this (arms x seeds, plus tuning trials when the "
        "search has no time budget): a typo or a generated study file does not start days of training",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use 1-64 letters, digits, _ . + - (starting with a letter or digit)")
        return v

    @field_validator("arms", mode="before")
    @classmethod
    def _arms(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v  # pydantic reports the type error
        if not v:
            raise ValueError("at least one arm is needed")
        for k in v:
            if not _NAME.match(str(k)):
                raise ValueError(f"arm name {k!r}: use letters, digits, _ . + -")
        # null (``none:``) is an arm without overrides; other non-mappings are reported by pydantic
        # with their path (arms.NAME)
        return {str(k): ({} if o is None else o) for k, o in v.items()}

    @field_validator("seeds", mode="before")
    @classmethod
    def _adaptive_seeds(cls, v: Any) -> Any:
        """A mapping is adaptive seeds: validated here so a mistake is one line naming its key
        and range (not one line per member of the union)."""
        if not isinstance(v, dict):
            return v
        try:
            return SeedsConfig.model_validate(v)
        except ValidationError as err:
            e = err.errors()[0]
            key = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                raise ValueError(f"{key}: unknown key; use min, max, step, equivalence, spending") from None
            if key in _SEEDS_RANGES:
                raise ValueError(f"{key} must be {_SEEDS_RANGES[key]} (got {e.get('input')!r})") from None
            raise ValueError(str(e["msg"]).removeprefix("Value error, ")) from None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int] | SeedsConfig) -> int | list[int] | SeedsConfig:
        if isinstance(v, SeedsConfig):
            return v
        if isinstance(v, int):
            if not 1 <= v <= 10_000:
                raise ValueError("seed count must be in 1..10000")
        else:
            if not v or len(set(v)) != len(v) or any(not 0 <= s <= MAX_SEED for s in v):
                raise ValueError(f"seed list must be non-empty, distinct and in 0..{MAX_SEED}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: Any) -> Any:
        """The task (``data.task``; with ``auto``, the dataset's declared task or, for a CSV file,
        the one inferred from its target) fixes the default metric, and the study's metrics are
        measured by every run (``train.metrics``)."""
        if not isinstance(raw, dict):
            return raw
        from reglab.tasks import DEFAULT_METRIC, METRICS, check_metric

        raw = dict(raw)
        data = raw.get("data")
        task = _cheap_task(data if isinstance(data, dict) else {})
        if task is not None and isinstance(data, dict) and data.get("task", "auto") == "auto":
            raw["data"] = {**data, "task": task}
        metric = raw.get("metric")
        metric = dict(metric) if isinstance(metric, dict) else ({} if metric is None else metric)
        if isinstance(metric, dict):
            default = DEFAULT_METRIC.get(task or "classification", "acc")
            metric.setdefault("select", f"val_{default}")
            metric.setdefault("compare", f"test_{default}")
            for field in ("select", "compare"):
                splits = ("val",) if field == "select" else ("test", "val")
                try:  # a malformed name is reported by MetricConfig, with its line
                    check_metric(metric[field], splits, None, "")
                except (ValueError, TypeError, AttributeError):
                    continue
                if task is not None:
                    check_metric(metric[field], splits, task, f"metric.{field}")
            raw["metric"] = metric
            names = [str(metric[f]).partition("_")[2] for f in ("select", "compare")]
            # an unknown metric is reported once, by MetricConfig (not again as a train.metrics entry)
            needed = [n for n in dict.fromkeys(names) if n not in ("acc", "loss") and n in METRICS]
            train = raw.get("train")
            if needed and (train is None or isinstance(train, dict)):
                train = dict(train or {})
                have = list(train.get("metrics") or [])
                train["metrics"] = [*needed, *(m for m in have if m not in needed)]
                raw["train"] = train
        return raw

    @model_validator(mode="after")
    def _baseline(self) -> StudySpec:
        if self.baseline is not None and self.baseline not in self.arms:
            raise ValueError(f"baseline {self.baseline!r} is not an arm; arms: {', '.join(self.arms)}")
        return self

    @model_validator(mode="after")
    def _function_study(self) -> StudySpec:
        if problems := study_problems(self):
            raise ValueError("; ".join(problems))
        return self

    _arm_cache: dict[str, Arm] | None = PrivateAttr(None)
    _folder: str | None = PrivateAttr(None)  # the study file's folder (absolute): see portable_config

    @property
    def folder(self) -> str | None:
        """The folder of the study file this study was read from (None: not read from a file)."""
        return self._folder

    def located(self, folder: str | Path | None) -> StudySpec:
        """This study as read from a file in ``folder``: its fingerprints take file paths relative
        to that folder (:func:`portable_config`)."""
        import os

        copy = self.model_copy()
        copy._folder = None if folder is None else os.path.abspath(folder)
        return copy

    def portable(self, config: RunConfig) -> dict[str, Any]:
        """``config`` dumped for a fingerprint: see :func:`portable_config`."""
        return portable_config(config.model_dump(mode="json"), self._folder)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> StudySpec:
        copy = super().model_copy(update=update, deep=deep)
        copy._arm_cache = None  # the arms are derived from the fields that ``update`` may change
        return copy

    # -- derived -------------------------------------------------------------------------------
    @property
    def baseline_arm(self) -> str:
        return self.baseline or next(iter(self.arms))

    @property
    def seed_list(self) -> list[int]:
        """The seeds the study may run: adaptive seeds plan 0..max-1 (the same runs as ``seeds: max``)."""
        if isinstance(self.seeds, SeedsConfig):
            return list(range(self.seeds.max))
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def adaptive(self) -> SeedsConfig | None:
        """The adaptive-seeds settings, or None for a fixed number (or list) of seeds."""
        return self.seeds if isinstance(self.seeds, SeedsConfig) else None

    def shared_config(self) -> RunConfig:
        return RunConfig(data=self.data, model=self.model, train=self.train, regularization=self.regularization)

    def arm(self, name: str) -> Arm:
        """The arm ``name``, built (merged and validated) once per study object."""
        if self._arm_cache is None:
            self._arm_cache = {}
        if name not in self._arm_cache:
            self._arm_cache[name] = self._build_arm(name)
        return self._arm_cache[name]

    @property
    def arm_list(self) -> list[Arm]:
        return [self.arm(a) for a in self.arms]

    def _build_arm(self, name: str) -> Arm:
        from reglab.space import split_overrides

        fixed, space = split_overrides(self.arms[name], f"arms.{name}.")
        if self.search is not None and self.search.space:
            not_dims, shared = split_overrides(self.search.space, "search.space.")
            if not_dims:  # would be silently ignored
                raise ConfigError(
                    f"search.space: {', '.join(map(str, not_dims))}: not a search dimension; give "
                    "{low, high}, choices or tune (fixed settings belong in the study's sections)"
                )
            space = {**shared, **space}
        if space and self.search is None:
            raise ConfigError(
                f"arms.{name}: tunes {', '.join(space)} but the study has no search section "
                "(add e.g. search: {sampler: tpe, trials: 20})"
            )
        if self.objective is not None:  # the arms name the function's settings
            return function_arm(self, name, fixed, space)
        config = self.shared_config().override(fixed, where=f"arms.{name}.")
        return Arm(name=name, overrides=self.arms[name], fixed=fixed, config=config, space=space)

    def with_tuned(self, tuned: dict[str, dict[str, Any]]) -> StudySpec:
        """The confirmation study: every arm's fixed overrides plus its tuned values, no search."""
        from reglab.config import deep_merge, nest_overrides

        arms = {}
        for a in self.arm_list:
            if a.function is not None:  # the function's own settings, not reglab's
                arms[a.name] = deep_merge(a.fixed, nest_dotted(tuned.get(a.name, {})))
                continue
            arms[a.name] = deep_merge(nest_overrides(a.fixed), nest_overrides(tuned.get(a.name, {})))
        return self.model_copy(update={"arms": arms, "search": None})

    def store_keys(self, tuned_from: StudySpec | None = None) -> tuple[str, str | None]:
        """(fingerprint, derived) of this study's confirmation runs (see ``RunStore``). For the
        confirmation of a tuned study (``tuned_from``): the study as written, budget excluded, and
        the tuned values - so raising the budget keeps the tuning trials and replaces only the
        confirmation runs when it finds other values."""
        if tuned_from is None:
            return self.fingerprint(), None
        return tuned_from.fingerprint(budget=False), self.fingerprint()

    def fewer_seeds_keys(self, tuned_from: StudySpec | None = None) -> list[tuple[str, str | None]]:
        """The store keys (:meth:`store_keys`) of this study with fewer fixed seeds (0..n-1 for
        n < max): an adaptive study continues a fixed study's stored runs (seed i is the same run)."""
        if self.adaptive is None:
            return []
        out: list[tuple[str, str | None]] = []
        for n in range(1, self.adaptive.max):
            seeds = list(range(n))
            if tuned_from is None:
                out.append((self.fingerprint(seeds=seeds), None))
            else:
                out.append((tuned_from.fingerprint(budget=False, seeds=seeds), self.fingerprint(seeds=seeds)))
        return out

    def output_dir(self) -> Path:
        return Path(self.output) if self.output else Path("reglab-runs") / self.name

    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        return f"sqlite:///{(self.output_dir() / 'study.db').resolve()}"

    def fingerprint(self, budget: bool = True, seeds: list[int] | None = None) -> str:
        """Hash of everything that determines results (not jobs, output or storage); without the
        search budget (trials, timeout) when ``budget`` is False. Adaptive seeds hash as their
        ``max`` fixed seeds (the same runs); ``seeds``: hash as if the study had these seeds."""
        search = self.search.model_dump(exclude=None if budget else {"trials", "timeout"}) if self.search else None
        payload = {
            "arms": {a.name: self.portable(a.config) for a in self.arm_list},
            "seeds": self.seed_list if seeds is None else seeds,
            "spaces": {a.name: a.space_dump() for a in self.arm_list},
            "search": search,
        }
        if self.objective is not None:  # only then: existing studies keep their fingerprints
            payload["objective"] = self.objective.model_dump()
            payload["settings"] = {a.name: a.function.settings for a in self.arm_list if a.function is not None}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def resolved(self) -> dict[str, Any]:
        """The study with every arm's full run configuration, as written next to the results."""
        return {
            "name": self.name,
            "baseline": self.baseline_arm,
            "seeds": self.seed_list,
            **({"adaptive_seeds": self.adaptive.model_dump()} if self.adaptive is not None else {}),
            "metric": self.metric.model_dump(),
            "diagnosis": self.diagnosis.model_dump(),
            "fingerprint": self.fingerprint(),
            "arms": {
                a.name: {"overrides": a.overrides, "config": a.config.model_dump(mode="json")}
                | ({} if a.function is None else {"settings": a.function.settings})
                for a in self.arm_list
            },
        } | ({} if self.objective is None else {"objective": self.objective.model_dump()})


def _cheap_task(data: dict[str, Any]) -> str | None:
    """The study's task when it can be known without loading the data: ``data.task`` when set,
    a registered dataset's declared task, or a CSV or Parquet file's target column read with
    pandas (only that column); else None."""
    task = data.get("task", "auto")
    if task != "auto":
        return task if isinstance(task, str) else None
    from reglab.data import DATASETS, infer_format

    name = data.get("name", "digits")
    path = data.get("path")
    if isinstance(path, str):  # the data: {path: ..., format: ...} form names no dataset
        fmt = data.get("format") or infer_format(path)
        name = f"{fmt}:{path}" if isinstance(fmt, str) else None
    if isinstance(name, str) and name in DATASETS:
        return DATASETS.get(name).task
    fmt, _, file = name.partition(":") if isinstance(name, str) else ("", "", "")
    if fmt not in ("csv", "parquet") or not file:
        return None  # other files and your own data: resolved when they are loaded
    import pandas as pd

    from reglab.data.targets import infer_task
    from reglab.errors import ReglabError

    column = data.get("target", "target")
    try:
        if fmt == "csv":
            target = pd.read_csv(Path(file).expanduser(), usecols=[column])[column]
        else:
            target = pd.read_parquet(Path(file).expanduser(), columns=[column])[column]
    except Exception:  # the loader reports a missing or unreadable file or column with its own message
        return None
    try:
        return infer_task(target.dropna().to_numpy(), f"{name}: {column!r}")
    except ReglabError as err:
        raise ValueError(str(err)) from None


# -- loading -------------------------------------------------------------------------------------


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line, for error messages."""
    index: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return index
    seen: set[int] = set()

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if id(node) in seen:  # an alias: recursive (&a [*a]) or repeated (billion laughs) structure
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, str(k.value))
                index[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                index[(*path, str(i))] = v.start_mark.line + 1
                walk(v, (*path, str(i)))

    if root is not None:
        with contextlib.suppress(RecursionError):
            walk(root, ())
    return index


def _where(
    loc: tuple[str, ...], lines: dict[tuple[str, ...], int], source: str, sets: Sets, inside: bool = False
) -> str:
    """``file:line`` of the deepest key of ``loc`` that the file holds, or ``file (--set KEY=VALUE)``
    when a ``--set`` override put the value there (``inside``: or anywhere below ``loc``)."""
    for path, item in sets.items():
        if loc[: len(path)] == path or (inside and path[: len(loc)] == loc):
            return f"{source} (--set {item})"
    for k in range(len(loc), 0, -1):
        if loc[:k] in lines:
            return f"{source}:{lines[loc[:k]]}"
    return source


def _with_lines(err: ValidationError, lines: dict[tuple[str, ...], int], source: str, sets: Sets) -> list[str]:
    """One line per problem: ``file:line: field.path: message``."""
    msgs = []
    for part, e in zip(validation_messages(err, model=StudySpec), err.errors(), strict=True):
        loc = tuple(str(p) for p in e["loc"])
        msgs.append(f"{_where(loc, lines, source, sets)}: {part}")
    return msgs


def _without_failed(doc: dict[str, Any], err: ValidationError) -> StudySpec | None:
    """The study without its invalid settings (each removed, so its default applies; an invalid arm
    left out), so that the arms are checked too and every problem is reported at once; None when
    that does not validate either (then the errors found so far are the report)."""
    rest = copy.deepcopy(doc)
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if not loc or loc[0] == "search":  # the whole study's (its baseline), or the arms' tuning
            return None
        if loc[0] == "arms":
            if len(loc) < 2 or not isinstance(rest.get("arms"), dict):
                return None
            rest["arms"].pop(loc[1], None)
            continue
        node: Any = rest
        for part in loc[:-1]:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                break
            node = child
        else:
            part = loc[-1]
        if isinstance(node, dict):
            node.pop(part, None)
    if not rest.get("arms"):
        return None
    rest.setdefault("name", "study")
    if not isinstance(rest.get("name"), str) or not _NAME.match(rest["name"]):
        rest["name"] = "study"
    try:
        return StudySpec.model_validate(rest)
    except (ValidationError, TypeError, ValueError, RecursionError):
        return None


def arm_errors(per_arm: dict[str, list[tuple[str, str]]], n_arms: int, source: str) -> list[str]:
    """``where: message`` per problem; a problem every arm has (e.g. the shared model does not
    import: "arms.<arm>: <problem>" for each) is said once, for the whole study."""

    def problem(arm: str, msg: str) -> str:
        return msg.removeprefix(f"arms.{arm}: ")

    counts: dict[str, int] = {}
    for arm, msgs in per_arm.items():
        for m in {problem(arm, msg) for _, msg in msgs}:
            counts[m] = counts.get(m, 0) + 1
    shared = [m for m, n in counts.items() if n == n_arms > 1]
    out = [f"{source}: {m}" for m in shared]
    for arm, msgs in per_arm.items():
        out += [f"{where}: {msg}" for where, msg in msgs if problem(arm, msg) not in shared]
    return out


def _too_many_runs(spec: StudySpec) -> str | None:
    """Why the study plans more runs than ``max_runs`` (None if it does not): its confirmation runs,
    and the tuning trials of arms that tune something when the search has a trial budget and no
    time budget. Counted from the document, before any arm is built."""
    from reglab.space import is_dim

    confirm = len(spec.arms) * len(spec.seed_list)
    s = spec.search
    trials = 0
    if s is not None and s.trials is not None and s.timeout is None:

        def tunes(overrides: Any) -> bool:
            return isinstance(overrides, dict) and any(is_dim(v) or tunes(v) for v in overrides.values())

        trials = s.trials * sum(1 for o in spec.arms.values() if s.space or tunes(o))
    total = confirm + trials
    if total <= spec.max_runs:
        return None
    what = f"{len(spec.arms):,} arms x {len(spec.seed_list):,} seeds" + (" at most" if spec.adaptive else "")
    what += f" + {trials:,} tuning trials" if trials else ""
    return (
        f"the study plans {total:,} runs ({what}), more than max_runs ({spec.max_runs:,}); check its arms and seeds, "
        f"or allow it: max_runs: {total} in the study file (or --set max_runs={total})"
    )


def _check_budget(spec: StudySpec, arm: str) -> None:
    s = spec.search
    if s is None:
        return
    space = spec.arm(arm).space
    if s.sampler == "grid":
        import math

        from reglab.space import grid_space

        grid = grid_space(space)
        for k, vals in grid.items():
            for v in vals:
                if not (v is None or isinstance(v, str | int | float | bool)):
                    raise ConfigError(
                        f"search.sampler: the grid sampler takes numbers, strings, booleans or null; arm {arm!r} "
                        f"tunes {k} over {v!r}; use another sampler"
                    )
        size = math.prod(len(v) for v in grid.values()) if space else 1
        if s.trials is not None and size > s.trials:
            raise ConfigError(
                f"search.trials: the grid of arm {arm!r} has {size} points but the budget is {s.trials} trials; "
                "raise search.trials, use fewer grid points (num/step/choices) or another sampler"
            )


def _check_space(spec: StudySpec, arm: str) -> None:
    """Every tuned setting exists and accepts both ends of its range (or each choice), and every
    condition (``when``) names a known setting - so a typo fails here, not in every trial."""
    from reglab.config import nest_overrides
    from reglab.space import split_overrides

    space = spec.arm(arm).space
    if not space or spec.objective is not None:  # a function's settings: checked by check_arm
        return
    own = split_overrides(spec.arms[arm], f"arms.{arm}.")[1]
    base = spec.arm(arm).config
    for name, d in space.items():
        where = f"arms.{arm}.{name}" if name in own else f"search.space.{name}"
        for key in (name, *(k for k in (d.when or {}) if k not in space)):
            try:
                nest_overrides({key: None})
            except ConfigError as err:
                label = "" if key == name else f"when: {key}: "
                raise ConfigError(f"{where}: {label}{str(err).split(': ', 1)[-1]}") from None
        if d.choices is not None:
            values = list(d.choices)
        else:
            assert d.low is not None and d.high is not None  # a range has both ends (Dim checks it)
            values = [int(d.low), int(d.high)] if d.integer else [d.low, d.high]
        for v in values:
            try:
                base.override({name: v})
            except ConfigError as err:
                raise ConfigError(f"{where}: the setting does not accept {v!r} ({err})") from None
        for key, vals in (d.when or {}).items():  # a value the setting never takes is a typo
            for v in vals:
                try:
                    base.override({key: v})
                except ConfigError as err:
                    raise ConfigError(f"{where}: when: {key}: the setting never takes {v!r} ({err})") from None


def parse_study(
    doc: Any, source: str = "<study>", text: str | None = None, sets: Sets | None = None, *, functions: bool = True
) -> StudySpec:
    """Validate a parsed document (and every arm's merged run config) into a :class:`StudySpec`.
    Every problem is reported at once, one line each (``file:line: field.path: message``).
    ``sets``: the document paths that ``--set`` overrides wrote (path -> ``KEY=VALUE``), named in
    the errors instead of a line of the file. ``functions=False``: a function study's settings are
    not checked against the function's declaration here (``reglab run`` has a worker process check
    them, :func:`reglab.study.execution.function_runs.check_in_workers`, so the driver never imports the user's
    module)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a study file must be a mapping with name, arms, ... (got {type(doc).__name__})")
    lines = _line_index(text) if text else {}
    sets = sets or {}
    errors: list[str] = []
    try:
        spec: StudySpec | None = StudySpec.model_validate(doc)
    except ValidationError as err:
        errors = _with_lines(err, lines, source, sets)
        spec = _without_failed(doc, err)
    except (TypeError, ValueError) as err:  # e.g. unhashable keys
        raise ConfigError(f"{source}: {err}") from None
    except RecursionError:  # a recursive (&a [*a]) or absurdly deep document
        raise ConfigError(f"{source}: the document is nested too deeply (or refers to itself)") from None
    if spec is not None and (too_many := _too_many_runs(spec)) is not None:  # before 10,000 arms are built
        raise ConfigError("\n".join([*errors, f"{_where(('arms',), lines, source, sets)}: {too_many}"]))
    per_arm: dict[str, list[tuple[str, str]]] = {}  # arm -> (where, message without "arms.<arm>: ")
    for arm in spec.arms if spec is not None else ():
        assert spec is not None
        where = _where(("arms", arm), lines, source, sets, inside=True)
        try:
            spec.arm(arm)
            _check_budget(spec, arm)
            _check_space(spec, arm)
            if spec.arm(arm).function is not None:  # the user's own function: its settings declaration
                if functions:
                    check_arm(spec, spec.arm(arm))
            elif spec.arm(arm).config.model.class_path is not None:  # the user's own model
                check_arguments(spec.arm(arm))
        except ConfigError as err:
            per_arm[arm] = [(where, msg) for msg in str(err).splitlines()]
        except RecursionError:
            per_arm[arm] = [(where, f"arms.{arm}: nested too deeply (or refers to itself)")]
    errors += arm_errors(per_arm, len(spec.arms) if spec is not None else 0, source)
    if errors:
        raise ConfigError("\n".join(errors))
    assert spec is not None
    return spec


# -- --set overrides and paths relative to the study file ------------------------------------------------

Sets = dict[tuple[str, ...], str]  # document path -> the ``--set KEY=VALUE`` that wrote it

PATH_KEYS = (("data", "data_dir"), ("data", "path"), ("output",))
_FILE_SCHEMES = ("csv:", "parquet:", "npz:", "images:")


def _from_folder(value: Any, folder: Path, scheme: str = "") -> Any:
    """A relative path of a study file, taken from the file's folder and written relative to the
    current directory (as before when the file is there: the study's fingerprint does not change)."""
    if not isinstance(value, str) or not value.startswith(scheme):
        return value
    raw = value[len(scheme) :]
    if not raw or raw.startswith("~") or Path(raw).is_absolute():
        return value
    import os

    target = os.path.normpath(folder / raw)
    try:
        return scheme + os.path.relpath(target)
    except ValueError:  # another drive (Windows)
        return scheme + os.path.abspath(target)


def portable_config(dump: dict[str, Any], folder: str | None) -> dict[str, Any]:
    """A dumped run configuration as it enters a fingerprint: a relative data path (which
    :func:`relative_to_file` made relative to the current directory) relative to the study file's
    ``folder`` instead, so the fingerprint is the same wherever the command runs and wherever the
    checkout lies (workers on other machines, a resume from another directory). For a study run
    from its own folder that is the path as before; absolute paths stay as they are."""
    data = dump.get("data")
    if folder is None or not isinstance(data, dict):
        return dump
    import os

    def from_folder(value: Any, scheme: str = "") -> Any:
        if not isinstance(value, str) or not value.startswith(scheme):
            return value
        raw = value[len(scheme) :]
        if not raw or raw.startswith("~") or os.path.isabs(raw):
            return value
        try:
            return scheme + os.path.relpath(os.path.abspath(raw), folder)
        except ValueError:  # another drive (Windows)
            return value

    data = dict(data)
    if "data_dir" in data:
        data["data_dir"] = from_folder(data["data_dir"])
    name = data.get("name")
    scheme = next((s for s in _FILE_SCHEMES if isinstance(name, str) and name.startswith(s)), None)
    if scheme is not None:
        data["name"] = from_folder(name, scheme)
    return {**dump, "data": data}


def relative_to_file(doc: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data.data_dir``, ``data.path``, a file named in ``data.name`` (``csv:PATH`` ...) and
    ``output`` of a study file are relative to the file's folder, so a study runs from any
    directory. (Values given with ``--set`` or ``--output`` stay relative to the current one.)"""
    out = dict(doc)
    data = out.get("data")
    if isinstance(data, dict):
        data = dict(data)
        for key in ("data_dir", "path"):
            if key in data:
                data[key] = _from_folder(data[key], folder)
        name = data.get("name")
        for scheme in _FILE_SCHEMES:
            if isinstance(name, str) and name.startswith(scheme):
                data["name"] = _from_folder(name, folder, scheme)
        out["data"] = data
    if "output" in out:
        out["output"] = _from_folder(out["output"], folder)
    return out


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as ``{KEY: value}``, each value read as YAML (``5``, ``1e-3``, ``[0.5]``,
    ``true``); a malformed item raises ConfigError naming it."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = bounded_yaml(text, yaml.SafeLoader, f"--set {key}") if text.strip() else None
        except (yaml.YAMLError, RecursionError):
            raise ConfigError(f"--set {key}: cannot read {text!r} as a value") from None
    return out


def apply_sets(doc: dict[str, Any], items: list[str]) -> tuple[dict[str, Any], Sets]:
    """The study document with ``--set KEY=VALUE`` overrides. KEY is a dotted path in the study
    document (``train.epochs``, ``seeds``, ``search.trials``, ``arms.l2.l2``, ``data.n_train``); a
    run setting's own name (``epochs``, ``l2``, ``n_train``) addresses the shared section that holds
    it (``train.epochs``...); in a study of the user's function (``objective``), the function's
    ``settings`` (``lr=0.1`` is ``settings.lr``). The study's own keys come first: ``name`` is the
    study's name (``data.name`` the dataset's). Returns the document and which path each override wrote."""
    from reglab.config import FIELD_SECTION

    out = copy.deepcopy(doc)  # the overrides change a copy
    sets: Sets = {}
    for key, value in parse_sets(items).items():
        item = next(i for i in items if i.partition("=")[0].strip() == key)
        parts = key.split(".")
        if parts[0] not in StudySpec.model_fields and out.get("objective"):  # the function's settings
            parts = ["settings", *parts]
        elif parts[0] not in StudySpec.model_fields:
            if parts[0] not in FIELD_SECTION:
                from reglab.errors import suggest

                hint = suggest(parts[0], [*StudySpec.model_fields, *FIELD_SECTION], "`reglab schema` lists them")
                raise ConfigError(f"--set {key}: unknown key; {hint}")
            parts = [FIELD_SECTION[parts[0]], *parts]
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {key}: {where} is {child!r} in the study, not a mapping")
            node = child
        node[parts[-1]] = value
        sets[tuple(parts)] = item
    return out, sets


MAX_YAML_NODES = 1_000_000  # a study file's values with every alias expanded: far above any real study


def expanded_nodes(root: yaml.Node, limit: int) -> int:
    """How many nodes the YAML document ``root`` has with every alias expanded (a node reached
    twice counts twice), counted on the composed graph with each node's size memoized, so in time
    linear in the file; anything above ``limit`` (a document that contains itself included) is
    ``limit + 1``."""
    size: dict[int, int] = {}
    active: set[int] = set()  # the nodes being counted: the path from the root

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        if id(node) in size:
            continue
        kids = children(node)
        if counted:
            active.discard(id(node))
            size[id(node)] = min(limit + 1, 1 + sum(size[id(k)] for k in kids))
            continue
        active.add(id(node))
        stack.append((node, True))
        for k in kids:
            if id(k) in active:  # &a [*a]: unbounded when expanded
                return limit + 1
            if id(k) not in size:
                stack.append((k, False))
    return size[id(root)]


def bounded_yaml(text: str, loader: type[yaml.SafeLoader], where: str) -> Any:
    """One YAML document read with ``loader``, refused (ConfigError) when its aliases expand it to
    more than :data:`MAX_YAML_NODES` nodes (a "billion laughs" file): it is checked on the composed
    node graph, before any value is built, so nothing later walks an unbounded tree."""
    ld = loader(text)
    try:
        node = ld.get_single_node()
        if node is None:
            return None
        if expanded_nodes(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(
                f"{where}: the document expands to more than {MAX_YAML_NODES:,} values through its aliases "
                "(*name) or refers to itself; write the values out instead"
            )
        return ld.construct_document(node)
    finally:
        ld.dispose()


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (the last would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # << merges: explicit keys override them
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if seen is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        problem=f"key {key!r} appears twice (lines {seen.line + 1} and "
                        f"{key_node.start_mark.line + 1}); remove or rename one",
                        problem_mark=key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def load_study(path: str | Path, sets: list[str] | None = None, *, functions: bool = True) -> StudySpec:
    """Read and validate a study file (safe YAML, a key given twice refused); errors name the field
    and line. Its relative paths are taken from its folder (:func:`relative_to_file`); ``sets``:
    ``--set KEY=VALUE`` overrides of the document (:func:`apply_sets`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"study file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read study file {p}: {err}") from None
    try:
        doc = bounded_yaml(text, _UniqueKeyLoader, str(p))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid YAML: nested too deeply") from None
    except ConfigError:  # too large once its aliases are expanded
        raise
    except Exception as err:  # PyYAML's constructors raise plain errors: !!int x, !!float '', 2001-13-45
        raise ConfigError(f"{p}: invalid YAML: a value cannot be read ({type(err).__name__}: {err})") from None
    if isinstance(doc, dict):
        doc = relative_to_file(doc, p.parent)
    applied: Sets = {}
    if sets:
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}: a study file must be a mapping with name, arms, ...")
        doc, applied = apply_sets(doc, sets)
    return parse_study(doc, str(p), text, applied, functions=functions).located(p.parent)


def demo_study(output: str = "reglab-demo", seeds: int | dict[str, Any] | None = None) -> StudySpec:
    """The built-in study (``reglab demo``), shipped as ``reglab/examples/demo.yaml``."""
    from importlib import resources

    text = (resources.files("reglab") / "examples" / "demo.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    doc["output"] = output
    if seeds is not None:
        doc["seeds"] = seeds
    return parse_study(doc, "demo.yaml", text)


def starter_study(data: str = "digits", file: str = "study.yaml") -> str:
    """The commented study that ``reglab init`` writes, for the registered dataset ``data``."""
    import string
    from importlib import resources

    from reglab.data import DATASETS

    if data not in DATASETS:
        raise ConfigError(f"--data: {DATASETS.unknown(data)}")
    info = DATASETS.get(data)
    if info.files:  # files looked up (or downloaded) as for `reglab train --data-dir`
        lines = (
            "  # data_dir: data      # the folder with its files, relative to this file (default: $REGLAB_DATA,\n"
            "                        # then ~/.cache/reglab; downloaded there when missing)\n"
            "  # n_train: 10000      # a training subset, for a first quick run (default: all of it)\n"
        )
    else:
        lines = "  # n_train: 500        # a training subset (default: all of it)\n"
    image = info.files or data == "digits"
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", Path(file).stem).strip("-._+") or "study"
    template = (resources.files("reglab") / "examples" / "starter.yaml").read_text(encoding="utf-8")
    return string.Template(template).substitute(
        file=file,
        name=name[:64],
        data=data,
        data_lines=lines,
        hidden="[256, 128]" if image else "[64]",
        epochs=20,
    )


# -- the user's own function and model: the checks when the study is read -----------------------------


def study_problems(spec: StudySpec) -> list[str]:
    """What a function study cannot have (the function owns the model and the training loop)."""
    from reglab.config import ModelConfig, regularization_section

    if spec.objective is None:
        return ["settings: only for a study with objective.function (the settings your function reads)"] * bool(
            spec.settings
        )
    out = []
    if spec.model != ModelConfig():
        out.append("model: your function builds its own model; remove the model section (or objective)")
    if spec.regularization.model_dump() != regularization_section()().model_dump():
        out.append(
            "regularization: reglab's regularizers do not reach your function; name the settings your function "
            "reads in settings: and the arms instead"
        )
    if spec.search is not None and spec.search.cv is not None:
        out.append("search.cv: not available with objective.function (the function owns its training loop)")
    if spec.train.population != "off":
        out.append("train.population: not available with objective.function (runs are the function's)")
    if spec.save_models != "none":
        out.append("save_models: not available with objective.function (save your model from your function)")
    return out


def function_arm(spec: StudySpec, name: str, fixed: dict[str, Any], space: dict[str, Dim]) -> Arm:
    """An arm of a function study: its settings are the study's ``settings:`` with the arm's fixed
    overrides merged in; its run configuration is the shared one (data split and seeds), with
    ``train.epochs`` taken from an integer ``epochs`` setting (progress bars and pruners' horizon)."""
    from reglab.config import deep_merge

    assert spec.objective is not None
    settings = deep_merge(copy.deepcopy(dict(spec.settings)), fixed)
    config = spec.shared_config()
    epochs = settings.get("epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        with contextlib.suppress(ConfigError):  # outside train.epochs' range: the shared value stays
            config = config.override({"epochs": epochs}, where=f"arms.{name}.")
    return Arm(
        name=name,
        overrides=spec.arms[name],
        fixed=fixed,
        config=config,
        space=space,
        function=FunctionArm(
            objective=spec.objective, settings=settings, select=spec.metric.select, compare=spec.metric.compare
        ),
    )


def arm_settings(arm: Arm) -> ArmSettings:
    from reglab.space import split_overrides

    assert arm.function is not None
    own = set(arm.fixed) | set(split_overrides(arm.overrides, f"arms.{arm.name}.")[1])
    return ArmSettings(arm.name, arm.function.settings, dict(arm.space), frozenset(own))


def check_arm(spec: StudySpec, arm: Arm) -> None:
    """The function imports and takes ``(settings, ctx)``; when it declares its settings, every
    setting of the arm and every tuned name is declared (with "did you mean"), every required one
    is given, and a pydantic declaration accepts the values (at both ends of each range). One
    ConfigError, one line per problem."""
    assert arm.function is not None
    try:
        decl = declaration(arm.function.objective)
    except ConfigError as err:
        raise ConfigError(f"arms.{arm.name}: {err}") from None
    if decl is not None and (problems := arm_problems(decl, arm_settings(arm))):
        raise ConfigError("\n".join(problems))


def _reaches_model(name: str) -> bool:
    """Whether the tuned setting ``name`` changes how the model is built."""
    from reglab.regularizers import REGULARIZERS

    structural = {f for _, s in REGULARIZERS.items() if s.structural for f in s.fields}
    return name.split(".")[0] in {"model", "init_args", "class_path", *structural}


def model_configs(arm: Arm) -> Iterator[tuple[str, RunConfig]]:
    """The arm's configuration, and with each tuned setting that reaches the model at either end
    of its range (first and last choice): the models its trials can build, as far as a check can
    tell without trying every value. Each with a label for messages (``" (init_args.width=4)"``)."""
    yield "", arm.config
    for name, dim in arm.space.items():
        if not _reaches_model(name):
            continue
        ends: list[Any] = [dim.choices[0], dim.choices[-1]] if dim.choices is not None else [dim.low, dim.high]
        if dim.integer and dim.choices is None:
            ends = [int(v) for v in ends]
        for value in ends:
            try:
                yield f" ({name}={value!r})", arm.config.override({name: value})
            except ConfigError:  # reported by the study's own check of the space
                continue


def check_config(cfg: RunConfig) -> None:
    """The run's own model (if any) imports and its constructor takes every argument reglab would
    pass; the data is not read."""
    from reglab.models.user import arguments, resolve
    from reglab.regularizers import structural_args

    ref = cfg.model.class_path
    if ref is not None:
        arguments(resolve(ref), ref, cfg.model.init_args, structural_args(cfg))


def check_arguments(arm: Arm) -> None:
    """:func:`check_config` for each model the arm's trials can build (``parse_study``)."""
    for label, cfg in model_configs(arm):
        try:
            check_config(cfg)
        except ConfigError as err:
            raise ConfigError(f"arms.{arm.name}{label}: {err}") from None
