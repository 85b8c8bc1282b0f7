"""What a worker process does for one run: train, then pack the result for storage.

Datasets are cached per process (keyed by their config), so a worker loads MNIST once.
"""

from __future__ import annotations

import base64
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from reglab.errors import ReglabError

_DATA_CACHE: dict[str, Any] = {}


def pack_array(a: np.ndarray, dtype: str) -> dict[str, Any]:
    b = np.ascontiguousarray(a.astype(dtype))
    return {"dtype": dtype, "shape": list(b.shape), "b64": base64.b64encode(b.tobytes()).decode("ascii")}


def unpack_array(d: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(d["b64"])
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"])


def _data(cfg: Any) -> Any:
    from reglab.data import load_data

    key = cfg.data.model_dump_json()
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) > 4:
            _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_data(cfg.data)
    data = _DATA_CACHE[key]
    data.test = data.test.fresh()  # each run's single test read is counted on its own
    return data


class _Stop(Exception):
    """Raised from the epoch callback when the driver asked this task to stop (pruned)."""


def execute_task(task: Any, report: Callable[[dict[str, float]], bool]) -> dict[str, Any]:
    """Run a task (one run, or K cross-validation folds in sequence). ``report`` gets each epoch's
    record and returns True when the driver wants the task stopped (pruning); with K folds the
    record's ``step`` counts epochs across folds and ``val_acc``/``val_loss`` are the running
    mean over folds so far (comparable between trials at equal steps)."""
    test = getattr(task, "evaluate_test", True)  # tuning trials never read the test split
    if not task.folds:
        return execute_run(task.config, report, evaluate_test=test)
    from reglab.config import RunConfig

    base = RunConfig.model_validate(task.config)
    epochs = base.train.epochs
    finals: list[dict[str, float]] = []
    histories: list[list[dict[str, float]]] = []
    for k in range(task.folds):
        cfg = base.override({"cv_folds": task.folds, "cv_fold": k})
        done_val = [f["val_acc"] for f in finals]
        done_loss = [f["val_loss"] for f in finals]

        def fold_report(
            rec: dict[str, float], k: int = k, dv: list[float] = done_val, dl: list[float] = done_loss
        ) -> bool:
            r = dict(rec, fold=k, step=k * epochs + rec["epoch"])
            r["val_acc"] = (sum(dv) + rec["val_acc"]) / (len(dv) + 1)
            r["val_loss"] = (sum(dl) + rec["val_loss"]) / (len(dl) + 1)
            return report(r)

        payload = execute_run(cfg.model_dump(mode="json"), fold_report, evaluate_test=test)
        if payload["status"] != "completed":
            payload["reason"] = f"fold {k}: {payload.get('reason')}"
            payload["epochs_spent"] = sum(len(h) for h in histories) + int(payload.get("epochs_spent") or 0)
            return payload
        finals.append(payload["final"])
        histories.append(payload["history"])
    mean = {m: float(np.mean([f[m] for f in finals])) for m in finals[0]}
    return {
        "status": "completed",
        "reason": None,
        "final": mean,
        "fold_finals": finals,
        "history": histories[0],
        "info": {"folds": task.folds, "epochs_run": sum(len(h) for h in histories)},
        "epochs_spent": sum(len(h) for h in histories),
    }


def execute_run(
    config: dict[str, Any],
    on_epoch: Callable[[dict[str, float]], bool | None] | None = None,
    evaluate_test: bool = True,
) -> dict[str, Any]:
    """Train one run; always returns a payload (status completed | diverged | failed | error).
    ``evaluate_test=False``: the test split is not read (no test metrics, no test_probs)."""
    from reglab.config import RunConfig
    from reglab.training.engine import fit

    seen: list[dict[str, float]] = []

    def callback(record: dict[str, float]) -> None:
        seen.append(record)
        if on_epoch is not None and on_epoch(record):
            raise _Stop

    try:
        cfg = RunConfig.model_validate(config)
        data = _data(cfg)
        result = fit(cfg, data, callbacks=[callback], evaluate_test=evaluate_test)
    except _Stop:
        return {
            "status": "pruned",
            "reason": f"pruned after epoch {len(seen)}",
            "history": seen,
            "epochs_spent": len(seen),
        }
    except ReglabError as err:  # the user's problem (e.g. missing data files): stop the study
        return {"status": "error", "reason": str(err)}
    except Exception as err:  # a bug or resource problem: this run failed, the study goes on
        tb = traceback.format_exc(limit=3)
        return {"status": "failed", "reason": f"{type(err).__name__}: {err}", "traceback": tb[-2000:]}
    payload: dict[str, Any] = result.to_dict()
    # a diverged epoch has no history record but was trained
    payload["epochs_spent"] = max(len(result.history), result.diverged_epoch or 0)
    if result.test_probs is not None:
        payload["test_probs"] = pack_array(result.test_probs, "float16")
        payload["test_labels"] = pack_array(data.test.labels.cpu().numpy(), "int32")
    return payload
