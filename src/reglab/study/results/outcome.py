"""The typed result of one run or tuning trial, as executors hand it to the driver and as the
storage keeps it (JSON only at that boundary)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reglab.status import RunStatus

__all__ = ["PackedArray", "RunOutcome", "RunStatus"]


class PackedArray(BaseModel):
    """A numpy array as base64 bytes, so that test-set probabilities fit in a JSON attribute."""

    model_config = ConfigDict(frozen=True)
    dtype: str
    shape: list[int]
    b64: str

    @classmethod
    def pack(cls, a: np.ndarray, dtype: str) -> PackedArray:
        b = np.ascontiguousarray(a.astype(dtype))
        return cls(dtype=dtype, shape=list(b.shape), b64=base64.b64encode(b.tobytes()).decode("ascii"))

    def unpack(self) -> np.ndarray:
        return np.frombuffer(base64.b64decode(self.b64), dtype=np.dtype(self.dtype)).reshape(self.shape)


class RunOutcome(BaseModel):
    """What one run produced. ``final`` holds the end-of-run metrics (train/val/test loss and
    accuracy, best epoch, weight statistics), ``history`` one record per epoch."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    status: RunStatus
    reason: str | None = None
    history: list[dict[str, int | float]] = Field(default_factory=list)  # epochs stay integers
    final: dict[str, float] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)
    diverged_epoch: int | None = None
    epochs_spent: int = 0
    fold_finals: list[dict[str, float]] | None = None
    test_probs: PackedArray | None = None
    test_labels: PackedArray | None = None
    traceback: str | None = None
    # reads of the test split by this run, counted where it trained (a worker process, a Ray node):
    # a tuning trial's must be 0, a confirmation run's 1; None where it was not counted
    test_reads: int | None = None
    # times the run was started, when more than once (an executor retried it after its process died);
    # stored in ``info`` as before, so stored studies read the same
    attempts: int | None = None
    # a population job's outcome (reglab.study.execution.population_executor): each member's, by task key
    members: dict[str, RunOutcome] | None = None
    note: str | None = None  # why a population job trained its members one at a time

    @model_validator(mode="before")
    @classmethod
    def _stored_attempts(cls, data: Any) -> Any:
        """Stored outcomes keep ``attempts`` in ``info``."""
        if isinstance(data, dict) and isinstance(data.get("info"), dict) and "attempts" in data["info"]:
            info = dict(data["info"])
            data = {**data, "info": info, "attempts": data.get("attempts") or info.pop("attempts")}
        return data

    def value(self, metric: str) -> float | None:
        """``final[metric]`` when the run completed, else None."""
        if self.status is not RunStatus.COMPLETED:
            return None
        v = self.final.get(metric)
        return None if v is None else float(v)

    def to_attrs(self) -> dict[str, Any]:
        """JSON-able attributes for the storage (None fields left out; ``attempts`` in ``info``)."""
        attrs = self.model_dump(mode="json", exclude_none=True)
        if "attempts" in attrs:
            attrs["info"] = {**attrs["info"], "attempts": attrs.pop("attempts")}
        return attrs

    @classmethod
    def failed(cls, reason: str, **kw: Any) -> RunOutcome:
        return cls(status=RunStatus.FAILED, reason=reason, **kw)
