"""PopulationExecutor: population-capable tasks go to one worker as one job, each member's epochs,
stop requests and outcome travel under its own key, others pass through unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from reglab.study.definition.spec import parse_study
from reglab.study.execution.executors import InProcessExecutor, LocalExecutor, execute_task
from reglab.study.execution.population_executor import PopulationExecutor, PopulationTask
from reglab.study.execution.task import Executor, Task, run_tasks
from reglab.study.execution.worker import DataCache
from reglab.study.protocol.protocol import make_task
from reglab.study.results.outcome import RunOutcome, RunStatus


def tasks(doc: dict[str, Any], models: Path | None = None) -> list[Task]:
    spec = parse_study(doc)
    return [make_task(spec.arm(a), s, models=models) for s in spec.seed_list for a in spec.arms]


def population_doc(tiny_study: Any, **arms: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = tiny_study()
    doc["train"] = {**doc["train"], "population": "auto"}
    doc["arms"] = arms or {"none": {}, "l2": {"l2": 1e-3}, "mix": {"mixup": 0.2}}
    return doc


def run_all(ex: Executor, todo: list[Task], prune: str | None = None) -> tuple[dict[str, RunOutcome], list[str]]:
    seen: list[str] = []

    def on_epoch(key: str, rec: dict[str, float]) -> bool:
        seen.append(key)
        return key == prune

    out = {t.key: o for t, o in run_tasks(ex, todo, on_epoch)}
    return out, seen


def test_members_come_back_as_single_runs_do(tiny_study: Any) -> None:
    todo = tasks(population_doc(tiny_study))
    notes: list[str] = []
    ex = PopulationExecutor(InProcessExecutor(record=True), size=8, say=notes.append)
    out, seen = run_all(ex, todo)
    ex.close()
    assert set(out) == {t.key for t in todo} and set(seen) == set(out)
    [pop] = ex.populations
    assert {m.key for m in pop.members} == {t.key for t in todo if not t.key.startswith("mix/")}
    assert any("mix/seed0" in n and "mixup" in n for n in notes)
    inner = ex.inner
    assert isinstance(inner, InProcessExecutor)
    assert {t.key for t in inner.submitted} == {pop.key} | {t.key for t in todo if t.key.startswith("mix/")}
    cache = DataCache()
    for t in todo:
        got = out[t.key]
        single = execute_task(t, lambda rec: False, cache)
        assert got.status is single.status is RunStatus.COMPLETED
        assert set(got.final) == set(single.final) and set(got.history[0]) == set(single.history[0])
        assert set(single.info) <= set(got.info) and got.epochs_spent == single.epochs_spent
        assert got.test_probs is not None and got.test_probs.shape == single.test_probs.shape  # type: ignore[union-attr]
        assert got.final["test_acc"] == pytest.approx(single.final["test_acc"], abs=0.02)
        assert got.to_attrs()["status"] == "completed"  # stored as single runs are


def test_stop_reaches_the_member_only(tiny_study: Any) -> None:
    doc = population_doc(tiny_study, none={}, l2={"l2": 1e-3})
    doc["train"]["epochs"] = 3
    ex = PopulationExecutor(InProcessExecutor(), size=8)
    out, seen = run_all(ex, tasks(doc), prune="l2/seed1")
    ex.close()
    assert out["l2/seed1"].status is RunStatus.PRUNED and out["l2/seed1"].epochs_spent == 1
    assert seen.count("l2/seed1") == 1 and seen.count("l2/seed2") == 3
    assert all(o.status is RunStatus.COMPLETED for k, o in out.items() if k != "l2/seed1")


def test_population_off_passes_everything_through(tiny_study: Any) -> None:
    doc: dict[str, Any] = tiny_study()
    notes: list[str] = []
    ex = PopulationExecutor(InProcessExecutor(), say=notes.append)
    out, _ = run_all(ex, tasks(doc))
    ex.close()
    assert not ex.populations and not notes and len(out) == 6
    assert all(o.status is RunStatus.COMPLETED and "population" not in o.info for o in out.values())


def test_slots_and_splitting_keep_workers_busy() -> None:
    class Idle:
        slots = 2

        def __init__(self) -> None:
            self.got: list[Task] = []

        def submit(self, task: Task) -> None:
            self.got.append(task)

        def poll(self, timeout: float) -> tuple[list[Any], list[Any]]:
            return [], []

        def stop(self, key: str) -> None: ...

        def close(self) -> None: ...

    from reglab.config import RunConfig

    cfg = RunConfig().override({"population": "auto", "population_size": 4})
    inner = Idle()
    ex = PopulationExecutor(inner, size=32)
    assert ex.slots == 64
    for s in range(10):
        ex.submit(Task(f"a/seed{s}", cfg.override({"seed": s})))
    ex.poll(0)
    sizes = sorted(len(t.members) for t in inner.got if isinstance(t, PopulationTask))
    assert sizes == [3, 3, 4]  # at most population_size members each, balanced
    assert sum(sizes) == 10 and len(inner.got) >= inner.slots


def test_saved_models_per_member(tiny_study: Any, tmp_path: Path) -> None:
    doc = population_doc(tiny_study, none={})
    todo = tasks(doc, models=tmp_path)
    ex = PopulationExecutor(InProcessExecutor())
    out, _ = run_all(ex, todo)
    ex.close()
    assert ex.populations and all(o.status is RunStatus.COMPLETED for o in out.values())
    for t in todo:
        assert t.save_to is not None and Path(t.save_to).exists()


@pytest.mark.slow
def test_local_processes(tiny_study: Any, executor: LocalExecutor) -> None:
    """Through the worker pool: events under member keys and a member's stop request (made before
    the job started, so the outcome does not depend on timing) cross the process boundary."""
    doc = population_doc(tiny_study, none={}, l2={"l2": 1e-3})
    todo = tasks(doc)
    ex = PopulationExecutor(executor, size=8)
    for t in todo:
        ex.submit(t)
    ex.stop("none/seed0")
    out: dict[str, RunOutcome] = {}
    seen: list[str] = []
    while len(out) < len(todo):
        events, finished = ex.poll(0.1)
        seen += [k for k, _ in events]
        out.update({t.key: o for t, o in finished})
    assert len(ex.populations) == 2  # two workers: the six members in two populations
    assert set(seen) == set(out)
    assert out["none/seed0"].status is RunStatus.PRUNED and out["none/seed0"].epochs_spent == 1
    assert all(o.status is RunStatus.COMPLETED for k, o in out.items() if k != "none/seed0")


@pytest.mark.slow
def test_local_stop_requests_marked_once_and_not_for_a_later_run_of_the_key(
    tiny_study: Any, executor: LocalExecutor
) -> None:
    """The worker pool's stop board: a repeated stop request writes one mark (a population re-sends
    its members' requests), and a stop meant for a run never stops a later run of the same key."""
    doc: dict[str, Any] = tiny_study()
    doc["arms"] = {"none": {}}
    task = tasks(doc)[0]
    epochs = parse_study(doc).arm("none").config.train.epochs

    def finish() -> RunOutcome:  # this task's outcome (the module's executor may still hand back another's)
        while True:
            _, finished = executor.poll(0.1)
            for done, outcome in finished:
                if done.key == task.key:
                    return outcome

    executor.submit(task)
    marks = int(executor._board[0])
    for _ in range(3):
        executor.stop(task.key)
    assert int(executor._board[0]) == marks + 1
    stopped = finish()
    assert stopped.status is RunStatus.PRUNED and stopped.epochs_spent == 1
    executor.submit(task)  # the same key again: the earlier request is not for this run
    again = finish()
    assert again.status is RunStatus.COMPLETED and again.epochs_spent == epochs > 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_population_study_tasks_on_cuda(tiny_study: Any) -> None:
    doc = population_doc(tiny_study, none={}, l2={"l2": 1e-3})
    doc["train"]["device"] = "cuda"
    ex = PopulationExecutor(InProcessExecutor())
    out, _ = run_all(ex, tasks(doc))
    ex.close()
    assert ex.populations and all(o.status is RunStatus.COMPLETED for o in out.values())
    assert all(o.info["device"].startswith("cuda") for o in out.values())


