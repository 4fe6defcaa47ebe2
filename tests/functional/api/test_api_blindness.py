"""Blindness is an event: the real loop, the real journal (sqlite) and the real WSGI app, with the in-memory
Nova made unreadable (an outage, or Keystone refusing petguard's user). After ``[detection] blind_after``
failed ticks: one ``nova_unreadable`` event naming why and every host not watched, the metrics, /healthz 503
and the status say so; nothing is decided on the failed readings; the first good reading: one
``nova_readable_again`` event and /healthz 200 again."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
import requests

from petguard.cloud import ServiceRecord
from petguard.errors import PetguardError
from petguard.hosts import HostState
from petguard.nova import compute as nova
from tests.functional.api.conftest import HOSTS, Api

FERNET = "gAAAAABmZ7c9Xq3kL0p2R8sT1uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2oP4qR6sT8uV0w"


def metric(api: Api, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", api.client.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else None


def blindness_events(api: Api) -> list[dict[str, object]]:
    events = api.client.get("/v1/events", params={"limit": 500}).json()["events"]
    return [e for e in events if str(e["kind"]).startswith("nova_")]


def keystone_refuses() -> PetguardError:
    """What the Nova adapter raises when Keystone refuses petguard's user (its user disabled): built by
    the adapter itself from a 401 whose body echoes a token, to show it stays out of every answer."""
    answer = requests.Response()
    answer.status_code = 401
    answer._content = (
        b'{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires '
        b"authentication. X-Auth-Token: " + FERNET.encode() + b'"}}'
    )
    answer.encoding = "utf-8"
    answer.headers["x-openstack-request-id"] = "req-lockout"
    return nova._error_for(answer, "list compute services")


def lock_out(api: Api) -> Callable[[], None]:
    """Make every reading of Nova's compute services fail as a Keystone lockout does; returns the undo."""
    error = keystone_refuses()

    def refused() -> list[ServiceRecord]:
        raise error

    api.compute.list_services = refused  # type: ignore[method-assign]
    return lambda: delattr(api.compute, "list_services")


