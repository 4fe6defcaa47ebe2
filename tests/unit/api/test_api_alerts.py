"""Alerts in: Alertmanager's webhook payload (v4) and the plain form, parsed into AlertRecords."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from petguard.api.alerts import DEFAULT_TTL, AlertPolicy, parse, strip_port
from petguard.api.wire import InvalidBody

NOW = 1_795_664_356.0  # 2026-11-26T03:39:16Z
POLICY = AlertPolicy()


def am_alert(host: str = "cmp1:9100", status: str = "firing", fingerprint: str = "f1", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "NodeDown", "instance": host, "severity": "critical", **labels},
        "annotations": {"summary": f"{host} does not answer", "description": "node_exporter scrape failed"},
        "startsAt": "2026-11-26T03:30:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T03:39:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": fingerprint,
    }


def am_payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A grouped Alertmanager webhook payload, as Alertmanager 0.27 sends it."""
    return {
        "receiver": "petguard",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {"alertname": "NodeDown"},
        "commonLabels": {"alertname": "NodeDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="NodeDown"}',
        "truncatedAlerts": 0,
    }


def test_a_grouped_alertmanager_payload() -> None:
    parsed = parse(
        am_payload(am_alert("cmp1:9100", fingerprint="a"), am_alert("cmp2", fingerprint="b")), POLICY, NOW, "am"
    )
    assert parsed.ignored == ()
    first, second = parsed.alerts
    assert (first.host, first.kind, first.firing, first.fingerprint) == ("cmp1", "NodeDown", True, "am:a")
    assert first.summary == "cmp1:9100 does not answer"
    assert first.starts_at == pytest.approx(NOW - 556 + 0.123457, abs=1e-5)
    assert first.expires_at == NOW + DEFAULT_TTL  # Go's zero endsAt: counts until resolved or the ttl
    assert first.sender == "am"
    assert second.host == "cmp2"
    assert [i for i, _ in parsed.accepted] == [0, 1]


def test_a_resolved_alert_clears_and_does_not_count() -> None:
    (alert,) = parse(am_payload(am_alert(status="resolved")), POLICY, NOW, "am").alerts
    assert not alert.firing and alert.expires_at == NOW and alert.fingerprint == "am:f1"


def test_a_future_ends_at_bounds_a_firing_alert() -> None:
    item = am_alert()
    item["endsAt"] = "2026-11-26T03:44:16Z"
    (alert,) = parse(am_payload(item), POLICY, NOW, "am").alerts
    assert alert.expires_at == NOW + 300


def test_duplicates_in_one_payload_are_ignored_with_a_reason() -> None:
    parsed = parse(am_payload(am_alert(), am_alert(), am_alert("cmp2", fingerprint="f2")), POLICY, NOW, "am")
    assert [a.host for a in parsed.alerts] == ["cmp1", "cmp2"]
    assert [(i.index, i.reason) for i in parsed.ignored] == [(1, "duplicate of alert 0 (same fingerprint)")]


def test_missing_host_label_is_ignored_and_the_rest_accepted() -> None:
    no_host = am_alert()
    del no_host["labels"]["instance"]
    parsed = parse(am_payload(no_host, am_alert("cmp2", fingerprint="f2")), POLICY, NOW, "am")
    assert [a.host for a in parsed.alerts] == ["cmp2"]
    assert parsed.ignored[0].index == 0
    assert "no host label (looked for instance, host, nodename" in parsed.ignored[0].reason


def test_host_labels_are_configurable_first_match_wins() -> None:
    item = am_alert(nodename="cmp9")
    policy = AlertPolicy(host_labels=("nodename", "instance"))
    assert parse(am_payload(item), policy, NOW, "am").alerts[0].host == "cmp9"


def test_missing_fingerprint_is_derived_from_the_labels() -> None:
    item = am_alert()
    del item["fingerprint"]
    first = parse(am_payload(item), POLICY, NOW, "am").alerts[0].fingerprint
    assert (
        first.startswith("am:")
        and first == parse(am_payload(copy.deepcopy(item)), POLICY, NOW, "x").alerts[0].fingerprint
    )


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("cmp1:9100", "cmp1"),
        ("cmp1", "cmp1"),
        ("10.0.0.1:9100", "10.0.0.1"),
        ("[fd00::1]:9100", "fd00::1"),
        ("fd00::1", "fd00::1"),
        ("cmp1.example.org:443", "cmp1.example.org"),
    ],
)
def test_strip_port(value: str, host: str) -> None:
    assert strip_port(value) == host


