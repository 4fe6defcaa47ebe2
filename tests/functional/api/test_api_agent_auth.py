"""Guarantee 8 against the real WSGI app served by the real cheroot server on 127.0.0.1: a signing key
speaks only for its own host, a signed request is accepted once and only for the method and path it
was signed for, a timestamp must be a finite number, and no malformed or oversized value reaches
the journal or turns into a 5xx.

The journal is real (tmp sqlite, migrated), the loop real and stepped by the test; Nova and fencing
are the in-memory fakes of ``tests/functional/api/conftest.py``. Keys: ``agent-cmp1`` and ``cmp3``
are bound to their hosts; ``agent`` is a bare key (no name in the file), bound to none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from petguard.api.server import ApiServer, ServerSettings
from petguard.fencing import fake
from petguard.hosts import HostState
from petguard.secrets import sign
from tests.functional.api.conftest import HMAC_KEY, HOST_KEYS, TOKEN, Api, devices

HEARTBEAT = "/v1/agent/heartbeat"
EVENTS = "/v1/agent/events"
KEYS = {"agent": HMAC_KEY, **HOST_KEYS}


@pytest.fixture
def server(api: Api) -> Iterator[httpx.Client]:
    """The app behind cheroot; a client without credentials (each test signs or sends a token)."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    served = ApiServer(app, ServerSettings(bind="127.0.0.1:0")).start()
    try:
        with httpx.Client(base_url=f"http://{served.address}", timeout=10) as client:
            yield client
    finally:
        served.stop()


def signed(
    sender: str,
    body: bytes,
    path: str,
    *,
    method: str = "POST",
    stamp: str | None = None,
    key: str | None = None,
) -> dict[str, str]:
    stamp = stamp if stamp is not None else f"{time.time():.3f}"
    return {
        "Content-Type": "application/json",
        "X-Petguard-Timestamp": stamp,
        "X-Petguard-Signature": sign(key or KEYS[sender], stamp, method, path, body),
        "X-Petguard-Sender": sender,
    }


