"""The HTTP API's wire shapes (v1): JSON TypedDicts, converters from the journal's records, and the
parsers of request bodies into petguard's values. Pure: no I/O, no framework.

This module is the contract between the daemon's API (``petguard.api.app``) and its clients (the
``petguard`` CLI imports it too); ``docs/api.md`` describes the same shapes for people and
``docs/openapi.json`` for tools (``petguard.api.openapi`` makes the response schemas from these
TypedDicts). All times are unix seconds (floats).

Request bodies are validated strictly against their JSON Schemas (``petguard.api.schemas``, the ones
the document publishes) by ``petguard.api.validation``: a body must be a JSON object, unknown fields
are refused, and every error says which field is wrong and what would be right (``InvalidBody``,
answered with 400). The parsers here only turn a valid body into values. The limits and the
validation helpers are re-exported under their old names (``wire.MAX_NAME``, ``wire.parse_json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from petguard.agent.events import DomainEvent, DomainState, DomainSummary, EventKind
from petguard.api import schemas
from petguard.api.schemas import (
    HOST_REQUEST_KINDS,
    LOG_LEVELS,
    MAX_AGENT_DOMAINS,
    MAX_AGENT_EVENTS,
    MAX_COUNT,
    MAX_INT_DIGITS,
    MAX_INTERVAL,
    MAX_NAME,
    MAX_REASON,
    MAX_TIME,
)
from petguard.api.validation import (
    MAX_DEPTH,
    MAX_ID,
    MAX_LIMIT,
    InvalidBody,
    check_object,
    check_text,
    choice_field,
    count_field,
    int_param,
    limit_param,
    list_field,
    number_field,
    parse_json,
    string_field,
    validate,
)
from petguard.evacuate.capacity import CapacityReport, HostVerdict
from petguard.evacuate.plan import ServerDecision
from petguard.guests.policy import AgentHeartbeat
from petguard.journal import (
    STUCK,
    AuditRecord,
    BrakeState,
    EventRecord,
    HostRecord,
    Incident,
    MoveRecord,
    RequestKind,
    RequestStatus,
    ReservedHost,
    SkipRecord,
)
from petguard.sight import Sight

API_VERSION = "v1"

#: The public names: the shapes and converters here, and the limits and validation helpers of
#: ``schemas`` and ``validation`` re-exported under the names clients and tests know (``wire.MAX_NAME``).
__all__ = [
    "API_VERSION",
    "HostJson",
    "IncidentJson",
    "EventJson",
    "MoveJson",
    "SkipJson",
    "RequestJson",
    "BrakeJson",
    "AuditJson",
    "HostDetailJson",
    "IncidentDetailJson",
    "WhatIfJson",
    "ExplainJson",
    "CapacityHostJson",
    "CapacityJson",
    "ReservedHostJson",
    "UnwatchedHostJson",
    "NovaSightJson",
    "StatusJson",
    "IgnoredAlertJson",
    "AlertsAcceptedJson",
    "AgentDomainJson",
    "AgentHeartbeatJson",
    "AgentEventJson",
    "AgentEventsJson",
    "AgentHeartbeatAcceptedJson",
    "AgentEventsAcceptedJson",
    "AgentJson",
    "ErrorDetailJson",
    "ErrorJson",
    "host_json",
    "incident_json",
    "event_json",
    "move_json",
    "waiting_text",
    "what_if_json",
    "reserved_host_json",
    "skip_json",
    "request_json",
    "brake_json",
    "capacity_host_json",
    "capacity_json",
    "nova_sight_json",
    "audit_json",
    "agent_json",
    "error_json",
    "host_request",
    "brake_override",
    "log_level",
    "agent_heartbeat",
    "agent_events",
    "HOST_REQUEST_KINDS",
    "InvalidBody",
    "LOG_LEVELS",
    "MAX_AGENT_DOMAINS",
    "MAX_AGENT_EVENTS",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_ID",
    "MAX_INTERVAL",
    "MAX_INT_DIGITS",
    "MAX_LIMIT",
    "MAX_NAME",
    "MAX_REASON",
    "MAX_TIME",
    "check_object",
    "check_text",
    "choice_field",
    "count_field",
    "int_param",
    "limit_param",
    "list_field",
    "number_field",
    "parse_json",
    "string_field",
]


# -- shapes --------------------------------------------------------------------------------------------
class HostJson(TypedDict):
    name: str
    state: str
    since: float
    incident_id: int | None
    reason: str
    verdict: str
    detail: str


class IncidentJson(TypedDict):
    id: int
    host: str
    opened_at: float
    closed_at: float | None
    reason: str
    outcome: str


class EventJson(TypedDict):
    id: int
    at: float
    host: str | None
    incident_id: int | None
    kind: str
    message: str


class MoveJson(TypedDict):
    server_id: str
    server_name: str
    priority: int
    power_goal: str
    status: str
    source_host: str
    dest_host: str | None
    attempts: int
    reason: str
    request_id: str | None
    updated_at: float
    target_hint: str  # "aggregate:NAME" | "az:NAME" | "reserved" | "" (the scheduler's choice)
    target_hint_source: str  # which rule gave the hint
    target_hint_note: str  # why a hint that was asked for is not followed
    target_host: str | None  # the host asked for
    fell_back: bool  # the hint could not be met: the scheduler chose
    waiting: str  # why the move waits for the cloud; "stuck: ..." when Nova took it and never started it; "" neither
    waiting_since: float | None  # when the wait began
    waiting_until: float | None  # when a wait for the cloud fails the move; null: not waiting, stuck, or not known
    resend_vouched_at: float | None  # when an operator's host resend vouched for its stuck request; null: not


class SkipJson(TypedDict):
    server_id: str
    server_name: str
    reason: str


class RequestJson(TypedDict):
    id: int
    host: str
    kind: str
    reason: str
    requested_by: str
    requested_at: float
    status: str  # "pending" | "done" | "refused"
    message: str
    finished_at: float | None


class BrakeJson(TypedDict):
    engaged: bool
    reason: str
    since: float | None
    override_until: float | None


class AuditJson(TypedDict):
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    result: str
    detail: str


class HostDetailJson(TypedDict):
    host: HostJson
    incident: IncidentJson | None
    events: list[EventJson]
    moves: list[MoveJson]
    skips: list[SkipJson]


class IncidentDetailJson(TypedDict):
    incident: IncidentJson
    events: list[EventJson]
    moves: list[MoveJson]
    skips: list[SkipJson]


class WhatIfJson(TypedDict):
    server_id: str
    server_name: str
    decision: str  # "evacuate" | "stay"
    reason: str
    classes: list[str]  # boot_from_volume | shared_disk | local_disk | devices
    group: str | None  # the server group's id
    group_policy: str | None  # affinity | anti-affinity | soft-affinity | soft-anti-affinity
    tier: int
    priority: int
    wave: int | None
    target_hint: str  # "aggregate:NAME" | "az:NAME" | "reserved" | "" (the scheduler's choice)
    target_hint_source: str  # which rule gave the hint
    target_hint_note: str  # why a hint that was asked for would not be followed


class ExplainJson(TypedDict):
    subject: str  # "host" | "server"
    name: str
    state: str
    lines: list[str]
    if_failed: list[WhatIfJson]  # a host with no open incident: a dry run of its evacuation


class CapacityHostJson(TypedDict):
    host: str
    pets: int
    vcpu: int  # the pets' resources in all, as placement counts them
    memory_mb: int
    disk_gb: int
    ok: bool  # the pets would all find room on the other hosts (and the reserved hosts)
    missing: dict[str, int]  # resource class (VCPU, MEMORY_MB, DISK_GB) -> amount missing
    unplaced: list[str]  # the pets that would find no room
    summary: str


class CapacityJson(TypedDict):
    verdict: str  # "ok" | "short" | "unknown"
    checked_at: float | None  # null: not checked yet (or not on this controller)
    summary: str  # one line: the verdict and what is short, or why unknown
    worst: CapacityHostJson | None  # the host with the most pet resources
    short: list[CapacityHostJson]  # the hosts whose pets would not fit elsewhere
    not_counted: dict[str, str]  # host -> why its room is not counted (down, disabled, maintenance ...)


class ReservedHostJson(TypedDict):
    host: str
    state: str  # idle | borrowing | borrowed | returning
    incident_id: int | None


class UnwatchedHostJson(TypedDict):
    host: str
    state: str  # its last known lifecycle state
    incident_id: int | None


class NovaSightJson(TypedDict):
    """This controller's view of Nova (``petguard.sight``; docs/operations.md, "When petguard is blind")."""

    readable: bool | None  # the last reading succeeded; None: not read yet (a follower does not read)
    blind: bool  # [detection] blind_after failed readings in a row
    failed_readings: int  # in a row
    since: float | None  # the first of them
    last_read: float | None  # the last good reading
    reason: str  # why the latest failed (redacted)
    summary: str  # one line: "blind since ...: reason; hosts not watched: ..."
    unwatched: list[UnwatchedHostJson]  # while blind: every host of the last good reading


