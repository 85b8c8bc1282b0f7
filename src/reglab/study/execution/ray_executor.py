"""Runs on a Ray cluster behind the same four methods as ``LocalExecutor`` (``submit``, ``poll``,
``stop``, ``close``), so the rest of reglab does not know it is Ray.

- every run is one Ray task (``num_cpus=cpus_per_run``, ``num_gpus=gpus_per_run``) with one torch
  thread per reserved CPU; ``slots`` = cluster CPUs // ``cpus_per_run`` (and GPUs // ``gpus_per_run``);
- per-epoch events and stop flags go through a small actor (the *channel*, placed on the driver's
  node): the task's epoch callback calls ``channel.report(key, record)``, which stores the event
  and answers whether the driver asked that key to stop (pruning); ``poll`` drains the events;
- a task whose worker or node dies is retried by Ray (``max_retries``, system failures) and, if
  Ray gives up, resubmitted by the executor (``resubmits`` times). Each submitted task yields
  exactly one finished item, and events a lost attempt already sent are not repeated (a retry's
  epochs are forwarded only past the last step already seen), so the driver stores every run once.

Ray is an optional dependency (``pip install 'reglab[cluster]'``); it is imported when the
executor is created.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError
from reglab.study.execution.task import Events, Finished, Task
from reglab.study.results.outcome import RunOutcome

if TYPE_CHECKING:
    from reglab.study.execution.worker import DataCache

NAMESPACE = "reglab"
DRAIN_EVERY = 0.25  # seconds between reads of the event channel while no task finishes


class _Channel:
    """The actor between the driver and its tasks: epoch events one way, stop flags the other."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, float]]] = []
        self.stops: set[str] = set()

    def report(self, key: str, record: dict[str, float]) -> bool:
        self.events.append((key, record))
        return key in self.stops

    def drain(self) -> list[tuple[str, dict[str, float]]]:
        events, self.events = self.events, []
        return events

    def stop(self, key: str) -> None:
        self.stops.add(key)

    def forget(self, key: str) -> None:
        self.stops.discard(key)


class _RayWorker:
    """What a Ray worker process keeps between the tasks it runs: its datasets."""

    cache: DataCache | None = None


def _run_on_ray(task: Task, channel: Any, threads: int) -> RunOutcome:
    """The body of every Ray task: one torch thread per reserved CPU, events through the channel."""
    import ray
    import torch

    from reglab.study.execution.executors import execute_task
    from reglab.study.execution.worker import DataCache

    torch.set_num_threads(threads)
    if _RayWorker.cache is None:
        _RayWorker.cache = DataCache()

    def report(record: dict[str, float], key: str | None = None) -> bool:
        try:
            return bool(ray.get(channel.report.remote(key or task.key, record), timeout=60))
        except Exception:  # the channel is gone (driver leaving): keep training, nobody to stop us
            return False

    return execute_task(task, report, _RayWorker.cache)


