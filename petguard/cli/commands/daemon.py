"""Commands about the daemon itself: ``status``, ``log-level`` and ``brake override``."""

from __future__ import annotations

import argparse

from petguard.api import columns, wire
from petguard.cli.client import JsonObject
from petguard.cli.commands.base import RequestCommand, ShowOne, Table, one
from petguard.terminal import CONFIRMATIONS

LEVELS = wire.LOG_LEVELS


class Status(ShowOne):
    """Show the daemon's status: leader, brake, last tick, Nova (blind?), fence readiness, log level, capacity."""

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        return one(columns.flat_status(self.api().get("/v1/status")), columns.STATUS)


class LogLevel(ShowOne):
    """Change the running daemon's log level (until its restart or SIGHUP)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("level", metavar="LEVEL", type=str.upper, choices=LEVELS, help=" | ".join(LEVELS))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        answer = self.api().put("/v1/log-level", {"level": parsed_args.level})
        return ("Log level",), (answer["log_level"],)


class BrakeOverride(RequestCommand):
    """Allow fencing for a while although the mass-failure brake is engaged."""

    reason_required = True
    confirmation = CONFIRMATIONS["brake_override"]

    def add_target(self, parser: argparse.ArgumentParser) -> None:
        """No host: the brake is cloud-wide."""

    def target(self, args: argparse.Namespace) -> str:
        return "*"

    def submit(self, args: argparse.Namespace) -> JsonObject:
        return self.api().post("/v1/brake/override", {"reason": args.reason})
