"""The HTTP API as a WSGI application (falcon), over the ``View`` and ``Inbox`` seams.

``make_app(view, inbox, auth, metrics)`` returns the WSGI callable that ``petguard.api.server``
serves with cheroot, and that tests drive in-process through ``httpx.WSGITransport``. The contract
is ``docs/api.md`` (and ``docs/openapi.json``, served at ``/v1/openapi.json``).

* falcon routes and parses; petguard's errors become HTTP answers through one table
  (``ERROR_STATUS``), every error body is ``{"error": {"code", "title", "message"}}``, and an
  unexpected exception is logged with its traceback and answered 500 without details.
* The control loop is the only writer of host state: mutating endpoints queue a request (202) or
  record alerts as evidence; every mutating request that authenticated is audited (who, what,
  target, result), also when it is refused.
* Bodies are read up to ``max_body_bytes`` (413 beyond), before authentication, because an HMAC
  signature covers the body (and the method and path). A body must be sent as ``application/json``
  (415 otherwise). A signing key speaks only for its own host (``auth.check_speaks_for``, 403).
* A 5xx answer never carries an error's text (it may hold a database's message): it gives an error
  id, and the log has the details under that id.
"""

from __future__ import annotations

import dataclasses
import http
import json
import logging
import uuid
from collections.abc import Callable
from importlib import resources
from typing import Any

import falcon

from petguard import secrets
from petguard.api import alerts as alert_parsing
from petguard.api import wire
from petguard.api.auth import (
    Authenticator,
    Forbidden,
    Principal,
    Role,
    Unauthenticated,
    authorize,
    check_speaks_for,
)
from petguard.api.ports import Exposition, Inbox, View
from petguard.errors import (
    ConfigError,
    InvalidTransition,
    NotFound,
    Permanent,
    PetguardError,
    StaleEpoch,
    Temporary,
)
from petguard.journal import RequestKind

LOG = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
JSON = "application/json"
OPENAPI_RESOURCE = "openapi.json"

OPERATOR = frozenset({Role.OPERATOR})
ALERT_SENDERS = frozenset({Role.OPERATOR, Role.ALERT_SENDER, Role.SIGNED})
AGENTS = frozenset({Role.SIGNED})


class BodyTooLarge(Permanent):
    """The request body is over ``max_body_bytes`` (answered with 413)."""


class LengthRequired(Permanent):
    """A body sent without ``Content-Length`` (chunked), which the API does not read (answered with 411)."""


class BodyTimeout(Permanent):
    """The request body stopped arriving before all of it was read (answered with 408)."""


class UnsupportedMediaType(Permanent):
    """The request body is not declared ``application/json`` (answered with 415)."""


#: petguard's errors as HTTP answers: (status, title). The most specific class of an error wins.
ERROR_STATUS: dict[type[Exception], tuple[int, str]] = {
    wire.InvalidBody: (400, "Bad Request"),
    Unauthenticated: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    NotFound: (404, "Not Found"),
    InvalidTransition: (409, "Conflict"),
    BodyTimeout: (408, "Request Timeout"),
    LengthRequired: (411, "Length Required"),
    BodyTooLarge: (413, "Payload Too Large"),
    UnsupportedMediaType: (415, "Unsupported Media Type"),
    StaleEpoch: (503, "Not the Leader"),
    Temporary: (503, "Service Unavailable"),
    ConfigError: (500, "Configuration Error"),
    PetguardError: (500, "Internal Server Error"),
}


def status_for(exc: BaseException) -> tuple[int, str]:
    """The (status, title) of an error, by the nearest class in ``ERROR_STATUS``; 500 otherwise."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500, "Internal Server Error"


@dataclasses.dataclass(frozen=True)
class ApiSettings:
    """The app's knobs, from ``[api]`` options."""

    max_body_bytes: int = MAX_BODY_BYTES
    alerts: alert_parsing.AlertPolicy = alert_parsing.AlertPolicy()
    #: ``[evacuation] cloud_wait_timeout``: a move's ``waiting_until`` (None: not said)
    cloud_wait_timeout: float | None = None


