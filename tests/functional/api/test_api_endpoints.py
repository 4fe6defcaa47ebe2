"""Every endpoint of the real app over the real journal and loop: reads, requests the loop applies,
auth failures, refusals that change nothing, and the audit trail."""

from __future__ import annotations

import json
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from petguard.secrets import sign
from tests.functional.api.conftest import ALERT_TOKEN, HMAC_KEY, HOSTS, MAX_BODY, Api
from tests.functional.store.store_builders import suspect_tick


def error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == response.status_code
    return str(body["error"]["message"])


def audit(api: Api) -> list[tuple[str, str, str | None, str]]:
    return [(a["actor"], a["action"], a["target"], a["result"]) for a in api.client.get("/v1/audit").json()["audit"]]


def test_reads(api: Api) -> None:
    c = api.client
    assert c.get("/healthz").status_code == 503  # no tick yet
    assert "no tick has succeeded yet" in c.get("/healthz").json()["reason"]
    api.tick()
    hosts = c.get("/v1/hosts").json()["hosts"]
    assert [h["name"] for h in hosts] == HOSTS and {h["state"] for h in hosts} == {"up"}
    detail = c.get("/v1/hosts/cmp1").json()
    assert detail["host"]["name"] == "cmp1" and detail["incident"] is None and detail["moves"] == []
    assert c.get("/v1/incidents").json() == {"incidents": []}
    assert c.get("/v1/events", params={"host": "cmp1", "limit": 5}).json() == {"events": []}
    explained = c.get("/v1/explain/cmp1").json()
    assert explained["subject"] == "host" and explained["state"] == "up" and explained["lines"]
    status = c.get("/v1/status").json()
    assert status["tick_ok"] is True and status["brake"]["engaged"] is False and status["leader"] is True
    assert status["reserved_hosts"] == []
    assert c.get("/healthz").json()["ok"] is True
    document = c.get("/v1/openapi.json").json()
    assert "/v1/hosts/{name}/requests" in document["paths"]


def test_a_follower_is_healthy_while_in_touch_with_the_coordination_backend(api: Api) -> None:
    """A follower never ticks (only the leader does): its /healthz judges its coordination rounds."""
    api.view.leading = lambda: False
    rounds: list[float | None] = [None]
    api.view.coordination_age = lambda: rounds[-1]
    answer = api.client.get("/healthz")
    assert answer.status_code == 503 and "no round with the coordination backend" in answer.json()["reason"]
    rounds.append(0.4)
    answer = api.client.get("/healthz")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["reason"] == "follower: in touch with the coordination backend 0.4 s ago, ready to take over"
    rounds.append(10.0)  # limit: 3 tick intervals of 1 s
    answer = api.client.get("/healthz")
    assert answer.status_code == 503 and "could not take over" in answer.json()["reason"]
    api.view.leading = lambda: True  # leading again: the ticks count, and none succeeded yet
    assert "no tick has succeeded yet" in api.client.get("/healthz").json()["reason"]


def test_status_shows_the_reserved_hosts_and_their_loans(api: Api) -> None:
    api.tick()
    store = api.harness.store
    store.add_reserved_hosts(["spare1", "spare2"], 1.0)
    store.save_tick(suspect_tick("cmp1"))  # an incident to hold the loan (the loop is not ticked again)
    incident_id = store.load_hosts()["cmp1"].host.incident_id
    assert incident_id is not None and store.borrow_reserved_host("spare2", incident_id, 2.0)

    status = api.client.get("/v1/status").json()

    assert status["reserved_hosts"] == [
        {"host": "spare1", "state": "idle", "incident_id": None},
        {"host": "spare2", "state": "borrowing", "incident_id": incident_id},
    ]


def test_not_found(api: Api) -> None:
    api.tick()
    c = api.client
    assert "no host 'cmp9'" in error(c.get("/v1/hosts/cmp9"))
    assert c.get("/v1/incidents/77").status_code == 404
    assert c.get("/v1/requests/77").status_code == 404
    assert c.get("/v1/requests/abc").status_code == 404
    assert "no host or server 'ghost'" in error(c.get("/v1/explain/ghost"))
    assert "no such resource: /v2/hosts" in error(c.get("/v2/hosts"))
    assert "DELETE is not allowed" in error(c.delete("/v1/hosts"))
    response = c.post("/v1/hosts/cmp9/requests", json={"kind": "maintenance_on", "reason": "x"})
    assert response.status_code == 404
    assert audit(api) == [("alice", "host_request", "cmp9", "refused")]


