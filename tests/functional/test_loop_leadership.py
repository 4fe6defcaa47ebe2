"""The loop's leadership hooks over a real sqlite journal: a follower decides nothing, a StaleEpoch in a
tick or a lane makes the controller step down, ``reset()`` reloads what another leader wrote."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard.clock import SystemClock
from petguard.decide import Action, LoopPolicy, Outcome
from petguard.detect import DetectionPolicy
from petguard.errors import StaleEpoch
from petguard.hosts import HostState
from petguard.journal import TickRecord
from petguard.reconcile import NOT_LEADING, ActionFn, Loop
from petguard.store.sql import SqlStore
from tests.fakes import FakeCompute
from tests.functional.harness import journal_url

HOSTS = ["cmp1", "cmp2", "cmp3"]
POLICY = LoopPolicy(detection=DetectionPolicy(grace_period=0.0, down_samples=1, up_samples=1), startup_blackout=0.0)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return journal_url(tmp_path)


def _loop(store: SqlStore, compute: FakeCompute, fence: ActionFn | None = None) -> Loop:
    def never(host: str, incident_id: int | None) -> Outcome | None:
        raise AssertionError(f"no action expected on {host}")

    actions = {Action.FENCE: fence or never, Action.EVACUATE: never, Action.RESTORE: never}
    return Loop(compute, store, SystemClock(threading.Event()), POLICY, actions)


@pytest.fixture
def compute() -> FakeCompute:
    return FakeCompute(HOSTS)


@pytest.fixture
def stores(url: str) -> Iterator[list[SqlStore]]:
    opened: list[SqlStore] = []
    yield opened
    for store in opened:
        store.close()


def _store(stores: list[SqlStore], url: str, epoch: int | None = None) -> SqlStore:
    stores.append(SqlStore(url, epoch=epoch))
    return stores[-1]


def test_a_follower_reads_nothing_and_writes_nothing(url: str, compute: FakeCompute, stores: list[SqlStore]) -> None:
    loop = _loop(_store(stores, url), compute)
    loop.leading = lambda: False
    report = loop.tick()
    assert (report.ok, report.error) == (False, NOT_LEADING)
    assert compute.calls == {}
    assert _store(stores, url).load_hosts() == {}
    loop.leading = lambda: True
    assert loop.tick().ok
    assert set(_store(stores, url).load_hosts()) == set(HOSTS)
    loop.shutdown()


@pytest.mark.fault(
    "CTL-05",
    guarantee="5",
    injected="another controller claims a newer epoch in the journal while this one leads",
    expected="it steps down, saying its epoch is no longer current",
)
def test_a_stale_epoch_in_a_tick_steps_down(url: str, compute: FakeCompute, stores: list[SqlStore]) -> None:
    old = _store(stores, url, epoch=0)
    loop = _loop(old, compute)
    reasons: list[str] = []
    loop.on_stale_epoch = reasons.append
    assert loop.tick().ok
    newer = _store(stores, url)
    newer.claim_epoch(newer.current_epoch())
    report = loop.tick()
    assert not report.ok and "epoch 0" in report.error
    assert len(reasons) == 1 and "another controller" in reasons[0]
    loop.shutdown()


@pytest.mark.fault(
    "CTL-05",
    guarantee="5",
    injected="another controller claims a newer epoch in the journal while this one leads",
    expected="it steps down, saying its epoch is no longer current",
)
def test_a_stale_epoch_in_a_lane_steps_down(url: str, compute: FakeCompute, stores: list[SqlStore]) -> None:
    reasons: list[str] = []
    lane_ran = threading.Event()

    def fence(host: str, incident_id: int | None) -> Outcome | None:
        lane_ran.set()
        raise StaleEpoch("write refused: epoch 0 is no longer current (another controller leads)", epoch=0)

    loop = _loop(_store(stores, url, epoch=0), compute, fence)
    loop.on_stale_epoch = reasons.append
    assert loop.tick().ok
    compute.dead.add("cmp1")
    for _ in range(4):
        loop.tick()
        if lane_ran.is_set():
            break
    loop.wait_idle(5)
    assert lane_ran.is_set() and reasons and "epoch 0" in reasons[0]
    assert loop.idle()
    loop.shutdown()


@pytest.mark.fault(
    "CTL-11",
    guarantee="5",
    injected="another leader put a host in maintenance in the journal; then the host stops heartbeating",
    expected="after reset() the loop decides from the journal: the host stays in maintenance",
)
def test_reset_reloads_what_another_leader_wrote(url: str, compute: FakeCompute, stores: list[SqlStore]) -> None:
    loop = _loop(_store(stores, url), compute)
    assert loop.tick().ok
    # Meanwhile another leader put cmp1 in maintenance; then cmp1 stops heartbeating.
    other = _store(stores, url)
    record = other.load_hosts()["cmp1"]
    held = dataclasses.replace(record, host=dataclasses.replace(record.host, state=HostState.MAINTENANCE))
    other.save_tick(
        TickRecord(
            hosts=(held,),
            transitions=(),
            open_incidents=(),
            close_incidents=(),
            events=(),
            finished_requests=(),
            at=record.host.since + 1,
        )
    )
    compute.dead.add("cmp1")
    loop.reset()
    assert loop.tick().ok
    # A loop deciding from its stale cache would have made cmp1 SUSPECT over the maintenance.
    assert other.load_hosts()["cmp1"].host.state is HostState.MAINTENANCE
    loop.shutdown()


@pytest.mark.fault(
    "BLIND-06",
    guarantee="5",
    injected="a blind leader loses leadership; the journal refuses its nova_unreadable event (a newer epoch)",
    expected="the old leader records nothing and steps down; as a follower it shows no stale blindness",
)
def test_a_blind_leader_that_lost_leadership_announces_nothing_and_forgets_its_view(
    url: str, compute: FakeCompute, stores: list[SqlStore]
) -> None:
    old = _store(stores, url, epoch=0)
    loop = _loop(old, compute)
    reasons: list[str] = []
    loop.on_stale_epoch = reasons.append
    assert loop.tick().ok
    compute.unavailable = True
    loop.tick()
    loop.tick()
    newer = _store(stores, url)
    newer.claim_epoch(newer.current_epoch())
    report = loop.tick()  # the third failed reading: the announcement is refused by the newer epoch
    assert not report.ok and reasons and "epoch 0" in reasons[0]
    assert [e.kind for e in newer.events()] == []
    loop.leading = lambda: False
    assert loop.tick().error == NOT_LEADING
    assert loop.sight.readable is None and not loop.sight.blind and loop.sight.failures == 0
    loop.shutdown()