class StatusJson(TypedDict):
    version: str
    leader: bool
    brake: BrakeJson
    last_tick: float | None
    tick_ok: bool
    dry_run: bool
    fence_readiness: dict[str, str]
    log_level: str
    capacity: CapacityJson
    reserved_hosts: list[ReservedHostJson]
    nova: NovaSightJson


class IgnoredAlertJson(TypedDict):
    index: int
    reason: str


class AlertsAcceptedJson(TypedDict):
    accepted: int
    ignored: list[IgnoredAlertJson]


class AgentDomainJson(TypedDict):
    uuid: str  # the Nova instance UUID
    name: str
    state: str  # petguard.agent.events.DomainState


class AgentHeartbeatJson(TypedDict):
    """``POST /v1/agent/heartbeat`` (sent by petguard-agent every few seconds)."""

    host: str
    sent_at: float
    interval: float
    libvirt_connected: bool
    domains: list[AgentDomainJson]
    buffered: int
    dropped: int
    version: str


class AgentEventJson(TypedDict):
    id: str  # unique per agent: a batch sent twice is stored once
    at: float
    domain_uuid: str
    domain_name: str
    kind: str  # watchdog | lifecycle | reboot | state
    detail: str


class AgentEventsJson(TypedDict):
    """``POST /v1/agent/events``."""

    host: str
    events: list[AgentEventJson]


