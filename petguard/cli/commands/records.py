"""Read-only commands over the daemon's journal: incidents, events, requests, audit, agents, explain."""

from __future__ import annotations

import argparse

from petguard.api import columns, wire
from petguard.cli.commands.base import Lister, ShowOne, Table, listing, one, quote


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= wire.MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {wire.MAX_LIMIT}")
    return value


def _add_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=_limit, help=f"at most this many (1 to {wire.MAX_LIMIT}), newest first")


def _query(args: argparse.Namespace, *names: str) -> dict[str, str | int]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


class IncidentList(Lister):
    """List incidents (one failure of one host each), newest first."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host", help="only this host's incidents")
        _add_limit(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        incidents = self.api().get("/v1/incidents", _query(parsed_args, "host", "limit"))["incidents"]
        return listing(incidents, columns.INCIDENT)


class IncidentShow(ShowOne):
    """Show one incident: its events, the moves of its servers and the servers left behind."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", metavar="ID", type=int, help="incident id")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        answer = self.api().get(f"/v1/incidents/{parsed_args.id}")
        data = dict(answer["incident"])
        data.update({k: answer.get(k) for k in ("moves", "skips", "events")})
        return one(data, columns.INCIDENT_SHOW)


class EventList(Lister):
    """List events (what petguard saw, decided and did), newest first."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host", help="only this host's events")
        parser.add_argument("--incident", type=int, metavar="ID", help="only this incident's events")
        _add_limit(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        events = self.api().get("/v1/events", _query(parsed_args, "host", "incident", "limit"))["events"]
        return listing(events, columns.EVENT)


class RequestShow(ShowOne):
    """Show an operator request and the loop's answer to it."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", metavar="ID", type=int, help="request id")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        return one(self.api().get(f"/v1/requests/{parsed_args.id}")["request"], columns.REQUEST)


class AgentList(Lister):
    """List the petguard-agents on the compute nodes: each one's last heartbeat, libvirt connection and domains."""

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        return listing(self.api().get("/v1/agents")["agents"], columns.AGENT)


class AuditList(Lister):
    """List the audit trail: every request that changed something (who, what, when, result)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_limit(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        return listing(self.api().get("/v1/audit", _query(parsed_args, "limit"))["audit"], columns.AUDIT)


class Explain(ShowOne):
    """Explain why a host or a server is where it is, and what petguard does next."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="HOST|SERVER", help="a compute host, or a server's id or name")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        return one(self.api().get(f"/v1/explain/{quote(parsed_args.name)}"), columns.EXPLAIN)
