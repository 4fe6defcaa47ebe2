"""The API's request bodies as JSON Schema (2020-12), defined once, and the limits they state (pure).

These dicts are both what the server validates a request body against (``petguard.api.validation``,
called by the body parsers of ``petguard.api.wire``) and what ``docs/openapi.json`` publishes
(``petguard.api.openapi`` embeds them as components), so the document and the server cannot disagree
on a field, a type or a limit. ``tests/unit/api/test_api_schema_drift.py`` probes both anyway.

Only standard keywords are used. Two habits keep the server's error messages precise: a choice of a
fixed set is an ``enum`` (the message lists it); a rule that is a ``pattern`` carries a
``description`` that says, to the client, what would be right (the message quotes it).
"""

from __future__ import annotations

from typing import Any

from petguard.agent.events import DETAILS as AGENT_DETAILS
from petguard.agent.events import DomainState, EventKind
from petguard.journal import RequestKind

#: Longest accepted ``reason`` text, in characters.
MAX_REASON = 1000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Request kinds a client may ask for on ``/v1/hosts/{name}/requests`` (the brake has its own path).
HOST_REQUEST_KINDS = tuple(k.value for k in RequestKind if k is not RequestKind.BRAKE_OVERRIDE)
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
#: Most alerts in one ``POST /v1/alerts``.
MAX_ALERTS = 1000
STATUSES = ("firing", "resolved")
#: Longest integer literal accepted anywhere in a body (``validation.parse_json``): every integer
#: petguard accepts fits in 19 digits.
MAX_INT_DIGITS = 20

Schema = dict[str, Any]