class AgentHeartbeatAcceptedJson(TypedDict):
    host: str
    received_at: float


class AgentEventsAcceptedJson(TypedDict):
    accepted: int
    duplicates: int


class AgentJson(TypedDict):
    host: str
    sender: str
    last_heartbeat: float
    interval: float
    libvirt_connected: bool
    domains: list[AgentDomainJson]
    buffered: int
    dropped: int
    version: str


class ErrorDetailJson(TypedDict):
    code: int
    title: str
    message: str


class ErrorJson(TypedDict):
    error: ErrorDetailJson


# -- converters ----------------------------------------------------------------------------------------
def host_json(record: HostRecord) -> HostJson:
    host, health = record.host, record.health
    return {
        "name": host.name,
        "state": host.state.value,
        "since": host.since,
        "incident_id": host.incident_id,
        "reason": host.reason,
        "verdict": health.verdict.value,
        "detail": health.detail,
    }


def incident_json(incident: Incident) -> IncidentJson:
    return {
        "id": incident.id,
        "host": incident.host,
        "opened_at": incident.opened_at,
        "closed_at": incident.closed_at,
        "reason": incident.reason,
        "outcome": incident.outcome,
    }


def event_json(event: EventRecord) -> EventJson:
    return {
        "id": event.id,
        "at": event.at,
        "host": event.host,
        "incident_id": event.incident_id,
        "kind": event.kind,
        "message": event.message,
    }


