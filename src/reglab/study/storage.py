"""Run records in an Optuna storage (SQLite by default; any Optuna URL, e.g. PostgreSQL).

Each finished run is one Optuna trial of the study ``<name>/runs``: COMPLETE with value = the
selection metric, or FAIL with ``status`` diverged/failed and its reason. A trial is created and
finished in one go by the driver when the result arrives, so a killed study leaves at most a
stale RUNNING trial, which is marked FAIL ("interrupted") and redone on resume.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reglab.errors import ConfigError

if TYPE_CHECKING:
    import optuna

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]*(?P<at>@)")


def mask_url(url: str) -> str:
    """Hide the password of a storage URL (``postgresql://u:***@host/db``)."""
    return _PASSWORD.sub(r"\g<head>***\g<at>", url)


RUNS_SUFFIX = "/runs"
DONE_STATUSES = ("completed", "diverged")


@dataclass(frozen=True)
class RunRecord:
    arm: str
    seed: int
    status: str  # completed | diverged | failed
    payload: dict[str, Any]
    number: int


def open_storage(url: str) -> optuna.storages.BaseStorage:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 120}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=None)
    except Exception as err:  # bad URL, unreachable server, missing driver
        raise ConfigError(
            f"cannot open storage {mask_url(url)}: {type(err).__name__}: {mask_url(str(err))[:300]}"
        ) from None


class RunStore:
    """The confirmation runs of one study, kept in an Optuna storage."""

    def __init__(self, url: str, name: str, fingerprint: str, new: bool = False) -> None:
        import optuna

        self.url = url
        self.storage = open_storage(url)
        self.study_name = name + RUNS_SUFFIX
        existing = {s.study_name: s for s in self.storage.get_all_studies()}
        if self.study_name in existing:
            old = existing[self.study_name].user_attrs.get("fingerprint")
            if old != fingerprint:
                if not new:
                    raise ConfigError(
                        f"study {name!r} in {mask_url(url)} was run with a different configuration "
                        f"(fingerprint {old} != {fingerprint}); pass --new to discard its results and "
                        f"start again, or give the study a new name"
                    )
                optuna.delete_study(study_name=self.study_name, storage=self.storage)
            elif new:
                optuna.delete_study(study_name=self.study_name, storage=self.storage)
        self.study = optuna.create_study(
            study_name=self.study_name, storage=self.storage, direction="maximize", load_if_exists=True
        )
        self.study.set_user_attr("fingerprint", fingerprint)

    def _trials(self) -> Iterator[optuna.trial.FrozenTrial]:
        yield from self.study.get_trials(deepcopy=False)

    def recover_stale(self) -> int:
        """Mark RUNNING trials left by a killed process as FAIL (interrupted); return how many."""
        import optuna

        n = 0
        for t in self._trials():
            if t.state == optuna.trial.TrialState.RUNNING:
                self.storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
                self.storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
                n += 1
        return n

    def done(self) -> dict[tuple[str, int], RunRecord]:
        """Finished runs (completed or diverged) by (arm, seed); the first record wins."""
        import optuna

        out: dict[tuple[str, int], RunRecord] = {}
        for t in self._trials():
            status = t.user_attrs.get("status")
            finished = t.state == optuna.trial.TrialState.COMPLETE or (
                t.state == optuna.trial.TrialState.FAIL and status == "diverged"
            )
            if not finished or "arm" not in t.user_attrs:
                continue
            key = (str(t.user_attrs["arm"]), int(t.user_attrs["seed"]))
            out.setdefault(key, RunRecord(key[0], key[1], str(status), dict(t.user_attrs), t.number))
        return out

    def record(self, arm: str, seed: int, payload: dict[str, Any], value: float | None) -> None:
        """Store one finished run as a trial (COMPLETE, or FAIL when it diverged)."""
        import optuna

        trial = self.study.ask()
        for k, v in {"arm": arm, "seed": seed, **payload}.items():
            trial.set_user_attr(k, v)
        if payload["status"] == "completed" and value is not None:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