def test_a_request_is_applied_by_the_loops_next_tick(api: Api) -> None:
    api.tick()
    c = api.client
    response = c.post("/v1/hosts/cmp2/requests", json={"kind": "maintenance_on", "reason": "new DIMMs"})
    assert response.status_code == 202
    request = response.json()["request"]
    assert (request["status"], request["requested_by"], request["kind"]) == ("pending", "alice", "maintenance_on")
    assert response.headers["location"] == f"/v1/requests/{request['id']}"
    assert c.get("/v1/hosts/cmp2").json()["host"]["state"] == "up"  # only the loop writes host state
    api.tick()
    done = c.get(f"/v1/requests/{request['id']}").json()["request"]
    assert done["status"] == "done" and "up -> maintenance" in done["message"]
    assert c.get("/v1/hosts/cmp2").json()["host"]["state"] == "maintenance"
    refused = c.post("/v1/hosts/cmp3/requests", json={"kind": "restore", "reason": "why not"}).json()["request"]
    api.tick()
    answer = c.get(f"/v1/requests/{refused['id']}").json()["request"]
    assert answer["status"] == "refused" and "host cmp3 is up" in answer["message"]
    assert audit(api) == [
        ("alice", "host_request", "cmp2", "accepted"),
        ("alice", "host_request", "cmp3", "accepted"),  # accepted into the queue; the loop refused it
    ]


def test_brake_override_and_log_level(api: Api) -> None:
    api.tick()
    c = api.client
    request = c.post("/v1/brake/override", json={"reason": "rack A really lost power"}).json()["request"]
    assert request["host"] == "*" and request["kind"] == "brake_override"
    api.tick()
    assert c.get(f"/v1/requests/{request['id']}").json()["request"]["status"] == "done"
    assert c.get("/v1/status").json()["brake"]["override_until"] is not None
    assert c.put("/v1/log-level", json={"level": "debug"}).json() == {"log_level": "DEBUG"}
    assert api.levels == ["DEBUG"] and c.get("/v1/status").json()["log_level"] == "DEBUG"
    assert "expected one of" in error(c.put("/v1/log-level", json={"level": "LOUD"}))
    assert audit(api) == [
        ("alice", "brake_override", None, "accepted"),
        ("alice", "log_level", None, "accepted"),
        ("alice", "log_level", None, "refused"),
    ]


