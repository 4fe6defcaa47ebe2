"""How the API's JSON shapes (docs/api.md) become cliff rows: headings, and values that print well.

Shared by the two command-line programs: ``petguard`` prints what the API answers, ``petguard-manage``
prints the same shapes read from the journal (``wire.host_json`` ...), so ``-f json`` is the same in both.

Each shape has a tuple of ``Field``s: the JSON key, the heading shown (and selected with ``-c``),
and optionally a cliff ``FormattableColumn`` that prints a human form in ``table``/``value`` output
while ``json``/``yaml`` keep the API's machine value (unix seconds, lists, objects).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cliff.columns import FormattableColumn

from petguard.api import wire
from petguard.terminal import Field, Lines, Row, Time, format_time, headings, row

__all__ = ["Field", "Lines", "Row", "Time", "format_time", "headings", "row"]


class EventLines(Lines):
    def line(self, item: Any) -> str:
        return f"{format_time(item['at'])} {item['kind']}: {item['message']}"


class MoveLines(Lines):
    def line(self, item: Any) -> str:
        dest = item.get("dest_host") or "-"
        reason = f" ({item['reason']})" if item.get("reason") else ""
        wait = wire.waiting_text(
            item.get("waiting") or "",
            item.get("waiting_since"),
            item.get("waiting_until"),
            format_time,
            item.get("resend_vouched_at"),
        )
        return f"{item['server_name']} {item['status']} -> {dest}{reason}" + (f"; {wait}" if wait else "")


class SkipLines(Lines):
    def line(self, item: Any) -> str:
        return f"{item['server_name']}: {item['reason']}"


class HostStates(FormattableColumn[list[dict[str, Any]]]):
    """Hosts with a state, one per line: ``host: state [incident N]``."""

    def human_readable(self) -> str:
        return "\n".join(
            f"{h['host']}: {h['state']}" + (f" [incident {h['incident_id']}]" if h.get("incident_id") else "")
            for h in self._value or ()
        )


class ReservedHosts(HostStates):
    """The reserved failover hosts: ``host: state [incident N]``."""


class UnwatchedHosts(HostStates):
    """The hosts a blind petguard cannot watch: ``host: last state [incident N]``."""


class Domains(FormattableColumn[list[dict[str, Any]]]):
    """An agent's libvirt domains: how many, and how many in each state (``3: 2 running, 1 paused``)."""

    def human_readable(self) -> str:
        domains = self._value or []
        counts: dict[str, int] = {}
        for domain in domains:
            counts[domain["state"]] = counts.get(domain["state"], 0) + 1
        return f"{len(domains)}" + (": " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if counts else "")


class Readiness(FormattableColumn[dict[str, str]]):
    """``{host: "ok" | "unknown" | why not}``, one host per line."""

    def human_readable(self) -> str:
        return "\n".join(f"{host}: {state}" for host, state in sorted((self._value or {}).items()))


class PerHost(Readiness):
    """``{host: text}``, one host per line (e.g. why the capacity check does not count a host)."""


class IncidentSummary(FormattableColumn[dict[str, Any] | None]):
    """An Incident object shown as one line."""

    def human_readable(self) -> str:
        incident = self._value
        if not incident:
            return ""
        end = f"closed {format_time(incident['closed_at'])}" if incident.get("closed_at") else "open"
        outcome = f", {incident['outcome']}" if incident.get("outcome") else ""
        return f"{incident['id']}: opened {format_time(incident['opened_at'])}, {end}{outcome}: {incident['reason']}"




