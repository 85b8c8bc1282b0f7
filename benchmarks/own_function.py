"""Benchmark: the user's own training function driven by reglab vs by a plain Optuna script (issue 22).

The workload is the 20-trial digits random search of ``benchmarks/peers.py`` (reglab's default digits
split, the default MLP 64-256-128-10 with dropout, plain SGD, 20 epochs at batch 32, tuning ``lr``
log 1e-4..1, ``l2`` log 1e-6..1e-1 and ``dropout`` 0..0.7, then one confirmation run evaluated once
on the test split), written once as a user function (``benchmarks/own_function_mlp.py``) and run
three ways, each a fresh child process with one torch thread (interpreter start, imports and data
loading count):

* ``reglab + function``  -- ``reglab run study.yaml -j 1 --no-progress`` on a study whose
  ``objective.function`` is that function (search, 1-seed confirmation, statistics, report);
* ``optuna + function``  -- a plain Optuna script (in-memory study, ``RandomSampler(seed=0)``) calling
  the same function with a minimal context (reglab's split of seed 1000 for the trials and of seed 0
  for the confirmation, as reglab's tuning and confirmation runs use; no-op ``report``);
* ``reglab engine``      -- ``reglab run`` of the same study with reglab's own engine and MLP;
* ``optuna + function + importance`` -- the Optuna script that also computes the parameter importance
  reglab's report shows (fANOVA and PED-ANOVA: scikit-learn's import alone is about 1 s of CPU), for
  the ratio at equal work (printed, not judged).

Timing: the contenders run in rotating order for ``--rounds`` rounds (default 3); CPU time is user +
system of the child and every process it reaped (reglab's worker process), from ``getrusage``. Medians
are compared. Target: reglab + function CPU / optuna + function CPU <= 1.3.

Run: ``nice -n 10 .venv/bin/python benchmarks/own_function.py`` (a few minutes on 2 cores);
``--quick`` for a smoke run (4 trials x 3 epochs, 1 round, target not judged).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO_ROOT, env_line, load_line, median, table, verdict

HERE = Path(__file__).resolve().parent
SPACE = {
    "lr": {"low": 1e-4, "high": 1.0, "log": True},
    "l2": {"low": 1e-6, "high": 1e-1, "log": True},
    "dropout": {"low": 0.0, "high": 0.7},
}
TARGET = 1.3

OPTUNA_SCRIPT = """
import sys, torch, optuna
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
from reglab.config import DataConfig
from reglab.data import load_data
from own_function_mlp import run

trials, epochs = int(sys.argv[1]), int(sys.argv[2])

class Ctx:
    def __init__(self, seed, data, may_use_test):
        self.seed, self._data, self.may_use_test = seed, data, may_use_test
        self.phase = "confirm" if may_use_test else "tune"
        torch.manual_seed(seed)
    def data(self):
        return self._data
    def report(self, epoch, **metrics):
        pass

class Arrays:  # reglab's split as arrays, as ctx.data() hands it
    def __init__(self, s):
        self.x_train, self.y_train = s.x_train.numpy(), s.y_train.numpy()
        self.x_val, self.y_val = s.x_val.numpy(), s.y_val.numpy()
        x, y = s.test.read()
        self.x_test, self.y_test, self.n_classes = x.numpy(), y.numpy(), s.n_classes

tune = Arrays(load_data(DataConfig(name="digits", split_seed=1000)))
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
base = {"epochs": epochs, "batch_size": 32}
for _ in range(trials):
    t = study.ask()
    p = {"lr": t.suggest_float("lr", 1e-4, 1.0, log=True), "l2": t.suggest_float("l2", 1e-6, 1e-1, log=True),
         "dropout": t.suggest_float("dropout", 0.0, 0.7)}
    study.tell(t, run({**base, **p}, Ctx(1000, tune, False))["val_acc"])
final = run({**base, **study.best_params}, Ctx(0, Arrays(load_data(DataConfig(name="digits", split_seed=0))), True))
print("test_acc", final["test_acc"])
if len(sys.argv) > 3:  # the same parameter importance as reglab's report (fANOVA and PED-ANOVA)
    for ev in (optuna.importance.FanovaImportanceEvaluator(seed=0), optuna.importance.PedAnovaImportanceEvaluator()):
        print(optuna.importance.get_param_importances(study, evaluator=ev))
"""


def _study(kind: str, trials: int, epochs: int, out: Path) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": f"bench-{kind}",
        "data": {"name": "digits"},
        "search": {"sampler": "random", "trials": trials, "pruner": "none", "seed": 0},
        "seeds": 1,
        "output": str(out),
    }
    if kind == "function":
        doc["objective"] = {"function": "own_function_mlp:run"}
        doc["settings"] = {"epochs": epochs, "batch_size": 32}
        doc["arms"] = {"tuned": dict(SPACE)}
    else:
        doc["model"] = {"hidden": [256, 128]}
        doc["train"] = {"optimizer": "sgd", "epochs": epochs, "batch_size": 32, "device": "cpu"}
        doc["arms"] = {"tuned": dict(SPACE)}
    return doc


def _child(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child and everything it reaped)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(HERE)]), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="4 trials x 3 epochs, 1 round; the target is not judged")
    args = ap.parse_args()
    trials, epochs, rounds = (4, 3, 1) if args.quick else (20, 20, args.rounds)
    with tempfile.TemporaryDirectory(
        prefix="reglab-own-fn-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
    ) as w:
        work = Path(w)
        studies = {}
        for kind in ("function", "engine"):
            p = work / f"{kind}.yaml"
            p.write_text(yaml.safe_dump(_study(kind, trials, epochs, work / kind)))
            studies[kind] = p
        reglab = [sys.executable, "-m", "reglab.cli", "run"]
        contenders = {
            "reglab + function": lambda: [*reglab, str(studies["function"]), "-j", "1", "--no-progress", "--new"],
            "optuna + function": lambda: [sys.executable, "-c", OPTUNA_SCRIPT, str(trials), str(epochs)],
            "optuna + function + importance": lambda: [
                *[sys.executable, "-c", OPTUNA_SCRIPT, str(trials), str(epochs)],
                "importance",
            ],
            "reglab engine": lambda: [*reglab, str(studies["engine"]), "-j", "1", "--no-progress", "--new"],
        }
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
        names = list(contenders)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(_child(contenders[name](), work))
    print(f"own function benchmark: {trials} trials x {epochs} epochs + 1 confirmation run, {rounds} round(s)")
    print(env_line())
    print(load_line())
    rows = []
    med = {k: (median([w for w, _ in v]), median([c for _, c in v])) for k, v in times.items()}
    for name, (wall, cpu) in med.items():
        rows.append([name, f"{wall:.2f}", f"{cpu:.2f}"])
    print(table(["contender", "wall s", "cpu s"], rows))
    ratio = med["reglab + function"][1] / med["optuna + function"][1]
    judged = "" if not args.quick else " (quick: not judged)"
    ok = verdict(ratio <= TARGET)
    print(f"reglab + function / optuna + function CPU: {ratio:.2f} (target <= {TARGET}) {ok}{judged}")
    imp = med["reglab + function"][1] / med["optuna + function + importance"][1]
    print(f"reglab + function / optuna + function + importance CPU: {imp:.2f} (equal work, not judged)")
    print(f"reglab engine / reglab + function CPU: {med['reglab engine'][1] / med['reglab + function'][1]:.2f}")


if __name__ == "__main__":
    main()