@dataclasses.dataclass(frozen=True)
class _Context:
    view: View
    inbox: Inbox
    auth: Authenticator
    metrics: Exposition
    settings: ApiSettings

    def read_body(self, req: falcon.Request) -> bytes:
        """The whole body, at most ``max_body_bytes``.

        :raises BodyTooLarge:
        :raises LengthRequired: a chunked body (without Content-Length it would read as empty).
        :raises BodyTimeout: the client stopped sending it (the server's read timed out).
        """
        if req.content_length is None and "chunked" in (req.get_header("Transfer-Encoding") or "").lower():
            raise LengthRequired(
                "the request body is sent chunked: send it with a Content-Length header "
                f"(at most {self.settings.max_body_bytes} bytes, [api] max_body_bytes)"
            )
        limit = self.settings.max_body_bytes
        too_large = BodyTooLarge(f"the request body is over {limit} bytes ([api] max_body_bytes): send less")
        if req.content_length is not None and req.content_length > limit:
            raise too_large
        try:
            body: bytes = req.bounded_stream.read(limit + 1)
        except OSError as exc:  # a client's stall is its own error, not the API's (it was a 500)
            raise BodyTimeout(
                f"the request body stopped arriving before its {req.content_length} bytes were read "
                "([api] client_timeout, request_timeout): send the whole body at once"
            ) from exc
        if len(body) > limit:
            raise too_large
        return body

    def caller(self, req: falcon.Request, body: bytes = b"") -> Principal:
        """The authenticated caller. :raises Unauthenticated:"""
        headers = {name.lower(): value for name, value in req.headers.items()}
        try:
            return self.auth.authenticate(headers, body, method=req.method, path=req.path)
        except Unauthenticated as exc:
            LOG.warning("API %s %s from %s refused: %s", req.method, req.path, req.remote_addr, exc)
            raise

    def operator(self, req: falcon.Request) -> Principal:
        """An operator's read: authenticated, with an operator token."""
        principal = self.caller(req)
        authorize(principal, OPERATOR, f"read {req.path}")
        return principal

    def moves(self, incident_id: int) -> list[wire.MoveJson]:
        """An incident's moves, each with when its wait for the cloud gives up."""
        return [wire.move_json(m, self.settings.cloud_wait_timeout) for m in self.view.moves(incident_id)]

    @staticmethod
    def json_body(req: falcon.Request, body: bytes) -> Any:
        """The body's JSON value. :raises UnsupportedMediaType: not sent as JSON. :raises InvalidBody:"""
        media_type = (req.content_type or "").partition(";")[0].strip().lower()
        if media_type != JSON:
            shown = media_type[:64] or "none"
            raise UnsupportedMediaType(f"the request body must be JSON sent with 'Content-Type: {JSON}', not {shown!r}")
        return wire.parse_json(body)

    def mutate(
        self,
        req: falcon.Request,
        allowed: frozenset[Role],
        action: str,
        target: str | None,
        work: Callable[[Principal, bytes], tuple[Any, str]],
        *,
        audit_accepted: bool = True,
    ) -> Any:
        """Authenticate, run ``work`` (-> (answer, audit detail)), and audit the result (an accepted
        agent report is not audited: they come every few seconds from every host; a refused one is)."""
        body = self.read_body(req)
        principal = self.caller(req, body)
        try:
            authorize(principal, allowed, f"{req.method} {req.path}")
            answer, detail = work(principal, body)
        except Exception as exc:
            code, _ = status_for(exc)
            result = "refused" if code < 500 else "error"
            message = str(exc) if isinstance(exc, PetguardError) else f"unexpected {type(exc).__name__}"
            self.inbox.audit(principal.actor, action, target, result, message)
            raise
        if audit_accepted:
            self.inbox.audit(principal.actor, action, target, "accepted", detail)
        return answer


