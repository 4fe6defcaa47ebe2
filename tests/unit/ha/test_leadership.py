"""Leadership without a backend: a fake tooz coordinator and an in-memory epoch store drive gain,
lease expiry, a lost lock, a newer epoch and the guards; the options petguard gives tooz."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from petguard.errors import StaleEpoch
from petguard.fencing.base import FenceResult
from petguard.ha.election import NO_EPOCH, Leadership, NotLeading, Settings, backend_options
from petguard.ha.guards import guard_compute, guard_fence
from tests.fakes import FakeCompute


class FakeLock:
    def __init__(self, backend: FakeBackend, owner: str) -> None:
        self.backend, self.owner = backend, owner

    def acquire(self, blocking: bool = True) -> bool:
        with self.backend.mutex:
            if self.backend.holder in (None, self.owner):
                self.backend.holder = self.owner
                return True
            return False

    def release(self) -> bool:
        with self.backend.mutex:
            if self.backend.holder == self.owner:
                self.backend.holder = None
                return True
            return False

    def is_still_owner(self) -> bool:
        return self.backend.holder == self.owner


class FakeBackend:
    """One tooz backend shared by several fake coordinators; ``down`` makes every call fail."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.holder: str | None = None
        self.down = False

    def coordinator(self, settings: Settings) -> Any:
        backend = self

        class Coordinator:
            def heartbeat(self) -> float:
                if backend.down:
                    raise ConnectionError("backend down")
                return 1.0

            def join_group_create(self, group: bytes) -> None:
                pass

            def get_lock(self, name: bytes) -> FakeLock:
                return FakeLock(backend, settings.member_id)

            def stop(self) -> None:
                FakeLock(backend, settings.member_id).release()

        if backend.down:
            raise ConnectionError("backend down")
        return Coordinator()


class MemoryEpochs:
    def __init__(self, shared: list[int]) -> None:
        self.shared, self.epoch = shared, NO_EPOCH

    def current_epoch(self) -> int:
        return self.shared[0]

    def claim_epoch(self, seen: int) -> int:
        if self.shared[0] != seen:
            raise StaleEpoch("taken", epoch=seen)
        self.shared[0] = self.epoch = seen + 1
        return self.epoch


def _wait(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def _member(backend: FakeBackend, epochs: list[int], name: str, **kw: Any) -> Leadership:
    settings = Settings("fake://", name, heartbeat_interval=0.02, leader_timeout=0.3)
    return Leadership(settings, MemoryEpochs(epochs), coordinator_factory=backend.coordinator, **kw)


def test_gain_claims_the_epoch_and_calls_on_gain_before_leading() -> None:
    backend, epochs, seen = FakeBackend(), [4], []
    member = _member(backend, epochs, "ctl1")
    member._on_gain = lambda epoch: seen.append((epoch, member.leading(), member.halt.is_set()))
    member.start()
    _wait(member.leading)
    assert seen == [(5, False, True)] and member.epoch == 5 and not member.halt.is_set()
    status = member.status()
    assert status.leader and status.epoch == 5 and status.member_id == "ctl1"
    assert status.last_heartbeat_age is not None and status.last_heartbeat_age < 1
    member.stop(timeout=1)
    assert member.halt.is_set() and backend.holder is None


def test_one_of_two_leads_and_the_other_takes_over_when_it_stops() -> None:
    backend, epochs = FakeBackend(), [0]
    one, two = _member(backend, epochs, "ctl1"), _member(backend, epochs, "ctl2")
    one.start()
    _wait(one.leading)
    two.start()
    time.sleep(0.2)
    assert not two.leading()
    one.stop(timeout=1)
    _wait(two.leading)
    assert two.epoch == 2
    two.stop(timeout=1)


def test_a_lost_backend_steps_down_within_the_timeout_and_the_guards_refuse() -> None:
    backend, epochs, losses = FakeBackend(), [0], []
    member = _member(backend, epochs, "ctl1", on_loss=losses.append)
    member.start()
    _wait(member.leading)
    compute = guard_compute(FakeCompute(["cmp1"]), member)
    fenced: list[str] = []
    fence = guard_fence(lambda host: FenceResult(host, fenced.append(host) is None, "off"), member)
    assert fence("cmp1") == FenceResult("cmp1", True, "off")
    backend.down = True
    lost_at = time.monotonic()
    _wait(lambda: bool(losses), 2)
    assert time.monotonic() - lost_at < 0.3 + 0.2
    assert "no successful heartbeat" in losses[0] and member.halt.is_set()
    assert fence("cmp2").confirmed is False and fenced == ["cmp1"]
    with pytest.raises(NotLeading):
        compute.evacuate("web-1-id")
    assert [s.host for s in compute.list_services()] == ["cmp1"]  # reads still pass
    backend.down = False
    _wait(member.leading)
    assert member.epoch == 2
    member.stop(timeout=1)


def test_a_lost_lock_or_a_newer_epoch_steps_down_at_once() -> None:
    backend, epochs, losses = FakeBackend(), [0], []
    member = _member(backend, epochs, "ctl1", on_loss=losses.append)
    member.start()
    _wait(member.leading)
    backend.holder = "ctl9"
    _wait(lambda: bool(losses), 1)
    assert "lock" in losses[0]
    backend.holder = None
    _wait(member.leading)
    epochs[0] += 1  # someone else claimed
    _wait(lambda: len(losses) == 2, 1)
    assert "epoch" in losses[1]
    member.stop(timeout=1)


def test_no_new_campaign_while_a_lane_of_the_last_term_runs() -> None:
    backend, epochs, busy = FakeBackend(), [0], [True]
    member = _member(backend, epochs, "ctl1", idle=lambda: not busy[0])
    member.start()
    time.sleep(0.2)
    assert not member.leading() and backend.holder is None
    busy[0] = False
    _wait(member.leading)
    member.stop(timeout=1)


def test_backend_options_and_a_backend_name_without_credentials() -> None:
    etcd = Settings("etcd3+http://10.0.0.1:2379", "ctl1", leader_timeout=10)
    assert backend_options(etcd) == {"lock_timeout": "20", "membership_timeout": "20", "timeout": "5"}
    redis = Settings("redis://:s3cret@10.0.0.2:6379?lock_timeout=30", "ctl1", leader_timeout=10)
    assert backend_options(redis) == {"membership_timeout": "20", "socket_timeout": "5"}
    assert redis.backend == "redis://10.0.0.2:6379"
    assert "s3cret" not in Settings("mysql://u:s3cret@db/petguard", "c").backend
    assert Settings("file:///var/lib/petguard/coordination", "c").backend == "file:///var/lib/petguard/coordination"
    assert backend_options(Settings("file:///x", "c")) == {}
