"""Event -> payload, severity table, Slack text, HMAC signature (a vector computed with openssl)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from petguard import sight
from petguard.decide import Action
from petguard.journal import EventRecord, RequestKind
from petguard.webhooks import payload
from petguard.webhooks.payload import Severity

EVENT = EventRecord(id=42, at=1700000000.25, host="cmp1", incident_id=7, kind="awaiting_confirm", message="BMC dead")

#: Every kind the loop, the lanes and the evacuation runner record (kept in step with the code).
RECORDED_KINDS = (
    {f"operator_{k.value}" for k in RequestKind if k is not RequestKind.BRAKE_OVERRIDE}
    | {f"{a.value}_held" for a in Action}
    | {sight.UNREADABLE, sight.READABLE_AGAIN}
    | {
        "brake_engaged",
        "brake_released",
        "brake_override",
        "host_suspect",
        "suspect_cleared",
        "fence_started",
        "fence_confirmed",
        "awaiting_confirm",
        "evacuation_started",
        "pet_left_behind",
        "server_evacuated",
        "evacuation_failed",
        "evacuation_finished",
        "evacuation_delayed",
        "tier_not_ready",
        "ready_check_invalid",
        "target_hint_unmet",
        "evacuation_retried",
        "waiting_for_cloud",
        "cloud_answers",
        "evacuation_stuck",
        "reserved_host_borrowed",
        "reserved_host_returned",
        "restore_failed",
        "host_restored",
    }
)


def test_json_payload_has_the_documented_fields() -> None:
    body = json.loads(payload.json_body(EVENT, "ctl1", "0.1.0"))
    assert body == {
        "version": 1,
        "id": 42,
        "at": "2023-11-14T22:13:20.250Z",
        "kind": "awaiting_confirm",
        "severity": "critical",
        "host": "cmp1",
        "incident_id": 7,
        "message": "BMC dead",
        "petguard": {"controller": "ctl1", "version": "0.1.0"},
    }


def test_cloud_wide_event_has_null_host_and_incident() -> None:
    event = EventRecord(1, 0.0, None, None, "brake_engaged", "3 of 4 hosts look down at once")
    body = payload.event_payload(event, "ctl1", "0.1.0")
    assert body["host"] is None and body["incident_id"] is None and body["at"] == "1970-01-01T00:00:00.000Z"


def test_every_recorded_kind_has_a_severity() -> None:
    assert RECORDED_KINDS <= set(payload.SEVERITY), RECORDED_KINDS - set(payload.SEVERITY)


@pytest.mark.parametrize(
    ("kind", "level"),
    [
        ("awaiting_confirm", Severity.CRITICAL),
        ("evacuation_failed", Severity.CRITICAL),
        ("pet_left_behind", Severity.CRITICAL),
        ("brake_engaged", Severity.CRITICAL),
        ("nova_unreadable", Severity.CRITICAL),  # blind: petguard protects no host
        ("nova_readable_again", Severity.INFO),
        ("evacuation_stuck", Severity.CRITICAL),  # only an operator unsticks it
        ("waiting_for_cloud", Severity.WARNING),
        ("cloud_answers", Severity.INFO),
        ("host_suspect", Severity.WARNING),
        ("fence_held", Severity.WARNING),
        ("fence_confirmed", Severity.INFO),
        ("host_restored", Severity.INFO),
        ("something_new", Severity.WARNING),  # unclassified kinds are not quietly filtered away
    ],
)
def test_severity_table(kind: str, level: Severity) -> None:
    assert payload.severity(kind) is level


def test_every_kind_is_documented_in_alerts_md() -> None:
    table = (Path(__file__).parents[3] / "docs" / "alerts.md").read_text()
    documented = set(re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \|", table, re.MULTILINE))
    kinds = {kind.strip("`") for row in documented for kind in row.split(", ")}
    assert set(payload.SEVERITY) <= kinds, set(payload.SEVERITY) - kinds


def test_the_cloud_answering_again_is_good_news() -> None:
    event = EventRecord(3, 0.0, "cmp1", 7, "cloud_answers", "the cloud answers again after 120 s: placement silent")
    assert payload.slack_text(event, "ctl1").startswith(":white_check_mark: `cloud_answers` *cmp1* (incident 7)")
    stuck = dataclasses.replace(event, kind="evacuation_stuck", message="web1 (id): Nova took the request ...")
    assert payload.slack_text(stuck, "ctl1").startswith(":rotating_light: `evacuation_stuck`")


def test_signature_known_vector() -> None:
    # printf '%s' '1700000000.{"hello":"world"}' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"
    expected = "sha256=08c0aaa4721d7e090415dc782eb1818362b0e857612ef36e6dcf8c773571b03b"
    assert payload.signature(b"It's a Secret to Everybody", "1700000000", b'{"hello":"world"}') == expected


def test_headers_signed_only_with_a_secret() -> None:
    body = b"{}"
    assert "X-Petguard-Signature" not in payload.signed_headers(None, "1", body)
    headers = payload.signed_headers(b"k", "1", body)
    assert headers["X-Petguard-Timestamp"] == "1"
    assert headers["X-Petguard-Signature"] == payload.signature(b"k", "1", body)
    assert headers["Content-Type"] == "application/json"


def test_slack_text_is_one_readable_line() -> None:
    text = payload.slack_text(EVENT, "ctl1")
    assert text == ":rotating_light: `awaiting_confirm` *cmp1* (incident 7): BMC dead — petguard on ctl1"
    assert "\n" not in text
    assert json.loads(payload.slack_body(EVENT, "ctl1")) == {"text": text}


def test_slack_good_news_and_cloud_wide() -> None:
    good = EventRecord(1, 0.0, "cmp2", 3, "host_restored", "back in service")
    assert payload.slack_text(good, "c").startswith(":white_check_mark: `host_restored` *cmp2* (incident 3)")
    brake = EventRecord(2, 0.0, None, None, "brake_override", "by alice")
    assert payload.slack_text(brake, "c") == ":warning: `brake_override`: by alice — petguard on c"
