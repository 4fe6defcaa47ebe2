"""The acting path's guards: Nova changes and fences made only while this controller leads. Adapter.

Nova knows nothing of petguard's epochs, so the journal alone cannot refuse a Nova change or a
fence from a controller that lost its lead: these wrappers ask ``Leadership`` (``ha.election``)
before each one, on the monotonic lease, so a paused or partitioned leader stops before it acts.
Reads pass through unguarded.
"""

from __future__ import annotations

from petguard.cloud import Migration, RequestTrace, Server, ServiceRecord, TargetHint
from petguard.compute import Compute
from petguard.fencing.base import FenceFn, FenceResult
from petguard.ha.election import Leadership


class LeaderCompute:
    """``Compute`` for the acting path: every change asks ``leadership.require`` first; reads pass."""

    def __init__(self, compute: Compute, leadership: Leadership) -> None:
        self._compute = compute
        self._leadership = leadership

    def list_services(self) -> list[ServiceRecord]:
        return self._compute.list_services()

    def servers_on(self, host: str) -> list[Server]:
        return self._compute.servers_on(host)

    def get_server(self, server_id: str) -> Server:
        return self._compute.get_server(server_id)

    def evacuations_from(self, host: str, since: float | None = None) -> list[Migration]:
        return self._compute.evacuations_from(host, since)

    def force_down(self, service: ServiceRecord) -> str:
        self._leadership.require(f"force down {service.host}")
        return self._compute.force_down(service)

    def disable(self, service: ServiceRecord, reason: str) -> str:
        self._leadership.require(f"disable {service.host}")
        return self._compute.disable(service, reason)

    def unforce_down(self, service: ServiceRecord) -> str:
        self._leadership.require(f"unforce {service.host}")
        return self._compute.unforce_down(service)

    def enable(self, service: ServiceRecord) -> str:
        self._leadership.require(f"enable {service.host}")
        return self._compute.enable(service)

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        self._leadership.require(f"evacuate {server_id}")
        return self._compute.evacuate(server_id, host)

    def latest_request(self, server_id: str, action: str) -> RequestTrace | None:
        return self._compute.latest_request(server_id, action)

    def reset_state(self, server_id: str) -> str:
        self._leadership.require(f"reset the state of {server_id}")
        return self._compute.reset_state(server_id)

    def check_placement(self) -> str:
        return self._compute.check_placement()

    def aggregates_of(self, host: str) -> frozenset[str]:
        return self._compute.aggregates_of(host)

    def candidate_hosts(self, hint: TargetHint, source: str) -> list[str]:
        return self._compute.candidate_hosts(hint, source)

    def start_server(self, server_id: str) -> str:
        self._leadership.require(f"start {server_id}")
        return self._compute.start_server(server_id)

    def stop_server(self, server_id: str) -> str:
        self._leadership.require(f"stop {server_id}")
        return self._compute.stop_server(server_id)

    def reboot_server(self, server_id: str, hard: bool = True) -> str:
        self._leadership.require(f"reboot {server_id}")
        return self._compute.reboot_server(server_id, hard)


def guard_compute(compute: Compute, leadership: Leadership) -> Compute:
    """``compute`` whose changes are made only while ``leadership`` leads."""
    return LeaderCompute(compute, leadership)


def guard_fence(fence: FenceFn, leadership: Leadership) -> FenceFn:
    """``fence`` that is not attempted unless ``leadership`` leads (the host stays FENCING in the
    journal, and the next leader fences it)."""

    def guarded(host: str) -> FenceResult:
        if not leadership.leading():
            return FenceResult(host, False, "not the leader any more: fence not attempted; the next leader fences it")
        return fence(host)

    return guarded
