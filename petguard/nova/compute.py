"""The Nova adapter: ``petguard.compute.Compute`` on openstacksdk, the only module importing it.

Everything petguard asks of Nova goes through ``NovaCompute``. It speaks Nova's REST API through the
SDK's compute proxy (a keystoneauth adapter) so that it chooses the microversion of every call
(``MICROVERSIONS``) and reads the request id of every response; it never hands an SDK object out,
only petguard values (``ServiceRecord``, ``Server``, ``Migration``). Image properties come from
Glance through the SDK's image proxy.

Errors are mapped once, in ``_error_for`` (HTTP answers, table ``_STATUS_ERRORS``) and
``_library_error`` (keystoneauth / SDK exceptions), always chained with ``from`` and always carrying
Nova's request id in ``context['request_id']`` and in the message. Messages never contain passwords
or tokens: keystoneauth's and Nova's messages hold neither, and ``_redact`` (``petguard.secrets``)
scrubs anything that looks like one anyway. A clouds.yaml that is not valid YAML is said so by line
and column before openstacksdk reads it (the SDK would skip it, log PyYAML's text, and report the
cloud as not found).

Nova behaviours relied on (measured on Nova 34, see docs/nova.md): force a service down before
disabling it (a disable against a dead but "up" compute blocks 60 s); evacuate without ``force`` (a
``host`` only proposes a target the scheduler validates) at microversion 2.94 (>= 2.95 leaves the
server SHUTOFF); a second evacuate of a server being evacuated is accepted and breaks it, so callers
check ``evacuations_from`` first.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import keystoneauth1.exceptions as ks_exc
import keystoneauth1.session
import openstack.config
import openstack.connection
import openstack.exceptions
import yaml

from petguard import secrets
from petguard.cloud import (
    ActionEvent,
    GroupPolicy,
    HintKind,
    Migration,
    RequestTrace,
    Server,
    ServerGroup,
    ServiceRecord,
    TargetHint,
)
from petguard.compute import Compute, usable_hosts
from petguard.errors import (
    ConfigError,
    NotFound,
    NovaConflict,
    NovaError,
    NovaUnavailable,
    PetguardError,
)

LOG = logging.getLogger(__name__)

#: The microversion of every kind of call, and why (docs/nova.md has the long story).
MICROVERSIONS: Final[Mapping[str, str]] = {
    # service ids are uuids and PUT /os-services/{id} takes forced_down/status (Pike).
    "services": "2.53",
    # flavor embedded with extra_specs (2.47), tags (2.26), locked (2.9).
    "servers": "2.47",
    # migration uuids, pagination and changes-since (2.59).
    "migrations": "2.59",
    # one ``policy`` string per group instead of a ``policies`` list (2.64).
    "server_groups": "2.64",
    # no host => scheduler picks; force gone (2.68); < 2.95 keeps the power state.
    "evacuate": "2.94",
    # os-start / os-stop: no microversion changes their behaviour.
    "power": "2.1",
    # instance actions with their events (admins see each event's result at any microversion);
    # 2.58 orders and pages them. os-resetState: unchanged since 2.1.
    "actions": "2.58",
    "reset_state": "2.1",
    # host aggregates (hosts, metadata.availability_zone) and availability zones with their hosts:
    # no microversion changes what petguard reads.
    "aggregates": "2.1",
    "availability_zones": "2.1",
}
#: The highest microversion used above: ``check`` verifies the cloud offers it.
MAX_MICROVERSION: Final = "2.94"

#: HTTP status of a Nova answer -> the petguard error, for statuses that map directly.
#: 5xx -> NovaUnavailable and other 4xx -> NovaError are handled in ``_error_for``.
_STATUS_ERRORS: Final[Mapping[int, type[PetguardError]]] = {
    404: NotFound,
    409: NovaConflict,
    408: NovaUnavailable,
    429: NovaUnavailable,
}
#: A 400 whose message holds one of these is Nova refusing because of the current state.
_CONFLICT_MESSAGES: Final = ("is still in use", "invalid state", "in vm_state", "in task_state")
#: 409 messages that mean "already there": start/stop are idempotent through them.
_ALREADY_STARTED: Final = "while it is in vm_state active"
_ALREADY_STOPPED: Final = "while it is in vm_state stopped"

#: Glance v2 core image attributes: everything else at the top level is an image property.
_IMAGE_CORE_ATTRS: Final = frozenset(
    {
        "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
        "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk", "container_format",
        "disk_format", "created_at", "updated_at", "tags", "self", "file", "schema", "locations",
        "direct_url", "stores",
    }
)  # fmt: skip

_REQUEST_ID_HEADERS: Final = ("x-openstack-request-id", "x-compute-request-id")
_AUTH_HINT: Final = "check the auth section of the cloud in clouds.yaml (auth_url, user, project, password)"
class _Response(Protocol):
    """The part of ``requests.Response`` the adapter reads."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


