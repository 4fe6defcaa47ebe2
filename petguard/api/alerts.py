"""Alerts in: Prometheus Alertmanager's webhook payload (version 4) and petguard's plain JSON form,
parsed into ``AlertRecord`` values (pure: no I/O, ``now`` is passed in).

An alert is **evidence** about a host, never by itself a reason to fence: the loop turns firing
alerts into ``alert:<kind>`` signals, and ``detect.combine`` only calls a host DOWN when a non-alert
source (Nova) says so too.

* Alertmanager: ``{"version": "4", "alerts": [{"status", "labels", "annotations", "startsAt",
  "endsAt", "fingerprint"}], ...}``. The host is the first of ``host_labels`` present in the alert's
  labels (default ``instance``, ``host``, ``nodename``), with any ``:port`` stripped; the kind is the
  ``alertname`` label; the summary is ``annotations.summary``.
* Plain form: ``{"alerts": [{"host", "kind", "status", "summary"?}]}``.

A payload that is not one of these (wrong types, unknown fields in the plain form, a bad status or
timestamp) is refused as a whole (``InvalidBody``): nothing is recorded. An alert without a host
label, or a second alert with the same fingerprint, is ignored with a reason and the rest accepted.
A firing alert counts until it is resolved, until its ``endsAt``, or ``ttl`` seconds after it was
last sent (Alertmanager re-sends firing alerts every ``repeat_interval``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from petguard.api.schemas import MAX_ALERTS as MAX_ALERTS
from petguard.api.schemas import STATUSES as STATUSES
from petguard.api.validation import InvalidBody, check_object, choice_field, string_field
from petguard.journal import AlertRecord

DEFAULT_HOST_LABELS = ("instance", "host", "nodename")
#: Seconds a firing alert counts when it is not sent again (longer than Alertmanager's default
#: repeat_interval of 4 h).
DEFAULT_TTL = 5 * 3600.0
PLAIN_FIELDS = ("host", "kind", "status")
_KIND = re.compile(r"[^A-Za-z0-9_.-]+")
_PORT = re.compile(r"^(?P<host>.+?):\d+$")
_BRACKETED = re.compile(r"^\[(?P<host>[^\]]+)\](:\d+)?$")


@dataclasses.dataclass(frozen=True)
class Ignored:
    """An alert of the payload that was not recorded, and why."""

    index: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Parsed:
    """The alerts to record, each with its index in the payload, and the ones ignored."""

    accepted: tuple[tuple[int, AlertRecord], ...]
    ignored: tuple[Ignored, ...]

    @property
    def alerts(self) -> tuple[AlertRecord, ...]:
        return tuple(alert for _, alert in self.accepted)


@dataclasses.dataclass(frozen=True)
class AlertPolicy:
    """How alerts are read; built from ``[api]`` options."""

    host_labels: tuple[str, ...] = DEFAULT_HOST_LABELS
    ttl: float = DEFAULT_TTL


def parse(payload: Any, policy: AlertPolicy, now: float, sender: str) -> Parsed:
    """Parse an Alertmanager or plain payload.

    :raises InvalidBody: the payload is malformed (nothing of it may be recorded).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise InvalidBody(
            "an alert payload must be a JSON object with an 'alerts' array "
            "(Alertmanager's webhook payload, version 4, or petguard's plain form)"
        )
    items: list[Any] = payload["alerts"]
    if len(items) > MAX_ALERTS:
        raise InvalidBody(f"{len(items)} alerts in one payload; at most {MAX_ALERTS} are accepted")
    if "version" in payload:
        version = payload["version"]
        if version != "4":
            raise InvalidBody(f"Alertmanager webhook payload version {version!r} is not supported; expected '4'")
        candidates = [_alertmanager(i, item, policy, now, sender) for i, item in enumerate(items)]
    else:
        check_object(payload, required=("alerts",), what="the plain alert payload")
        candidates = [_plain(i, item, policy, now, sender) for i, item in enumerate(items)]
    return _dedupe(candidates)


def _dedupe(candidates: Sequence[AlertRecord | Ignored]) -> Parsed:
    accepted: list[tuple[int, AlertRecord]] = []
    ignored: list[Ignored] = []
    first: dict[str, int] = {}
    for index, candidate in enumerate(candidates):
        if isinstance(candidate, Ignored):
            ignored.append(candidate)
        elif candidate.fingerprint in first:
            ignored.append(Ignored(index, f"duplicate of alert {first[candidate.fingerprint]} (same fingerprint)"))
        else:
            first[candidate.fingerprint] = index
            accepted.append((index, candidate))
    return Parsed(tuple(accepted), tuple(ignored))