def _lost_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors for a task lost with its worker or node (as opposed to an error in the task)."""
    import ray.exceptions as rx

    names = (
        "WorkerCrashedError",
        "NodeDiedError",
        "ObjectLostError",
        "LocalRayletDiedError",
        "OutOfMemoryError",
        "RaySystemError",
        "TaskUnschedulableError",
    )
    return tuple(getattr(rx, n) for n in names if hasattr(rx, n))


def _step(record: dict[str, float]) -> float:
    return float(record.get("step", record.get("epoch", 0)))


class RayExecutor:
    """Runs tasks on a Ray cluster.

    ``address``: ``"auto"`` (a cluster started on this machine with ``ray start``), ``HOST:PORT``
    of the head node, ``ray://HOST:10001`` (Ray Client), or None for ``$RAY_ADDRESS`` - and
    without that a new local Ray instance with ``num_cpus`` CPUs (all cores by default).
    """

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: float = 1,
        gpus_per_run: float = 0,
        *,
        num_cpus: int | None = None,
        max_retries: int = 3,
        resubmits: int = 2,
    ) -> None:
        if cpus_per_run <= 0:
            raise ConfigError("--cpus-per-run: must be > 0")
        if gpus_per_run < 0:
            raise ConfigError("--gpus-per-run: must be >= 0")
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the ray executor needs Ray: pip install 'reglab[cluster]' (or pip install 'ray[default]')"
            ) from None
        self._ray = ray
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.threads = max(1, int(cpus_per_run))
        self.resubmits = resubmits
        self._pending: dict[Any, Task] = {}  # ObjectRef -> task
        self._attempts: dict[str, int] = {}  # key -> executor-level submissions
        self._seen_step: dict[str, float] = {}  # key -> last step forwarded (dedupes retried epochs)
        self._last_drain = 0.0
        self._lost = _lost_errors()
        self.address = address or os.environ.get("RAY_ADDRESS") or "local"
        self._own_ray = not ray.is_initialized()
        if self._own_ray:
            kwargs: dict[str, Any] = {
                "address": self.address,
                "namespace": NAMESPACE,
                "log_to_driver": False,
                "logging_level": "WARNING",
                "configure_logging": True,
            }
            if self.address == "local":
                kwargs.update(num_cpus=num_cpus, include_dashboard=False)
            try:
                ray.init(**kwargs)
            except Exception as err:  # unreachable head, version mismatch, ...
                raise ConfigError(
                    f"cannot connect to the Ray cluster at {self.address}: {type(err).__name__}: "
                    f"{str(err).splitlines()[0][:300] if str(err) else ''}"
                ) from None
        self.slots = self._slots()
        self._remote = ray.remote(
            num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries, retry_exceptions=False
        )(_run_on_ray)
        self._channel = self._make_channel()

    def _slots(self) -> int:
        res = self._ray.cluster_resources()
        n = int(float(res.get("CPU", 1)) // self.cpus_per_run)
        if self.gpus_per_run > 0:
            gpus = float(res.get("GPU", 0))
            if gpus < self.gpus_per_run:
                raise ConfigError(f"--gpus-per-run {self.gpus_per_run}: the Ray cluster has {gpus:g} GPUs")
            n = min(n, int(gpus // self.gpus_per_run))
        return max(1, n)

    def _make_channel(self) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = self._ray.get_runtime_context().get_node_id()
        actor = self._ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(_Channel)
        return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()

    # -- the executor protocol -------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        self._attempts[task.key] = self._attempts.get(task.key, 0) + 1
        self._pending[self._remote.remote(task, self._channel, self.threads)] = task

    def stop(self, key: str) -> None:
        self._channel.stop.remote(key)

    def poll(self, timeout: float) -> tuple[Events, Finished]:
        ray = self._ray
        ready: list[Any] = []
        if self._pending:
            refs = list(self._pending)
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            if ready:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        elif timeout > 0:
            time.sleep(timeout)
        now = time.monotonic()
        events: list[tuple[str, dict[str, float]]] = []
        if ready or now - self._last_drain >= DRAIN_EVERY:
            self._last_drain = now
            events = self._events()  # after the wait: a finished task's events are all in the channel
        finished = []
        for ref in ready:
            task = self._pending.pop(ref)
            outcome = self._result(ref, task)
            if outcome is None:  # lost with its node and resubmitted
                continue
            self._attempts.pop(task.key, None)
            self._seen_step.pop(task.key, None)
            self._channel.forget.remote(task.key)
            finished.append((task, outcome))
        return events, finished

    def _events(self) -> list[tuple[str, dict[str, float]]]:
        try:
            raw = self._ray.get(self._channel.drain.remote(), timeout=30)
        except Exception:  # the channel restarted (its node died): events of this moment are lost
            return []
        events = []
        for key, record in raw:
            step = _step(record)
            if step <= self._seen_step.get(key, float("-inf")):
                continue  # a retried task repeating epochs its lost attempt already reported
            self._seen_step[key] = step
            events.append((key, record))
        return events

    def _result(self, ref: Any, task: Task) -> RunOutcome | None:
        try:
            return RunOutcome.model_validate(self._ray.get(ref))
        except self._lost as err:
            if self._attempts.get(task.key, 0) <= self.resubmits:
                self.submit(task)
                return None
            return RunOutcome.failed(f"lost on the Ray cluster: {type(err).__name__}: {_first_line(err)}")
        except Exception as err:  # an error outside execute_task's own handling (e.g. import error)
            return RunOutcome.failed(f"Ray task failed: {type(err).__name__}: {_first_line(err)}")

    def close(self) -> None:
        ray = self._ray
        for ref in list(self._pending):
            with contextlib.suppress(Exception):  # already finished, or its node is gone
                ray.cancel(ref, force=True)
        self._pending.clear()
        with contextlib.suppress(Exception):
            ray.kill(self._channel)
        if self._own_ray and ray.is_initialized():
            ray.shutdown()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""