# ---------------------------------------------------------------------------------- error mapping


def _redact(text: str) -> str:
    """Remove anything that looks like a token or a password from ``text`` (``petguard.secrets``)."""
    return secrets.text(text)


def _request_id(response: _Response) -> str:
    for header in _REQUEST_ID_HEADERS:
        value = response.headers.get(header)
        if value:
            return value
    return ""


def _nova_message(response: _Response) -> str:
    """Nova's fault message (``{"badRequest": {"message": ...}}``), or the raw body, shortened."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for fault in body.values():
            if isinstance(fault, dict) and isinstance(fault.get("message"), str):
                return _redact(fault["message"])
        if isinstance(body.get("message"), str):
            return _redact(body["message"])
    return _redact(response.text.strip()[:300])


def _error_for(response: _Response, what: str) -> PetguardError:
    """The one place an HTTP answer of Nova (or Glance) becomes a petguard error."""
    status = response.status_code
    rid = _request_id(response)
    message = _nova_message(response)
    text = f"{what}: HTTP {status}: {message} (request {rid or 'unknown'})"
    cls: type[PetguardError]
    if status in _STATUS_ERRORS:
        cls = _STATUS_ERRORS[status]
    elif status >= 500:
        cls = NovaUnavailable
    elif status == 400 and any(m in message for m in _CONFLICT_MESSAGES):
        cls = NovaConflict
    elif status == 401:
        cls, text = NovaError, f"{text}; {_AUTH_HINT}"
    elif status == 403:
        cls, text = NovaError, f"{text}; petguard needs the admin role in the project of its cloud"
    elif status == 406:
        cls, text = NovaError, f"{text}; this cloud does not offer the microversion petguard needs"
    else:
        cls = NovaError
    return cls(text, request_id=rid, status=status, nova_message=message)


def _library_error(exc: Exception, what: str) -> PetguardError:
    """The one place a keystoneauth or SDK exception becomes a petguard error."""
    rid = str(getattr(exc, "request_id", None) or "")
    detail = _redact(f"{type(exc).__name__}: {exc}")
    suffix = f" (request {rid or 'unknown'})"
    err: PetguardError
    if isinstance(exc, ks_exc.SSLError):
        err = NovaError(f"{what}: TLS failed: {detail}; check cacert/verify in clouds.yaml{suffix}", request_id=rid)
    elif isinstance(exc, (ks_exc.ConnectionError, ks_exc.DiscoveryFailure)):
        err = NovaUnavailable(f"{what}: cannot reach the cloud: {detail}{suffix}", request_id=rid)
    elif isinstance(exc, ks_exc.Unauthorized | ks_exc.AuthPluginException | ks_exc.AuthorizationFailure):
        err = NovaError(
            f"{what}: Keystone refused to authenticate: {detail}; {_AUTH_HINT}{suffix}", request_id=rid, status=401
        )
    elif isinstance(exc, ks_exc.HttpError):
        status = exc.http_status or 0
        if status >= 500 or status in (408, 429):
            err = NovaUnavailable(f"{what}: {detail}{suffix}", request_id=rid, status=status)
        else:
            err = NovaError(f"{what}: {detail}{suffix}", request_id=rid, status=status)
    elif isinstance(exc, ks_exc.CatalogException):
        err = NovaError(
            f"{what}: {detail}; check region_name and interface of the cloud in clouds.yaml{suffix}", request_id=rid
        )
    else:  # any other keystoneauth ClientException or SDKException
        err = NovaError(f"{what}: {detail}{suffix}", request_id=rid)
    return err


_LIBRARY_ERRORS: Final = (ks_exc.ClientException, openstack.exceptions.SDKException)


# ---------------------------------------------------------------------------------------- parsing


def _epoch(stamp: str | None) -> float | None:
    """Nova's ``2024-05-01T12:00:00.000000`` (UTC, sometimes without zone) -> epoch seconds."""
    if not stamp:
        return None
    parsed = datetime.datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strings(mapping: object) -> dict[str, str]:
    if not isinstance(mapping, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in mapping.items() if v is not None}


