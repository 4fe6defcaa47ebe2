"""Capacity reads (adapter): Nova's compute services, hypervisors and servers, and placement's
inventories and usages, turned into ``petguard.evacuate.capacity.HostCapacity`` values.

``read_capacity_inputs(nova, ...)`` is the whole read; the capacity duty (``petguard.evacuate.capacity_duty``)
calls it every ``[capacity] interval`` seconds, and a lab test can call it on its own with
``nova.connect(cloud, clouds_file)``. It goes through ``NovaCompute``'s one call (``read``), so every
request is logged with its request id and every error is mapped and chained there.

Cost of one read, for H compute hosts and S servers: ``GET /os-services`` (1), ``GET
/os-hypervisors/detail`` (1 per 1000 hypervisors), ``GET /servers/detail?all_tenants=1`` (1 per
1000 servers), ``GET /os-server-groups?all_projects=True`` (1 per 1000 groups), one Glance ``GET
/images/{id}`` per distinct image when the ``evacuable_image`` selector is on, and 2 placement GETs
per host (``/resource_providers/{uuid}/inventories`` and ``/usages``: placement has no bulk read of
either).

How a host is matched to its resource provider: since compute microversion 2.53 a hypervisor's
``id`` is its compute node's UUID, which is the UUID of the node's root resource provider, and
``service.host`` names the nova-compute host (resource provider *names* are hypervisor host names,
which often differ from service host names, e.g. FQDN vs short name).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Final

from petguard.cloud import Server, ServiceRecord
from petguard.evacuate.capacity import (
    RESOURCE_CLASSES,
    HostCapacity,
    Inventory,
    PlacedServer,
    Resources,
    flavor_resources,
)
from petguard.nova.compute import NovaCompute

LOG = logging.getLogger(__name__)

#: Hypervisor ids are compute node UUIDs (>= 2.53); 2.88 leaves out the stale resource figures.
HYPERVISORS_MICROVERSION: Final = "2.88"
#: ``/resource_providers/{uuid}/inventories`` and ``/usages`` answer the same since placement 1.0.
PLACEMENT_MICROVERSION: Final = "1.0"


def read_capacity_inputs(
    nova: NovaCompute,
    *,
    reserved_hosts: Collection[str] = (),
    maintenance: Collection[str] = (),
    image_properties: bool = True,
) -> list[HostCapacity]:
    """Every nova-compute host with its placement inventory and usage, its service state and its
    servers (with flavor resources). ``reserved_hosts``: the reserved failover hosts; ``maintenance``:
    hosts petguard has in maintenance; ``image_properties``: read the servers' image properties (the
    ``evacuable_image`` selector needs them).

    :raises petguard.errors.NovaUnavailable, NovaError, NotFound: Nova or placement could not be read.
    """
    services = nova.list_services()
    nodes = providers_by_host(_hypervisors(nova))
    servers_by_host: dict[str, list[PlacedServer]] = {}
    for server, flavor in nova.all_servers(image_properties):
        if server.host:
            servers_by_host.setdefault(server.host, []).append(PlacedServer(server, server_resources(server, flavor)))
    hosts = []
    for service in services:
        inventories, usage = _provider_facts(nova, service.host, nodes.get(service.host, []))
        hosts.append(
            host_capacity(
                service,
                inventories,
                usage,
                servers_by_host.get(service.host, []),
                reserved=service.host in reserved_hosts,
                maintenance=service.host in maintenance,
            )
        )
    unknown = sorted(set(reserved_hosts) - {s.host for s in services})
    if unknown:
        LOG.warning(
            "capacity: [evacuation] reserved_hosts names %s, which Nova has no nova-compute service for: "
            "not counted; next: fix the name in the configuration",
            ", ".join(unknown),
        )
    return hosts


# -------------------------------------------------------------------------------- JSON -> values


def host_capacity(
    service: ServiceRecord,
    inventories: Mapping[str, Inventory],
    usage: Mapping[str, int],
    servers: list[PlacedServer],
    *,
    reserved: bool = False,
    maintenance: bool = False,
) -> HostCapacity:
    """One host's facts as the pure check takes them."""
    return HostCapacity(
        name=service.host,
        inventories=dict(inventories),
        usage=dict(usage),
        service_up=service.state == "up",
        enabled=service.status == "enabled",
        forced_down=service.forced_down,
        maintenance=maintenance,
        reserved=reserved,
        servers=tuple(servers),
    )


def providers_by_host(hypervisors: list[Mapping[str, Any]]) -> dict[str, list[str]]:
    """``GET /os-hypervisors/detail`` entries (mv >= 2.53) -> service host -> resource provider UUIDs."""
    nodes: dict[str, list[str]] = {}
    for raw in hypervisors:
        host = (raw.get("service") or {}).get("host")
        if host and raw.get("id"):
            nodes.setdefault(str(host), []).append(str(raw["id"]))
    return nodes


