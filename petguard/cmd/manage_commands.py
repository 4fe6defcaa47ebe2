"""``petguard-manage`` commands over the journal and the configuration (everything but ``init``).

* ``db upgrade``, ``db version``: the journal's schema;
* ``config check``: every mistake the daemon would hit at start or in its first incident
  (``petguard.daemon.check``); one line each, OK/WARNING/ERROR; exit 1 on any ERROR;
* ``host list``, ``incident list``, ``incident show``, ``request show``: the journal, in the API's
  JSON shapes (``petguard.api.wire``) and columns (``petguard.api.columns``), so that ``-f json``
  prints what ``petguard`` prints;
* ``host maintenance on|off``, ``host confirm-fenced``, ``host restore``, ``host fence``, ``host
  evacuate``, ``brake override``: operator requests written straight into the journal for the loop to
  act on at its next tick. The HTTP API and the ``petguard`` CLI offer the same with authentication
  and audit; these work when the daemon is down. Like the CLI, ``fence``, ``confirm-fenced``,
  ``evacuate`` and ``brake override`` ask for confirmation (``--yes``).

The spellings of before (``db-upgrade``, ``config-check``, ``host-list``, ``incident-list``,
``incident-show``, ``request HOST KIND``, ``brake-override``) are kept with their plain-text output
for scripts that parse it (the lab does).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from petguard import terminal
from petguard.api import columns, wire
from petguard.cmd.manage_base import Command, Lister, ShowOne, Table, who
from petguard.conf import CONF
from petguard.daemon import check
from petguard.journal import RequestKind
from petguard.store import migrate

#: The longest reason accepted, as the API does.
MAX_REASON = wire.MAX_REASON


def _reason(text: str) -> str:
    if len(text) > MAX_REASON:
        raise argparse.ArgumentTypeError(f"{len(text)} characters; at most {MAX_REASON} are accepted")
    return text


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= wire.MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {wire.MAX_LIMIT}")
    return value


# -- the journal's schema and the configuration -----------------------------------------------------
class DbUpgrade(Command):
    """Create or migrate the journal's schema (to the newest)."""

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        migrate.upgrade(CONF.database.connection)
        self.app.stdout.write(f"journal schema at head ({migrate.head()})\n")
        return 0


class DbVersion(ShowOne):
    """Show the journal's schema revision and the newest this petguard knows."""

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        current, head = migrate.current(CONF.database.connection), migrate.head()
        return ("Current", "Head", "At head"), (current or "(empty: run db upgrade)", head, current == head)


class ConfigCheck(Command):
    """Check the configuration, journal, Keystone, Nova and every BMC (read-only); exit 1 on any ERROR."""

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        return check.report(check.run(CONF), self.app.stdout)


# -- reading the journal ------------------------------------------------------------------------------
class HostList(Lister):
    """List compute hosts and their lifecycle state, from the journal."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--long", action="store_true", help="also show the detection verdict and detail")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        fields = columns.HOST_LONG if parsed_args.long else columns.HOST
        hosts = [wire.host_json(record) for _, record in sorted(self.store().load_hosts().items())]
        return columns.headings(fields), [columns.row(host, fields) for host in hosts]


class IncidentList(Lister):
    """List incidents (one failure of one host each), newest first."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host", help="only this host's incidents")
        parser.add_argument("--limit", type=_limit, default=50, help=f"at most this many (1 to {wire.MAX_LIMIT})")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        incidents = self.store().incidents(host=parsed_args.host, limit=parsed_args.limit)
        rows = [columns.row(wire.incident_json(i), columns.INCIDENT) for i in incidents]
        return columns.headings(columns.INCIDENT), rows


class IncidentShow(ShowOne):
    """Show one incident: its events, the moves of its servers and the servers left behind."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", metavar="ID", type=int, help="incident id")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        store = self.store()
        incident = store.incident(parsed_args.id)
        data: dict[str, Any] = dict(wire.incident_json(incident))
        data["moves"] = [wire.move_json(m, CONF.evacuation.cloud_wait_timeout) for m in store.moves(incident.id)]
        data["skips"] = [wire.skip_json(s) for s in store.skips(incident.id)]
        data["events"] = [wire.event_json(e) for e in store.events(incident_id=incident.id)]
        return columns.headings(columns.INCIDENT_SHOW), columns.row(data, columns.INCIDENT_SHOW)


class RequestShow(ShowOne):
    """Show an operator request and the loop's answer to it."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", metavar="ID", type=int, help="request id")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        status = self.store().request_status(parsed_args.id)
        return columns.headings(columns.REQUEST), columns.row(wire.request_json(status), columns.REQUEST)