def _service(raw: Mapping[str, Any]) -> ServiceRecord:
    return ServiceRecord(
        host=str(raw["host"]),
        service_id=str(raw["id"]),
        state=str(raw.get("state") or ""),
        status=str(raw.get("status") or ""),
        forced_down=bool(raw.get("forced_down")),
        updated_at=_epoch(raw.get("updated_at")),
        disabled_reason=raw.get("disabled_reason") or None,
    )


def _image_id(raw: Mapping[str, Any]) -> str | None:
    """The image a server booted from; None for boot-from-volume (Nova sends ``"image": ""``)."""
    image = raw.get("image")
    if isinstance(image, dict) and image.get("id"):
        return str(image["id"])
    return None


#: How many server groups one ``GET /os-server-groups`` page asks for (Nova's default cap is 1000).
SERVER_GROUP_PAGE = 1000


def _server_group(raw: Mapping[str, Any]) -> ServerGroup | None:
    """A ``GET /os-server-groups`` entry (mv 2.64); None for a policy petguard does not know."""
    try:
        policy = GroupPolicy(str(raw.get("policy") or ""))
    except ValueError:
        LOG.warning("server group %s has unknown policy %r: treated as no group", raw.get("id"), raw.get("policy"))
        return None
    members = frozenset(str(m) for m in raw.get("members") or ())
    return ServerGroup(id=str(raw["id"]), name=str(raw.get("name") or ""), policy=policy, members=members)


def _fixed_addresses(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The server's fixed IP addresses from Nova's ``addresses`` (network -> list of {addr,
    OS-EXT-IPS:type}), in Nova's order; floating IPs left out (an entry without a type counts as fixed)."""
    networks = raw.get("addresses")
    if not isinstance(networks, dict):
        return ()
    return tuple(
        str(entry["addr"])
        for entries in networks.values()
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict) and entry.get("addr") and entry.get("OS-EXT-IPS:type", "fixed") == "fixed"
    )


def _server(raw: Mapping[str, Any], image_properties: Mapping[str, str], group: ServerGroup | None = None) -> Server:
    flavor = raw.get("flavor") or {}
    return Server(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        host=raw.get("OS-EXT-SRV-ATTR:host") or None,
        status=str(raw.get("status") or ""),
        vm_state=str(raw.get("OS-EXT-STS:vm_state") or ""),
        task_state=raw.get("OS-EXT-STS:task_state") or None,
        power_state=int(raw.get("OS-EXT-STS:power_state") or 0),
        locked=bool(raw.get("locked")),
        metadata=_strings(raw.get("metadata")),
        tags=frozenset(str(t) for t in raw.get("tags") or ()),
        flavor_extra_specs=_strings(flavor.get("extra_specs")),
        image_properties=dict(image_properties),
        project_id=str(raw.get("tenant_id") or ""),
        fault=_redact(str((raw.get("fault") or {}).get("message") or "")),
        group=group,
        image_id=_image_id(raw),
        addresses=_fixed_addresses(raw),
    )


def _image_properties(raw: Mapping[str, Any]) -> dict[str, str]:
    return _strings({k: v for k, v in raw.items() if k not in _IMAGE_CORE_ATTRS and not isinstance(v, list | dict)})


