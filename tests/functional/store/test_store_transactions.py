"""save_tick is all-or-nothing, concurrent writers lose nothing, and old epochs are refused."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from petguard.errors import NotFound, Permanent, StaleEpoch, Temporary
from petguard.hosts import HostEvent, HostState
from petguard.journal import BrakeState, MoveStatus, RequestKind, TickRecord, Transition
from petguard.store import migrate
from petguard.store.engine import StoreUnavailable
from petguard.store.sql import SqlStore
from tests.functional.store.store_builders import T0, down_health, plan, record, suspect_tick, tick


def _snapshot(store: SqlStore) -> tuple[object, ...]:
    return (
        store.load_hosts(),
        store.transitions(),
        store.events(),
        store.incidents(),
        store.pending_requests(),
        store.load_brake(),
    )


def _busy_tick(request_id: int) -> TickRecord:
    """A tick that writes to every table a tick touches."""
    return tick(
        [record("cmp1", HostState.SUSPECT, health=down_health()), record("cmp-new")],
        transitions=[Transition("cmp1", HostState.UP, HostState.SUSPECT, HostEvent.SIGNALS_DOWN, "down", T0 + 1)],
        open_incidents=[("cmp1", "heartbeat missing")],
        events=[("cmp1", "suspect", "cmp1 looks down"), (None, "brake_engaged", "too many")],
        finished_requests=[(request_id, "done", "ok")],
        brake=BrakeState(engaged=True, reason="too many", since=T0 + 1),
        at=T0 + 1,
    )


#: Ways to make the busy tick fail, each as late as possible in save_tick.
POISONS: dict[str, tuple[Callable[[TickRecord], TickRecord], type[Exception]]] = {
    "unknown-incident": (lambda t: replace(t, close_incidents=[(987654, "recovered")]), NotFound),
    "unknown-request": (lambda t: replace(t, finished_requests=[*t.finished_requests, (987654, "done", "")]), NotFound),
    "unknown-host": (lambda t: replace(t, open_incidents=[*t.open_incidents, ("no-such-host", "down")]), NotFound),
    # an invalid row: events.message is NOT NULL
    "invalid-row": (lambda t: replace(t, events=[*t.events, ("cmp1", "bad", None)]), Permanent),  # type: ignore[list-item]
}


@pytest.mark.parametrize("poison", sorted(POISONS))
@pytest.mark.fault(
    "PG-07",
    guarantee="2",
    injected="a tick's journal write fails late (an unknown incident, request or host, a row breaking NOT NULL)",
    expected="nothing of the tick is written",
)
def test_save_tick_is_all_or_nothing(store: SqlStore, poison: str) -> None:
    store.save_tick(tick([record("cmp1")]))
    request_id = store.submit_request("cmp1", RequestKind.MAINTENANCE_ON, "swap", "alice", T0)
    before = _snapshot(store)
    spoil, error = POISONS[poison]
    with pytest.raises(error):
        store.save_tick(spoil(_busy_tick(request_id)))
    assert _snapshot(store) == before


def test_the_same_tick_without_poison_writes_everything(store: SqlStore) -> None:
    store.save_tick(tick([record("cmp1")]))
    request_id = store.submit_request("cmp1", RequestKind.MAINTENANCE_ON, "swap", "alice", T0)
    store.save_tick(_busy_tick(request_id))
    assert set(store.load_hosts()) == {"cmp1", "cmp-new"}
    assert len(store.transitions()) == 1 and len(store.events()) == 2 and len(store.incidents()) == 1
    assert store.pending_requests() == [] and store.load_brake().engaged


def test_update_move_counts_every_attempt_under_concurrency(open_store: Callable[[], SqlStore]) -> None:
    """8 action lanes update their own moves while the loop saves ticks and a reader reads."""
    store = open_store()
    hosts = [record(f"cmp{i:04d}") for i in range(200)]
    store.save_tick(tick(hosts))
    store.save_tick(suspect_tick("cmp0000"))
    incident_id = store.incidents()[0].id
    store.record_plan(incident_id, plan("cmp0000", moves=8, skips=0), T0)

    rounds, errors = 40, []
    start = threading.Barrier(10, timeout=30)

    def lane(server_id: str) -> None:
        start.wait()
        for i in range(rounds):
            status = MoveStatus.REQUESTING if i % 2 else MoveStatus.ACCEPTED
            store.update_move(incident_id, server_id, status, T0 + i, request_id=f"req-{i}", count_attempt=True)
            store.record_event("cmp0000", incident_id, "move", f"{server_id} attempt {i}", T0 + i)

    def loop() -> None:
        start.wait()
        for i in range(rounds):
            changed = [record(h.host.name, since=T0 + i, reason=f"tick {i}") for h in hosts[1 + i * 5 : 6 + i * 5]]
            edge = Transition("cmp0000", HostState.SUSPECT, HostState.SUSPECT, HostEvent.SIGNALS_DOWN, f"{i}", T0 + i)
            store.save_tick(tick(changed, transitions=[edge], events=[("cmp0000", "tick", str(i))], at=T0 + i))
            store.load_hosts()

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(functools.partial(lane, m.server_id))) for m in store.moves(incident_id)]
    threads.append(threading.Thread(target=guarded(loop)))

    def reader() -> None:
        start.wait()
        for _ in range(rounds):
            store.moves(incident_id)

    threads.append(threading.Thread(target=guarded(reader)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()

    assert errors == []
    assert [m.attempts for m in store.moves(incident_id)] == [rounds] * 8
    assert len(store.transitions(host="cmp0000", limit=1000)) == rounds + 1
    assert len(store.events(incident_id=incident_id, limit=1000)) == 1 + rounds * 9


@pytest.mark.fault(
    "CTL-07",
    guarantee="5",
    injected="a superseded leader (an older epoch) keeps writing to the journal",
    expected="every write it tries is refused with StaleEpoch; the newer leader's journal is unchanged",
)
def test_a_newer_epoch_refuses_writes_from_an_older_one(migrated_url: URL) -> None:
    old_leader, new_leader = SqlStore(migrated_url, epoch=0), SqlStore(migrated_url)
    try:
        old_leader.save_tick(tick([record("cmp1")]))  # epoch 0 is current
        assert new_leader.claim_epoch(new_leader.current_epoch()) == 1
        assert new_leader.epoch == 1
        with pytest.raises(StaleEpoch):
            old_leader.save_tick(tick([record("cmp2")]))
        with pytest.raises(StaleEpoch):
            old_leader.claim_epoch(0)
        assert set(old_leader.load_hosts()) == {"cmp1"}  # reads still work
        new_leader.save_tick(tick([record("cmp3")]))
        assert set(new_leader.load_hosts()) == {"cmp1", "cmp3"}
    finally:
        old_leader.close()
        new_leader.close()


def _hold_write_lock(path: str, seconds: float, held: threading.Event) -> None:
    """Another process's writer, as sqlite sees it: a connection holding the write lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.mark.fault(
    "PG-08",
    guarantee="-",
    injected="another process holds the sqlite journal's write lock for longer than busy_timeout",
    expected="the write is retried until the lock is released; past the retries a temporary StoreUnavailable, readers "
    "not blocked",
)
def test_sqlite_lock_is_waited_out_and_retried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/petguard.sqlite"
    migrate.upgrade(url)
    store = SqlStore(url, busy_timeout=0.05)  # shorter than the lock: the first attempts fail
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(f"{tmp_path}/petguard.sqlite", 0.2, held))
    holder.start()
    try:
        assert held.wait(5)
        store.save_tick(tick([record("cmp1")]))  # retried until the lock is released
        assert set(store.load_hosts()) == {"cmp1"}
    finally:
        holder.join()
        store.close()


@pytest.mark.fault(
    "PG-08",
    guarantee="-",
    injected="another process holds the sqlite journal's write lock for longer than busy_timeout",
    expected="the write is retried until the lock is released; past the retries a temporary StoreUnavailable, readers "
    "not blocked",
)
def test_sqlite_lock_that_outlasts_the_retries_is_a_temporary_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/petguard.sqlite"
    migrate.upgrade(url)
    store = SqlStore(url, busy_timeout=0.01)
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(f"{tmp_path}/petguard.sqlite", 1.0, held))
    holder.start()
    try:
        assert held.wait(5)
        with pytest.raises(StoreUnavailable, match="database is locked") as caught:
            store.save_tick(tick([record("cmp1")]))
        assert isinstance(caught.value, Temporary)
        assert store.load_hosts() == {}  # readers are not blocked by a writer (WAL)
    finally:
        holder.join()
        store.close()