# -- operator requests --------------------------------------------------------------------------------
class Request(ShowOne):
    """Queue an operator request in the journal; the daemon acts on it at its next tick."""

    kind: RequestKind
    #: ``(question, action)``: asked unless --yes (``terminal.CONFIRMATIONS``: the petguard CLI's words).
    confirmation: tuple[str, str] | None = None

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        self.add_target(parser)
        parser.add_argument("--reason", required=True, type=_reason, help="why (recorded in the audit trail)")
        if self.confirmation is not None:
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        return parser

    def add_target(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("host", metavar="HOST", help="compute host, as Nova names it")

    def target(self, parsed_args: argparse.Namespace) -> str:
        return str(parsed_args.host)

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        host = self.target(parsed_args)
        if self.confirmation is not None:
            question, action = (text.format(host=host) for text in self.confirmation)
            terminal.confirm(question, action, yes=parsed_args.yes, stdin=self.app.stdin, stderr=self.app.stderr)
        store = self.store()
        request_id = store.submit_request(host, self.kind, parsed_args.reason, who(), time.time())
        self.app.stderr.write(f"request {request_id} queued; the daemon acts on it at its next tick\n")
        status = store.request_status(request_id)
        return columns.headings(columns.REQUEST), columns.row(wire.request_json(status), columns.REQUEST)


class MaintenanceOn(Request):
    """Put a host in maintenance: petguard stops watching it (no fencing, no evacuation)."""

    kind = RequestKind.MAINTENANCE_ON


class MaintenanceOff(Request):
    """Take a host out of maintenance: petguard watches it again."""

    kind = RequestKind.MAINTENANCE_OFF


class Restore(Request):
    """Return a fenced host to service, once every evacuation of its incident is final."""

    kind = RequestKind.RESTORE


class Fence(Request):
    """Fence a host now: power it off through its BMC and read the power state back as off."""

    kind = RequestKind.FENCE
    confirmation = terminal.CONFIRMATIONS[kind]


class ConfirmFenced(Request):
    """Say that you powered a host off by hand: petguard evacuates its pets."""

    kind = RequestKind.CONFIRM_FENCED
    confirmation = terminal.CONFIRMATIONS[kind]


class Evacuate(Request):
    """Evacuate a fenced host now, or retry its failed moves."""

    kind = RequestKind.EVACUATE
    confirmation = terminal.CONFIRMATIONS[kind]


class Resend(Request):
    """Send a host's stuck evacuation requests again: nothing in Nova can still hold them."""

    kind = RequestKind.RESEND
    confirmation = terminal.CONFIRMATIONS[kind]


class BrakeOverride(Request):
    """Allow fencing despite the mass-failure brake (mass failure, rate limit) for a while."""

    kind = RequestKind.BRAKE_OVERRIDE
    confirmation = terminal.CONFIRMATIONS[kind]

    def add_target(self, parser: argparse.ArgumentParser) -> None:
        pass

    def target(self, parsed_args: argparse.Namespace) -> str:
        return "*"


# -- the spellings of before, with their plain text (scripts parse it); not listed by ``help`` ---------
class LegacyDbUpgrade(DbUpgrade):
    """Old spelling of ``db upgrade``."""

    deprecated = True


class LegacyConfigCheck(ConfigCheck):
    """Old spelling of ``config check``."""

    deprecated = True


class LegacyHostList(Command):
    """Hosts and their lifecycle state, one plain line each (old spelling of ``host list``)."""

    deprecated = True

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        for name, record in sorted(self.store().load_hosts().items()):
            host = record.host
            self.app.stdout.write(
                f"{name:20} {host.state.value:17} incident={host.incident_id or '-':<5} {host.reason}\n"
            )
        return 0


class LegacyIncidentList(Command):
    """Incidents, newest first, one plain line each (old spelling of ``incident list``)."""

    deprecated = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        for incident in self.store().incidents(host=parsed_args.host):
            closed = time.strftime("%F %T", time.gmtime(incident.closed_at)) if incident.closed_at else "open"
            opened = time.strftime("%F %T", time.gmtime(incident.opened_at))
            self.app.stdout.write(
                f"{incident.id:5} {incident.host:20} {opened}  {closed:19} {incident.outcome:12} {incident.reason}\n"
            )
        return 0


class LegacyIncidentShow(Command):
    """One incident in plain text: events, moves, servers left (old spelling of ``incident show``)."""

    deprecated = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", type=int)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        store, out = self.store(), self.app.stdout
        incident = store.incident(parsed_args.id)
        out.write(f"incident {incident.id} on {incident.host}: {incident.reason} ({incident.outcome or 'open'})\n")
        for event in store.events(incident_id=incident.id):
            out.write(f"  {time.strftime('%T', time.gmtime(event.at))} {event.kind:22} {event.message}\n")
        for move in store.moves(incident.id):
            dest = move.dest_host or "-"
            out.write(f"  move {move.server_name:20} {move.status.value:10} -> {dest:10} {move.reason}\n")
        for skip in store.skips(incident.id):
            out.write(f"  left {skip.server_name:20} {skip.reason}\n")
        return 0


class LegacyRequest(Command):
    """Queue an operator request: ``request HOST KIND --reason ...`` (old spelling of ``host ...``)."""

    deprecated = True

    KINDS = ("maintenance-on", "maintenance-off", "confirm-fenced", "restore")

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host")
        parser.add_argument("kind", choices=self.KINDS)
        parser.add_argument("--reason", required=True, type=_reason, help="why (recorded in the audit trail)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        kind = RequestKind(parsed_args.kind.replace("-", "_"))
        request_id = self.store().submit_request(parsed_args.host, kind, parsed_args.reason, who(), time.time())
        self.app.stdout.write(
            f"request {request_id} queued: {kind.value} for {parsed_args.host}; "
            "the daemon acts on it at its next tick\n"
        )
        return 0


class LegacyBrakeOverride(Command):
    """Allow fencing despite the mass-failure brake for a while (old spelling of ``brake override``)."""

    deprecated = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--reason", required=True, type=_reason)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        kind, reason = RequestKind.BRAKE_OVERRIDE, parsed_args.reason
        request_id = self.store().submit_request("*", kind, reason, who(), time.time())
        self.app.stdout.write(f"request {request_id} queued: override the mass-failure brake\n")
        return 0