def _migration(raw: Mapping[str, Any]) -> Migration:
    return Migration(
        id=str(raw.get("uuid") or raw["id"]),
        server_id=str(raw["instance_uuid"]),
        source_host=str(raw.get("source_compute") or ""),
        dest_host=raw.get("dest_compute") or None,
        status=str(raw.get("status") or "").lower(),
        created_at=_epoch(raw.get("created_at")) or 0.0,
        seq=raw["id"] if isinstance(raw.get("id"), int) else 0,
    )


def _request_trace(raw: Mapping[str, Any]) -> RequestTrace:
    events = tuple(
        ActionEvent(
            name=str(event.get("event") or ""),
            finished=event.get("finish_time") is not None,
            result=event.get("result") or None,
        )
        for event in raw.get("events") or ()
        if isinstance(event, Mapping)
    )
    return RequestTrace(
        request_id=str(raw.get("request_id") or ""),
        action=str(raw.get("action") or ""),
        events=events,
        started_at=_epoch(raw.get("start_time")),
    )


def _zone_hosts(zones: object, zone: str) -> set[str] | None:
    """The hosts ``GET /os-availability-zone/detail`` lists in ``zone`` (computes outside every
    zone aggregate are listed in Nova's default zone, so petguard need not know its name); None
    when Nova lists no zone of that name."""
    for entry in zones if isinstance(zones, list) else ():
        if isinstance(entry, dict) and entry.get("zoneName") == zone:
            return {str(h) for h in entry.get("hosts") or {}}
    return None


def _next_marker(links: object) -> str | None:
    """The ``marker`` of the ``next`` link of a paginated Nova listing, if there is one."""
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "next":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(str(link.get("href", ""))).query)
            markers = query.get("marker")
            if markers:
                return markers[0]
    return None


# ---------------------------------------------------------------------------------------- adapter


