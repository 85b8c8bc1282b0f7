"""Experiment tracking: a study's stored results logged to MLflow (``reglab run --mlflow URI``,
``reglab export DIR --mlflow URI``).

What is logged comes from the output folder (``summary.json``, ``config.resolved.yaml``,
``runs.csv``, ``finals.csv``, ``tuning.json``), never from a run in memory: the driver stays free
of training-time coupling, the same call works after the fact, and logging is idempotent. Every
MLflow run carries the study's fingerprint and a key (``confirmation/<arm>/seed<k>``,
``tuning/<arm>/trial<n>``); a run already logged with the same status is skipped, one whose status
changed (a failed run redone by a resume) or whose logging was cut off (still RUNNING) is replaced.
So resuming a study, or logging it twice, never duplicates a run.

Layout: one parent run per study (per fingerprint) in the experiment named after the study, with
the report, ``summary.json``, ``runs.csv``, ``finals.csv``, ``config.resolved.yaml`` and
``tuning.json`` as artifacts; one nested run per arm x seed (parameters: the run's resolved
settings, flattened, and the arm's tuned values as ``tuned.<name>``; per-epoch metrics with
step = epoch; final metrics as ``final_<name>``) and one per tuning trial (its tuned values and
its selection metric). MLflow is imported only here, and only when asked for.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reglab.errors import ReglabError
from reglab.study.results.outputs import read_resolved_arms
from reglab.urls import mask_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

INSTALL_HINT = "pip install 'reglab[mlflow]'"
ARTIFACTS = ("report.html", "summary.json", "runs.csv", "finals.csv", "config.resolved.yaml", "tuning.json")
TAG = "reglab."  # prefix of reglab's tags on MLflow runs
STUDY_PHASE = "study"
_NOT_METRICS = {"arm", "seed", "status", "reason", "epoch", "step"}
_MAX_PARAM = 6000  # MLflow's longest parameter value
_BATCH = 100  # parameters (and tags) per log_batch call; metrics: 10x
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


# -- what a study's outputs say, as runs (no MLflow here) ------------------------------------------


@dataclass(frozen=True)
class TrackedRun:
    """One MLflow run to log: a confirmation run (arm x seed) or a tuning trial."""

    key: str  # confirmation/<arm>/seed<k> or tuning/<arm>/trial<n>: the identity kept across loggings
    name: str
    phase: str  # confirmation | tuning
    arm: str
    status: str  # reglab's: completed, diverged, pruned, failed
    reason: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # per epoch: (step, value)
    metrics: dict[str, float] = field(default_factory=dict)  # logged once, step 0
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def mlflow_status(self) -> str:
        return mlflow_status(self.status)


@dataclass(frozen=True)
class TrackedStudy:
    """The parent run and its nested runs, read from a study's output folder."""

    study: str
    fingerprint: str
    failed: bool  # a run failed with an exception (the study exits 3): the parent is FAILED
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    runs: list[TrackedRun]
    artifacts: list[Path]


