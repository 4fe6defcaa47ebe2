"""The OpenAPI document against the code: every request body the API validates is accepted by the
server exactly when ``docs/openapi.json`` says it is valid, and every converter's answer is valid
against the documented response schema.

The probes are made from the documented schema itself: from a valid body, every field is dropped,
given a value of every JSON type, pushed to and past each limit (``maxLength``, ``minLength``,
``minimum``, ``maximum``, ``maxItems``), given a value outside its enum, in another letter case, or
blank; and an unknown field is added to every object. A probe on which the document and the server
disagree is drift; the test lists them all.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from petguard.agent.events import DomainState, DomainSummary
from petguard.api import alerts, wire
from petguard.api.wire import InvalidBody
from petguard.cloud import PowerGoal
from petguard.detect import HostHealth, Verdict
from petguard.guests.policy import AgentHeartbeat
from petguard.hosts import Host, HostState
from petguard.journal import (
    AuditRecord,
    BrakeState,
    EventRecord,
    HostRecord,
    Incident,
    MoveRecord,
    MoveStatus,
    OperatorRequest,
    RequestKind,
    RequestStatus,
    SkipRecord,
)
from petguard.sight import Sight

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]

Parser = Callable[[Any], object]

HEARTBEAT = {
    "host": "cmp1",
    "sent_at": 100.0,
    "interval": 5.0,
    "libvirt_connected": True,
    "domains": [{"uuid": "u-1", "name": "db", "state": "running"}],
    "buffered": 0,
    "dropped": 0,
    "version": "0.1.0",
}
EVENTS = {
    "host": "cmp1",
    "events": [
        {"id": "e1", "at": 100.0, "domain_uuid": "u-1", "domain_name": "db", "kind": "watchdog", "detail": "reset"}
    ],
}
ALERTMANAGER = {
    "version": "4",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "NodeDown", "instance": "cmp1:9100"},
            "annotations": {"summary": "down"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "abc",
            "generatorURL": {"free": ["form", 1]},
        }
    ],
}
PLAIN = {"alerts": [{"host": "cmp1", "kind": "node_down", "status": "firing", "summary": "down"}]}


def _alerts(body: Any) -> object:
    return alerts.parse(body, alerts.AlertPolicy(), 1000.0, "test")


#: (component, the server's parser, a valid body)
BODIES: list[tuple[str, Parser, dict[str, Any]]] = [
    ("HostRequestBody", wire.host_request, {"kind": "fence", "reason": "r"}),
    ("BrakeOverrideBody", wire.brake_override, {"reason": "r"}),
    ("LogLevelBody", wire.log_level, {"level": "INFO"}),
    ("AgentHeartbeatBody", lambda body: wire.agent_heartbeat(body, "agent-cmp1", 1.0), HEARTBEAT),
    ("AgentEventsBody", wire.agent_events, EVENTS),
    ("AlertsBody", _alerts, ALERTMANAGER),
    ("AlertsBody", _alerts, PLAIN),
]

#: A value of each JSON type, and integers just within and past what the journal holds (also nested:
#: the free-form parts of an Alertmanager payload hold any JSON value).
VALUES_OF_EVERY_TYPE: tuple[Any, ...] = (
    "x", 1, 1.5, True, None, [], {}, 10**20 - 1, -(10**20), [[10**20]], {"a": {"b": 10**20}}, [{"a": 10**20 - 1}]
)


def _branch(schema: dict[str, Any], value: Any) -> dict[str, Any]:
    """The subschema that describes ``value`` (the first ``oneOf``/``anyOf`` branch it is valid against)."""
    for key in ("oneOf", "anyOf"):
        for option in schema.get(key, ()):
            if jsonschema_rs.is_valid({"components": DOCUMENT["components"], **option}, value):
                return _branch(option, value)
    return schema


def _edits(schema: dict[str, Any], value: Any) -> Iterator[tuple[str, Callable[[Any], Any]]]:
    """(label, a function from the node's value to a probe value) for one node of a valid body."""
    schema = _branch(schema, value)
    yield from ((f"= {other!r}", lambda _, o=other: copy.deepcopy(o)) for other in VALUES_OF_EVERY_TYPE)
    if isinstance(value, str):
        for key, delta in (("maxLength", 0), ("maxLength", 1), ("minLength", -1)):
            if key in schema and schema[key] + delta >= 0:
                yield f"{key}{delta:+d}", lambda _, n=schema[key] + delta: "h" * n
        yield "blank", lambda _: " \x1c"
        yield "lower case", lambda v: v.lower()
        yield "off the enum", lambda _: "not-one-of-them"
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, delta in (("minimum", 0), ("minimum", -0.5), ("maximum", 0), ("maximum", 0.5)):
            if key in schema:
                yield f"{key}{delta:+g}", lambda _, n=schema[key] + delta: n
        yield "integral float", lambda v: float(v)
        yield "fraction", lambda v: v + 0.5
    if isinstance(value, list) and value and "maxItems" in schema:
        for delta in (0, 1):
            yield f"maxItems{delta:+d}", lambda v, n=schema["maxItems"] + delta: [copy.deepcopy(v[0])] * n


def _probes(schema: dict[str, Any], value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(where and what, a function from the whole body to a probe) for every node below ``value``."""
    schema = _branch(schema, value)
    if isinstance(value, dict):
        yield f"{path or 'body'} + unknown field", lambda v: {**v, "zz_unknown": 1}
        properties = schema.get("properties", {})
        for name in value:
            yield f"{path}.{name} dropped", lambda v, n=name: {k: x for k, x in v.items() if k != n}
            sub = properties.get(name, {})
            for label, edit in _edits(sub, value[name]):
                yield f"{path}.{name} {label}", lambda v, n=name, e=edit: {**v, n: e(v[n])}
            for label, inner in _probes(sub, value[name], f"{path}.{name}"):
                yield label, lambda v, n=name, i=inner: {**v, n: i(v[n])}
    elif isinstance(value, list) and value:
        items = schema.get("items", {})
        for label, edit in _edits(items, value[0]):
            yield f"{path}[0] {label}", lambda v, e=edit: [e(v[0]), *v[1:]]
        for label, inner in _probes(items, value[0], f"{path}[0]"):
            yield label, lambda v, i=inner: [i(v[0]), *v[1:]]


#: jsonschema-rs's own phrasing: a refusal that reads like this was not put in petguard's words.
VALIDATOR_PHRASES = ("is not of type", "is not one of", "does not match", "is longer than", "is a required property")


def _server_accepts(parse: Parser, body: Any) -> bool:
    try:
        parse(wire.parse_json(json.dumps(body).encode()))  # as the app reads a body
    except InvalidBody as refused:
        # every refusal names the field, says what is wrong and what would be right, in petguard's words
        assert not any(phrase in str(refused) for phrase in VALIDATOR_PHRASES), str(refused)
        return False
    return True


def _document_accepts(component: str, body: Any) -> bool:
    return bool(_component(component).is_valid(body))


@pytest.mark.parametrize(
    ("component", "parse", "valid"), BODIES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BODIES)]
)
def test_the_server_accepts_a_request_body_exactly_when_the_document_does(
    component: str, parse: Parser, valid: dict[str, Any]
) -> None:
    schema = SCHEMAS[component]
    assert _document_accepts(component, valid) and _server_accepts(parse, valid), "the valid example is valid"
    drift = []
    for label, probe in _probes(schema, valid):
        body = probe(valid)
        document, server = _document_accepts(component, body), _server_accepts(parse, body)
        if document != server:
            said = "document accepts, server refuses" if document else "document refuses, server accepts"
            drift.append(f"{component}{label}: {said}")
    assert not drift, "\n".join(drift)


def _component(name: str) -> Any:
    """A validator for one documented component, its ``$ref``s resolved in the whole document."""
    return jsonschema_rs.validator_for({**DOCUMENT, "$ref": f"#/components/schemas/{name}"}, validate_formats=True)


def _converted() -> list[tuple[str, object]]:
    """(component, a converter's answer) for each converter, with its nullable fields both null and set."""
    host = HostRecord(Host("cmp1", HostState.SUSPECT, 5.0, 7, "looks down"), HostHealth(Verdict.SUSPECT, detail="x"))
    moves = [
        MoveRecord(7, "s1", "db", 10, PowerGoal.RUNNING, MoveStatus.DONE, "cmp1", "cmp2", 1, "", "req-1", 9.0),
        MoveRecord(7, "s2", "web", 5, PowerGoal.RUNNING, MoveStatus.REQUESTING, "cmp1", updated_at=9.0,
                   waiting="Nova does not answer", waiting_since=8.0),
    ]
    request = RequestStatus(OperatorRequest(3, "cmp1", RequestKind.FENCE, "why", "alice", 1.0), "pending", "", None)
    beat = AgentHeartbeat("cmp1", "agent-cmp1", 1.0, 0.5, 5.0, True, (DomainSummary("u", "db", DomainState.RUNNING),))
    return [
        ("Host", wire.host_json(host)),
        ("Incident", wire.incident_json(Incident(7, "cmp1", 1.0, None, "down"))),
        ("Incident", wire.incident_json(Incident(7, "cmp1", 1.0, 2.0, "down", "evacuated"))),
        ("Event", wire.event_json(EventRecord(1, 1.0, None, None, "tick", "m"))),
        ("Event", wire.event_json(EventRecord(1, 1.0, "cmp1", 7, "fence_failed", "m"))),
        *[("Move", wire.move_json(move, timeout)) for move in moves for timeout in (None, 1800.0)],
        ("Skip", wire.skip_json(SkipRecord(7, "s2", "web", "not a pet"))),
        ("Request", wire.request_json(request)),
        ("Brake", wire.brake_json(BrakeState(True, "3 hosts", 1.0, None))),
        ("Brake", wire.brake_json(BrakeState(False, "", None, 5.0))),
        ("Audit", wire.audit_json(AuditRecord(1, 1.0, "alice", "host_request", None, "accepted", "d"))),
        ("Agent", wire.agent_json(beat)),
        ("NovaSight", wire.nova_sight_json(Sight(), 10.0)),
        ("Error", wire.error_json(400, "Bad Request", "field 'kind' ...")),
    ]


def test_every_converter_answers_as_the_document_says() -> None:
    """The response schemas are made from the TypedDicts the converters are typed with (mypy checks
    those); this checks the values too, nulls included."""
    drift = []
    for component, value in _converted():
        errors = [f"{component}: {e.message}" for e in _component(component).iter_errors(json.loads(json.dumps(value)))]
        drift.extend(errors)
    assert not drift, "\n".join(drift)
