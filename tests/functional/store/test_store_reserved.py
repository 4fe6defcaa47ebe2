"""Reserved failover hosts in the journal, on every backend: a loan is a chain of compare-and-sets, so
two borrowers of one host have exactly one winner, and a deposed leader borrows nothing."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.engine import URL

from petguard.errors import StaleEpoch
from petguard.ha.election import NO_EPOCH
from petguard.journal import ReservedHost, ReservedState
from petguard.store.sql import SqlStore
from tests.functional.store.store_builders import suspect_tick

IDLE, BORROWING, BORROWED, RETURNING = (
    ReservedState.IDLE,
    ReservedState.BORROWING,
    ReservedState.BORROWED,
    ReservedState.RETURNING,
)


def _incidents(store: SqlStore, *hosts: str) -> list[int]:
    ids = []
    for host in hosts:
        store.save_tick(suspect_tick(host))
        incident_id = store.load_hosts()[host].host.incident_id
        assert incident_id is not None
        ids.append(incident_id)
    return ids


def test_reserved_hosts_are_added_once_and_idle(store: SqlStore) -> None:
    store.add_reserved_hosts(["spare1", "spare2", "spare1"], 1.0)
    store.add_reserved_hosts(["spare2", "spare3"], 2.0)
    assert store.reserved_hosts() == [
        ReservedHost("spare1", IDLE, None, 1.0),
        ReservedHost("spare2", IDLE, None, 1.0),
        ReservedHost("spare3", IDLE, None, 2.0),
    ]


def test_a_loan_walks_its_states_by_compare_and_set(store: SqlStore) -> None:
    [one, two] = _incidents(store, "cmp1", "cmp2")
    store.add_reserved_hosts(["spare1"], 1.0)
    assert store.borrow_reserved_host("spare1", one, 2.0)
    assert not store.borrow_reserved_host("spare1", two, 2.0)  # never borrowed twice
    assert not store.set_reserved_state("spare1", two, BORROWING, BORROWED, 3.0)  # not the holder
    assert not store.set_reserved_state("spare1", one, BORROWED, RETURNING, 3.0)  # not in that state
    assert store.set_reserved_state("spare1", one, BORROWING, BORROWED, 3.0)
    assert store.reserved_hosts() == [ReservedHost("spare1", BORROWED, one, 3.0)]
    assert store.set_reserved_state("spare1", one, BORROWED, RETURNING, 4.0)
    assert store.set_reserved_state("spare1", one, RETURNING, IDLE, 5.0)
    assert store.reserved_hosts() == [ReservedHost("spare1", IDLE, None, 5.0)]
    assert store.borrow_reserved_host("spare1", two, 6.0)  # free again
    assert not store.borrow_reserved_host("unknown", two, 6.0)


@pytest.mark.fault(
    "GRP-15",
    guarantee="5",
    injected="four incidents borrow the same reserved host at the same instant",
    expected="exactly one wins",
)
def test_two_concurrent_borrowers_of_one_host_have_exactly_one_winner(store: SqlStore, migrated_url: URL) -> None:
    incidents = _incidents(store, "cmp1", "cmp2", "cmp3", "cmp4")
    store.add_reserved_hosts(["spare1"], 1.0)
    stores = [SqlStore(migrated_url) for _ in incidents]
    start = threading.Barrier(len(stores))
    won: list[int] = []

    def borrow(borrower: SqlStore, incident_id: int) -> None:
        start.wait()
        if borrower.borrow_reserved_host("spare1", incident_id, 2.0):
            won.append(incident_id)

    threads = [threading.Thread(target=borrow, args=pair) for pair in zip(stores, incidents, strict=True)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(won) == 1
        assert store.reserved_hosts() == [ReservedHost("spare1", BORROWING, won[0], 2.0)]
    finally:
        for borrower in stores:
            borrower.close()


@pytest.mark.fault(
    "CTL-07",
    guarantee="5",
    injected="a superseded leader (an older epoch) keeps writing to the journal",
    expected="every write it tries is refused with StaleEpoch; the newer leader's journal is unchanged",
)
def test_a_deposed_leader_borrows_and_returns_nothing(migrated_url: URL) -> None:
    old, new = SqlStore(migrated_url, epoch=NO_EPOCH), SqlStore(migrated_url, epoch=NO_EPOCH)
    try:
        old.claim_epoch(old.current_epoch())
        [incident_id] = _incidents(old, "cmp1")
        old.add_reserved_hosts(["spare1", "spare2"], 1.0)
        assert old.borrow_reserved_host("spare2", incident_id, 2.0)
        new.claim_epoch(new.current_epoch())
        for write in (
            lambda: old.borrow_reserved_host("spare1", incident_id, 3.0),
            lambda: old.set_reserved_state("spare2", incident_id, BORROWING, BORROWED, 3.0),
            lambda: old.add_reserved_hosts(["spare3"], 3.0),
        ):
            with pytest.raises(StaleEpoch):
                write()
        assert [(r.host, r.state) for r in new.reserved_hosts()] == [("spare1", IDLE), ("spare2", BORROWING)]
    finally:
        old.close()
        new.close()