class NovaCompute:
    """``petguard.compute.Compute`` over an ``openstack.connection.Connection``.

    The connection is used lazily: building a ``NovaCompute`` does no I/O. Thread-safe as far as
    keystoneauth sessions are (petguard shares one per process).
    """

    def __init__(self, conn: openstack.connection.Connection, cloud: str = "") -> None:
        self._conn = conn
        self.cloud = cloud

    # ------------------------------------------------------------------------------ the one call

    def _call(
        self,
        method: str,
        path: str,
        microversion: str,
        *,
        what: str,
        json: Mapping[str, Any] | None = None,
        service: str = "compute",
        accept: Callable[[_Response], bool] | None = None,
    ) -> _Response:
        """Send one request; return the response if it is a success (or ``accept`` takes it).

        :raises NovaUnavailable, NovaConflict, NovaError, NotFound: mapped by ``_error_for`` and
            ``_library_error``.
        """
        started = time.monotonic()
        try:
            proxy = getattr(self._conn, service)  # the SDK's compute, image or placement proxy
            kwargs: dict[str, Any] = {"microversion": microversion} if microversion else {}
            if json is not None:
                kwargs["json"] = json
            if method == "GET":
                response: _Response = proxy.get(path, **kwargs)
            elif method == "PUT":
                response = proxy.put(path, **kwargs)
            else:
                response = proxy.post(path, **kwargs)
        except _LIBRARY_ERRORS as exc:
            LOG.debug("%s %s %s failed after %.0f ms: %s", service, method, path,
                      (time.monotonic() - started) * 1000, type(exc).__name__)  # fmt: skip
            raise _library_error(exc, what) from exc
        rid = _request_id(response)
        LOG.debug("%s %s %s mv=%s -> %s in %.0f ms (request %s)", service, method, path,
                  microversion or "-", response.status_code,
                  (time.monotonic() - started) * 1000, rid or "unknown")  # fmt: skip
        if response.status_code < 400 or (accept is not None and accept(response)):
            return response
        raise _error_for(response, what)

    def _pages(self, path: str, params: Mapping[str, str], key: str, microversion: str, what: str) -> Iterator[Any]:
        """Every item of a paginated Nova listing, following the ``next`` link's marker."""
        query = dict(params)
        while True:
            response = self._call("GET", f"{path}?{urllib.parse.urlencode(query)}", microversion, what=what)
            body = response.json()
            yield from body.get(key) or ()
            marker = _next_marker(body.get(f"{key}_links"))
            if marker is None or marker == query.get("marker"):
                return
            query["marker"] = marker

    # -------------------------------------------------------------------------------------- reads

    def list_services(self) -> list[ServiceRecord]:
        """Every nova-compute service, in ONE API call."""
        response = self._call(
            "GET", "/os-services?binary=nova-compute", MICROVERSIONS["services"], what="list compute services"
        )
        return [_service(raw) for raw in response.json().get("services") or ()]

    def servers_on(self, host: str) -> list[Server]:
        """Every server Nova places on ``host``, all projects, with flavor extra specs, tags, the
        image's properties (one Glance GET per distinct image, for this call only) and its server
        group (one ``GET /os-server-groups?all_projects=True`` per call, when the host has servers)."""
        raws = list(
            self._pages(
                "/servers/detail",
                {"all_tenants": "1", "host": host},
                "servers",
                MICROVERSIONS["servers"],
                what=f"list servers on {host}",
            )
        )
        images: dict[str, dict[str, str]] = {}
        groups = self._groups_by_member() if raws else {}
        servers = []
        for raw in raws:
            image_id = _image_id(raw)
            if image_id is not None and image_id not in images:
                images[image_id] = self._image_properties(image_id)
            servers.append(_server(raw, images.get(image_id, {}) if image_id else {}, groups.get(str(raw["id"]))))
        return servers

    def _groups_by_member(self) -> dict[str, ServerGroup]:
        """Every server group of every project, by member id (Nova pages this list by offset)."""
        by_member: dict[str, ServerGroup] = {}
        offset = 0
        while True:
            query = urllib.parse.urlencode({"all_projects": "True", "limit": SERVER_GROUP_PAGE, "offset": offset})
            response = self._call(
                "GET", f"/os-server-groups?{query}", MICROVERSIONS["server_groups"], what="list server groups"
            )
            page = response.json().get("server_groups") or ()
            for raw in page:
                group = _server_group(raw)
                if group is not None:
                    for member in group.members:
                        by_member[member] = group
            if len(page) < SERVER_GROUP_PAGE:
                return by_member
            offset += len(page)

    def all_servers(self, image_properties: bool = True) -> list[tuple[Server, Mapping[str, Any]]]:
        """Every server of every project (``GET /servers/detail?all_tenants=1``, paged) with its server
        group (one ``GET /os-server-groups?all_projects=True``), each with the flavor Nova embeds
        (mv >= 2.47: vcpus, ram, disk, ephemeral, swap, extra_specs), for the capacity check
        (``petguard.nova.placement``). With ``image_properties``, one Glance GET per distinct
        image (the ``evacuable_image`` selector needs them)."""
        raws = list(self._pages("/servers/detail", {"all_tenants": "1"}, "servers", MICROVERSIONS["servers"],
                                what="list the servers of all projects"))  # fmt: skip
        groups = self._groups_by_member() if raws else {}
        images: dict[str, dict[str, str]] = {}
        servers = []
        for raw in raws:
            image_id = _image_id(raw) if image_properties else None
            if image_id is not None and image_id not in images:
                images[image_id] = self._image_properties(image_id)
            server = _server(raw, images.get(image_id, {}) if image_id else {}, groups.get(str(raw["id"])))
            servers.append((server, raw.get("flavor") or {}))
        return servers

    def read(self, path: str, microversion: str, *, what: str, service: str = "compute") -> tuple[Any, str]:
        """One GET for petguard's other read-only adapters (the placement reads of the capacity
        check), with this module's error mapping and request-id logging: (JSON body, request id)."""
        response = self._call("GET", path, microversion, what=what, service=service)
        return response.json(), _request_id(response)

    def check_placement(self) -> str:
        """Ask placement whether it answers: one standard resource class, read from its database."""
        response = self._call(
            "GET", "/resource_classes/VCPU", "1.2", what="ask placement whether it answers", service="placement"
        )
        return _request_id(response)

    def get_server(self, server_id: str) -> Server:
        """One server, fresh. :raises NotFound: when Nova does not know it."""
        response = self._call("GET", f"/servers/{server_id}", MICROVERSIONS["servers"], what=f"show server {server_id}")
        raw = response.json()["server"]
        image_id = _image_id(raw)
        return _server(raw, self._image_properties(image_id) if image_id else {})

    def _image_properties(self, image_id: str) -> dict[str, str]:
        """The image's custom properties; empty when the image was deleted since the boot."""
        try:
            response = self._call("GET", f"/images/{image_id}", "", what=f"show image {image_id}", service="image")
        except NotFound:
            LOG.info("image %s is gone from Glance; its servers are treated as having no image properties", image_id)
            return {}
        return _image_properties(response.json())

    def evacuations_from(self, host: str, since: float | None = None) -> list[Migration]:
        """Migrations of type evacuation whose source is ``host`` (created at or after ``since``).

        With ``since``: ``changes-since`` filters on ``updated_at``, which is never before
        ``created_at`` but is NULL on a migration nobody touched since nova-api created it (a request
        nova-conductor never took: SQL's NULL >= T is false), so those are read by their status,
        ``accepted``, in a second listing."""
        params = {"migration_type": "evacuation", "source_compute": host}
        listings = [params]
        if since is not None:
            listings = [{**params, "changes-since": _iso(since)}, {**params, "status": "accepted"}]
        found: dict[str, Migration] = {}
        for query in listings:
            for raw in self._pages(
                "/os-migrations", query, "migrations", MICROVERSIONS["migrations"], what=f"list evacuations from {host}"
            ):
                migration = _migration(raw)
                found.setdefault(migration.id, migration)
        return [m for m in found.values() if since is None or m.created_at >= since]

    # ------------------------------------------------------------------------------------ changes

    def _update_service(self, service: ServiceRecord, body: Mapping[str, Any], what: str) -> str:
        response = self._call(
            "PUT", f"/os-services/{service.service_id}", MICROVERSIONS["services"], what=what, json=body
        )
        return _request_id(response)

    def force_down(self, service: ServiceRecord) -> str:
        """Set forced_down=true on the service. Idempotent (Nova accepts it again)."""
        return self._update_service(service, {"forced_down": True}, f"force down nova-compute on {service.host}")

    def unforce_down(self, service: ServiceRecord) -> str:
        """Set forced_down=false. Idempotent."""
        return self._update_service(service, {"forced_down": False}, f"clear forced_down of {service.host}")

    def disable(self, service: ServiceRecord, reason: str) -> str:
        """Disable the service with ``reason``. Call force_down first: against a compute Nova still
        thinks is up this blocks until the RPC timeout (60 s). Idempotent."""
        return self._update_service(
            service, {"status": "disabled", "disabled_reason": reason}, f"disable nova-compute on {service.host}"
        )

    def enable(self, service: ServiceRecord) -> str:
        """Enable the service (Nova clears the disabled reason). Idempotent."""
        return self._update_service(service, {"status": "enabled"}, f"enable nova-compute on {service.host}")

    def evacuate(self, server_id: str, host: str | None = None) -> str:
        """Ask Nova to evacuate the server: no force, microversion 2.94 (keeps the power state); with
        ``host`` the scheduler validates that host. NOT idempotent: see
        ``petguard.compute.Compute.evacuate``."""
        body: dict[str, Any] = {} if host is None else {"host": host}
        response = self._call(
            "POST",
            f"/servers/{server_id}/action",
            MICROVERSIONS["evacuate"],
            what=f"evacuate server {server_id}" + (f" to {host}" if host else ""),
            json={"evacuate": body},
        )
        return _request_id(response)

    def latest_request(self, server_id: str, action: str) -> RequestTrace | None:
        """The server's newest ``action`` request with its events: two GETs (Nova lists actions newest
        first, without events; the action's own page has them).

        :raises NotFound: the server is gone."""
        response = self._call(
            "GET",
            f"/servers/{server_id}/os-instance-actions?limit=50",
            MICROVERSIONS["actions"],
            what=f"list the requests Nova took for server {server_id}",
        )
        newest = next((a for a in response.json().get("instanceActions") or () if a.get("action") == action), None)
        if newest is None:
            return None
        response = self._call(
            "GET",
            f"/servers/{server_id}/os-instance-actions/{newest['request_id']}",
            MICROVERSIONS["actions"],
            what=f"show what Nova did with request {newest['request_id']} on server {server_id}",
        )
        return _request_trace(response.json()["instanceAction"])

    def reset_state(self, server_id: str) -> str:
        """``os-resetState`` to active: clears the task a dead request left on the server."""
        response = self._call(
            "POST",
            f"/servers/{server_id}/action",
            MICROVERSIONS["reset_state"],
            what=f"reset the state of server {server_id}",
            json={"os-resetState": {"state": "active"}},
        )
        return _request_id(response)

    def _aggregates(self) -> list[Mapping[str, Any]]:
        response = self._call("GET", "/os-aggregates", MICROVERSIONS["aggregates"], what="list host aggregates")
        return [a for a in response.json().get("aggregates") or () if isinstance(a, dict)]

    def aggregates_of(self, host: str) -> frozenset[str]:
        """The names of the host aggregates ``host`` is in (one ``GET /os-aggregates``)."""
        return frozenset(str(a.get("name")) for a in self._aggregates() if host in (a.get("hosts") or ()))

    def candidate_hosts(self, hint: TargetHint, source: str) -> list[str]:
        """Hosts for an ``aggregate:``/``az:`` hint, in name order (one listing of aggregates or
        zones, one of compute services). Free memory is not weighed: that needs placement's
        inventories and usages per host; the scheduler weighs when the hint falls back.

        :raises NotFound: Nova has no aggregate or zone of that name (a typo in a hint must not read
            as "no host is up").
        """
        if hint.kind is HintKind.AGGREGATE:
            named = [a for a in self._aggregates() if a.get("name") == hint.name]
            if not named:
                raise NotFound(f"Nova has no host aggregate named {hint.name!r}")
            members: set[str] | None = {str(h) for a in named for h in a.get("hosts") or ()}
        elif hint.kind is HintKind.AZ:
            response = self._call(
                "GET", "/os-availability-zone/detail", MICROVERSIONS["availability_zones"],
                what="list availability zones",
            )  # fmt: skip
            members = _zone_hosts(response.json().get("availabilityZoneInfo"), hint.name)
            if members is None:
                raise NotFound(
                    f"Nova lists no availability zone named {hint.name!r} "
                    "(a zone is listed only while a compute is in it)"
                )
        else:
            return []
        return usable_hosts(members, self.list_services(), source) if members else []

    def start_server(self, server_id: str) -> str:
        """Start a stopped server; a server that is already running counts as success."""
        return self._power(server_id, "os-start", _ALREADY_STARTED, "start")

    def stop_server(self, server_id: str) -> str:
        """Stop a running server; a server that is already stopped counts as success."""
        return self._power(server_id, "os-stop", _ALREADY_STOPPED, "stop")

    def reboot_server(self, server_id: str, hard: bool = True) -> str:
        """Reboot a server (hard: Nova re-creates the domain; works from active, paused, error, stopped)."""
        kind = "HARD" if hard else "SOFT"
        response = self._call(
            "POST",
            f"/servers/{server_id}/action",
            MICROVERSIONS["power"],
            what=f"{kind.lower()} reboot server {server_id}",
            json={"reboot": {"type": kind}},
        )
        return _request_id(response)

    def _power(self, server_id: str, action: str, already: str, verb: str) -> str:
        def already_done(response: _Response) -> bool:
            return response.status_code == 409 and already in _nova_message(response)

        response = self._call(
            "POST",
            f"/servers/{server_id}/action",
            MICROVERSIONS["power"],
            what=f"{verb} server {server_id}",
            json={action: None},
            accept=already_done,
        )
        return _request_id(response)

    # ------------------------------------------------------------------------------------- checks

    def max_microversion(self) -> str:
        """The highest compute microversion the cloud offers (from the version document)."""
        response = self._call("GET", "/", MICROVERSIONS["power"], what="read the compute version document")
        body = response.json()
        version: dict[str, Any] = body.get("version") or next(iter(body.get("versions") or ()), {})
        return str(version.get("version") or "")