def move_json(move: MoveRecord, cloud_wait_timeout: float | None = None) -> MoveJson:
    """``cloud_wait_timeout`` (``[evacuation] cloud_wait_timeout``) says when a wait gives up; None: not said."""
    return {
        "server_id": move.server_id,
        "server_name": move.server_name,
        "priority": move.priority,
        "power_goal": move.power_goal.value,
        "status": move.status.value,
        "source_host": move.source_host,
        "dest_host": move.dest_host,
        "attempts": move.attempts,
        "reason": move.reason,
        "request_id": move.request_id,
        "updated_at": move.updated_at,
        "target_hint": move.hint,
        "target_hint_source": move.hint_source,
        "target_hint_note": move.hint_note,
        "target_host": move.target_host,
        "fell_back": move.fell_back,
        "waiting": move.waiting,
        "waiting_since": move.waiting_since,
        "waiting_until": move.gives_up_at(cloud_wait_timeout) if cloud_wait_timeout is not None else None,
        "resend_vouched_at": move.resend_vouched_at,
    }


def waiting_text(
    waiting: str,
    since: float | None,
    until: float | None,
    when: Callable[[float], str],
    vouched: float | None = None,
) -> str:
    """How a move's wait reads for people (``host show``, ``incident show``, ``explain``; docs/cli.md):
    ``waiting for the cloud: REASON (since T, gives up after T)``, or for a request Nova took and never
    started ``stuck: ... (since T; ...)``, saying when an operator's ``host resend`` vouched for it;
    "" when the move waits for nothing. ``when`` formats a time."""
    if not waiting:
        return ""
    began = f"since {when(since)}" if since is not None else "since an unknown time"
    if waiting.startswith(STUCK) and vouched is not None:
        return f"{waiting} ({began}; resend vouched for at {when(vouched)}: sent again once Nova's records allow it)"
    if waiting.startswith(STUCK):
        return f"{waiting} ({began}; the evacuation_stuck event says what to do)"
    deadline = f", gives up after {when(until)}" if until is not None else ""
    return f"waiting for the cloud: {waiting} ({began}{deadline})"


def what_if_json(row: ServerDecision) -> WhatIfJson:
    return {
        "server_id": row.server_id,
        "server_name": row.server_name,
        "decision": "evacuate" if row.evacuate else "stay",
        "reason": row.reason,
        "classes": [c.value for c in row.classes],
        "group": row.group.id if row.group else None,
        "group_policy": row.group.policy.value if row.group else None,
        "tier": row.tier,
        "priority": row.priority,
        "wave": row.wave,
        "target_hint": row.hint,
        "target_hint_source": row.hint_source,
        "target_hint_note": row.hint_note,
    }


def reserved_host_json(row: ReservedHost) -> ReservedHostJson:
    return {"host": row.host, "state": row.state.value, "incident_id": row.incident_id}


def skip_json(skip: SkipRecord) -> SkipJson:
    return {"server_id": skip.server_id, "server_name": skip.server_name, "reason": skip.reason}


def request_json(status: RequestStatus) -> RequestJson:
    request = status.request
    return {
        "id": request.id,
        "host": request.host,
        "kind": request.kind.value,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "status": status.status,
        "message": status.message,
        "finished_at": status.finished_at,
    }


def brake_json(brake: BrakeState) -> BrakeJson:
    return {
        "engaged": brake.engaged,
        "reason": brake.reason,
        "since": brake.since,
        "override_until": brake.override_until,
    }


def capacity_host_json(host: HostVerdict) -> CapacityHostJson:
    return {
        "host": host.host,
        "pets": host.pets,
        "vcpu": host.need.vcpu,
        "memory_mb": host.need.memory_mb,
        "disk_gb": host.need.disk_gb,
        "ok": host.ok,
        "missing": dict(host.missing),
        "unplaced": list(host.unplaced),
        "summary": host.summary(),
    }