def test_with_populations_wraps_only_when_asked() -> None:
    from reglab.config import RunConfig
    from reglab.study.execution.population_executor import with_populations

    inner = InProcessExecutor()
    off = [RunConfig(), RunConfig().override({"l2": 1e-3})]
    assert with_populations(inner, off) is inner
    on = [*off, RunConfig().override({"population": "auto", "population_size": 5})]
    ex = with_populations(inner, on)
    assert isinstance(ex, PopulationExecutor) and ex.inner is inner and ex.slots == 5


def test_a_study_with_populations_stores_every_run_once(
    tmp_path: Path, tiny_study: Any, executor: LocalExecutor
) -> None:
    """``train.population: auto`` through ``run_protocol``: the seeds of each arm train as populations
    in the worker processes; every run is stored once, completed, with the same fields as a single
    run's, and the results agree with single runs' (same statistics, not the same bits)."""
    import csv

    from reglab.study import parse_study, run_protocol

    arms = {"none": {}, "l2": {"l2": 1.0e-3}, "dropout": {"dropout": 0.2}}
    single = tiny_study(name="single", arms=arms, seeds=4, output=str(tmp_path / "single"))
    pop = tiny_study(name="pop", arms=arms, seeds=4, output=str(tmp_path / "pop"))
    pop["train"] = {**pop["train"], "population": "auto"}
    a = run_protocol(parse_study(single), executor=executor, progress=False)
    b = run_protocol(parse_study(pop), executor=executor, progress=False)
    assert b.stats.new == a.stats.new == 12 and not b.failed

    def finals(out: Path) -> dict[tuple[str, str], dict[str, str]]:
        with (out / "finals.csv").open(newline="") as fh:
            return {(r["arm"], r["seed"]): r for r in csv.DictReader(fh)}

    fa, fb = finals(tmp_path / "single"), finals(tmp_path / "pop")
    assert fa.keys() == fb.keys() and all(r["status"] == "completed" for r in fb.values())
    assert set(next(iter(fa.values()))) == set(next(iter(fb.values())))  # the same columns
    for key in fa:  # 2 epochs of a tiny MLP: the same training up to floating-point order
        assert abs(float(fa[key]["val_acc"]) - float(fb[key]["val_acc"])) <= 0.05, key
    import optuna

    runs = optuna.load_study(study_name="pop/runs", storage=f"sqlite:///{tmp_path / 'pop' / 'study.db'}").get_trials()
    sizes = [t.user_attrs["info"]["population"]["size"] for t in runs]
    assert len(sizes) == 12 and all(s > 1 for s in sizes)  # really trained as populations