def mlflow_status(status: str) -> str:
    """MLflow's run status for a reglab status: a pruned trial was stopped (KILLED); a diverged or
    failed run did not produce a usable model (FAILED, with the reason as a tag)."""
    return {"completed": "FINISHED", "pruned": "KILLED"}.get(status, "FAILED")


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.05}}`` -> ``{"train.lr": "0.05"}``: MLflow parameters are flat strings
    (lists and empty mappings as JSON, values cut at MLflow's limit)."""
    out: dict[str, str] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
            continue
        text = json.dumps(v) if isinstance(v, list | tuple | Mapping) else str(v)
        out[_BAD_KEY.sub("_", key)] = text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."
    return out


def _number(text: str | None) -> float | None:
    """A CSV cell as a number (``nan`` and ``inf`` included: a diverged run's loss); None when empty
    or not a number."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _numbers(row: Mapping[str, str]) -> dict[str, float]:
    """A CSV row's metric cells as numbers, by MLflow-safe name (identity columns left out)."""
    return {_BAD_KEY.sub("_", k): v for k, c in row.items() if k not in _NOT_METRICS and (v := _number(c)) is not None}


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _histories(rows: list[dict[str, str]]) -> dict[tuple[str, int], dict[str, list[tuple[int, float]]]]:
    """``runs.csv`` by (arm, seed): every numeric column, step = the epoch (``step`` when recorded)."""
    out: dict[tuple[str, int], dict[str, list[tuple[int, float]]]] = {}
    for row in rows:
        step = _number(row.get("step")) or _number(row.get("epoch"))
        if step is None:  # a run that failed before its first epoch
            continue
        hist = out.setdefault((row["arm"], int(row["seed"])), {})
        for k, value in _numbers(row).items():
            hist.setdefault(k, []).append((int(step), value))
    return out


def _tuning(out: Path) -> dict[str, Any]:
    """``tuning.json``'s arms (typed), or nothing for a study without a search."""
    from reglab.tuning.insight import ArmTuning

    path = out / "tuning.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {arm: ArmTuning.model_validate(a) for arm, a in doc["arms"].items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ReglabError(f"{path}: cannot read the tuning trials ({type(err).__name__}); rerun the study") from None


def read_study(output_dir: str | Path) -> TrackedStudy:
    """The MLflow runs a study's output folder describes (pure: reads files, logs nothing)."""
    from reglab.stats.summary import StudySummary

    out = Path(output_dir)
    summary = StudySummary.of_output(out)
    fingerprint = summary.fingerprint or "unknown"
    arms = read_resolved_arms(out)
    tuning = _tuning(out)
    histories = _histories(_read_csv(out / "runs.csv"))
    runs: list[TrackedRun] = []
    for row in _read_csv(out / "finals.csv"):
        arm, seed = row["arm"], int(row["seed"])
        params = flatten(arms[arm].run_config(seed).model_dump(mode="json")) if arm in arms else {}
        fa = arms[arm].function if arm in arms else None
        if fa is not None:  # the user's function: the settings it received
            params.update(flatten(fa.settings, "settings."))
        best = tuning[arm].best_params if arm in tuning else {}
        params.update(flatten(best, "tuned."))
        finals = {f"final_{k}": v for k, v in _numbers(row).items()}
        runs.append(
            TrackedRun(
                key=f"confirmation/{arm}/seed{seed}",
                name=f"{arm}/seed{seed}",
                phase="confirmation",
                arm=arm,
                status=row["status"],
                reason=row.get("reason") or None,
                params={"seed": str(seed), **params},
                history=histories.get((arm, seed), {}),
                metrics=finals,
                tags={f"{TAG}seed": str(seed)},
            )
        )
    for arm, t in tuning.items():
        for trial in t.trials:
            if trial.state not in ("COMPLETE", "PRUNED", "FAIL"):  # still running: the next logging has it
                continue
            status = trial.status or {"COMPLETE": "completed", "PRUNED": "pruned"}.get(trial.state, "failed")
            values = {"epochs_spent": float(trial.epochs_spent)}
            if trial.value is not None and t.metric:
                values[t.metric] = trial.value
            runs.append(
                TrackedRun(
                    key=f"tuning/{arm}/trial{trial.number}",
                    name=f"{arm}/trial{trial.number}",
                    phase="tuning",
                    arm=arm,
                    status=status,
                    reason=trial.reason,
                    params=flatten(trial.params, "tuned."),
                    metrics=values,
                    tags={f"{TAG}trial": str(trial.number)},
                )
            )
    compare = summary.compare_metric
    metrics: dict[str, float] = {"n_runs": float(summary.n_runs), "n_failed": float(len(summary.failed_runs))}
    if summary.wall_time is not None:
        metrics["wall_time"] = summary.wall_time
    for arm, a in summary.arms.items():
        stat = a.metrics.get(compare)
        if stat is not None and stat.mean is not None:
            metrics[_BAD_KEY.sub("_", f"{compare}/{arm}")] = stat.mean
        if a.comparison is not None and a.comparison.mean_diff is not None:
            metrics[_BAD_KEY.sub("_", f"{compare}_diff/{arm}")] = a.comparison.mean_diff
    return TrackedStudy(
        study=summary.study,
        fingerprint=fingerprint,
        failed=any(f.status == "failed" for f in summary.failed_runs),
        params={"arms": ",".join(summary.arms), "seeds": json.dumps(summary.seeds), "n_seeds": str(len(summary.seeds))},
        tags={
            f"{TAG}baseline": summary.baseline,
            f"{TAG}compare_metric": compare,
            f"{TAG}select_metric": summary.select_metric,
            f"{TAG}best_arm": summary.ranking[0] if summary.ranking else "",
            f"{TAG}output": str(out.resolve()),
        },
        metrics=metrics,
        runs=runs,
        artifacts=[out / name for name in ARTIFACTS if (out / name).is_file()],
    )


# -- MLflow ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    """What :func:`log_study` did."""

    experiment: str
    experiment_id: str
    parent_run_id: str
    logged: int  # runs logged now
    kept: int  # runs already logged (same status): skipped
    replaced: int  # runs logged before with another status, or cut off: logged again


def require_mlflow() -> None:
    """Refuse at once (before any training) when the ``mlflow`` extra is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ReglabError(f"--mlflow: MLflow is not installed; {INSTALL_HINT}") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's and Alembic's INFO lines (creating a database's tables) stay out of the terminal."""
    import logging

    require_mlflow()
    import mlflow  # noqa: F401  (configures its loggers on import: set the level after that)

    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _problem(uri: str, err: BaseException) -> ReglabError:
    """One line naming the (masked) URI and what MLflow said."""
    text = " ".join(str(err).split()) or type(err).__name__
    if "MLFLOW_ALLOW_FILE_STORE" in text:
        text = (
            "MLflow 3 refuses a folder as its tracking store unless MLFLOW_ALLOW_FILE_STORE=true is set; "
            "use a database such as sqlite:///mlflow.db or a tracking server http://HOST:5000"
        )
    elif len(text) > 300:
        text = text[:297] + "..."
    return ReglabError(f"--mlflow {mask_url(uri)}: {mask_url(text)}")


def _client(uri: str) -> MlflowClient:
    require_mlflow()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


PROBE_TIMEOUT = 5.0  # seconds a tracking server has to answer before a study starts


def _probe(uri: str) -> None:
    """Refuse a tracking server (``http(s)://``) that does not answer within :data:`PROBE_TIMEOUT`:
    MLflow's own client retries a refused connection with backoff for about four minutes. Any HTTP
    answer (even an error status) means something listens; what it says is MLflow's to judge."""
    if uri.partition("://")[0].lower() not in ("http", "https"):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT, allow_redirects=False)
    except requests.RequestException as err:
        why = f"no answer within {PROBE_TIMEOUT:g} s" if isinstance(err, requests.Timeout) else "connection failed"
        raise ReglabError(
            f"--mlflow {mask_url(uri)}: no tracking server answers there ({why}); start it (mlflow server) "
            "or correct the URI"
        ) from None