def test_authentication_and_authorization(api: Api) -> None:
    api.tick()
    anonymous = api.anonymous()
    assert "no credentials" in error(anonymous.get("/v1/hosts"))
    assert anonymous.get("/v1/hosts").status_code == 401
    bad = anonymous.get("/v1/hosts", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "nope" not in bad.text
    assert anonymous.get("/healthz").status_code == 200 and anonymous.get("/metrics").status_code == 200
    as_alerts = {"Authorization": f"Bearer {ALERT_TOKEN}"}
    forbidden = anonymous.post("/v1/hosts/cmp1/requests", json={"kind": "fence", "reason": "x"}, headers=as_alerts)
    assert forbidden.status_code == 403 and "allows only posting alerts" in error(forbidden)
    assert anonymous.get("/v1/hosts", headers=as_alerts).status_code == 403
    unsigned = anonymous.post("/v1/alerts", json={"alerts": []})
    assert unsigned.status_code == 401
    body = json.dumps({"alerts": [{"host": "cmp1", "kind": "node_down", "status": "firing"}]}).encode()
    stamp = str(int(time.time()))
    signed = {"X-Petguard-Timestamp": stamp, "X-Petguard-Sender": "agent", "Content-Type": "application/json",
              "X-Petguard-Signature": sign(HMAC_KEY, stamp, "POST", "/v1/alerts", body)}
    assert anonymous.post("/v1/alerts", content=body, headers=signed).status_code == 202
    tampered = {**signed, "X-Petguard-Signature": sign(HMAC_KEY, stamp, "POST", "/v1/alerts", body + b" ")}
    assert anonymous.post("/v1/alerts", content=body, headers=tampered).status_code == 401
    old = str(int(time.time()) - 600)
    stale = {**signed, "X-Petguard-Timestamp": old,
             "X-Petguard-Signature": sign(HMAC_KEY, old, "POST", "/v1/alerts", body)}
    assert "away from this controller's clock" in error(anonymous.post("/v1/alerts", content=body, headers=stale))
    as_alerts_json = {**as_alerts, "Content-Type": "application/json"}
    assert anonymous.post("/v1/alerts", content=body, headers=as_alerts_json).status_code == 202
    assert audit(api) == [
        ("alert-token:alertmanager", "host_request", "cmp1", "refused"),
        ("hmac:agent", "alerts", None, "accepted"),
        ("alert-token:alertmanager", "alerts", None, "accepted"),
    ]


def test_invalid_input_changes_nothing(api: Api) -> None:
    api.tick()
    c = api.client
    cases = [
        c.post("/v1/hosts/cmp1/requests", json={"kind": "fence", "reason": "x", "force": True}),
        c.post("/v1/hosts/cmp1/requests", content=b"{not json", headers={"Content-Type": "application/json"}),
        c.post("/v1/hosts/cmp1/requests", content=b"", headers={"Content-Type": "application/json"}),
        c.post("/v1/alerts", json={"alerts": [{"host": "cmp1", "kind": "k", "status": "maybe"}]}),
        c.post("/v1/alerts", json={"alerts": "cmp1"}),
        c.get("/v1/events", params={"limit": "0"}),
        c.get("/v1/incidents", params={"limit": "many"}),
    ]
    assert [r.status_code for r in cases] == [400] * len(cases)
    assert "unknown field(s) in the body: force" in error(cases[0])
    too_big = c.post("/v1/alerts", content=b"{" + b" " * MAX_BODY + b"}")
    assert too_big.status_code == 413 and "max_body_bytes" in error(too_big)
    assert api.harness.store.pending_requests() == []
    assert api.harness.store.active_alerts(time.time()) == []
    assert {r for _, _, _, r in audit(api)} == {"refused"}


def test_alerts_are_recorded_deduplicated_and_resolved(api: Api) -> None:
    api.tick()
    c = api.client
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "NodeDown", "instance": "cmp1:9100"},
                "fingerprint": "a1",
                "annotations": {"summary": "node_exporter down"},
                "startsAt": "2026-11-26T03:30:00Z",
            },
            {"status": "firing", "labels": {"alertname": "NodeDown", "instance": "cmp1:9100"}, "fingerprint": "a1"},
            {"status": "firing", "labels": {"alertname": "NodeDown"}, "fingerprint": "a2"},
            {"status": "firing", "labels": {"alertname": "NodeDown", "instance": "db7:9100"}, "fingerprint": "a3"},
        ],
    }
    answer = c.post("/v1/alerts", json=payload).json()
    assert answer["accepted"] == 1
    assert [i["index"] for i in answer["ignored"]] == [1, 2, 3]
    assert "not a compute host petguard watches" in answer["ignored"][2]["reason"]
    (signal,) = api.harness.store.active_alerts(time.time())
    assert (signal.host, signal.source) == ("cmp1", "alert:NodeDown") and "node_exporter down" in signal.detail
    assert c.post("/v1/alerts", json=payload).json()["accepted"] == 1  # a re-send refreshes, no second row
    assert len(api.harness.store.active_alerts(time.time())) == 1
    payload["alerts"][0]["status"] = "resolved"
    c.post("/v1/alerts", json={**payload, "alerts": payload["alerts"][:1]})
    assert api.harness.store.active_alerts(time.time()) == []


def test_metrics_parse_with_prometheus_own_parser(api: Api) -> None:
    api.tick(2)
    text = api.anonymous().get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    states = {(s.labels["host"], s.labels["state"]) for s in families["petguard_host_state"].samples}
    assert states == {(h, "up") for h in HOSTS}
    assert families["petguard_brake_engaged"].samples[0].value == 0
    assert families["petguard_open_incidents"].samples[0].value == 0
    assert families["petguard_journal_up"].samples[0].value == 1
    ticks = {
        s.labels["result"]: s.value for s in families["petguard_ticks"].samples if s.name == "petguard_ticks_total"
    }
    assert ticks["ok"] == 2
    assert "petguard_tick_duration_seconds" in families