def capacity_json(report: CapacityReport) -> CapacityJson:
    return {
        "verdict": report.verdict.value,
        "checked_at": report.checked_at,
        "summary": report.summary(),
        "worst": capacity_host_json(report.worst) if report.worst is not None else None,
        "short": [capacity_host_json(h) for h in report.short],
        "not_counted": dict(report.not_counted),
    }


def nova_sight_json(sight: Sight, now: float) -> NovaSightJson:
    summary = sight.describe(now)
    if sight.blind:
        summary += f"; hosts not watched: {sight.unwatched_text()}"
    return {
        "readable": sight.readable,
        "blind": sight.blind,
        "failed_readings": sight.failures,
        "since": sight.since,
        "last_read": sight.last_read,
        "reason": sight.reason,
        "summary": summary,
        "unwatched": [
            {"host": h.name, "state": h.state.value, "incident_id": h.incident_id} for h in sight.unwatched
        ],
    }


def audit_json(entry: AuditRecord) -> AuditJson:
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "result": entry.result,
        "detail": entry.detail,
    }


def agent_json(beat: AgentHeartbeat) -> AgentJson:
    return {
        "host": beat.host,
        "sender": beat.sender,
        "last_heartbeat": beat.at,
        "interval": beat.interval,
        "libvirt_connected": beat.libvirt_connected,
        "domains": [{"uuid": d.uuid, "name": d.name, "state": d.state.value} for d in beat.domains],
        "buffered": beat.buffered,
        "dropped": beat.dropped,
        "version": beat.version,
    }


def error_json(code: int, title: str, message: str) -> ErrorJson:
    return {"error": {"code": code, "title": title, "message": message}}


# -- request bodies ------------------------------------------------------------------------------------
def host_request(body: Any) -> tuple[RequestKind, str]:
    """``POST /v1/hosts/{name}/requests``: the request kind and the operator's reason."""
    body = validate(body, schemas.HOST_REQUEST)
    return RequestKind(body["kind"]), body["reason"]


def brake_override(body: Any) -> str:
    """``POST /v1/brake/override``: the operator's reason."""
    return str(validate(body, schemas.BRAKE_OVERRIDE)["reason"])


def log_level(body: Any) -> str:
    """``PUT /v1/log-level``: one of ``LOG_LEVELS`` (case-insensitive on input, upper case out)."""
    return str(validate(body, schemas.LOG_LEVEL_BODY)["level"]).upper()


def agent_heartbeat(body: Any, sender: str, received_at: float) -> AgentHeartbeat:
    """``POST /v1/agent/heartbeat``: the heartbeat, stamped with the controller's time."""
    body = validate(body, schemas.AGENT_HEARTBEAT)
    return AgentHeartbeat(
        host=body["host"],
        sender=sender,
        at=received_at,
        sent_at=float(body["sent_at"]),
        interval=float(body["interval"]),
        libvirt_connected=body["libvirt_connected"],
        domains=tuple(DomainSummary(d["uuid"], d["name"], DomainState(d["state"])) for d in body["domains"]),
        # 7.0 is the integer 7, as JSON Schema counts integers
        buffered=int(body.get("buffered", 0)),
        dropped=int(body.get("dropped", 0)),
        version=body.get("version", ""),
    )


def agent_events(body: Any) -> tuple[str, list[DomainEvent]]:
    """``POST /v1/agent/events``: the host and its events (kinds and details checked)."""
    body = validate(body, schemas.AGENT_EVENTS)
    events = [
        DomainEvent(
            id=item["id"],
            at=float(item["at"]),
            domain_uuid=item["domain_uuid"],
            domain_name=item["domain_name"],
            kind=EventKind(item["kind"]),
            detail=item["detail"],
        )
        for item in body["events"]
    ]
    return body["host"], events
