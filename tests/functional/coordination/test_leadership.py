"""Leader election in-process against a real etcd and a real Redis, with a real sqlite journal: one
leader among three, epochs that only grow, failover after a leader leaves or dies, a lost backend
stops the leader within leader_timeout, and a newer epoch in the journal makes a leader step down."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petguard.ha.election import NO_EPOCH, Leadership, NotLeading, Settings, connect
from petguard.ha.guards import guard_compute
from petguard.store.sql import SqlStore
from tests.fakes import FakeCompute
from tests.functional.coordination.conftest import journal
from tests.functional.coordination.peers import Server

TIMEOUT = 2.0  # leader_timeout: the lock expires after 4 s


def _wait(what: str, predicate: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Peers:
    """Several controllers of one group, each with its acting store and an event journal."""

    def __init__(self, url: str, backend_url: str, group: str) -> None:
        self.url, self.backend_url, self.group = url, backend_url, group
        self.members: dict[str, Leadership] = {}
        self.stores: list[SqlStore] = []
        self.losses: dict[str, list[str]] = {}

    def add(self, name: str) -> Leadership:
        acting, events = SqlStore(self.url, epoch=NO_EPOCH), SqlStore(self.url)
        self.stores += [acting, events]
        self.losses[name] = []
        settings = Settings(self.backend_url, name, self.group, heartbeat_interval=0.2, leader_timeout=TIMEOUT)
        member = Leadership(settings, acting, events, on_loss=self.losses[name].append)
        self.members[name] = member
        member.start()
        return member

    def leaders(self) -> list[str]:
        return [name for name, member in self.members.items() if member.leading()]

    def close(self) -> None:
        for member in self.members.values():
            member.stop(timeout=1)
        for store in self.stores:
            store.close()


@pytest.fixture
def peers(tmp_path: Path, server: Server, request: pytest.FixtureRequest) -> Iterator[Peers]:
    group = f"petguard-{request.node.name[:20]}-{time.monotonic_ns() % 10**6}"
    made = Peers(journal(tmp_path), server.url, group)
    yield made
    made.close()


def test_exactly_one_of_three_leads_and_holds_the_newest_epoch(peers: Peers) -> None:
    for name in ("ctl1", "ctl2", "ctl3"):
        peers.add(name)
    _wait("a leader", lambda: len(peers.leaders()) == 1, 10)
    for _ in range(10):  # and it stays one, over several heartbeats
        assert len(peers.leaders()) == 1
        time.sleep(0.1)
    leader = peers.members[peers.leaders()[0]]
    journal_store = peers.stores[1]
    assert leader.epoch == journal_store.current_epoch() == 1
    assert not leader.halt.is_set()
    assert all(m.halt.is_set() for n, m in peers.members.items() if m is not leader)
    kinds = [e.kind for e in journal_store.events()]
    assert kinds == ["leader_elected"]


@pytest.mark.fault(
    "CTL-03",
    guarantee="5",
    injected="the leader leaves (stops) while another controller runs",
    expected="the other leads with a newer epoch",
)
def test_a_leader_that_leaves_is_replaced_with_a_newer_epoch(peers: Peers) -> None:
    for name in ("ctl1", "ctl2"):
        peers.add(name)
    _wait("a leader", lambda: len(peers.leaders()) == 1, 10)
    first = peers.leaders()[0]
    peers.members[first].stop(timeout=1)
    took = _wait("another leader", lambda: peers.leaders() not in ([], [first]), 10)
    (second,) = peers.leaders()
    assert second != first and peers.members[second].epoch == 2
    assert peers.losses[first] == ["the daemon is stopping"]
    print(f"orderly handover: {took:.2f} s")


@pytest.mark.fault(
    "CTL-04",
    guarantee="5",
    injected="the coordination backend (etcd, Redis) stops answering the leader",
    expected="it stops acting within leader_timeout (Nova calls refused with NotLeading) and leads again with a newer "
    "epoch when it is back",
)
def test_a_lost_backend_stops_the_leader_within_leader_timeout(peers: Peers, server: Server) -> None:
    member = peers.add("ctl1")
    _wait("ctl1 to lead", member.leading, 10)
    compute = guard_compute(FakeCompute(["cmp1"]), member)
    server.pause()
    try:
        took = _wait("ctl1 to step down", lambda: not member.leading(), TIMEOUT + 3)
        assert member.halt.is_set()
        with pytest.raises(NotLeading):
            compute.evacuate("web-1-id")
        assert peers.losses["ctl1"] and "heartbeat" in peers.losses["ctl1"][0]
    finally:
        server.resume()
    print(f"stopped acting {took:.2f} s after the backend was lost")
    _wait("ctl1 to lead again", member.leading, 4 * TIMEOUT + 10)
    assert member.epoch == 2


@pytest.mark.fault(
    "CTL-05",
    guarantee="5",
    injected="another controller claims a newer epoch in the journal while this one leads",
    expected="it steps down, saying its epoch is no longer current",
)
def test_a_newer_epoch_in_the_journal_makes_the_leader_step_down(peers: Peers) -> None:
    member = peers.add("ctl1")
    _wait("ctl1 to lead", member.leading, 10)
    usurper = SqlStore(peers.url)
    peers.stores.append(usurper)
    usurper.claim_epoch(usurper.current_epoch())  # a controller that believes it leads
    _wait("ctl1 to step down", lambda: bool(peers.losses["ctl1"]), 3)
    assert "epoch" in peers.losses["ctl1"][0]


@pytest.mark.fault(
    "START-12",
    guarantee="5",
    injected="a controller with a sqlite journal joins petguard's group on a shared etcd/Redis where another "
    "controller (ctl2) is already a member",
    expected="one WARNING naming ctl2, the sqlite journal and config check; the election goes on (it leads alone); "
    "a shared journal (journal_one_machine false) gives no such warning",
)
@pytest.mark.parametrize("one_machine", [True, False])
def test_a_sqlite_journal_among_other_members_is_warned_about(
    one_machine: bool, tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    group = f"petguard-members-{time.monotonic_ns() % 10**6}"
    other = connect(Settings(server.url, "ctl2", group))
    other.join_group_create(group.encode())
    acting, events = SqlStore(journal(tmp_path), epoch=NO_EPOCH), SqlStore(journal(tmp_path))
    settings = Settings(server.url, "ctl1", group, heartbeat_interval=0.2, leader_timeout=TIMEOUT)
    member = Leadership(settings, acting, events, journal_one_machine=one_machine)
    try:
        with caplog.at_level(logging.WARNING, logger="petguard.ha.election"):
            member.start()
            _wait("ctl1 leads", member.leading, 10)
    finally:
        member.stop(timeout=1)
        other.stop()
        acting.close()
        events.close()
    warned = [r.getMessage() for r in caplog.records if "other controllers are in the group" in r.getMessage()]
    if one_machine:
        assert len(warned) == 1, warned
        assert "ctl2" in warned[0] and "sqlite" in warned[0] and "config check" in warned[0]
    else:
        assert not warned