def post_signed(client: httpx.Client, sender: str, path: str, payload: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    return client.post(path, content=body, headers=signed(sender, body, path))


def heartbeat(host: str, **fields: Any) -> dict[str, Any]:
    beat = {"host": host, "sent_at": time.time(), "interval": 0.2, "libvirt_connected": True, "domains": []}
    return {**beat, **fields}


def error(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


def agents(api: Api) -> set[str]:
    return {beat.host for beat in api.harness.store.agents()}


def audit(api: Api) -> list[tuple[str, str, str]]:
    return [(a.actor, a.action, a.result) for a in api.harness.store.audit_log()]


# -- a key speaks only for its own host ------------------------------------------------------------------
@pytest.mark.fault(
    "AGENT-01",
    guarantee="8",
    injected="cmp3 dead; 4 s of heartbeats for cmp3 signed with agent-cmp1's key",
    expected="403 and nothing recorded; cmp3 is fenced, not kept up by the spoofed heartbeats",
)
def test_a_key_cannot_keep_another_host_alive(api: Api, server: httpx.Client) -> None:
    api.tick()
    api.compute.dead.add("cmp3")
    answers: set[int] = set()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # 4 s of spoofed heartbeats, as in the issue
        answers.add(post_signed(server, "agent-cmp1", HEARTBEAT, heartbeat("cmp3")).status_code)
        api.tick()
        time.sleep(0.1)
    assert answers == {403}
    refused = post_signed(server, "agent-cmp1", HEARTBEAT, heartbeat("cmp3"))
    assert "speaks for host 'cmp1' only" in error(refused)
    assert agents(api) == set()
    assert "heartbeating" not in api.harness.store.load_hosts()["cmp3"].health.detail
    api.harness.run_until(lambda: api.harness.state("cmp3") in FENCED_OR_LATER)
    assert fake.REGISTRY.get(devices()["cmp3"]).calls, "cmp3 was fenced"
    assert ("hmac:agent-cmp1", "agent_report", "refused") in audit(api)


FENCED_OR_LATER = {HostState.FENCED, HostState.EVACUATING, HostState.EVACUATED}


@pytest.mark.fault(
    "AGENT-02",
    guarantee="8",
    injected="domain events for cmp2 signed with agent-cmp1's key (they would drive restarts of cmp2's guests)",
    expected="403, no event stored, the refusal audited",
)
def test_a_key_cannot_report_events_of_another_host(api: Api, server: httpx.Client) -> None:
    api.tick()
    event = {"id": "e1", "at": time.time(), "domain_uuid": "u1", "domain_name": "pet", "kind": "watchdog",
             "detail": "none"}
    refused = post_signed(server, "agent-cmp1", EVENTS, {"host": "cmp2", "events": [event]})
    assert refused.status_code == 403 and "may not report domain events for host 'cmp2'" in error(refused)
    assert api.harness.store.pending_agent_events() == []
    own = post_signed(server, "agent-cmp1", EVENTS, {"host": "cmp1", "events": [event]})
    assert own.status_code == 202 and own.json() == {"accepted": 1, "duplicates": 0}
    assert [e.host for e in api.harness.store.pending_agent_events()] == ["cmp1"]


@pytest.mark.fault(
    "AGENT-03",
    guarantee="8",
    injected="a bare (shared) key in hmac_key_file sends a heartbeat",
    expected="403 naming the fix (a key per host); it may still sign alerts, which are evidence only",
)
def test_a_bare_key_vouches_for_no_host_but_may_sign_alerts(api: Api, server: httpx.Client) -> None:
    api.tick()
    refused = post_signed(server, "agent", HEARTBEAT, heartbeat("cmp2"))
    assert refused.status_code == 403
    assert "not bound to a host" in error(refused) and "agent-cmp2 <key>" in error(refused)
    assert agents(api) == set()
    alert = {"alerts": [{"host": "cmp2", "kind": "node_down", "status": "firing"}]}
    assert post_signed(server, "agent", "/v1/alerts", alert).status_code == 202


def test_a_key_named_after_its_host_keeps_working(api: Api, server: httpx.Client) -> None:
    """The naming docs/agent.md gave before (``cmp3 <key>``, sender = the host name) still binds."""
    api.tick()
    answer = post_signed(server, "cmp3", HEARTBEAT, heartbeat("cmp3"))
    assert answer.status_code == 200 and answer.json()["host"] == "cmp3"
    assert post_signed(server, "agent-cmp1", HEARTBEAT, heartbeat("cmp1")).status_code == 200
    assert agents(api) == {"cmp1", "cmp3"}


@pytest.mark.fault(
    "AGENT-04",
    guarantee="8",
    injected="an agent's key posts a firing alert about another host",
    expected="403 for the whole payload, no alert recorded; its own host's alert is accepted",
)
def test_an_agent_key_alerts_only_about_its_own_host(api: Api, server: httpx.Client) -> None:
    api.tick()
    other = {"alerts": [{"host": "cmp1", "kind": "k", "status": "firing"},
                        {"host": "cmp2", "kind": "node_down", "status": "firing"}]}
    refused = post_signed(server, "agent-cmp1", "/v1/alerts", other)
    assert refused.status_code == 403 and "may not post alerts for host 'cmp2'" in error(refused)
    assert api.harness.store.active_alerts(time.time()) == []
    own = {"alerts": [{"host": "cmp1", "kind": "node_down", "status": "firing"}]}
    assert post_signed(server, "agent-cmp1", "/v1/alerts", own).status_code == 202


# -- signatures: fresh, once, for this method and path ----------------------------------------------------
@pytest.mark.fault(
    "AUTH-01",
    guarantee="8",
    injected="X-Petguard-Timestamp NaN (and inf, 1e400, -1, an exponent) on a validly signed request",
    expected="401 'not unix seconds', nothing recorded (NaN used to pass the freshness check)",
)
@pytest.mark.parametrize("stamp", ["NaN", "nan", "inf", "-inf", "1e400", "-1", "1.7e9", "1_714_564_989"])
def test_a_timestamp_must_be_finite_unix_seconds(api: Api, server: httpx.Client, stamp: str) -> None:
    api.tick()
    body = json.dumps(heartbeat("cmp1")).encode()
    answer = server.post(HEARTBEAT, content=body, headers=signed("agent-cmp1", body, HEARTBEAT, stamp=stamp))
    assert answer.status_code == 401 and "not unix seconds" in error(answer)
    assert agents(api) == set()


@pytest.mark.fault(
    "AUTH-02",
    guarantee="8",
    injected="the same signed request sent twice (a captured request replayed within the freshness window)",
    expected="the first is accepted, the replay 401 'already received'",
)
def test_a_signed_request_is_accepted_once(api: Api, server: httpx.Client) -> None:
    api.tick()
    body = json.dumps({"alerts": [{"host": "cmp1", "kind": "node_down", "status": "resolved"}]}).encode()
    headers = signed("agent-cmp1", body, "/v1/alerts")
    assert server.post("/v1/alerts", content=body, headers=headers).status_code == 202
    replay = server.post("/v1/alerts", content=body, headers=headers)
    assert replay.status_code == 401 and "already received" in error(replay)
    assert [row for row in audit(api) if row[1] == "alerts"] == [("hmac:agent-cmp1", "alerts", "accepted")]


@pytest.mark.fault(
    "AUTH-03",
    guarantee="8",
    injected="a request signed for one path or method sent to another (events body posted to /v1/alerts)",
    expected="401 'does not match the request', nothing recorded",
)
def test_a_signature_covers_method_and_path(api: Api, server: httpx.Client) -> None:
    api.tick()
    body = json.dumps({"alerts": [{"host": "cmp1", "kind": "node_down", "status": "firing"}]}).encode()
    for_events = signed("agent-cmp1", body, EVENTS)
    moved = server.post("/v1/alerts", content=body, headers=for_events)
    assert moved.status_code == 401 and "does not match the request" in error(moved)
    as_put = signed("agent-cmp1", body, "/v1/alerts", method="PUT")
    assert server.post("/v1/alerts", content=body, headers=as_put).status_code == 401
    assert api.harness.store.active_alerts(time.time()) == []


@pytest.mark.fault(
    "AUTH-04",
    guarantee="8",
    injected="a sender still signing the old string timestamp.body (an agent not yet upgraded)",
    expected="401 telling to upgrade the sender; never accepted",
)
def test_the_old_signed_string_is_refused_with_advice(api: Api, server: httpx.Client) -> None:
    import hashlib
    import hmac

    api.tick()
    body = json.dumps(heartbeat("cmp1")).encode()
    stamp = f"{time.time():.3f}"
    old = hmac.new(KEYS["agent-cmp1"].encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {**signed("agent-cmp1", body, HEARTBEAT, stamp=stamp), "X-Petguard-Signature": f"sha256={old}"}
    answer = server.post(HEARTBEAT, content=body, headers=headers)
    assert answer.status_code == 401 and "upgrade the sender" in error(answer)
    assert agents(api) == set()


@pytest.mark.fault(
    "AUTH-06",
    guarantee="8",
    injected="an agent's key reads an operator path; an operator token posts an agent report",
    expected="403 saying what the credential allows and what to use instead",
)
def test_forbidden_messages_say_what_the_credential_allows(api: Api, server: httpx.Client) -> None:
    api.tick()
    read = server.get("/v1/hosts", headers=signed("agent-cmp1", b"", "/v1/hosts", method="GET"))
    assert read.status_code == 403
    assert "allows only posting alerts and its own host's agent reports" in error(read)
    body = json.dumps(heartbeat("cmp1")).encode()
    token = server.post(HEARTBEAT, content=body, headers={"Authorization": "Bearer op-token-functional",
                                                        "Content-Type": "application/json"})
    assert token.status_code == 403 and "signed with the host's own key" in error(token)


# -- bad input: 400 (or 415) with a clear message, nothing in the journal --------------------------------
BAD_BODIES = [
    pytest.param(b"[" * 20_000 + b"]" * 20_000, "nests arrays or objects too deeply", id="nested"),
    pytest.param(b'{"host": "cmp1", "sent_at": ' + b"7" * 5000 + b"}", "5000 digits", id="5000-digits"),
    pytest.param(json.dumps(heartbeat("cmp1")).replace('"sent_at": ', '"sent_at": 1e400, "x": ').encode(),
                 "1e400", id="sent_at-1e400"),
    pytest.param(b'{"host": "cmp1", "sent_at": NaN, "interval": 1, "libvirt_connected": true, "domains": []}',
                 "NaN", id="NaN"),
    pytest.param(b'{"host": "cmp1", "sent_at": 1, "interval": Infinity, "libvirt_connected": true, "domains": []}',
                 "Infinity", id="Infinity"),
    pytest.param(json.dumps(heartbeat("cmp1", buffered=10**30)).encode(), "digits", id="buffered-10**30"),
    pytest.param(json.dumps(heartbeat("cmp1", buffered=2**40)).encode(), "'buffered' must be an integer from 0",
                 id="buffered-2**40"),
    pytest.param(json.dumps(heartbeat("cmp1", sent_at=-5.0)).encode(), "'sent_at' must be a number from 0",
                 id="sent_at-negative"),
    pytest.param(json.dumps(heartbeat("cmp1", interval=0)).encode(), "'interval' must be a number", id="interval-0"),
    pytest.param(json.dumps(heartbeat("cmp1", version="\ud800")).encode(), "lone UTF-16 surrogate", id="surrogate"),
    pytest.param(json.dumps(heartbeat("cmp1", version="a\u0000b")).encode(), "NUL", id="NUL"),
]


@pytest.mark.fault(
    "INPUT-01",
    guarantee="8",
    injected="a signed heartbeat with deep nesting, a 5000-digit integer, 1e400, NaN, Infinity, buffered 10**30",
    expected="400 naming what is wrong, no database text, nothing recorded (each used to give 500)",
)
@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_numbers_and_shapes_are_400_and_reach_nothing(
    api: Api, server: httpx.Client, body: bytes, message: str
) -> None:
    api.tick()
    answer = server.post(HEARTBEAT, content=body, headers=signed("agent-cmp1", body, HEARTBEAT))
    assert answer.status_code == 400, answer.text
    assert message in error(answer)
    assert "sqlite" not in answer.text.lower() and "database" not in answer.text.lower()
    assert agents(api) == set()
    assert audit(api) == [("hmac:agent-cmp1", "agent_report", "refused")]


@pytest.mark.fault(
    "INPUT-02",
    guarantee="8",
    injected="operator and alert bodies with NaN, a 5000-digit integer, a NUL or lone surrogate in a string",
    expected="400, nothing queued or recorded",
)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/hosts/cmp1/requests", b'{"kind": "fence", "reason": "\\u0000"}'),
        ("/v1/hosts/cmp1/requests", b'{"kind": "fence", "reason": "x", "n": ' + b"1" * 5000 + b"}"),
        ("/v1/alerts", b'{"alerts": [{"host": "cmp1", "kind": "k", "status": "firing", "summary": "\\udc00"}]}'),
        ("/v1/alerts", b'{"version": "4", "alerts": [{"labels": {"instance": "cmp1"}, "x": NaN}]}'),
        ("/v1/brake/override", b'{"reason": -Infinity}'),
    ],
)
def test_operator_and_alert_bodies_are_checked_too(api: Api, server: httpx.Client, path: str, body: bytes) -> None:
    api.tick()
    headers = {"Authorization": "Bearer op-token-functional", "Content-Type": "application/json"}
    answer = server.post(path, content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert api.harness.store.pending_requests() == []
    assert api.harness.store.active_alerts(time.time()) == []


@pytest.mark.fault(
    "INPUT-03",
    guarantee="8",
    injected="a mutating request whose body is not declared JSON (form data, text/plain, no Content-Type)",
    expected="415 naming the expected Content-Type; nothing queued",
)
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_body_must_be_declared_json(api: Api, server: httpx.Client, content_type: str | None) -> None:
    api.tick()
    headers = {"Authorization": "Bearer op-token-functional"}
    if content_type:
        headers["Content-Type"] = content_type
    body = b'{"kind": "maintenance_on", "reason": "x"}'
    answer = server.post("/v1/hosts/cmp1/requests", content=body, headers=headers)
    assert answer.status_code == 415 and "Content-Type: application/json" in error(answer)
    assert api.harness.store.pending_requests() == []
    with_charset = {**headers, "Content-Type": "application/json; charset=utf-8"}
    assert server.post("/v1/hosts/cmp1/requests", content=body, headers=with_charset).status_code == 202


# -- found by the schemathesis run (test_api_fuzz.py) ------------------------------------------------------
@pytest.mark.fault(
    "INPUTX-02",
    guarantee="8",
    injected="a validly signed alert that also carries an Authorization header with a made-up bearer token",
    expected="401 'send one credential only', nothing recorded (the unchecked credential was ignored: 202)",
)
def test_two_credentials_in_one_request_are_refused(api: Api, server: httpx.Client) -> None:
    api.tick()
    body = json.dumps({"alerts": [{"host": "cmp1", "kind": "node_down", "status": "firing"}]}).encode()
    headers = signed("agent-cmp1", body, "/v1/alerts") | {"Authorization": "Bearer made-up"}
    refused = server.post("/v1/alerts", content=body, headers=headers)
    assert refused.status_code == 401 and "send one credential only" in error(refused)
    assert api.harness.store.active_alerts(time.time()) == []


@pytest.mark.fault(
    "INPUTX-03",
    guarantee="8",
    injected="a query parameter the endpoint does not read (?limt=5), or one given twice (?limit=5&limit=x)",
    expected="400 naming the parameter and the allowed ones (they were silently ignored, or one picked)",
)
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limt=5", "unknown query parameter(s) on /v1/events: 'limt'; allowed: host, incident, limit"),
        ("limit=5&limit=x", "query parameter 'limit' is given 2 times: give it once"),
        ("host=cmp1&host=cmp2", "query parameter 'host' is given 2 times: give it once"),
    ],
)
def test_unknown_or_repeated_query_parameters_are_400(api: Api, server: httpx.Client, query: str, says: str) -> None:
    api.tick()
    token = {"Authorization": f"Bearer {TOKEN}"}
    answer = server.get(f"/v1/events?{query}", headers=token)
    assert answer.status_code == 400 and error(answer) == says
    no_query = server.get("/v1/hosts?limit=5", headers=token)
    assert no_query.status_code == 400 and "allowed: none" in error(no_query)
    assert server.get("/v1/events?limit=5&host=cmp1", headers=token).status_code == 200