@contextlib.contextmanager
def _few_retries() -> Iterator[None]:
    """MLflow's HTTP calls without its minutes of retries, for the check before a study starts (an
    answering server that fails now is said at once; logging after the study keeps the retries)."""
    import os

    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(2 * PROBE_TIMEOUT))}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: v for k, v in keys.items() if saved[k] is None})  # the user's own settings win
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def open_experiment(uri: str, name: str) -> str:
    """The id of experiment ``name`` at ``uri``, created when missing. Called before a study runs,
    so a wrong URI or an unreachable server is one line and exit 2 within seconds, before any training."""
    with _quiet(), _few_retries():
        _probe(uri)
        try:
            client = _client(uri)
            exp = client.get_experiment_by_name(name)
            if exp is not None and exp.lifecycle_stage == "deleted":
                raise ReglabError(
                    f"--mlflow {mask_url(uri)}: experiment {name!r} is deleted; restore it (mlflow experiments "
                    "restore) or delete it for good (mlflow gc)"
                )
            return exp.experiment_id if exp is not None else client.create_experiment(name)
        except ReglabError:
            raise
        except Exception as err:  # MlflowException, OSError, a connection error: the user's setting
            raise _problem(uri, err) from None


def _search(client: MlflowClient, experiment_id: str, fingerprint: str) -> list[Any]:
    """Every active run of the study (this fingerprint) in the experiment, all pages."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG}fingerprint` = '{fingerprint}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _log_batch(client: MlflowClient, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
    """MLflow takes at most 1000 metrics and 100 parameters or tags per call."""
    for i in range(0, len(params), _BATCH):
        client.log_batch(run_id, params=params[i : i + _BATCH])
    for i in range(0, len(tags), _BATCH):
        client.log_batch(run_id, tags=tags[i : i + _BATCH])
    for i in range(0, len(metrics), 10 * _BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + 10 * _BATCH])


def _log_run(client: MlflowClient, experiment_id: str, parent: str, study: TrackedStudy, run: TrackedRun) -> None:
    from mlflow.entities import Metric, Param

    tags = {
        "mlflow.parentRunId": parent,
        f"{TAG}fingerprint": study.fingerprint,
        f"{TAG}study": study.study,
        f"{TAG}key": run.key,
        f"{TAG}phase": run.phase,
        f"{TAG}arm": run.arm,
        f"{TAG}status": run.status,
        **run.tags,
    }
    if run.reason:
        tags[f"{TAG}reason"] = run.reason[:5000]
    created = client.create_run(experiment_id, run_name=run.name, tags=tags)  # keyed from the start
    rid, now = created.info.run_id, int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for k, points in run.history.items() for step, v in points]
    metrics += [Metric(k, v, now, 0) for k, v in run.metrics.items()]
    _log_batch(client, rid, metrics, [Param(k, v) for k, v in run.params.items()], [])
    client.set_terminated(rid, run.mlflow_status)


def _log_parent(client: MlflowClient, run_id: str, study: TrackedStudy, existing: Any) -> None:
    """Parameters not yet there, tags, the metrics that changed (a resume adds wall time), artifacts."""
    from mlflow.entities import Metric, Param, RunTag

    have_params = existing.data.params if existing is not None else {}
    have_metrics = existing.data.metrics if existing is not None else {}
    now = int(time.time() * 1000)
    params = [Param(k, v) for k, v in study.params.items() if k not in have_params]
    metrics = [Metric(k, v, now, 0) for k, v in study.metrics.items() if not _same(have_metrics.get(k), v)]
    _log_batch(client, run_id, metrics, params, [RunTag(k, v) for k, v in study.tags.items()])
    for path in study.artifacts:
        client.log_artifact(run_id, str(path))


def _same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (math.isnan(a) and math.isnan(b)))


def _settled(logged: Any, status: str) -> bool:
    """A logged run that is complete (not cut off while RUNNING) with the status the study has now."""
    return bool(logged.info.status != "RUNNING" and logged.data.tags.get(f"{TAG}status") == status)


def log_study(output_dir: str | Path, uri: str) -> Logged:
    """Log the study in ``output_dir`` to the MLflow tracking server or store at ``uri`` (idempotent:
    see the module's docstring). Runs whose key is already logged with the same status are kept."""
    study = read_study(output_dir)
    experiment_id = open_experiment(uri, study.study)
    with _quiet():
        try:
            client = _client(uri)
            found = _search(client, experiment_id, study.fingerprint)
            parents = sorted(
                (r for r in found if r.data.tags.get(f"{TAG}phase") == STUDY_PHASE), key=lambda r: r.info.start_time
            )
            parent = parents[0] if parents else None
            if parent is None:
                tags = {f"{TAG}fingerprint": study.fingerprint, f"{TAG}study": study.study, f"{TAG}phase": STUDY_PHASE}
                parent_id = client.create_run(experiment_id, run_name=study.study, tags=tags).info.run_id
            else:
                parent_id = parent.info.run_id
            by_key: dict[str, list[Any]] = {}
            for r in found:
                if r.data.tags.get("mlflow.parentRunId") == parent_id:
                    by_key.setdefault(r.data.tags.get(f"{TAG}key", ""), []).append(r)
            logged = kept = replaced = 0
            for run in study.runs:
                old = by_key.get(run.key, [])
                if len(old) == 1 and _settled(old[0], run.status):
                    kept += 1
                    continue
                for r in old:  # another status (redone after a failure) or cut off: replaced
                    client.delete_run(r.info.run_id)
                replaced += bool(old)
                logged += not old
                _log_run(client, experiment_id, parent_id, study, run)
            _log_parent(client, parent_id, study, parent)
            client.set_terminated(parent_id, "FAILED" if study.failed else "FINISHED")
        except ReglabError:
            raise
        except Exception as err:
            raise _problem(uri, err) from None
    return Logged(study.study, experiment_id, parent_id, logged, kept, replaced)