HOST = (
    Field("name", "Name"),
    Field("state", "State"),
    Field("since", "Since", Time),
    Field("incident_id", "Incident"),
    Field("reason", "Reason"),
)
HOST_LONG = HOST + (Field("verdict", "Verdict"), Field("detail", "Detail"))
#: What an incident did: its moves, the servers it left behind, its events.
_STORY = (
    Field("moves", "Moves", MoveLines),
    Field("skips", "Left behind", SkipLines),
    Field("events", "Events", EventLines),
)
HOST_SHOW = HOST_LONG + (Field("incident", "Incident details", IncidentSummary), *_STORY)
INCIDENT = (
    Field("id", "ID"),
    Field("host", "Host"),
    Field("opened_at", "Opened", Time),
    Field("closed_at", "Closed", Time),
    Field("outcome", "Outcome"),
    Field("reason", "Reason"),
)
INCIDENT_SHOW = INCIDENT + _STORY
EVENT = (
    Field("id", "ID"),
    Field("at", "At", Time),
    Field("host", "Host"),
    Field("incident_id", "Incident"),
    Field("kind", "Kind"),
    Field("message", "Message"),
)
REQUEST = (
    Field("id", "ID"),
    Field("host", "Host"),
    Field("kind", "Kind"),
    Field("status", "Status"),
    Field("message", "Message"),
    Field("reason", "Reason"),
    Field("requested_by", "Requested by"),
    Field("requested_at", "Requested at", Time),
    Field("finished_at", "Finished at", Time),
)
EXPLAIN = (
    Field("subject", "Subject"),
    Field("name", "Name"),
    Field("state", "State"),
    Field("lines", "Explanation", Lines),
)
STATUS = (
    Field("version", "Version"),
    Field("leader", "Leader"),
    Field("brake_engaged", "Brake engaged"),
    Field("brake_reason", "Brake reason"),
    Field("brake_since", "Brake since", Time),
    Field("brake_override_until", "Brake override until", Time),
    Field("last_tick", "Last tick", Time),
    Field("tick_ok", "Tick OK"),
    Field("dry_run", "Dry run"),
    Field("fence_readiness", "Fence readiness", Readiness),
    Field("log_level", "Log level"),
    Field("capacity_verdict", "Capacity"),
    Field("capacity_summary", "Capacity summary"),
    Field("capacity_worst", "Capacity worst host"),
    Field("capacity_short", "Capacity short", Lines),
    Field("capacity_not_counted", "Capacity not counted", PerHost),
    Field("capacity_checked_at", "Capacity checked at", Time),
    Field("reserved_hosts", "Reserved hosts", ReservedHosts),
    Field("nova_summary", "Nova"),
    Field("nova_readable", "Nova readable"),
    Field("nova_blind", "Nova blind"),
    Field("nova_failed_readings", "Nova failed readings"),
    Field("nova_since", "Nova unreadable since", Time),
    Field("nova_last_read", "Nova last read", Time),
    Field("nova_reason", "Nova error"),
    Field("nova_unwatched", "Hosts not watched", UnwatchedHosts),
)
AGENT = (
    Field("host", "Host"),
    Field("last_heartbeat", "Last heartbeat", Time),
    Field("interval", "Interval"),
    Field("libvirt_connected", "Libvirt"),
    Field("domains", "Domains", Domains),
    Field("buffered", "Buffered"),
    Field("dropped", "Dropped"),
    Field("version", "Version"),
    Field("sender", "Sender"),
)

AUDIT = (
    Field("id", "ID"),
    Field("at", "At", Time),
    Field("actor", "Actor"),
    Field("action", "Action"),
    Field("target", "Target"),
    Field("result", "Result"),
    Field("detail", "Detail"),
)


def flat_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /v1/status`` with its ``brake``, ``capacity`` and ``nova`` objects spread into ``brake_*``,
    ``capacity_*`` and ``nova_*`` keys (one column each)."""
    brake = status.get("brake") or {}
    capacity = status.get("capacity") or {}
    worst = capacity.get("worst") or {}
    nova = status.get("nova") or {}
    flat = {k: v for k, v in status.items() if k not in ("brake", "capacity", "nova")}
    flat.update({f"nova_{k}": v for k, v in nova.items()})
    flat.setdefault("nova_summary", "unknown (an older daemon)")
    flat.setdefault("nova_unwatched", [])
    flat.update(
        brake_engaged=brake.get("engaged"),
        brake_reason=brake.get("reason"),
        brake_since=brake.get("since"),
        brake_override_until=brake.get("override_until"),
        capacity_verdict=capacity.get("verdict", "unknown"),
        capacity_summary=capacity.get("summary") or "not checked yet",
        capacity_worst=worst.get("summary"),
        capacity_short=[host.get("summary", "") for host in capacity.get("short") or ()],
        capacity_not_counted=capacity.get("not_counted") or {},
        capacity_checked_at=capacity.get("checked_at"),
    )
    return flat
