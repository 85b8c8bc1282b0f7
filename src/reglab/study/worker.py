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
    # a fresh guard per run, so each run's single test read is counted on its own
    from reglab.data.base import TestSplit

    x, y = data.test._x, data.test._y
    data.test = TestSplit(x, y)
    return data


def execute_run(config: dict[str, Any], on_epoch: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train one run; always returns a payload (status completed | diverged | failed | error)."""
    from reglab.config import RunConfig
    from reglab.training.engine import fit

    try:
        cfg = RunConfig.model_validate(config)
        data = _data(cfg)
        result = fit(cfg, data, callbacks=[on_epoch] if on_epoch else [])
    except ReglabError as err:  # the user's problem (e.g. missing data files): stop the study
        return {"status": "error", "reason": str(err)}
    except Exception as err:  # a bug or resource problem: this run failed, the study goes on
        tb = traceback.format_exc(limit=3)
        return {"status": "failed", "reason": f"{type(err).__name__}: {err}", "traceback": tb[-2000:]}
    payload: dict[str, Any] = result.to_dict()
    if result.test_probs is not None:
        payload["test_probs"] = pack_array(result.test_probs, "float16")
        payload["test_labels"] = pack_array(data.test._y.cpu().numpy(), "int32")
    return payload
