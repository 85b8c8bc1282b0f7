"""A study logged to MLflow (issue 15): read back with MLflow's own client from a local SQLite
tracking store - the parent run and its nested runs, parameters, per-epoch histories, final
metrics, a failed run's status, the attached report - and logging again (a resume) adds no run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cilib import need_module
from reglab.report import build_report
from reglab.study import parse_study, run_protocol
from reglab.study.results.tracking import log_study, read_study

# the optional extra reglab[mlflow] (part of the dev extra): skipped without it, failed under CI
MlflowClient = need_module("mlflow", "mlflow").MlflowClient

ROOT = Path(__file__).resolve().parents[2]
BN_FAILS = "Expected more than 1 value per channel"


def _doc(tiny_study: Callable[..., dict[str, Any]], out: Path) -> dict[str, Any]:
    """none and a tuned l2 (2 trials) that complete, and batch norm, which meets a last batch of one
    sample (200 examples in batches of 199) and fails: 3 arms x 2 seeds, 3 epochs."""
    return tiny_study(
        name="tracked",
        train={"epochs": 3, "batch_size": 199, "device": "cpu"},
        arms={"none": {}, "l2": {"l2": "tune"}, "bn": {"batch_norm": True}},
        search={"trials": 2, "sampler": "random"},
        seeds=2,
        output=str(out),
    )


@pytest.fixture(scope="module")
def study_dir(
    tmp_path_factory: pytest.TempPathFactory, executor: Any, tiny_study: Callable[..., dict[str, Any]]
) -> Path:
    out = tmp_path_factory.mktemp("tracked") / "out"
    run_protocol(parse_study(_doc(tiny_study, out)), executor=executor, progress=False)
    build_report(out)
    return out


def _uri(path: Path) -> str:
    return f"sqlite:///{path / 'mlflow.db'}"


def _runs(client: MlflowClient, name: str) -> list[Any]:
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_study_reads_back_from_mlflow(study_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow keeps a SQLite store's artifacts in ./mlruns
    done = log_study(study_dir, _uri(tmp_path))
    assert (done.logged, done.kept, done.replaced) == (8, 0, 0)  # 3 arms x 2 seeds + 2 trials
    client = MlflowClient(tracking_uri=_uri(tmp_path))
    runs = _runs(client, "tracked")
    parents = [r for r in runs if r.data.tags.get("reglab.phase") == "study"]
    assert len(parents) == 1 and parents[0].info.run_id == done.parent_run_id
    parent = parents[0]
    children = {r.data.tags["reglab.key"]: r for r in runs if r is not parent}
    assert sorted(children) == sorted(
        [f"confirmation/{a}/seed{s}" for a in ("none", "l2", "bn") for s in (0, 1)]
        + ["tuning/l2/trial0", "tuning/l2/trial1"]
    )
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children.values())
    summary = json.loads((study_dir / "summary.json").read_text())
    assert {r.data.tags["reglab.fingerprint"] for r in runs} == {summary["fingerprint"]}

    # parameters: the run's resolved settings (seed offsets applied) and the arm's tuned value
    tuning = json.loads((study_dir / "tuning.json").read_text())["arms"]["l2"]
    l2 = children["confirmation/l2/seed1"]
    assert l2.data.params["seed"] == "1" and l2.data.params["train.seed"] == "1"
    assert l2.data.params["data.split_seed"] == "1" and l2.data.params["model.hidden"] == "[32]"
    assert float(l2.data.params["tuned.l2"]) == pytest.approx(tuning["best_params"]["l2"])
    assert float(l2.data.params["regularization.l2"]) == pytest.approx(tuning["best_params"]["l2"])
    assert l2.info.status == "FINISHED" and l2.info.run_name == "l2/seed1"

    # per-epoch histories (step = epoch) and final metrics, as runs.csv and finals.csv hold them
    epochs = [r for r in _csv(study_dir / "runs.csv") if (r["arm"], r["seed"]) == ("l2", "1")]
    history = client.get_metric_history(l2.info.run_id, "val_acc")
    assert [(m.step, m.value) for m in history] == [(int(r["epoch"]), float(r["val_acc"])) for r in epochs]
    assert len(client.get_metric_history(l2.info.run_id, "train_loss")) == 3
    final = next(r for r in _csv(study_dir / "finals.csv") if (r["arm"], r["seed"]) == ("l2", "1"))
    for name in ("test_acc", "val_acc", "test_loss", "best_epoch"):
        assert l2.data.metrics[f"final_{name}"] == pytest.approx(float(final[name]))

    # a failed run: FAILED, with its reason
    bn = children["confirmation/bn/seed0"]
    assert bn.info.status == "FAILED" and bn.data.tags["reglab.status"] == "failed"
    assert BN_FAILS in bn.data.tags["reglab.reason"]
    assert not any(k.startswith("final_test") for k in bn.data.metrics)

    # tuning trials: their tuned value and validation metric, tagged with their phase
    trial = children["tuning/l2/trial1"]
    row = tuning["trials"][1]
    assert trial.data.tags["reglab.phase"] == "tuning" and trial.info.status == "FINISHED"
    assert trial.data.metrics["val_acc"] == pytest.approx(row["value"])
    assert float(trial.data.params["tuned.l2"]) == pytest.approx(row["params"]["l2"])

    # the parent: FAILED because a run failed (the CLI exits 3), summary metrics, the report attached
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["test_acc/none"] == pytest.approx(summary["arms"]["none"]["metrics"]["test_acc"]["mean"])
    assert parent.data.tags["reglab.baseline"] == "none"
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "summary.json", "runs.csv", "finals.csv", "config.resolved.yaml", "tuning.json"} <= files
    report = Path(client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path)))
    assert report.read_bytes() == (study_dir / "report.html").read_bytes()

    # logging again (a resume) adds nothing: no run, no point to any metric's history
    again = log_study(study_dir, _uri(tmp_path))
    assert (again.logged, again.kept, again.replaced, again.parent_run_id) == (0, 8, 0, done.parent_run_id)
    assert len(_runs(client, "tracked")) == len(runs)
    assert len(client.get_metric_history(parent.info.run_id, "test_acc/none")) == 1
    assert len(client.get_metric_history(l2.info.run_id, "val_acc")) == 3


def test_a_run_whose_status_changed_is_replaced_not_duplicated(
    study_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log_study(study_dir, _uri(tmp_path))
    later = tmp_path / "later"  # the same study after a resume redid bn seed 0: its row says completed
    shutil.copytree(study_dir, later)
    rows = _csv(later / "finals.csv")
    rows[[(r["arm"], r["seed"]) for r in rows].index(("bn", "0"))].update(status="completed", reason="")
    with (later / "finals.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    done = log_study(later, _uri(tmp_path))
    assert (done.logged, done.kept, done.replaced) == (0, 7, 1)
    client = MlflowClient(tracking_uri=_uri(tmp_path))
    bn0 = [r for r in _runs(client, "tracked") if r.data.tags.get("reglab.key") == "confirmation/bn/seed0"]
    assert len(bn0) == 1 and bn0[0].info.status == "FINISHED"


def test_read_study_needs_no_mlflow_server(study_dir: Path) -> None:
    study = read_study(study_dir)
    statuses = {r.key: r.mlflow_status for r in study.runs}
    assert statuses["confirmation/bn/seed1"] == "FAILED" and statuses["confirmation/none/seed0"] == "FINISHED"
    assert study.failed and [p.name for p in study.artifacts][:2] == ["report.html", "summary.json"]


# the CLI, then which heavy modules the driver process loaded (it never imports torch, --mlflow or not)
DRIVER = """import sys
from reglab.cli import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
print("heavy modules:", [m for m in ("torch", "sklearn") if m in sys.modules])
sys.exit(code)
"""


def _reglab(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", **env}
    cmd = [sys.executable, "-c", DRIVER, *args]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.mark.slow
def test_reglab_run_mlflow_twice_logs_each_run_once(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], write_yaml: Callable[..., Path]
) -> None:
    study = write_yaml(_doc(tiny_study, tmp_path / "out"))
    uri = _uri(tmp_path)
    first = _reglab(["run", str(study), "--jobs", "1", "--no-progress", "--mlflow", uri], tmp_path)
    assert first.returncode == 3, first.stdout[-2000:] + first.stderr[-2000:]  # bn's runs failed
    assert "MLflow: 8 runs logged, 0 already there, 0 replaced" in first.stdout
    assert "Traceback" not in first.stderr and "INFO" not in first.stderr  # MLflow's set-up lines stay out
    assert "heavy modules: []" in first.stdout
    second = _reglab(["run", str(study), "--jobs", "1", "--no-progress", "--mlflow", uri], tmp_path)
    assert second.returncode == 3 and "MLflow: 0 runs logged, 8 already there, 0 replaced" in second.stdout
    assert len(_runs(MlflowClient(tracking_uri=uri), "tracked")) == 9
    after = _reglab(["export", str(tmp_path / "out"), "--mlflow", uri], tmp_path)  # after the fact, too
    assert after.returncode == 0 and "0 runs logged, 8 already there" in after.stdout


def test_without_the_extra_run_stops_before_any_work(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], write_yaml: Callable[..., Path]
) -> None:
    study = write_yaml(_doc(tiny_study, tmp_path / "out"))
    code = "import sys; sys.modules['mlflow'] = None; from reglab.cli import main; main()"  # as if not installed
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-c", code, "run", str(study), "--mlflow", _uri(tmp_path)]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == ["error: --mlflow: MLflow is not installed; pip install 'reglab[mlflow]'"]
    assert not (tmp_path / "out").exists()


def test_a_bad_tracking_uri_is_one_line_with_the_password_masked(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], write_yaml: Callable[..., Path]
) -> None:
    study = write_yaml(_doc(tiny_study, tmp_path / "out"))
    uri = "http://alice:s3cret@127.0.0.1:9/"  # nothing listens on the discard port
    p = _reglab(["run", str(study), "--mlflow", uri], tmp_path, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --mlflow http://alice:***@127.0.0.1:9/: ")
    assert "s3cret" not in p.stderr + p.stdout
    assert not (tmp_path / "out").exists()
    folder = _reglab(["run", str(study), "--mlflow", str(tmp_path / "mlruns")], tmp_path)
    assert folder.returncode == 2 and "sqlite:///mlflow.db" in folder.stderr and "Traceback" not in folder.stderr


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_an_unreachable_tracking_server_is_refused_within_seconds(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]], write_yaml: Callable[..., Path], server: str
) -> None:
    """``--mlflow http://127.0.0.1:1`` took about 250 s (MLflow's retries) to fail; a port that
    refuses, or a server that accepts the connection and never answers, is refused before any
    training: one line, exit 2, nothing written - far within the deadline, under load too."""
    import socket
    import time

    study = write_yaml(_doc(tiny_study, tmp_path / "out"))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        if server == "silent":
            listener.listen(8)  # connections complete (the backlog) but nothing ever answers
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"  # "refused": bound, not listening
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_")}
        start = time.monotonic()
        p = subprocess.run(
            [sys.executable, "-c", DRIVER, "run", str(study), "--no-progress", "--mlflow", uri],
            env={**env, "PYTHONPATH": str(ROOT / "src")},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        elapsed = time.monotonic() - start
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.strip().splitlines() == [
        f"error: --mlflow {uri}: no tracking server answers there "
        f"({'connection failed' if server == 'refused' else 'no answer within 5 s'}); start it (mlflow server) "
        "or correct the URI"
    ]
    assert elapsed < 30, elapsed
    assert not (tmp_path / "out").exists()  # nothing trained or stored