def _broken(change: str) -> dict[str, Any]:
    payload = am_payload(am_alert())
    item = payload["alerts"][0]
    if change == "labels-not-object":
        item["labels"] = ["instance=cmp1"]
    elif change == "label-not-string":
        item["labels"]["instance"] = 7
    elif change == "bad-status":
        item["status"] = "pending"
    elif change == "bad-time":
        item["startsAt"] = "yesterday"
    elif change == "naive-time":
        item["startsAt"] = "2026-11-26T03:30:00"
    elif change == "time-not-string":
        item["startsAt"] = 1795664356
    elif change == "fingerprint-not-string":
        item["fingerprint"] = 42
    elif change == "alert-not-object":
        payload["alerts"][0] = "cmp1 is down"
    elif change == "version":
        payload["version"] = "3"
    return payload


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("labels-not-object", "alerts[0].labels must be an object of strings"),
        ("label-not-string", "alerts[0].labels must be an object of strings"),
        ("bad-status", "field alerts[0].'status' is 'pending'; expected one of: firing, resolved"),
        ("bad-time", "alerts[0].startsAt is not an RFC 3339 time"),
        ("naive-time", "alerts[0].startsAt has no time zone"),
        ("time-not-string", "alerts[0].startsAt must be an RFC 3339 time string"),
        ("fingerprint-not-string", "alerts[0].fingerprint must be a non-empty string"),
        ("alert-not-object", "alerts[0] must be a JSON object"),
        ("version", "version '3' is not supported"),
    ],
)
def test_malformed_alertmanager_payloads_are_refused_whole(change: str, message: str) -> None:
    with pytest.raises(InvalidBody) as caught:
        parse(_broken(change), POLICY, NOW, "am")
    assert message in str(caught.value)


@pytest.mark.parametrize("payload", [[], "x", {}, {"alerts": "cmp1"}, {"alerts": None}])
def test_not_an_alert_payload(payload: Any) -> None:
    with pytest.raises(InvalidBody, match="an alert payload must be a JSON object with an 'alerts' array"):
        parse(payload, POLICY, NOW, "am")


def test_too_many_alerts() -> None:
    with pytest.raises(InvalidBody, match="1001 alerts in one payload; at most 1000"):
        parse({"alerts": [{"host": "h", "kind": "k", "status": "firing"}] * 1001}, POLICY, NOW, "x")


# -- the plain form --------------------------------------------------------------------------------------
def test_plain_form() -> None:
    payload = {
        "alerts": [
            {"host": "cmp1", "kind": "bmc_unreachable", "status": "firing", "summary": "BMC does not answer"},
            {"host": "cmp2", "kind": "node_down", "status": "resolved"},
        ]
    }
    first, second = parse(payload, POLICY, NOW, "hmac:agent").alerts
    assert (first.host, first.kind, first.firing, first.summary) == (
        "cmp1",
        "bmc_unreachable",
        True,
        "BMC does not answer",
    )
    assert first.fingerprint.startswith("plain:") and first.expires_at == NOW + DEFAULT_TTL
    assert (second.firing, second.summary) == (False, "")
    again = parse({"alerts": [{"host": "cmp1", "kind": "bmc_unreachable", "status": "resolved"}]}, POLICY, NOW, "x")
    assert again.alerts[0].fingerprint == first.fingerprint  # a resolve clears the same alert


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"alerts": [], "extra": 1}, "unknown field(s) in the plain alert payload: extra"),
        ({"alerts": [{"host": "cmp1", "kind": "k"}]}, "missing field(s) in alerts[0]: status"),
        (
            {"alerts": [{"host": "cmp1", "kind": "k", "status": "firing", "sev": 1}]},
            "unknown field(s) in alerts[0]: sev",
        ),
        ({"alerts": [{"host": 1, "kind": "k", "status": "firing"}]}, "field 'alerts[0].host' must be a string"),
        ({"alerts": [{"host": " ", "kind": "k", "status": "firing"}]}, "alerts[0].host must name a host"),
    ],
)
def test_plain_form_refusals(payload: Any, message: str) -> None:
    with pytest.raises(InvalidBody) as caught:
        parse(payload, POLICY, NOW, "x")
    assert message in str(caught.value)