def obj(properties: Schema, required: list[str] | None = None) -> Schema:
    """A closed object: unknown fields are refused; every field is required unless ``required`` says."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def text(max_length: int) -> Schema:
    return {"type": "string", "maxLength": max_length}


def number(low: float, high: float) -> Schema:
    return {"type": "number", "minimum": low, "maximum": high}


def choice(values: Any) -> Schema:
    return {"type": "string", "enum": list(values)}


#: Not blank as Python's ``str.strip`` sees it: U+001C..U+001F are whitespace there, not in Unicode's \s.
NOT_BLANK = r"[^\s\u001c-\u001f]"
#: A compute host's name as an agent sends it: not blank.
HOST_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME,
    "pattern": NOT_BLANK,
    "description": "send the compute host's name as Nova names it",
}
COUNT: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
#: A log level in any letter case (``wire.log_level`` upper-cases it): JSON Schema's regular
#: expressions have no case-insensitive flag, so each letter is a class of both cases.
LOG_LEVEL: Schema = {
    "type": "string",
    "maxLength": 16,
    "description": f"expected one of: {', '.join(LOG_LEVELS)} (in any letter case)",
    "pattern": "^(?:" + "|".join("".join(f"[{c}{c.lower()}]" for c in level) for level in LOG_LEVELS) + ")$",
}
#: An agent's domain event; its detail must be one of its kind's (the ``if``/``then`` per kind).
AGENT_EVENT: Schema = {
    **obj(
        {
            "id": text(MAX_NAME),
            "at": number(0, MAX_TIME),
            "domain_uuid": text(64),
            "domain_name": text(MAX_NAME),
            "kind": choice(k.value for k in EventKind),
            "detail": text(64),
        }
    ),
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": kind.value}}, "required": ["kind"]},
            "then": {"properties": {"detail": {"enum": sorted(AGENT_DETAILS[kind])}}},
        }
        for kind in EventKind
    ],
}

#: Any JSON value in the free-form parts of a body, at any depth: parse_json refuses integers of more
#: than MAX_INT_DIGITS digits (and NaN, Infinity, nesting deeper than MAX_DEPTH) anywhere in a body.
#: Recursive, so published as its own component (``JsonValue``) and referred to.
BIGGEST_INT = 10**MAX_INT_DIGITS - 1
JSON_VALUE: Schema = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE_COMPONENT: Schema = {
    "anyOf": [
        {"type": ["string", "boolean", "null"]},
        {"type": "array", "items": JSON_VALUE},
        {"type": "object", "additionalProperties": JSON_VALUE},
        {"type": "integer", "minimum": -BIGGEST_INT, "maximum": BIGGEST_INT},
        {"type": "number", "not": {"type": "integer"}},
    ]
}
STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
#: RFC 3339 with a time zone, in upper case (``T``, ``Z``: as Alertmanager sends it; Python 3.11's
#: ``datetime.fromisoformat`` refuses ``t`` and ``z``); empty, null or Go's zero time (year 1) mean "not set".
ALERT_TIME: Schema = {
    "anyOf": [{"type": "string", "format": "date-time", "pattern": "^[^a-z]*$"}, {"const": ""}, {"type": "null"}]
}
ALERTMANAGER_ALERT: Schema = {
    "type": "object",
    "properties": {
        "status": choice(STATUSES),
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
        "startsAt": ALERT_TIME,
        "endsAt": ALERT_TIME,
        # null: petguard makes one from the labels
        "fingerprint": {"type": ["string", "null"], "minLength": 1},
    },
    "additionalProperties": JSON_VALUE,
}
PLAIN_ALERT: Schema = obj(
    {
        "host": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NOT_BLANK},
        "kind": text(255),
        "status": choice(STATUSES),
        "summary": text(MAX_REASON),
    },
    required=["host", "kind", "status"],
)

HOST_REQUEST: Schema = obj({"kind": choice(HOST_REQUEST_KINDS), "reason": text(MAX_REASON)})
BRAKE_OVERRIDE: Schema = obj({"reason": text(MAX_REASON)})
LOG_LEVEL_BODY: Schema = obj({"level": LOG_LEVEL})
AGENT_HEARTBEAT: Schema = obj(
    {
        "host": HOST_NAME,
        "sent_at": number(0, MAX_TIME),
        "interval": number(0.001, MAX_INTERVAL),
        "libvirt_connected": {"type": "boolean"},
        "domains": {
            "type": "array",
            "maxItems": MAX_AGENT_DOMAINS,
            "items": obj({"uuid": text(64), "name": text(MAX_NAME), "state": choice(s.value for s in DomainState)}),
        },
        "buffered": COUNT,
        "dropped": COUNT,
        "version": text(64),
    },
    required=["host", "sent_at", "interval", "libvirt_connected", "domains"],
)
AGENT_EVENTS: Schema = obj(
    {"host": HOST_NAME, "events": {"type": "array", "maxItems": MAX_AGENT_EVENTS, "items": AGENT_EVENT}}
)
#: Parsed by ``petguard.api.alerts`` (which keeps its own checks); published for clients (its
#: ``$ref`` to ``JsonValue`` resolves in the OpenAPI document).
ALERTS: Schema = {
    "description": "Alertmanager's webhook payload (version 4; other fields are ignored), or the plain "
    'form {"alerts": [{"host", "kind", "status", "summary"?}]}. An alert without a host label is '
    "ignored with a reason; anything else malformed refuses the whole payload.",
    "oneOf": [
        {
            "type": "object",
            "required": ["version", "alerts"],
            "properties": {
                "version": {"const": "4"},
                "alerts": {"type": "array", "maxItems": MAX_ALERTS, "items": ALERTMANAGER_ALERT},
            },
            "additionalProperties": JSON_VALUE,
        },
        obj({"alerts": {"type": "array", "maxItems": MAX_ALERTS, "items": PLAIN_ALERT}}),
    ],
}

#: Request bodies by their name in the OpenAPI document.
REQUEST_BODIES: dict[str, Schema] = {
    "HostRequestBody": HOST_REQUEST,
    "BrakeOverrideBody": BRAKE_OVERRIDE,
    "LogLevelBody": LOG_LEVEL_BODY,
    "AlertsBody": ALERTS,
    "AgentHeartbeatBody": AGENT_HEARTBEAT,
    "AgentEventsBody": AGENT_EVENTS,
    "JsonValue": JSON_VALUE_COMPONENT,
}
