"""What is sent: the JSON event (schema version 1), the Slack line, the severity table, the signature.

Pure functions over ``EventRecord``; docs/alerts.md documents the schema and every kind.
"""

from __future__ import annotations

import datetime
import enum
import json
from typing import Any

from petguard import secrets
from petguard.journal import EventRecord

SCHEMA_VERSION = 1


class Severity(enum.IntEnum):
    """How loud an event is; ordered, so ``min_severity`` filters compare."""

    INFO = 10
    WARNING = 20
    CRITICAL = 30

    @property
    def label(self) -> str:
        return self.name.lower()


#: The severity of every kind petguard records. A kind missing here is WARNING (loud enough to be
#: noticed, so a new kind that nobody classified is not silently filtered away).
SEVERITY: dict[str, Severity] = {
    # an operator must act
    "awaiting_confirm": Severity.CRITICAL,
    "fence_failed": Severity.CRITICAL,
    "evacuation_failed": Severity.CRITICAL,
    "pet_left_behind": Severity.CRITICAL,
    "restore_failed": Severity.CRITICAL,
    "instance_restart_failed": Severity.CRITICAL,
    "instance_restart_gave_up": Severity.CRITICAL,
    "brake_engaged": Severity.CRITICAL,
    "nova_unreadable": Severity.CRITICAL,  # petguard is blind: it protects no host until Nova is readable
    "evacuation_stuck": Severity.CRITICAL,  # Nova took a request and never started it: only an operator unsticks it
    # something is wrong or held; petguard is handling it or waiting
    "host_suspect": Severity.WARNING,
    "fence_started": Severity.WARNING,
    "fence_held": Severity.WARNING,
    "evacuate_held": Severity.WARNING,
    "restore_held": Severity.WARNING,
    "evacuation_delayed": Severity.WARNING,
    "target_hint_unmet": Severity.WARNING,
    "evacuation_retried": Severity.WARNING,
    "evacuation_resent": Severity.WARNING,  # Nova's record proved the request dead in nova-conductor: asked again
    "waiting_for_cloud": Severity.WARNING,  # no pet is given up while it lasts (up to cloud_wait_timeout)
    "brake_override": Severity.WARNING,
    "operator_fence": Severity.WARNING,
    "operator_confirm_fenced": Severity.WARNING,
    "operator_resend": Severity.WARNING,  # an operator vouched that nothing in Nova holds the stuck requests
    "resend_refused": Severity.WARNING,  # Nova's record forbids the resend an operator vouched for
    "nova_compute_down": Severity.WARNING,
    "instance_restart": Severity.WARNING,
    "instance_watchdog_reset": Severity.WARNING,
    "instance_io_error": Severity.WARNING,
    "instance_event_too_old": Severity.WARNING,
    "fence_level_failed": Severity.WARNING,
    "fence_device_unreachable": Severity.WARNING,
    "tier_not_ready": Severity.WARNING,
    "ready_check_invalid": Severity.WARNING,
    "capacity_short": Severity.WARNING,
    # progress and good news
    "suspect_cleared": Severity.INFO,
    "fence_confirmed": Severity.INFO,
    "evacuation_started": Severity.INFO,
    "server_evacuated": Severity.INFO,
    "evacuation_finished": Severity.INFO,
    "cloud_answers": Severity.INFO,  # the end of a waiting_for_cloud
    "reserved_host_borrowed": Severity.INFO,
    "reserved_host_returned": Severity.INFO,
    "host_restored": Severity.INFO,
    "brake_released": Severity.INFO,
    "nova_readable_again": Severity.INFO,
    "instance_restart_skipped": Severity.INFO,
    "instance_left_alone": Severity.INFO,
    "operator_maintenance_on": Severity.INFO,
    "operator_maintenance_off": Severity.INFO,
    "operator_restore": Severity.INFO,
    "operator_evacuate": Severity.INFO,
    "fence_device_ok": Severity.INFO,
    "capacity_ok": Severity.INFO,
    "service_disabled_before": Severity.INFO,
}

#: Slack emoji per severity; good news gets a check mark instead of the plain info sign.
EMOJI: dict[Severity, str] = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}
GOOD_NEWS = frozenset(
    {
        "suspect_cleared",
        "fence_confirmed",
        "evacuation_finished",
        "host_restored",
        "brake_released",
        "fence_device_ok",
        "capacity_ok",
        "nova_readable_again",
        "cloud_answers",
    }
)


def severity(kind: str) -> Severity:
    """The severity of an event kind (WARNING for a kind not in the table)."""
    return SEVERITY.get(kind, Severity.WARNING)


def iso_utc(at: float) -> str:
    """``at`` (epoch seconds) as ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.000Z."""
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(event: EventRecord, controller: str, version: str) -> dict[str, Any]:
    """The JSON event of schema version 1 (docs/alerts.md)."""
    return {
        "version": SCHEMA_VERSION,
        "id": event.id,
        "at": iso_utc(event.at),
        "kind": event.kind,
        "severity": severity(event.kind).label,
        "host": event.host,
        "incident_id": event.incident_id,
        "message": event.message,
        "petguard": {"controller": controller, "version": version},
    }


def slack_text(event: EventRecord, controller: str) -> str:
    """One readable line: emoji, kind, host and incident, message, where it came from."""
    level = severity(event.kind)
    emoji = ":white_check_mark:" if event.kind in GOOD_NEWS else EMOJI[level]
    where = f" *{event.host}*" if event.host else ""
    incident = f" (incident {event.incident_id})" if event.incident_id is not None else ""
    return f"{emoji} `{event.kind}`{where}{incident}: {event.message} — petguard on {controller}"


def json_body(event: EventRecord, controller: str, version: str) -> bytes:
    """The JSON event as compact UTF-8 bytes (these exact bytes are signed)."""
    return _dumps(event_payload(event, controller, version))


def slack_body(event: EventRecord, controller: str) -> bytes:
    """The Slack-compatible body ``{"text": ...}``."""
    return _dumps({"text": slack_text(event, controller)})


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    return secrets.signature(secret, timestamp.encode("ascii") + b"." + body)


def signed_headers(secret: bytes | None, timestamp: str, body: bytes) -> dict[str, str]:
    """The headers of one POST: content type, timestamp, and the signature when there is a secret."""
    headers = {"Content-Type": "application/json", "X-Petguard-Timestamp": timestamp}
    if secret is not None:
        headers["X-Petguard-Signature"] = signature(secret, timestamp, body)
    return headers


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