def test_a_worker_trains_populations_too(tmp_path: Path, tiny_study: Any) -> None:
    """``reglab worker`` (protocol.work on a shared storage) wraps its executor as ``reglab run``
    does: the capable runs reach the executor as populations, every run is stored once."""
    from reglab.study.protocol.protocol import work

    out = tmp_path / "pw"
    out.mkdir()
    doc = tiny_study(name="pw", arms={"none": {}, "l2": {"l2": 1.0e-3}}, seeds=3, output=str(out))
    doc["train"] = {**doc["train"], "population": "auto"}
    spec = parse_study(doc)
    ex = InProcessExecutor(record=True)
    res = work(spec, spec.storage_url(), executor=ex, say=lambda line: None, heartbeat=0.5)
    assert res.stats.new == 6 and not res.failed
    pops = [t for t in ex.submitted if isinstance(t, PopulationTask)]
    assert pops and sum(len(p.members) for p in pops) == 6


def test_the_data_cache_keeps_both_populations_of_a_round() -> None:
    """A worker gets either population of a round: the splits of both stay loaded (least recently
    used ones leave first), so no split is normalized twice."""
    from reglab.config import RunConfig

    cfgs = [RunConfig().override({"n_train": 100, "split_seed": s}).data for s in range(5)]
    cache = DataCache()
    first = cache.get_many(cfgs[:3])
    cache.get_many(cfgs[3:])
    again = cache.get_many(cfgs[:3])
    assert all(a is b for a, b in zip(first, again, strict=True))
    small = DataCache(size=2)
    a = small.get(cfgs[0])
    small.get(cfgs[1])
    assert small.get(cfgs[0]) is a  # used last: kept
    small.get(cfgs[2])
    assert small.peek(cfgs[1]) is None and small.peek(cfgs[0]) is a


def test_a_population_a_worker_cannot_build_is_not_formed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Your own model with buffers passes the driver's check but not the worker's: that population
    trains one at a time with a note, and later runs of the same key go to the workers alone."""
    import sys

    from reglab.config import RunConfig

    (tmp_path / "bnnets.py").write_text(
        "from torch import nn\n\n\n"
        "def make(in_features, n_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.BatchNorm1d(in_features), nn.Linear(in_features, n_classes))\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bnnets", raising=False)
    base = RunConfig().override(
        {"n_train": 200, "epochs": 1, "population": "auto", "model": {"class_path": "bnnets:make"}}
    )
    notes: list[str] = []
    inner = InProcessExecutor(record=True)
    ex = PopulationExecutor(inner, size=8, say=notes.append)
    first = [Task(f"a/seed{s}", base.override({"seed": s})) for s in range(3)]
    out, _ = run_all(ex, first)
    assert len(ex.populations) == 1 and any("buffers" in n for n in notes)
    assert all(o.status is RunStatus.COMPLETED for o in out.values())
    later = [Task(f"b/seed{s}", base.override({"seed": s, "l2": 1e-3})) for s in range(3)]
    out, _ = run_all(ex, later)
    ex.close()
    assert len(ex.populations) == 1 and all(o.status is RunStatus.COMPLETED for o in out.values())
    assert {t.key for t in inner.submitted} >= {t.key for t in later}


def test_grouping_tasks_into_populations_does_not_import_torch() -> None:
    """The study driver groups tasks (population_check) without torch, as it does everything else."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from reglab.config import RunConfig\n"
        "from reglab.study.execution.population_executor import PopulationExecutor\n"
        "from reglab.study.execution.executors import Task\n"
        "class Inner:\n"
        "    slots = 2\n"
        "    def submit(self, t): pass\n"
        "    def poll(self, timeout): return [], []\n"
        "    def stop(self, key): pass\n"
        "    def close(self): pass\n"
        "ex = PopulationExecutor(Inner())\n"
        "cfg = RunConfig().override({'population': 'auto', 'dropout': 0.2})\n"
        "for s in range(4): ex.submit(Task(f'a/seed{s}', cfg.override({'seed': s})))\n"
        "ex.poll(0)\n"
        "print(len(ex.populations), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]
