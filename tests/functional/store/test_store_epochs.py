"""The leadership epoch on every backend (sqlite, MariaDB, PostgreSQL): concurrent claims have one
winner, an acting store opened with NO_EPOCH writes nothing until it claims, a superseded leader's
journal writes (ticks, plans, moves, events) are all refused while the inputs an operator or an
alert gives a follower (requests, alerts, audit) are still taken."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from petguard.errors import StaleEpoch
from petguard.ha.election import NO_EPOCH
from petguard.hosts import HostState
from petguard.journal import AlertRecord, MoveStatus, RequestKind
from petguard.store import models
from petguard.store.engine import make_engine
from petguard.store.sql import SqlStore
from tests.functional.store.store_builders import plan, record, suspect_tick, tick


def _open(url: URL, epoch: int | None = None) -> SqlStore:
    return SqlStore(url, epoch=epoch)


@pytest.mark.fault(
    "CTL-06",
    guarantee="5",
    injected="four controllers claim the same epoch at the same instant (sqlite, MariaDB, PostgreSQL)",
    expected="exactly one wins; the others get StaleEpoch",
)
def test_concurrent_claims_of_one_epoch_have_exactly_one_winner(migrated_url: URL) -> None:
    stores = [_open(migrated_url, NO_EPOCH) for _ in range(4)]
    seen = stores[0].current_epoch()
    won: list[int] = []
    lost: list[StaleEpoch] = []
    start = threading.Barrier(len(stores))

    def claim(store: SqlStore) -> None:
        start.wait()
        try:
            won.append(store.claim_epoch(seen))
        except StaleEpoch as exc:
            lost.append(exc)

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert won == [seen + 1] and len(lost) == 3
        assert stores[0].current_epoch() == seen + 1
    finally:
        for store in stores:
            store.close()


@pytest.mark.fault(
    "CTL-08",
    guarantee="5",
    injected="a controller that has not claimed an epoch writes a tick",
    expected="StaleEpoch, nothing written until it claims",
)
def test_an_acting_store_writes_nothing_before_it_claims(migrated_url: URL) -> None:
    acting = _open(migrated_url, NO_EPOCH)
    try:
        with pytest.raises(StaleEpoch):
            acting.save_tick(tick([record("cmp1")]))
        assert acting.load_hosts() == {}
        epoch = acting.claim_epoch(acting.current_epoch())
        assert acting.epoch == epoch
        acting.save_tick(tick([record("cmp1")]))
        assert set(acting.load_hosts()) == {"cmp1"}
    finally:
        acting.close()


@pytest.mark.fault(
    "CTL-07",
    guarantee="5",
    injected="a superseded leader (an older epoch) keeps writing to the journal",
    expected="every write it tries is refused with StaleEpoch; the newer leader's journal is unchanged",
)
def test_a_superseded_leader_writes_no_action_and_a_follower_still_takes_inputs(migrated_url: URL) -> None:
    old, new, follower = _open(migrated_url, NO_EPOCH), _open(migrated_url, NO_EPOCH), _open(migrated_url)
    try:
        old.claim_epoch(old.current_epoch())
        old.save_tick(suspect_tick("cmp1"))
        incident_id = old.load_hosts()["cmp1"].host.incident_id
        assert incident_id is not None
        old.record_plan(incident_id, plan("cmp1", 2), 10.0)
        server_id = old.moves(incident_id)[0].server_id

        new.claim_epoch(new.current_epoch())
        refused = [
            lambda: old.save_tick(tick([record("cmp2")])),
            lambda: old.update_move(incident_id, server_id, MoveStatus.REQUESTING, 11.0, count_attempt=True),
            lambda: old.record_plan(incident_id, plan("cmp1", 3), 12.0),
            lambda: old.record_event("cmp1", incident_id, "server_evacuated", "late", 13.0),
        ]
        for write in refused:
            with pytest.raises(StaleEpoch):
                write()
        assert [m.status for m in new.moves(incident_id)] == [MoveStatus.PLANNED] * 2
        assert set(new.load_hosts()) == {"cmp1"} and new.load_hosts()["cmp1"].host.state is HostState.SUSPECT

        request_id = follower.submit_request("cmp1", RequestKind.RESTORE, "back", "ops", 14.0)
        follower.record_alerts([AlertRecord("fp1", "cmp1", "NodeDown", True, "down", 14.0, 99.0, "am")], 14.0)
        follower.record_audit("ops", "restore", "cmp1", "queued", "", 14.0)
        assert [r.id for r in new.pending_requests()] == [request_id]
        new.update_move(incident_id, server_id, MoveStatus.REQUESTING, 15.0, count_attempt=True)
    finally:
        for store in (old, new, follower):
            store.close()


@pytest.mark.fault(
    "CTL-09",
    guarantee="5",
    injected="a leader frozen inside a journal write, holding the epoch row (MariaDB, PostgreSQL)",
    expected="the server ends the stalled transaction: the successor claims within 9 s, the frozen write is rolled "
    "back",
)
def test_a_leader_frozen_inside_a_write_does_not_keep_the_next_from_claiming(backend: str, migrated_url: URL) -> None:
    """A leader stopped (SIGSTOP, a paused VM) between the first statement of a write, which locks the
    epoch row, and its commit: on MariaDB and PostgreSQL the server ends that transaction after the
    stalled-transaction limit (2 s here), so the successor's claim goes through, and the frozen
    leader's write is rolled back. (sqlite has no server to do this: a single controller only.)"""
    if backend == "sqlite":
        pytest.skip("a sqlite journal is for one controller: a frozen writer holds the file lock")
    old = _open(migrated_url, NO_EPOCH)
    seen = old.current_epoch()
    old.claim_epoch(seen)
    frozen_engine = make_engine(migrated_url, stalled_transaction=2.0)
    frozen = frozen_engine.connect()
    frozen.begin()
    frozen.execute(update(models.meta).values(epoch=models.meta.c.epoch))  # as every acting write starts
    # ... and the controller stops here, its transaction open
    new = _open(migrated_url, NO_EPOCH)
    started = time.monotonic()
    try:
        assert new.claim_epoch(seen + 1) == seen + 2
        took = time.monotonic() - started
        assert took < 9.0, f"the claim waited {took:.1f} s"
        with pytest.raises(DBAPIError):  # the frozen controller wakes: its transaction is gone
            frozen.execute(update(models.meta).values(epoch=models.meta.c.epoch))
            frozen.commit()
        assert new.current_epoch() == seen + 2
    finally:
        frozen.close()
        frozen_engine.dispose()