def _mv_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def check(nova: NovaCompute) -> list[str]:
    """For ``petguard-manage config check``: authenticate, read Nova's version document and the
    compute services (which needs the admin role). Returns human-readable problems; empty = fine."""
    problems: list[str] = []
    try:
        offered = nova.max_microversion()
        if not offered:
            problems.append("Nova's version document does not say which microversions it offers")
        elif _mv_tuple(offered) < _mv_tuple(MAX_MICROVERSION):
            problems.append(
                f"Nova offers microversions up to {offered}; petguard needs {MAX_MICROVERSION} (Nova 26.0.0, Zed)"
            )
        services = nova.list_services()
        if not services:
            problems.append("Nova lists no nova-compute service: is this the right cloud/region in clouds.yaml?")
    except PetguardError as exc:
        problems.append(f"Nova ({nova.cloud or 'cloud'}): {exc}")
    return problems


def connect(cloud: str, clouds_file: str | None = None, timeout: float = 30.0) -> NovaCompute:
    """Build a ``NovaCompute`` for ``cloud`` of clouds.yaml (``clouds_file``, or the usual search
    path when None), with a keystoneauth session whose requests time out after ``timeout`` s.

    No I/O: Keystone is first asked on the first call.

    :raises ConfigError: the file or the cloud does not exist, or its auth section is incomplete.
    """
    if clouds_file:
        _check_yaml(clouds_file, cloud)
    try:
        config = openstack.config.OpenStackConfig(config_files=[clouds_file] if clouds_file else None)
        region = config.get_one(cloud=cloud, api_timeout=timeout)
        conn = openstack.connection.Connection(config=region)
    except (openstack.exceptions.SDKException, ks_exc.ClientException, OSError) as exc:
        where = clouds_file or "clouds.yaml"
        raise ConfigError(
            f"cannot load cloud {cloud!r} from {where}: {_redact(f'{type(exc).__name__}: {exc}')}",
            cloud=cloud,
            clouds_file=where,
        ) from exc
    if not isinstance(conn.session, keystoneauth1.session.Session):  # pragma: no cover - SDK invariant
        raise ConfigError(f"cloud {cloud!r}: openstacksdk did not build a keystoneauth session", cloud=cloud)
    return NovaCompute(conn, cloud=cloud)


def _check_yaml(clouds_file: str, cloud: str) -> None:
    """Refuse a clouds.yaml that others may read (it holds petguard's Keystone password: the one rule of
    ``secrets.too_open``), or that PyYAML cannot read, saying where and what, never the line (SECRET-01).

    :raises ConfigError: the file is too open or not valid YAML (one that cannot be read is left to the SDK).
    """
    try:
        with open(clouds_file, encoding="utf-8") as handle:
            problem = secrets.too_open(clouds_file, os.fstat(handle.fileno()).st_mode)
            if problem is not None:
                raise ConfigError(f"[nova] clouds_file: {problem}", cloud=cloud, clouds_file=clouds_file)
            yaml.safe_load(handle)
    except OSError:
        return
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(
            f"{clouds_file} is not valid YAML at {secrets.yaml_error(exc)}; fix the syntax there "
            "(quote a password that holds ':', '#', '*', '&', '!' or starts with a quote)",
            cloud=cloud,
            clouds_file=clouds_file,
        ) from None  # not chained: PyYAML's own text quotes the line, the password with it


if TYPE_CHECKING:  # mypy proves NovaCompute satisfies the Compute Protocol

    def _is_compute(nova: NovaCompute) -> Compute:
        return nova
