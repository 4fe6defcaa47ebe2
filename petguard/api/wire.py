"""The HTTP API's wire shapes (v1): JSON TypedDicts, converters from the journal's records, and
request-body validation. Pure: no I/O, no framework.

This module is the whole contract between the daemon's API (``petguard.api.app``) and its clients
(the ``petguard`` CLI imports it too); ``docs/api.md`` describes the same shapes for people and
``docs/openapi.json`` for tools. All times are unix seconds (floats).

Request bodies are validated strictly: a body must be a JSON object, unknown fields are refused, and
every error says which field is wrong and what would be right (``InvalidBody``, answered with 400).
Before any field is looked at, ``parse_json`` refuses what JSON or the journal cannot hold: NaN and
Infinity, numbers that overflow a float, integers of more than ``MAX_INT_DIGITS`` digits, nesting
deeper than ``MAX_DEPTH``, and strings with NUL or lone surrogates (no database stores them). Numbers
must be finite and integers fit the journal's 64-bit columns (``number_field``, ``count_field``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from petguard.agent.events import DETAILS as AGENT_DETAILS
from petguard.agent.events import DomainEvent, DomainState, DomainSummary, EventKind
from petguard.errors import Permanent
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
#: Longest accepted ``reason`` text, in characters.
MAX_REASON = 1000
#: The ``limit`` query parameter's bounds.
MAX_LIMIT = 1000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Request kinds a client may ask for on ``/v1/hosts/{name}/requests`` (the brake has its own path).
HOST_REQUEST_KINDS = tuple(k.value for k in RequestKind if k is not RequestKind.BRAKE_OVERRIDE)


class InvalidBody(Permanent):
    """A request body or query parameter is not what the API accepts (answered with 400)."""


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
    }


def waiting_text(waiting: str, since: float | None, until: float | None, when: Callable[[float], str]) -> str:
    """How a move's wait reads for people (``host show``, ``incident show``, ``explain``; docs/cli.md):
    ``waiting for the cloud: REASON (since T, gives up after T)``, or for a request Nova took and never
    started ``stuck: ... (since T; ...)``; "" when the move waits for nothing. ``when`` formats a time."""
    if not waiting:
        return ""
    began = f"since {when(since)}" if since is not None else "since an unknown time"
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
#: Longest integer literal accepted (Python refuses more than 4300 digits with a ValueError, and
#: converting long ones is slow); every integer petguard accepts fits in 19 digits.
MAX_INT_DIGITS = 20
#: Deepest nesting of arrays and objects accepted (petguard's bodies nest 4 deep at most).
MAX_DEPTH = 32


def parse_json(raw: bytes) -> Any:
    """The JSON value of a request body, with only finite numbers, bounded integers, shallow nesting
    and strings every database can store.

    :raises InvalidBody: not UTF-8 JSON (the message says where it breaks), or a value JSON or the
        journal cannot hold (the message says which).
    """
    if not raw.strip():
        raise InvalidBody("the request body is empty: send a JSON object (Content-Type: application/json)")
    _check_depth(raw)
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except UnicodeDecodeError as exc:
        raise InvalidBody("the request body is not UTF-8 text: send a JSON object") from exc
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidBody(f"the request body is not valid JSON ({where}): send a JSON object") from exc
    except RecursionError:
        raise InvalidBody(f"the request body nests arrays or objects too deeply: at most {MAX_DEPTH} levels") from None
    _check_values(value)
    return value


#: The tokens that matter to nesting, left to right in one pass: a JSON string (escapes included; an
#: unterminated one runs to the end, so no quote is scanned twice) or a bracket.
_NESTING_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*+"?|[\[\]{}]', re.DOTALL)


def _check_depth(raw: bytes) -> None:
    """Refuse deep nesting before the parser sees it: a RecursionError inside the C parser leaves
    CPython 3.11's recursion accounting wrong (a later ``ast.parse`` fails with "AST constructor
    recursion depth mismatch"), so the parser must never get that deep.

    :raises InvalidBody:
    """
    depth = 0
    for token in _NESTING_TOKENS.findall(raw):
        if token[:1] == b'"':
            continue
        depth += 1 if token in (b"[", b"{") else -1
        if depth > MAX_DEPTH:
            raise InvalidBody(f"the request body nests arrays or objects too deeply: at most {MAX_DEPTH} levels")


def _no_constant(name: str) -> Any:
    raise InvalidBody(f"the request body holds {name}, which is not a JSON number: send finite numbers only")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidBody(f"the number {text[:32]} in the request body is too large: send finite numbers only")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidBody(
            f"an integer in the request body has {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are accepted"
        )
    return int(text)


def _check_values(value: Any) -> None:
    """Walk a parsed body (without recursion): depth, and every key and string storable.

    :raises InvalidBody:
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, "a string in the request body")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidBody(f"the request body nests arrays or objects too deeply: at most {MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def check_text(value: str, label: str) -> str:
    """``value`` if every database can store it. :raises InvalidBody: NUL, or a lone UTF-16 surrogate."""
    if "\x00" in value:
        raise InvalidBody(f"{label} holds a NUL character (\\u0000): remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidBody(f"{label} holds a lone UTF-16 surrogate (\\ud800-\\udfff): send valid Unicode") from None
    return value


def check_object(
    body: Any, required: Sequence[str], optional: Sequence[str] = (), what: str = "the body"
) -> dict[str, Any]:
    """``body`` as a dict with exactly the allowed fields.

    :raises InvalidBody: not an object, a required field missing, or an unknown field.
    """
    if not isinstance(body, dict):
        raise InvalidBody(f"{what} must be a JSON object, not {_json_type(body)}")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(list(required) + list(optional))
        raise InvalidBody(f"unknown field(s) in {what}: {', '.join(unknown)}; allowed: {allowed}")
    missing = [name for name in required if name not in body]
    if missing:
        raise InvalidBody(f"missing field(s) in {what}: {', '.join(missing)}")
    return body


def string_field(body: Mapping[str, Any], name: str, *, max_length: int = MAX_REASON, what: str = "") -> str:
    """A string field of ``body``; :raises InvalidBody: not a string, or too long."""
    value = body[name]
    label = f"{what}{name}"
    if not isinstance(value, str):
        raise InvalidBody(f"field {label!r} must be a string, not {_json_type(value)}")
    if len(value) > max_length:
        raise InvalidBody(f"field {label!r} is {len(value)} characters long; at most {max_length} are accepted")
    return check_text(value, f"field {label!r}")


def choice_field(body: Mapping[str, Any], name: str, choices: Sequence[str], what: str = "") -> str:
    """A string field that must be one of ``choices``; :raises InvalidBody:"""
    value = string_field(body, name, max_length=64, what=what)
    if value not in choices:
        raise InvalidBody(f"field {what}{name!r} is {value!r}; expected one of: {', '.join(choices)}")
    return value


def host_request(body: Any) -> tuple[RequestKind, str]:
    """``POST /v1/hosts/{name}/requests``: the request kind and the operator's reason."""
    body = check_object(body, required=("kind", "reason"))
    kind = RequestKind(choice_field(body, "kind", HOST_REQUEST_KINDS))
    return kind, string_field(body, "reason")


def brake_override(body: Any) -> str:
    """``POST /v1/brake/override``: the operator's reason."""
    return string_field(check_object(body, required=("reason",)), "reason")


def log_level(body: Any) -> str:
    """``PUT /v1/log-level``: one of ``LOG_LEVELS`` (case-insensitive on input, upper case out)."""
    body = check_object(body, required=("level",))
    value = string_field(body, "level", max_length=16)
    if value.upper() not in LOG_LEVELS:
        raise InvalidBody(f"field 'level' is {value!r}; expected one of: {', '.join(LOG_LEVELS)}")
    return value.upper()


#: Most domains in one heartbeat, and most events in one ``POST /v1/agent/events``.
MAX_AGENT_DOMAINS = 10000
MAX_AGENT_EVENTS = 1000
#: Longest host name, domain name or event id accepted from an agent.
MAX_NAME = 255


#: Latest time accepted from an agent (9999-12-31T23:59:59Z), in unix seconds.
MAX_TIME = 253402300799.0
#: Longest heartbeat interval accepted, in seconds (the agent allows 120).
MAX_INTERVAL = 86400.0
#: Largest count accepted (``buffered``, ``dropped``): fits every database's integer column.
MAX_COUNT = 2**31 - 1


def number_field(
    body: Mapping[str, Any], name: str, what: str = "", *, low: float = 0.0, high: float = MAX_TIME
) -> float:
    """A finite number field of ``body`` from ``low`` to ``high``; :raises InvalidBody:"""
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidBody(f"field {what}{name!r} must be a number, not {_json_type(value)}")
    number = float(value)  # parse_json bounds integers to MAX_INT_DIGITS: this cannot overflow
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidBody(f"field {what}{name!r} must be a number from {low:g} to {high:g}, not {_short(value)}")
    return number


def count_field(body: Mapping[str, Any], name: str) -> int:
    """A non-negative integer field, at most ``MAX_COUNT``; :raises InvalidBody:

    ``7.0`` is the integer 7, as JSON Schema (and so docs/openapi.json) counts integers."""
    value = body[name]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidBody(f"field {name!r} must be an integer from 0 to {MAX_COUNT}, not {_short(body[name])}")
    return value


def _short(value: Any) -> str:
    """A value for an error message, cut short (a 20-digit integer or a long string is not echoed whole)."""
    text = repr(value) if not isinstance(value, dict | list) else _json_type(value)
    return text if len(text) <= 24 else text[:20] + "..."


def list_field(body: Mapping[str, Any], name: str, max_items: int) -> list[Any]:
    """An array field with at most ``max_items`` items; :raises InvalidBody:"""
    value = body[name]
    if not isinstance(value, list):
        raise InvalidBody(f"field {name!r} must be an array, not {_json_type(value)}")
    if len(value) > max_items:
        raise InvalidBody(f"field {name!r} has {len(value)} items; at most {max_items} are accepted: send several")
    return value


def agent_heartbeat(body: Any, sender: str, received_at: float) -> AgentHeartbeat:
    """``POST /v1/agent/heartbeat``: the heartbeat, stamped with the controller's time."""
    fields = ("host", "sent_at", "interval", "libvirt_connected", "domains", "buffered", "dropped", "version")
    body = check_object(body, required=fields[:5], optional=fields[5:])
    connected = body["libvirt_connected"]
    if not isinstance(connected, bool):
        raise InvalidBody(f"field 'libvirt_connected' must be a boolean, not {_json_type(connected)}")
    domains = []
    for index, raw in enumerate(list_field(body, "domains", MAX_AGENT_DOMAINS)):
        where = f"domains[{index}]."
        item = check_object(raw, required=("uuid", "name", "state"), what=f"domains[{index}]")
        state = choice_field(item, "state", [s.value for s in DomainState], what=where)
        uuid = string_field(item, "uuid", max_length=64, what=where)
        name = string_field(item, "name", max_length=MAX_NAME, what=where)
        domains.append(DomainSummary(uuid, name, DomainState(state)))
    return AgentHeartbeat(
        host=_host_field(body),
        sender=sender,
        at=received_at,
        sent_at=number_field(body, "sent_at"),
        interval=number_field(body, "interval", low=0.001, high=MAX_INTERVAL),
        libvirt_connected=connected,
        domains=tuple(domains),
        buffered=count_field(body, "buffered") if "buffered" in body else 0,
        dropped=count_field(body, "dropped") if "dropped" in body else 0,
        version=string_field(body, "version", max_length=64) if "version" in body else "",
    )


def agent_events(body: Any) -> tuple[str, list[DomainEvent]]:
    """``POST /v1/agent/events``: the host and its events (kinds and details checked)."""
    body = check_object(body, required=("host", "events"))
    events = []
    for index, raw in enumerate(list_field(body, "events", MAX_AGENT_EVENTS)):
        where = f"events[{index}]."
        item = check_object(
            raw, required=("id", "at", "domain_uuid", "domain_name", "kind", "detail"), what=f"events[{index}]"
        )
        kind = EventKind(choice_field(item, "kind", [k.value for k in EventKind], what=where))
        detail = string_field(item, "detail", max_length=64, what=where)
        if detail not in AGENT_DETAILS[kind]:
            raise InvalidBody(f"field {where}'detail' is {detail!r}, not a detail of a {kind.value} event")
        events.append(
            DomainEvent(
                id=string_field(item, "id", max_length=MAX_NAME, what=where),
                at=number_field(item, "at", what=where),
                domain_uuid=string_field(item, "domain_uuid", max_length=64, what=where),
                domain_name=string_field(item, "domain_name", max_length=MAX_NAME, what=where),
                kind=kind,
                detail=detail,
            )
        )
    return _host_field(body), events


def _host_field(body: Mapping[str, Any]) -> str:
    host = string_field(body, "host", max_length=MAX_NAME)
    if not host.strip():
        raise InvalidBody("field 'host' is empty: send the compute host's name as Nova names it")
    return host


def limit_param(value: str | None, default: int) -> int:
    """The ``limit`` query parameter: an integer from 1 to ``MAX_LIMIT``."""
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        raise InvalidBody(f"query parameter 'limit' must be an integer, not {value!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidBody(f"query parameter 'limit' must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


#: Ids are 64-bit signed integers in every database petguard supports.
MAX_ID = 2**63 - 1


def int_param(name: str, value: str | None) -> int | None:
    """An optional integer query parameter (an id, 1 .. 2**63-1)."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidBody(f"query parameter {name!r} must be an integer id, not {value!r}") from None
    if not 1 <= number <= MAX_ID:
        raise InvalidBody(f"query parameter {name!r} must be an id between 1 and {MAX_ID}, not {number}")
    return number


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__
