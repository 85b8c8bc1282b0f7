"""Claims, heartbeats and URL hygiene on a SQLite storage: no server needed, so these always run
(the same code paths run against PostgreSQL in test_postgres.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reglab.errors import ConfigError
from reglab.study.results.outcome import RunOutcome
from reglab.study.results.storage import RunStore, mask_url, open_storage, scrub, storage_lock, with_driver

DONE = RunOutcome(status="completed", final={"val_acc": 0.5})


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def test_claims_follow_the_given_order_and_skip_done_and_running(url: str) -> None:
    store = RunStore(url, "s", "fp")
    keys = [("a", 0), ("b", 0), ("a", 1)]
    store.record("a", 0, DONE, 0.5)  # stored by a driver
    first = store.claim(keys, "w1")
    second = store.claim(keys, "w2")
    assert first is not None and second is not None
    assert (first.arm, first.seed, second.arm, second.seed) == ("b", 0, "a", 1)
    assert first.key == "b/seed0"
    assert store.claim(keys, "w3") is None
    state = store.claim_state(keys)
    assert (state.done, state.running, state.open, state.settled) == (1, 2, 0, False)
    assert store.finish(first, DONE, 0.6) and store.finish(second, DONE, 0.7)
    assert store.claim_state(keys).settled
    assert set(store.done()) == set(keys)


def test_a_stale_claim_is_taken_over_and_its_late_result_dropped(url: str) -> None:
    store = RunStore(url, "s", "fp")
    keys = [("a", 0)]
    old = store.claim(keys, "w1")
    assert old is not None and store.claim(keys, "w2", stale_after=60) is None
    time.sleep(0.3)
    new = store.claim(keys, "w2", stale_after=0.2)
    assert new is not None and new.trial_id != old.trial_id
    assert not store.heartbeat(old) and not store.finish(old, DONE, 0.9)
    assert store.heartbeat(new) and store.finish(new, DONE, 0.8)
    [record] = store.done().values()
    assert record.worker == "w2" and record.status == "completed"


def test_failed_runs_are_retried_once_per_session(url: str) -> None:
    store = RunStore(url, "s", "fp")
    keys = [("a", 0)]
    since = time.time() - 1
    c = store.claim(keys, "w", since=since)
    assert c is not None
    assert store.finish(c, RunOutcome.failed("boom"), None)
    assert store.claim(keys, "w", since=since) is None  # failed in this session: settled
    assert store.claim_state(keys, since=since).failed == 1
    assert store.claim(keys, "w", since=time.time() + 1) is not None  # a later session retries it


def test_release_gives_a_run_back_at_once(url: str) -> None:
    store = RunStore(url, "s", "fp")
    c = store.claim([("a", 0)], "w1")
    assert c is not None
    store.release(c)
    again = store.claim([("a", 0)], "w2")
    assert again is not None and again.trial_id != c.trial_id


def test_recover_stale_spares_live_claims_but_not_a_killed_driver(url: str) -> None:
    store = RunStore(url, "s", "fp")
    live = store.claim([("a", 0)], "w1")
    store.study.ask()  # what a driver killed between ask and tell leaves behind
    assert store.recover_stale() == 1
    assert live is not None and store.heartbeat(live)
    time.sleep(0.3)
    assert store.recover_stale(stale_after=0.2) == 1
    assert not store.heartbeat(live)


def test_record_stores_a_run_once_per_store(url: str) -> None:
    store = RunStore(url, "s", "fp")
    store.record("a", 0, DONE, 0.5)
    store.record("a", 0, DONE, 0.5)  # an executor reporting the same result twice
    assert len(store.study.get_trials()) == 1


def test_urls_and_errors_never_show_the_password() -> None:
    url = "postgresql://user:s3cr%40t@db.example:5432/reglab"
    assert mask_url(url) == "postgresql://user:***@db.example:5432/reglab"
    text = f"could not connect with {url} (password s3cr@t, raw s3cr%40t)"
    assert "s3cr" not in scrub(text, url)
    assert scrub("no secrets here", "sqlite:///x.db") == "no secrets here"


def test_plain_postgresql_urls_get_an_installed_driver() -> None:
    got = with_driver("postgresql://u:p@h/db")
    assert got.startswith("postgresql") and got.endswith("://u:p@h/db")
    assert with_driver("postgresql+psycopg2://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"


def test_the_sqlite_lock_is_exclusive(url: str) -> None:
    import threading

    storage = open_storage(url)
    inside, overlaps = [0], [0]

    def hold() -> None:
        for _ in range(5):
            with storage_lock(storage, "x"):
                inside[0] += 1
                overlaps[0] = max(overlaps[0], inside[0])
                time.sleep(0.01)
                inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 1


def test_storage_lock_refuses_storages_without_one() -> None:
    import optuna

    with pytest.raises(ConfigError, match="PostgreSQL"), storage_lock(optuna.storages.InMemoryStorage(), "x"):
        pass
