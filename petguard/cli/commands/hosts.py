"""``petguard host ...``: list and show hosts, and the requests that change one.

Which requests ask for confirmation (docs/cli.md): ``fence`` (powers a host off), ``confirm-fenced``
(evacuates servers of a host the operator says is off: wrong, and they run twice), ``evacuate`` and
``resend`` (sends stuck evacuation requests again on the operator's word that nothing holds them).
``maintenance on|off`` and ``restore`` do not: maintenance only stops petguard watching a host, and
restore is itself guarded by the loop (the host stays forced down until every evacuation is final).
"""

from __future__ import annotations

import argparse

from petguard.api import columns
from petguard.cli.commands.base import HostRequest, Lister, ShowOne, Table, listing, one, quote
from petguard.terminal import CONFIRMATIONS


class HostList(Lister):
    """List compute hosts and their lifecycle state."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--long", action="store_true", help="also show the detection verdict and detail")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        hosts = self.api().get("/v1/hosts")["hosts"]
        return listing(hosts, columns.HOST_LONG if parsed_args.long else columns.HOST)


class HostShow(ShowOne):
    """Show one host: its state, last signals, current incident, moves and recent events."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", help="compute host, as Nova names it")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Table:
        answer = self.api().get(f"/v1/hosts/{quote(parsed_args.host)}")
        data = dict(answer["host"])
        data.update({k: answer.get(k) for k in ("incident", "moves", "skips", "events")})
        return one(data, columns.HOST_SHOW)


class MaintenanceOn(HostRequest):
    """Put a host in maintenance: petguard stops watching it (no fencing, no evacuation)."""

    kind = "maintenance_on"
    reason_required = True


class MaintenanceOff(HostRequest):
    """Take a host out of maintenance: petguard watches it again."""

    kind = "maintenance_off"


class Fence(HostRequest):
    """Fence a host now: power it off through its BMC and read the power state back as off."""

    kind = "fence"
    reason_required = True
    confirmation = CONFIRMATIONS[kind]


class ConfirmFenced(HostRequest):
    """Confirm by hand that a host awaiting confirmation is powered off; its pets are then evacuated."""

    kind = "confirm_fenced"
    reason_required = True
    confirmation = CONFIRMATIONS[kind]


class Restore(HostRequest):
    """Return a host to service: kept forced down until every evacuation from it is final, then enabled."""

    kind = "restore"


class Resend(HostRequest):
    """Send a host's stuck evacuation requests again, once nothing in Nova can still hold them."""

    kind = "resend"
    reason_required = True
    confirmation = CONFIRMATIONS[kind]


class Evacuate(HostRequest):
    """Evacuate a fenced host's pets now, or retry its failed moves."""

    kind = "evacuate"
    confirmation = CONFIRMATIONS[kind]