def _alertmanager(index: int, item: Any, policy: AlertPolicy, now: float, sender: str) -> AlertRecord | Ignored:
    what = f"alerts[{index}]"
    if not isinstance(item, dict):
        raise InvalidBody(f"{what} must be a JSON object")
    labels = _string_map(item.get("labels", {}), f"{what}.labels")
    annotations = _string_map(item.get("annotations", {}), f"{what}.annotations")
    status = choice_field(item, "status", STATUSES, what=f"{what}.") if "status" in item else "firing"
    host = host_from_labels(labels, policy.host_labels)
    if host is None:
        looked = ", ".join(policy.host_labels)
        return Ignored(index, f"no host label (looked for {looked}; see [api] alert_host_labels)")
    kind = _kind(labels.get("alertname", "alert"))
    starts_at = _timestamp(item.get("startsAt"), f"{what}.startsAt") or now
    ends_at = _timestamp(item.get("endsAt"), f"{what}.endsAt")
    fingerprint = item.get("fingerprint")
    if fingerprint is None:
        fingerprint = _fingerprint(sorted(labels.items()))
    elif not isinstance(fingerprint, str) or not fingerprint:
        raise InvalidBody(f"field {what}.fingerprint must be a non-empty string")
    expires_at = ends_at if ends_at is not None and ends_at > now else now + policy.ttl
    return AlertRecord(
        fingerprint=f"am:{fingerprint}"[:255],
        host=host,
        kind=kind,
        firing=status == "firing",
        summary=annotations.get("summary", "")[:1000],
        starts_at=starts_at,
        expires_at=expires_at if status == "firing" else now,
        sender=sender,
    )


def _plain(index: int, item: Any, policy: AlertPolicy, now: float, sender: str) -> AlertRecord:
    what = f"alerts[{index}]"
    body = check_object(item, required=PLAIN_FIELDS, optional=("summary",), what=what)
    host = string_field(body, "host", max_length=255, what=f"{what}.").strip()
    if not host:
        raise InvalidBody(f"field {what}.host must name a host")
    kind = _kind(string_field(body, "kind", max_length=255, what=f"{what}."))
    status = choice_field(body, "status", STATUSES, what=f"{what}.")
    summary = string_field(body, "summary", what=f"{what}.") if "summary" in body else ""
    return AlertRecord(
        fingerprint=f"plain:{_fingerprint([('host', host), ('kind', kind)])}",
        host=host,
        kind=kind,
        firing=status == "firing",
        summary=summary,
        starts_at=now,
        expires_at=now + policy.ttl if status == "firing" else now,
        sender=sender,
    )


def host_from_labels(labels: Mapping[str, str], names: Sequence[str]) -> str | None:
    """The host an alert is about: the first of ``names`` present, without a ``:port``."""
    for name in names:
        value = labels.get(name, "").strip()
        if value:
            return strip_port(value)
    return None


def strip_port(value: str) -> str:
    """``cmp1:9100`` -> ``cmp1``; ``[fd00::1]:9100`` -> ``fd00::1``; a bare IPv6 address is kept."""
    bracketed = _BRACKETED.match(value)
    if bracketed:
        return bracketed.group("host")
    if value.count(":") == 1:
        match = _PORT.match(value)
        if match:
            return match.group("host")
    return value


def _kind(value: str) -> str:
    kind = _KIND.sub("_", value.strip())[:64]
    return kind or "alert"


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidBody(f"field {what} must be an object of strings")
    return value


def _timestamp(value: Any, what: str) -> float | None:
    """An RFC 3339 time as unix seconds; None for absent or Go's zero time (``0001-01-01T00:00:00Z``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidBody(f"field {what} must be an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidBody(f"field {what} is not an RFC 3339 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise InvalidBody(f"field {what} has no time zone: {value[:40]!r}")
    if parsed.year <= 1:
        return None
    return parsed.timestamp()


def _fingerprint(items: Sequence[tuple[str, str]]) -> str:
    text = "\n".join(f"{k}={v}" for k, v in items)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
