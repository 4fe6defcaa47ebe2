"""The fence path in one result type: ``procedure.make_fence`` builds fence(host) over the inventory,
``ha.guards.guard_fence`` passes its ``FenceResult`` on (or returns one of its own off the lead), and
the host lane turns it into its ``Outcome`` in one place (``lanes.Recovery.fence``), with one
``fence_level_failed`` event per failed level first."""

from __future__ import annotations

from pathlib import Path

from petguard.decide import Outcome
from petguard.fencing import procedure
from petguard.fencing.base import FenceDevice, FenceDriver, FenceFn, FenceResult, LevelOutcome
from petguard.fencing.child import FenceRunner
from petguard.fencing.fake import FakeDriver, FakeRegistry
from petguard.ha.guards import guard_fence
from petguard.hosts import HostEvent
from petguard.lanes import Recovery, RecoveryPolicy
from tests.fakes import FakeClock

POLICY = procedure.FencePolicy(attempt_timeout=5.0, deadline=10.0, poll_interval=1.0, off_readings_required=3)
DEVICE = FenceDevice(host="cmp1", driver="fake", address="10.0.0.1", port=623, username="admin", password="pw")


def make(registry: FakeRegistry, where: str = "the inventory") -> FenceFn:
    driver = FakeDriver(registry)

    def lookup(name: str) -> FenceDriver:
        return driver

    return procedure.make_fence({"cmp1": DEVICE}, FenceRunner(lookup), lookup, POLICY, FakeClock(), where)


def test_a_host_without_a_fence_device_is_not_fenced_and_says_where_to_add_one() -> None:
    fence = make(FakeRegistry(), where=str(Path("/etc/petguard/inventory.yaml")))

    result = fence("cmp9")

    assert result == FenceResult("cmp9", False, "no fence device for cmp9 in /etc/petguard/inventory.yaml")
    assert result.failed_levels == ()


def test_a_bare_device_is_a_host_with_one_level_of_one_device() -> None:
    registry = FakeRegistry()
    registry.script(DEVICE.address, DEVICE.port)

    result = make(registry)("cmp1")

    assert result.host == "cmp1" and result.confirmed
    assert [lv.level for lv in result.levels] == [1]
    assert result.reason.startswith("fence level 1 of 1: power read back OFF 3 times in a row")


class _Lead:
    def __init__(self, leading: bool) -> None:
        self._leading = leading

    def leading(self) -> bool:
        return self._leading


def test_the_guard_passes_the_result_on_and_answers_in_the_same_type_off_the_lead() -> None:
    asked: list[str] = []

    def fence(host: str) -> FenceResult:
        asked.append(host)
        return FenceResult(host, True, "off")

    assert guard_fence(fence, _Lead(True))("cmp1") == FenceResult("cmp1", True, "off")  # type: ignore[arg-type]
    refused = guard_fence(fence, _Lead(False))("cmp2")  # type: ignore[arg-type]
    assert refused == FenceResult(
        "cmp2", False, "not the leader any more: fence not attempted; the next leader fences it"
    )
    assert asked == ["cmp1"]


class _Events:
    """The journal's ``record_event`` only (the fence action writes nothing else)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None, str, str]] = []

    def record_event(self, host: str, incident_id: int | None, kind: str, message: str, at: float) -> None:
        self.events.append((host, incident_id, kind, message))


def lane(result: FenceResult) -> tuple[Outcome, list[tuple[str, int | None, str, str]]]:
    store = _Events()
    recovery = Recovery(lambda host: result, object(), store, FakeClock(), RecoveryPolicy())  # type: ignore[arg-type]
    return recovery.fence(result.host, 7), store.events


def test_the_lane_turns_a_failed_fence_into_awaiting_confirm_with_one_event_per_failed_level() -> None:
    levels = (LevelOutcome(1, False, (), 1.0, "auth refused"), LevelOutcome(2, False, (), 1.0, "still ON"))
    reason = "every fence level failed (2): level 1: auth refused; level 2: still ON"

    outcome, events = lane(FenceResult("cmp1", False, reason, levels))

    assert outcome == Outcome(
        "cmp1",
        HostEvent.FENCE_FAILED,
        f"fence not confirmed: {reason}; next: power the host off by hand, then `confirm-fenced`",
        alert="awaiting_confirm",
    )
    assert events == [
        ("cmp1", 7, "fence_level_failed", "fence level 1 failed: auth refused"),
        ("cmp1", 7, "fence_level_failed", "fence level 2 failed: still ON"),
    ]


def test_the_lane_turns_a_confirmed_fence_into_fence_confirmed() -> None:
    levels = (LevelOutcome(1, False, (), 1.0, "auth refused"), LevelOutcome(2, True, (), 2.0, "read back OFF"))

    outcome, events = lane(FenceResult("cmp1", True, "fence level 2 of 2 (after 1 failed level(s)): ...", levels))

    assert outcome == Outcome(
        "cmp1",
        HostEvent.FENCE_CONFIRMED,
        "fenced: fence level 2 of 2 (after 1 failed level(s)): ...",
        alert="fence_confirmed",
    )
    assert events == [("cmp1", 7, "fence_level_failed", "fence level 1 failed: auth refused")]