def _json(resp: falcon.Response, value: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.text = json.dumps(value)


def _query(req: falcon.Request, name: str) -> str | None:
    """A query parameter's one value (None: absent or empty). :raises InvalidBody: given several times
    (``?limit=5&limit=x``), where picking one would silently drop the others."""
    value = req.params.get(name)
    if isinstance(value, list):
        raise wire.InvalidBody(f"query parameter {name!r} is given {len(value)} times: give it once")
    return None if value is None or value == "" else str(value)


# -- resources -----------------------------------------------------------------------------------------
class _Resource:
    #: The query parameters the resource reads; any other is refused (400), as unknown body fields are.
    QUERY: frozenset[str] = frozenset()

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx


class _KnownQueryOnly:
    """falcon middleware: a query parameter the resource does not read is a 400, not silently ignored
    (``?limt=5`` would otherwise answer as if no limit were asked)."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        allowed: frozenset[str] = getattr(resource, "QUERY", frozenset())
        unknown = sorted(set(req.params) - allowed)
        if unknown:
            shown = ", ".join(repr(name[:64]) for name in unknown[:5])
            known = ", ".join(sorted(allowed)) or "none"
            raise wire.InvalidBody(f"unknown query parameter(s) on {req.path}: {shown}; allowed: {known}")


class Hosts(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.operator(req)
        _json(resp, {"hosts": [wire.host_json(r) for r in self.ctx.view.hosts()]})


class HostDetail(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.ctx.operator(req)
        view = self.ctx.view
        record = view.host(name)
        incident_id = record.host.incident_id
        detail: wire.HostDetailJson = {
            "host": wire.host_json(record),
            "incident": wire.incident_json(view.incident(incident_id)) if incident_id is not None else None,
            "events": [wire.event_json(e) for e in view.events(None, name, 50)],
            "moves": self.ctx.moves(incident_id) if incident_id is not None else [],
            "skips": [wire.skip_json(s) for s in view.skips(incident_id)] if incident_id is not None else [],
        }
        _json(resp, detail)


class HostRequests(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        def work(principal: Principal, body: bytes) -> tuple[Any, str]:
            kind, reason = wire.host_request(self.ctx.json_body(req, body))
            self.ctx.view.host(name)  # NotFound: 404 before anything is queued
            status = self.ctx.inbox.submit_request(name, kind, reason, principal.actor)
            return status, f"{kind.value} queued as request {status.request.id}: {reason}"

        status = self.ctx.mutate(req, OPERATOR, "host_request", name, work)
        resp.set_header("Location", f"/v1/requests/{status.request.id}")
        _json(resp, {"request": wire.request_json(status)}, 202)


class RequestDetail(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, request_id: int) -> None:
        self.ctx.operator(req)
        _json(resp, {"request": wire.request_json(self.ctx.view.request(request_id))})


class Incidents(_Resource):
    QUERY = frozenset({"host", "limit"})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.operator(req)
        limit = wire.limit_param(_query(req, "limit"), 50)
        found = self.ctx.view.incidents(_query(req, "host"), limit)
        _json(resp, {"incidents": [wire.incident_json(i) for i in found]})


class IncidentDetail(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, incident_id: int) -> None:
        self.ctx.operator(req)
        view = self.ctx.view
        detail: wire.IncidentDetailJson = {
            "incident": wire.incident_json(view.incident(incident_id)),
            "events": [wire.event_json(e) for e in view.events(incident_id, None, 200)],
            "moves": self.ctx.moves(incident_id),
            "skips": [wire.skip_json(s) for s in view.skips(incident_id)],
        }
        _json(resp, detail)


class Events(_Resource):
    QUERY = frozenset({"host", "incident", "limit"})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.operator(req)
        limit = wire.limit_param(_query(req, "limit"), 200)
        incident_id = wire.int_param("incident", _query(req, "incident"))
        found = self.ctx.view.events(incident_id, _query(req, "host"), limit)
        _json(resp, {"events": [wire.event_json(e) for e in found]})


class Explain(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.ctx.operator(req)
        found = self.ctx.view.explain(name)
        answer: wire.ExplainJson = {
            "subject": found.subject,
            "name": found.name,
            "state": found.state,
            "lines": list(found.lines),
            "if_failed": [wire.what_if_json(row) for row in found.if_failed],
        }
        _json(resp, answer)


class BrakeOverride(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        def work(principal: Principal, body: bytes) -> tuple[Any, str]:
            reason = wire.brake_override(self.ctx.json_body(req, body))
            status = self.ctx.inbox.submit_request("*", RequestKind.BRAKE_OVERRIDE, reason, principal.actor)
            return status, f"brake override queued as request {status.request.id}: {reason}"

        status = self.ctx.mutate(req, OPERATOR, "brake_override", None, work)
        resp.set_header("Location", f"/v1/requests/{status.request.id}")
        _json(resp, {"request": wire.request_json(status)}, 202)


class Status(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.operator(req)
        status = self.ctx.view.status()
        answer: wire.StatusJson = {
            "version": status.version,
            "leader": status.leader,
            "brake": wire.brake_json(status.brake),
            "last_tick": status.last_tick,
            "tick_ok": status.tick_ok,
            "dry_run": status.dry_run,
            "fence_readiness": dict(status.fence_readiness),
            "log_level": status.log_level,
            "capacity": wire.capacity_json(status.capacity),
            "reserved_hosts": [wire.reserved_host_json(r) for r in status.reserved_hosts],
            "nova": wire.nova_sight_json(status.nova, self.ctx.view.now()),
        }
        _json(resp, answer)


class LogLevel(_Resource):
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        def work(principal: Principal, body: bytes) -> tuple[Any, str]:
            level = self.ctx.inbox.set_log_level(wire.log_level(self.ctx.json_body(req, body)))
            return level, f"log level set to {level}"

        _json(resp, {"log_level": self.ctx.mutate(req, OPERATOR, "log_level", None, work)})


class Alerts(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        def work(principal: Principal, body: bytes) -> tuple[Any, str]:
            return self._work(principal, self.ctx.json_body(req, body))

        _json(resp, self.ctx.mutate(req, ALERT_SENDERS, "alerts", None, work), 202)

    def _work(self, principal: Principal, payload: Any) -> tuple[Any, str]:
        view = self.ctx.view
        parsed = alert_parsing.parse(payload, self.ctx.settings.alerts, view.now(), principal.actor)
        known = {record.host.name for record in view.hosts()}
        if _is_agent_key(principal, known):
            # An agent's key speaks for its own host, also in alerts: evidence about another host
            # from it is refused as a whole, nothing recorded.
            for _, alert in parsed.accepted:
                check_speaks_for(principal, alert.host, "post alerts")
        ignored: list[wire.IgnoredAlertJson] = [{"index": i.index, "reason": i.reason} for i in parsed.ignored]
        keep = []
        for index, alert in parsed.accepted:
            if alert.host in known:
                keep.append(alert)
            else:
                reason = (
                    f"host {alert.host!r} is not a compute host petguard watches "
                    "(Nova's host name expected; see [api] alert_host_labels)"
                )
                ignored.append({"index": index, "reason": reason})
        self.ctx.inbox.record_alerts(keep)
        ignored.sort(key=lambda i: i["index"])
        firing = sum(1 for a in keep if a.firing)
        answer: wire.AlertsAcceptedJson = {"accepted": len(keep), "ignored": ignored}
        detail = f"{firing} firing, {len(keep) - firing} resolved, {len(ignored)} ignored"
        return answer, detail


def _is_agent_key(principal: Principal, known_hosts: set[str]) -> bool:
    """A signing key that belongs to one host's agent: named ``agent-<host>``, or after a host petguard
    watches. Other signing keys (an alert sender's, a bare key) post alerts as evidence about any host."""
    if principal.role is not Role.SIGNED or principal.host is None:
        return False
    return principal.name.startswith(secrets.AGENT_KEY_PREFIX) or principal.host in known_hosts


class AgentHeartbeat(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        def work(principal: Principal, body: bytes) -> tuple[Any, str]:
            beat = wire.agent_heartbeat(self.ctx.json_body(req, body), principal.name, self.ctx.view.now())
            # Checked before anything is recorded: a key vouches only for its own host's life.
            check_speaks_for(principal, beat.host, "send heartbeats")
            self.ctx.inbox.record_heartbeat(beat)
            answer: wire.AgentHeartbeatAcceptedJson = {"host": beat.host, "received_at": beat.at}
            return answer, f"heartbeat of {beat.host}"

        _json(resp, self.ctx.mutate(req, AGENTS, "agent_report", None, work, audit_accepted=False))


class AgentEvents(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        def work(principal: Principal, body: bytes) -> tuple[Any, str]:
            host, events = wire.agent_events(self.ctx.json_body(req, body))
            check_speaks_for(principal, host, "report domain events")
            new = self.ctx.inbox.record_agent_events(host, events)
            answer: wire.AgentEventsAcceptedJson = {"accepted": new, "duplicates": len(events) - new}
            return answer, f"{new} event(s) of {host}"

        _json(resp, self.ctx.mutate(req, AGENTS, "agent_report", None, work, audit_accepted=False), 202)


class Agents(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.operator(req)
        _json(resp, {"agents": [wire.agent_json(a) for a in self.ctx.view.agents()]})


class Audit(_Resource):
    QUERY = frozenset({"limit"})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.operator(req)
        limit = wire.limit_param(_query(req, "limit"), 200)
        _json(resp, {"audit": [wire.audit_json(a) for a in self.ctx.view.audit(limit)]})


class OpenApi(_Resource):
    def __init__(self, ctx: _Context) -> None:
        super().__init__(ctx)
        self.document = resources.files("petguard.api").joinpath(OPENAPI_RESOURCE).read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = JSON
        resp.data = self.document


class Healthz(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        live = self.ctx.view.liveness()
        _json(resp, {"ok": live.ok, "reason": live.reason, "last_tick": live.last_tick}, 200 if live.ok else 503)


class Metrics(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body, content_type = self.ctx.metrics.render()
        resp.content_type = content_type
        resp.data = body


#: Every route of the app: (path template, resource). ``docs/openapi.json`` documents each one.
ROUTES: tuple[tuple[str, type[_Resource]], ...] = (
    ("/v1/hosts", Hosts),
    ("/v1/hosts/{name}", HostDetail),
    ("/v1/hosts/{name}/requests", HostRequests),
    # Ids outside 1 .. 2**63-1 match no route: 404, never a database overflow.
    ("/v1/requests/{request_id:int(min=1, max=9223372036854775807)}", RequestDetail),
    ("/v1/incidents", Incidents),
    ("/v1/incidents/{incident_id:int(min=1, max=9223372036854775807)}", IncidentDetail),
    ("/v1/events", Events),
    ("/v1/explain/{name}", Explain),
    ("/v1/brake/override", BrakeOverride),
    ("/v1/status", Status),
    ("/v1/log-level", LogLevel),
    ("/v1/alerts", Alerts),
    ("/v1/audit", Audit),
    ("/v1/agents", Agents),
    ("/v1/agent/heartbeat", AgentHeartbeat),
    ("/v1/agent/events", AgentEvents),
    ("/v1/openapi.json", OpenApi),
    ("/healthz", Healthz),
    ("/metrics", Metrics),
)


# -- errors --------------------------------------------------------------------------------------------
def _error(resp: falcon.Response, code: int, title: str, message: str) -> None:
    resp.status = code
    resp.content_type = JSON
    resp.text = json.dumps(wire.error_json(code, title, message))


def _handle_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: Any) -> None:
    """falcon's own answers (unknown path 404, wrong method 405, ...) in petguard's error shape."""
    code = exc.status_code
    title = http.HTTPStatus(code).phrase if code in set(http.HTTPStatus) else (exc.title or "Error")
    if code == 404:
        message = f"no such resource: {req.path} (see /v1/openapi.json for the API's paths)"
    elif code == 405:
        message = f"{req.method} is not allowed on {req.path}"
    else:
        message = exc.description or title
    _error(resp, code, title, message)
    if exc.headers:
        resp.set_headers(exc.headers)


def _handle_error(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
    """petguard's errors through ``ERROR_STATUS``; anything else is a bug: logged, answered 500."""
    code, title = status_for(exc)
    if isinstance(exc, PetguardError) and code < 500:
        _error(resp, code, title, exc.message)
        return
    # A 5xx's text may be a database's or a library's message: it goes to the log, never to the caller.
    error_id = uuid.uuid4().hex[:12]
    if isinstance(exc, PetguardError):
        LOG.error("API %s %s failed (error id %s): %s", req.method, req.path, error_id, exc)
        retry = "; try again shortly" if code == 503 else ""
        _error(resp, code, title, f"{title.lower()} (error id {error_id}): the daemon's log says why{retry}")
        return
    LOG.exception("API %s %s failed unexpectedly (error id %s)", req.method, req.path, error_id)
    _error(resp, 500, title, f"internal error {error_id}: see the daemon's log for that id")


def make_app(
    view: View,
    inbox: Inbox,
    auth: Authenticator,
    metrics: Exposition,
    settings: ApiSettings | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The API's WSGI application over its seams."""
    ctx = _Context(view, inbox, auth, metrics, settings or ApiSettings())
    app: falcon.App[falcon.Request, falcon.Response] = falcon.App(media_type=JSON, middleware=[_KnownQueryOnly()])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    for path, resource in ROUTES:
        app.add_route(path, resource(ctx))
    app.add_error_handler(Exception, _handle_error)
    app.add_error_handler(falcon.HTTPError, _handle_http_error)
    return app