def inventories_from(body: Mapping[str, Any]) -> dict[str, Inventory]:
    """``GET /resource_providers/{uuid}/inventories`` -> the resource classes the check counts."""
    found: dict[str, Inventory] = {}
    for resource_class, raw in (body.get("inventories") or {}).items():
        if resource_class in RESOURCE_CLASSES:
            found[resource_class] = Inventory(
                total=int(raw["total"]),
                reserved=int(raw.get("reserved") or 0),
                allocation_ratio=float(raw.get("allocation_ratio", 1.0)),
                max_unit=int(raw["max_unit"]) if raw.get("max_unit") is not None else None,
            )
    return found


def usages_from(body: Mapping[str, Any]) -> dict[str, int]:
    """``GET /resource_providers/{uuid}/usages`` -> resource class -> amount allocated."""
    return {rc: int(amount) for rc, amount in (body.get("usages") or {}).items() if rc in RESOURCE_CLASSES}


def server_resources(server: Server, flavor: Mapping[str, Any]) -> Resources:
    """The resources Nova allocated for ``server``, from the flavor embedded in its JSON (mv >= 2.47)."""

    def amount(key: str) -> int:
        value = flavor.get(key)
        if value in (None, ""):  # Nova says "" for a flavor without swap
            return 0
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        LOG.warning(
            "capacity: server %s (%s): its flavor's %s is %r, not a number: counted as 0, so the room it needs "
            "is underestimated; next: check the flavor in Nova",
            server.name, server.id, key, value,
        )  # fmt: skip
        return 0

    return flavor_resources(
        amount("vcpus"),
        amount("ram"),
        amount("disk"),
        amount("ephemeral"),
        amount("swap"),  # MiB
        boot_from_volume=server.image_id is None,
        extra_specs=server.flavor_extra_specs,
    )


def combine(inventories: list[dict[str, Inventory]]) -> dict[str, Inventory]:
    """One host with several compute nodes (rare outside Ironic, which petguard does not evacuate):
    their inventories added up, with the lowest allocation ratio and the largest max_unit."""
    combined: dict[str, Inventory] = {}
    for per_node in inventories:
        for rc, inv in per_node.items():
            seen = combined.get(rc)
            if seen is None:
                combined[rc] = inv
            else:
                combined[rc] = Inventory(
                    total=seen.total + inv.total,
                    reserved=seen.reserved + inv.reserved,
                    allocation_ratio=min(seen.allocation_ratio, inv.allocation_ratio),
                    max_unit=max(seen.largest_unit(), inv.largest_unit()),
                )
    return combined


# -------------------------------------------------------------------------------------- the reads


def _hypervisors(nova: NovaCompute) -> list[Mapping[str, Any]]:
    """Every hypervisor (``/os-hypervisors/detail``, following Nova's ``next`` links)."""
    found: list[Mapping[str, Any]] = []
    for body in _pages(nova, "/os-hypervisors/detail"):
        found.extend(body.get("hypervisors") or ())
    return found


def _pages(nova: NovaCompute, path: str) -> Iterator[Mapping[str, Any]]:
    query: dict[str, str] = {}
    while True:
        url = f"{path}?{urllib.parse.urlencode(query)}" if query else path
        body, _ = nova.read(url, HYPERVISORS_MICROVERSION, what="list hypervisors")
        yield body
        marker = _next_marker(body.get("hypervisors_links"))
        if marker is None or marker == query.get("marker"):
            return
        query["marker"] = marker


def _next_marker(links: object) -> str | None:
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("rel") == "next":
            markers = urllib.parse.parse_qs(urllib.parse.urlsplit(str(link.get("href", ""))).query).get("marker")
            if markers:
                return markers[0]
    return None


def _provider_facts(nova: NovaCompute, host: str, providers: list[str]) -> tuple[dict[str, Inventory], dict[str, int]]:
    """Inventory and usage of the host's resource providers (two placement GETs per provider)."""
    if not providers:
        LOG.info("capacity: %s has no hypervisor in Nova: counted as a host that cannot take pets", host)
        return {}, {}
    inventories: list[dict[str, Inventory]] = []
    usage: dict[str, int] = {}
    for uuid in providers:
        body, rid_inv = nova.read(
            f"/resource_providers/{uuid}/inventories", PLACEMENT_MICROVERSION,
            what=f"read the placement inventory of {host}", service="placement",
        )  # fmt: skip
        inventories.append(inventories_from(body))
        body, rid_use = nova.read(
            f"/resource_providers/{uuid}/usages", PLACEMENT_MICROVERSION,
            what=f"read the placement usages of {host}", service="placement",
        )  # fmt: skip
        for rc, amount in usages_from(body).items():
            usage[rc] = usage.get(rc, 0) + amount
        LOG.debug("capacity: %s provider %s: inventories %s, usages %s (requests %s, %s)",
                  host, uuid, inventories[-1], usage, rid_inv or "unknown", rid_use or "unknown")  # fmt: skip
    if len(inventories) > 1:
        LOG.info("capacity: %s has %d compute nodes: their inventories are added up", host, len(inventories))
        return combine(inventories), usage
    return inventories[0], usage