@pytest.mark.fault(
    "BLIND-02",
    guarantee="4",
    injected="Nova unreachable (every call raises NovaUnavailable) for more than blind_after ticks, then back",
    expected="one nova_unreadable event naming every host; metrics, /healthz 503 and status say blind; "
    "back: one nova_readable_again, /healthz 200",
)
def test_an_outage_of_nova_is_told_once_and_its_end_once(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    c = api.client
    api.tick()
    assert metric(api, "petguard_nova_readable") == 1 and metric(api, "petguard_nova_blind") == 0
    api.compute.unavailable = True

    with caplog.at_level(logging.WARNING, logger="petguard.reconcile"):
        api.tick(2)  # two failed ticks: noise, not yet blindness
        assert blindness_events(api) == []
        assert metric(api, "petguard_nova_readable") == 0 and metric(api, "petguard_nova_failed_readings") == 2
        assert metric(api, "petguard_nova_blind") == 0
        assert metric(api, "petguard_nova_unreadable_since_timestamp_seconds") is not None
        assert c.get("/healthz").status_code == 200  # the last good tick is recent

        api.tick(4)  # the third failed tick makes petguard blind; the next ones add nothing

    (event,) = blindness_events(api)
    assert event["kind"] == "nova_unreadable" and event["host"] is None and event["incident_id"] is None
    message = str(event["message"])
    assert "nova is unreachable (fake outage)" in message and "[detection] blind_after = 3" in message
    assert f"{len(HOSTS)} host(s): up: {', '.join(HOSTS)}" in message
    assert "Next: check that Keystone and nova-api answer" in message
    blind_lines = [r for r in caplog.records if "petguard is blind" in r.getMessage()]
    assert len(blind_lines) == 1 and blind_lines[0].levelno == logging.WARNING
    assert metric(api, "petguard_nova_blind") == 1 and metric(api, "petguard_nova_failed_readings") == 6
    health = c.get("/healthz")
    assert health.status_code == 503, health.json()
    assert health.json()["reason"].startswith("blind since ") and "fake outage" in health.json()["reason"]
    assert "hosts not watched: 5 host(s)" in health.json()["reason"]
    status = c.get("/v1/status").json()["nova"]
    assert status["blind"] is True and status["readable"] is False and status["failed_readings"] == 6
    assert [h["host"] for h in status["unwatched"]] == HOSTS and {h["state"] for h in status["unwatched"]} == {"up"}
    assert status["summary"].startswith("blind since ") and "hosts not watched: 5 host(s)" in status["summary"]

    api.compute.unavailable = False
    api.tick()
    api.tick(2)

    kinds = [e["kind"] for e in blindness_events(api)]
    assert kinds == ["nova_unreadable", "nova_readable_again"]
    assert "after" in str(blindness_events(api)[1]["message"]) and "s blind" in str(blindness_events(api)[1]["message"])
    assert c.get("/healthz").status_code == 200
    assert metric(api, "petguard_nova_blind") == 0 and metric(api, "petguard_nova_readable") == 1
    assert metric(api, "petguard_nova_unreadable_since_timestamp_seconds") is None
    assert c.get("/v1/status").json()["nova"]["blind"] is False


@pytest.mark.fault(
    "BLIND-03",
    guarantee="3",
    injected="Keystone refuses petguard's user (HTTP 401) while a host is in an incident, for longer than blind_after",
    expected="one nova_unreadable with the 401 and the host in its incident named; nothing decided while blind; "
    "the host fenced once after",
)
@pytest.mark.fault(
    "BLIND-04",
    guarantee="7",
    injected="Keystone's 401 answer echoes a token while petguard is blind",
    expected="the token appears in no event, /healthz, status or log line",
)
def test_a_keystone_lockout_names_the_host_in_its_incident_and_decides_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    c = api.client
    api.tick()
    api.compute.dead.add("cmp1")
    api.harness.run_until(lambda: api.harness.state("cmp1") is HostState.SUSPECT, timeout=10)
    incident = api.harness.store.load_hosts()["cmp1"].host.incident_id
    before = api.harness.store.load_hosts()
    transitions = len(api.harness.store.transitions(limit=1000))

    undo = lock_out(api)
    with caplog.at_level(logging.DEBUG):
        api.tick(5)  # the grace period passes meanwhile: a failed reading must not fence cmp1
        assert api.harness.store.load_hosts() == before, "nothing may be decided on a reading that failed"
        assert len(api.harness.store.transitions(limit=1000)) == transitions
        (event,) = blindness_events(api)
        message = str(event["message"])
        assert "HTTP 401" in message and "req-lockout" in message
        assert f"in an incident: cmp1 (suspect, incident {incident})" in message
        assert "up: cmp2, cmp3, cmp4, cmp5" in message
        assert "Next: check petguard's Keystone user (enabled? password changed?)" in message
        answers = [c.get("/healthz").text, c.get("/v1/status").text, c.get("/v1/events").text]
        assert c.get("/healthz").status_code == 503
        unwatched = c.get("/v1/status").json()["nova"]["unwatched"]
        assert {"host": "cmp1", "state": "suspect", "incident_id": incident} in unwatched

        undo()
        api.harness.run_until(lambda: api.harness.state("cmp1") is HostState.EVACUATED, timeout=20)

    for text in [*answers, caplog.text, *(str(e["message"]) for e in blindness_events(api))]:
        assert FERNET not in text
    assert [e["kind"] for e in blindness_events(api)] == ["nova_unreadable", "nova_readable_again"]
    assert [f.host for f in api.harness.store.fences_started(since=0)] == ["cmp1"]
    assert c.get("/healthz").status_code == 200


@pytest.mark.fault(
    "BLIND-05",
    guarantee="4",
    injected="the journal refuses to record the nova_unreadable event when petguard becomes blind",
    expected="an ERROR line, and the event is recorded on the next failed tick, still once",
)
def test_an_announcement_the_journal_refused_is_recorded_on_the_next_tick(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    store = api.harness.store
    record_event = store.record_event
    refusals = [PetguardError("record an event: database is locked")]

    def flaky(host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None:
        if refusals:
            raise refusals.pop()
        record_event(host, incident_id, kind, message, at)

    store.record_event = flaky  # type: ignore[method-assign]
    api.tick()
    api.compute.unavailable = True
    with caplog.at_level(logging.WARNING, logger="petguard.reconcile"):
        api.tick(3)
    assert blindness_events(api) == [] and api.client.get("/v1/status").json()["nova"]["blind"] is False
    (refused,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "cannot record the nova_unreadable event" in refused.getMessage()
    assert "tried again on the next tick" in refused.getMessage()
    api.tick(3)
    assert [e["kind"] for e in blindness_events(api)] == ["nova_unreadable"]
    assert "4 failed tick(s) in a row" in str(blindness_events(api)[0]["message"])
