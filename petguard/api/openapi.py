"""Build the API's OpenAPI 3.1 document from the wire shapes and the operation table below (pure).

``python -m petguard.api.openapi`` writes it to ``petguard/api/openapi.json`` (served at
``/v1/openapi.json``) and ``docs/openapi.json``; ``--check`` fails when either is stale (``./run test``
runs it), and a test checks the same and that every route of the app is in it. Response schemas come
from the TypedDicts of ``petguard.api.wire`` (the converters' types); request bodies are the JSON
Schemas of ``petguard.api.schemas``, which the server validates against: the document cannot drift
from either. tests/unit/api/test_api_schema_drift.py probes both anyway.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from petguard import __version__
from petguard.api import schemas, wire

#: TypedDicts published as components.
SHAPES: tuple[type, ...] = (
    wire.HostJson,
    wire.IncidentJson,
    wire.EventJson,
    wire.MoveJson,
    wire.SkipJson,
    wire.RequestJson,
    wire.BrakeJson,
    wire.AuditJson,
    wire.HostDetailJson,
    wire.IncidentDetailJson,
    wire.WhatIfJson,
    wire.ExplainJson,
    wire.CapacityHostJson,
    wire.CapacityJson,
    wire.ReservedHostJson,
    wire.UnwatchedHostJson,
    wire.NovaSightJson,
    wire.StatusJson,
    wire.IgnoredAlertJson,
    wire.AlertsAcceptedJson,
    wire.AgentDomainJson,
    wire.AgentHeartbeatAcceptedJson,
    wire.AgentEventsAcceptedJson,
    wire.AgentJson,
    wire.ErrorDetailJson,
    wire.ErrorJson,
)

OPERATOR: list[dict[str, list[str]]] = [{"bearer": []}]
ALERTS: list[dict[str, list[str]]] = [{"bearer": []}, {"alertToken": []}, {"hmac": []}]
PUBLIC: list[dict[str, list[str]]] = []
AGENT: list[dict[str, list[str]]] = [{"hmac": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_obj = schemas.obj


def _list_of(key: str, shape: str) -> dict[str, Any]:
    return _obj({key: {"type": "array", "items": _ref(shape)}})


LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": wire.MAX_LIMIT}}
HOST_Q = {"name": "host", "in": "query", "schema": {"type": "string"}}
INCIDENT_Q = {"name": "incident", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": wire.MAX_ID}}

#: (method, path, summary, security, body, (status, schema) of success, query parameters)
OPERATIONS: tuple[tuple[str, str, str, list[Any], str | None, tuple[int, dict[str, Any]], list[Any]], ...] = (
    ("get", "/v1/hosts", "Every host and its lifecycle state", OPERATOR, None, (200, _list_of("hosts", "Host")), []),
    (
        "get",
        "/v1/hosts/{name}",
        "One host, its incident, events, moves and skips",
        OPERATOR,
        None,
        (200, _ref("HostDetail")),
        [],
    ),
    (
        "post",
        "/v1/hosts/{name}/requests",
        "Queue an operator request; the loop acts at its next tick",
        OPERATOR,
        "HostRequestBody",
        (202, _obj({"request": _ref("Request")})),
        [],
    ),
    (
        "get",
        "/v1/requests/{request_id}",
        "An operator request and the loop's answer",
        OPERATOR,
        None,
        (200, _obj({"request": _ref("Request")})),
        [],
    ),
    (
        "get",
        "/v1/incidents",
        "Incidents, newest first",
        OPERATOR,
        None,
        (200, _list_of("incidents", "Incident")),
        [HOST_Q, LIMIT],
    ),
    (
        "get",
        "/v1/incidents/{incident_id}",
        "One incident with its events, moves and skips",
        OPERATOR,
        None,
        (200, _ref("IncidentDetail")),
        [],
    ),
    (
        "get",
        "/v1/events",
        "Events, oldest first within the newest limit",
        OPERATOR,
        None,
        (200, _list_of("events", "Event")),
        [HOST_Q, INCIDENT_Q, LIMIT],
    ),
    ("get", "/v1/explain/{name}", "Why a host or a server is where it is", OPERATOR, None, (200, _ref("Explain")), []),
    (
        "post",
        "/v1/brake/override",
        "Allow fencing despite the mass-failure brake for a while",
        OPERATOR,
        "BrakeOverrideBody",
        (202, _obj({"request": _ref("Request")})),
        [],
    ),
    ("get", "/v1/status", "The daemon at a glance", OPERATOR, None, (200, _ref("Status")), []),
    (
        "put",
        "/v1/log-level",
        "Set the running daemon's log level",
        OPERATOR,
        "LogLevelBody",
        (200, _obj({"log_level": {"type": "string"}})),
        [],
    ),
    (
        "post",
        "/v1/alerts",
        "Alerts in (evidence for detection, never by themselves a reason to fence)",
        ALERTS,
        "AlertsBody",
        (202, _ref("AlertsAccepted")),
        [],
    ),
    (
        "get",
        "/v1/audit",
        "Mutating requests: who, what, when, result",
        OPERATOR,
        None,
        (200, _list_of("audit", "Audit")),
        [LIMIT],
    ),
    (
        "get",
        "/v1/agents",
        "Every host's petguard agent as its last heartbeat described it",
        OPERATOR,
        None,
        (200, _list_of("agents", "Agent")),
        [],
    ),
    (
        "post",
        "/v1/agent/heartbeat",
        "An agent's heartbeat (a second, independent signal for detection)",
        AGENT,
        "AgentHeartbeatBody",
        (200, _ref("AgentHeartbeatAccepted")),
        [],
    ),
    (
        "post",
        "/v1/agent/events",
        "An agent's libvirt domain events (stored once each by id)",
        AGENT,
        "AgentEventsBody",
        (202, _ref("AgentEventsAccepted")),
        [],
    ),
    ("get", "/v1/openapi.json", "This document", PUBLIC, None, (200, {"type": "object"}), []),
    (
        "get",
        "/healthz",
        "200 when the last tick (a follower: its last coordination round) succeeded within 3 tick intervals, else 503",
        PUBLIC,
        None,
        (
            200,
            _obj({"ok": {"type": "boolean"}, "reason": {"type": "string"}, "last_tick": {"type": ["number", "null"]}}),
        ),
        [],
    ),
    ("get", "/metrics", "Prometheus metrics (text format)", PUBLIC, None, (200, {"type": "string"}), []),
)

ERRORS = {
    "400": "Invalid body or query (unknown fields are refused; anywhere in a body, so are NUL characters, lone "
    "surrogates, integers of more than 20 digits, NaN, Infinity and nesting deeper than 32 levels)",
    "401": "No credentials, or they do not verify (a stale or non-numeric timestamp, a signature seen before)",
    "403": "These credentials do not allow this request (a signing key speaks only for its own host)",
    "404": "No such host, incident, request or path",
    "413": "The body is over [api] max_body_bytes",
}


def schema_of(annotation: Any) -> dict[str, Any]:
    """The JSON schema of one TypedDict field annotation."""
    origin = typing.get_origin(annotation)
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is type(None):
        return {"type": "null"}
    if origin is list:
        return {"type": "array", "items": schema_of(typing.get_args(annotation)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema_of(typing.get_args(annotation)[1])}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(arg) for arg in typing.get_args(annotation)]}
    if typing.is_typeddict(annotation):
        return _ref(component_name(annotation))
    raise TypeError(f"no JSON schema for {annotation!r}")


def component_name(shape: type) -> str:
    return shape.__name__.removesuffix("Json")


def typeddict_schema(shape: type) -> dict[str, Any]:
    hints = typing.get_type_hints(shape)
    return _obj({name: schema_of(hint) for name, hint in hints.items()})


def _operation(
    summary: str, security: list[Any], body: str | None, success: tuple[int, dict[str, Any]], params: list[Any]
) -> dict[str, Any]:
    status, schema = success
    content_type = "text/plain" if summary.startswith("Prometheus") else "application/json"
    responses: dict[str, Any] = {str(status): {"description": "OK", "content": {content_type: {"schema": schema}}}}
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    for code, text in ERRORS.items():
        if security or code in ("404",):
            responses[code] = {"description": text, **error}
    if summary.startswith("200 when"):
        responses["503"] = {"description": "Unhealthy: the body says why", "content": {"application/json": {}}}
    operation: dict[str, Any] = {"summary": summary, "security": security, "responses": responses}
    if body is not None:
        responses["408"] = {"description": "The body stopped arriving before all of it was read", **error}
        responses["411"] = {"description": "The body is sent chunked: send it with a Content-Length", **error}
        responses["415"] = {"description": "The body is not sent as Content-Type: application/json", **error}
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        operation["parameters"] = params
    return operation


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    # Ids outside 1 .. 2**63-1 match no route (404): the document says which ids exist.
    ident = {"type": "integer", "minimum": 1, "maximum": wire.MAX_ID}
    return [
        {"name": n, "in": "path", "required": True, "schema": ident if n.endswith("_id") else {"type": "string"}}
        for n in names
    ]


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    paths: dict[str, Any] = {}
    for method, path, summary, security, body, success, params in OPERATIONS:
        item = paths.setdefault(path, {})
        if _path_params(path):
            item["parameters"] = _path_params(path)
        item[method] = _operation(summary, security, body, success, params)
    components = {component_name(shape): typeddict_schema(shape) for shape in SHAPES}
    components.update(schemas.REQUEST_BODIES)  # the very dicts the server validates against
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "petguard API",
            "version": __version__,
            "description": "Instance HA for OpenStack pets. The contract in prose is docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token from [api] token_file"},
                "alertToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from [api] alert_token_file (POST /v1/alerts only)",
                },
                "hmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Petguard-Signature",
                    "description": "sha256=<hex HMAC-SHA256 of timestamp + '\\n' + METHOD + '\\n' + path + '\\n' "
                    "+ body>, with X-Petguard-Timestamp (unix seconds, digits) and X-Petguard-Sender (the key's "
                    "name); each signature is accepted once; a key named agent-<host> or <host> reports only "
                    "for that host (docs/api.md)",
                },
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


def targets() -> tuple[Path, Path]:
    """The packaged copy (served at ``/v1/openapi.json``) and the one in docs/."""
    root = Path(__file__).resolve().parents[2]
    return Path(__file__).with_name("openapi.json"), root / "docs" / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    """Write the document into the package and into docs/ (run from the repository's root); with
    ``--check``, write nothing and exit 1 when either copy is not what the code generates (CI)."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args == ["--check"]:
        stale = [target for target in targets() if not target.is_file() or target.read_text(encoding="utf-8") != text]
        for target in stale:
            print(f"{target} is stale: run python -m petguard.api.openapi", file=sys.stderr)
        return 1 if stale else 0
    if args:
        print("usage: python -m petguard.api.openapi [--check]", file=sys.stderr)
        return 2
    for target in targets():
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
