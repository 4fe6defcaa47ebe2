"""The Compute seam: everything petguard asks of Nova, as a Protocol over petguard's own values.

``petguard.nova.compute.NovaCompute`` implements it on openstacksdk; tests use an in-memory fake
(``tests/fakes.py``). Procedures and the loop only ever see this Protocol, so no SDK object leaks
past the adapter.

Cost model (the loop's budget): a tick calls ``list_services`` once, whatever the cloud's size;
``servers_on``/``evacuations_from`` are called only for hosts that failed.

Every method that changes something returns Nova's request id (``req-...``) so the caller can log
it on the line that records the decision; errors carry it in ``context['request_id']``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from petguard.cloud import Migration, RequestTrace, Server, ServiceRecord, TargetHint


def usable_hosts(members: Iterable[str], services: Iterable[ServiceRecord], source: str) -> list[str]:
    """The ``members`` that can take a server now, in name order: a nova-compute service that is up,
    enabled and not forced down, and not the ``source`` host (pure)."""
    wanted = set(members) - {source}
    return sorted(
        s.host for s in services if s.host in wanted and s.state == "up" and s.status == "enabled" and not s.forced_down
    )


class Compute(Protocol):
    """What petguard needs from Nova.

    Errors: ``petguard.errors.NovaUnavailable`` (temporary: unreachable, 5xx, timeouts),
    ``NovaConflict`` (Nova refused because of the current state), ``NovaError`` (other 4xx),
    ``NotFound`` (404).
    """

    def list_services(self) -> list[ServiceRecord]:
        """Every nova-compute service, in ONE API call."""
        ...

    def servers_on(self, host: str) -> list[Server]:
        """Every server Nova places on ``host``, all projects, with flavor extra specs, tags and the
        image's properties filled in."""
        ...

    def get_server(self, server_id: str) -> Server:
        """One server, fresh."""
        ...

    def evacuations_from(self, host: str, since: float | None = None) -> list[Migration]:
        """Migrations of type evacuation whose source is ``host`` (created at or after ``since``)."""
        ...

    def force_down(self, service: ServiceRecord) -> str:
        """Set forced_down=true on the service (microversion >= 2.53). Idempotent."""
        ...

    def disable(self, service: ServiceRecord, reason: str) -> str:
        """Disable the service with ``reason`` (call only after force_down: see docs). Idempotent."""
        ...

    def unforce_down(self, service: ServiceRecord) -> str:
        """Set forced_down=false. Idempotent."""
        ...

    def enable(self, service: ServiceRecord) -> str:
        """Enable the service (clears the disabled reason). Idempotent."""
        ...

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        """Ask Nova to evacuate the server, at a microversion that keeps the server's power state
        (< 2.95) and has no ``force`` (>= 2.68): without ``host`` the scheduler chooses; with it the
        scheduler still validates that host (its filters, the server group policy) and the
        evacuation migration ends ``error`` (NoValidHost) if it does not fit — asynchronously. A
        host the API itself refuses (unknown, the source) is a synchronous error. NOT idempotent:
        Nova accepts a second evacuate of a server being evacuated and breaks it — callers check
        ``evacuations_from`` first."""
        ...

    def latest_request(self, server_id: str, action: str) -> RequestTrace | None:
        """Nova's record of the server's newest request of ``action`` (e.g. "evacuate"): its request id
        and the services' events (instance actions); None when it has none.

        :raises NotFound: the server is gone."""
        ...

    def reset_state(self, server_id: str) -> str:
        """Reset the server to vm_state active with no task (``os-resetState``), the one way Nova
        allows to ask again after a request it took can no longer run. Admin only."""
        ...

    def check_placement(self) -> str:
        """Ask placement whether it answers (its root document, read-only); returns the request id.

        :raises NovaUnavailable: placement (or Keystone, to find it) does not answer."""
        ...

    def aggregates_of(self, host: str) -> frozenset[str]:
        """The names of the host aggregates ``host`` is in."""
        ...

    def candidate_hosts(self, hint: TargetHint, source: str) -> list[str]:
        """The hosts an ``aggregate:`` or ``az:`` hint could send a server of ``source`` to, best
        first: members of the aggregate / hosts of the availability zone whose compute service is
        up, enabled and not forced down, never ``source`` (``usable_hosts``). Empty for ``reserved``
        (the reserved pool is the runner's, not Nova's).

        :raises NotFound: Nova has no aggregate or availability zone of that name."""
        ...

    def start_server(self, server_id: str) -> str:
        """Start a stopped server."""
        ...

    def stop_server(self, server_id: str) -> str:
        """Stop a running server."""
        ...

    def reboot_server(self, server_id: str, hard: bool = True) -> str:
        """Reboot a server; ``hard`` re-creates its domain (restarts a hung, paused or crashed guest)."""
        ...
